-- The body published is exactly the bytes the producer wrote (issue 11).
--
-- Until now the body was payload::text, and jsonb normalises the text (key
-- order, whitespace, escapes, numbers: 12345678901234567890.000 stays, but
-- {"b":1,"a":2} becomes {"a": 2, "b": 1}), which breaks anything that signs
-- or hashes the body, and a non-JSON body (protobuf) could not be stored.
--
-- Two new columns hold the body as it was written, and its content type:
--   body          the exact bytes the relay publishes; NULL for rows written
--                 before this migration or by a plain INSERT of payload only:
--                 those are published as payload::text, as before.
--   content_type  the AMQP content_type; NULL is application/json.
-- payload stays the jsonb that SQL queries read (payload->>'user_id'): for a
-- JSON body (content_type NULL, application/json or */*+json, parameters
-- allowed) the trigger sets it from the body; for any other body it is NULL.
--
-- Why new columns and not ALTER COLUMN payload TYPE json: that is a full
-- rewrite of the table and its indexes under an ACCESS EXCLUSIVE lock, which
-- blocks every producer's INSERT meanwhile. Measured on 1M rows (990k
-- published, 10k pending, ~150-byte payloads, 1.2 GB with fillfactor 50;
-- PostgreSQL 15, 2 cores): 22.7 s. ADD COLUMN without a default and DROP NOT
-- NULL change the catalog only: 1.4 ms on the same table.
ALTER TABLE outbox_event
    ADD COLUMN body bytea,
    ADD COLUMN content_type text,
    ALTER COLUMN payload DROP NOT NULL;

-- outbox_event_problem gains the body and its content type. Same limits as
-- before, on what is published: the body when there is one (at most 1 MiB of
-- bytes), payload::text otherwise. Whether a JSON body is JSON that jsonb
-- takes is checked by the trigger below, when it parses the body.
DROP FUNCTION outbox_event_problem(text, text, jsonb, jsonb);

CREATE FUNCTION outbox_event_problem(topic text, key text, payload jsonb, headers jsonb,
                                     body bytea DEFAULT NULL, content_type text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    name text;
BEGIN
    IF topic IS NULL OR topic = '' THEN
        RETURN 'topic is empty';
    ELSIF octet_length(topic) > 255 THEN
        RETURN 'topic is longer than 255 bytes';
    ELSIF key IS NULL THEN
        RETURN 'key is null (use '''' for events that need no order)';
    ELSIF octet_length(key) > 255 THEN
        RETURN 'key is longer than 255 bytes';
    ELSIF content_type = '' THEN
        RETURN 'content_type is empty (NULL means application/json)';
    ELSIF octet_length(content_type) > 255 THEN
        RETURN 'content_type is longer than 255 bytes';
    ELSIF body IS NULL AND content_type IS NOT NULL THEN
        RETURN 'content_type is set but body is NULL (a content type goes with a body)';
    ELSIF body IS NULL AND payload IS NULL THEN
        RETURN 'payload is null (use ''null''::jsonb for a JSON null)';
    ELSIF body IS NULL AND octet_length(payload::text) > 1048576 THEN
        RETURN format('payload is %s bytes as stored, more than the 1048576 allowed', octet_length(payload::text));
    ELSIF octet_length(body) > 1048576 THEN
        RETURN format('body is %s bytes, more than the 1048576 allowed', octet_length(body));
    ELSIF headers IS NULL OR jsonb_typeof(headers) <> 'object' THEN
        RETURN 'headers are not a JSON object';
    ELSIF octet_length(headers::text) > 65536 THEN
        RETURN format('headers are %s bytes as JSON, more than the 65536 allowed', octet_length(headers::text));
    ELSIF headers = '{}' THEN
        RETURN NULL;
    END IF;
    FOR name IN SELECT jsonb_object_keys(headers) LOOP
        IF name = '' THEN
            RETURN 'header name is empty';
        ELSIF octet_length(name) > 255 THEN
            RETURN format('header name %s... is longer than 255 bytes', left(name, 40));
        ELSIF name IN ('CC', 'BCC') OR starts_with(name, 'x-jobsd-') THEN
            RETURN format('header name %s is reserved (CC, BCC and names starting with x-jobsd-)', name);
        END IF;
    END LOOP;
    IF EXISTS (SELECT FROM jsonb_path_query(headers, 'strict $.** ? (@.type() == "object").keyvalue()') AS kv
               WHERE octet_length(kv->>'key') > 255) THEN
        RETURN 'a header name nested in a header value is longer than 255 bytes';
    END IF;
    RETURN NULL;
END
$$;

-- outbox_json_content_type says whether a body of this content type is JSON
-- (the payload column is then set from it): NULL (the default),
-- application/json or any */*+json, with or without parameters, in any case.
-- outbox.Write (Go) decides the same way.
CREATE FUNCTION outbox_json_content_type(content_type text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT content_type IS NULL
        OR lower(btrim(split_part(content_type, ';', 1))) = 'application/json'
        OR (lower(btrim(split_part(content_type, ';', 1))) LIKE '%/%+json')
$$;

-- The trigger now also sets payload from a JSON body (so that SQL reads the
-- same JSON as the consumers get), and NULL for any other body. Parsing a
-- body that is not valid UTF-8 or not JSON that jsonb takes raises the cast's
-- error (SQLSTATE 22021 or 22P02).
CREATE OR REPLACE FUNCTION outbox_event_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    problem text := outbox_event_problem(NEW.topic, NEW.key, NEW.payload, NEW.headers, NEW.body, NEW.content_type);
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'outbox_event row refused: %', problem
            USING ERRCODE = 'check_violation', CONSTRAINT = 'outbox_event_sendable',
                  TABLE = 'outbox_event', HINT = 'see outbox_event_problem(); the relay could never send this row';
    END IF;
    IF NEW.body IS NOT NULL THEN
        IF outbox_json_content_type(NEW.content_type) THEN
            NEW.payload := convert_from(NEW.body, 'UTF8')::jsonb;
        ELSE
            NEW.payload := NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

-- outbox_write(topic, key, payload jsonb, headers) stays as it was: its body
-- is payload::text, normalised by jsonb; it validates with the new
-- outbox_event_problem (the body arguments default to NULL). A payload given
-- as text (a literal, or a parameter a driver sends untyped or as text) now
-- goes to the text overload below, which keeps its bytes: Postgres prefers
-- text for an untyped argument.

-- outbox_write_body is outbox_write for a body of any content type (NULL:
-- JSON), published byte for byte.
CREATE FUNCTION outbox_write_body(topic text, key text, body bytea, content_type text DEFAULT NULL,
                                  headers jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    problem text := CASE WHEN body IS NULL THEN 'body is null'
                         ELSE outbox_event_problem(topic, key, NULL, headers, body, content_type) END;
    id bigint;
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid outbox event: %', problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF key <> '' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('jobsd.outbox:' || key, 0));
    END IF;
    INSERT INTO outbox_event (topic, key, body, content_type, headers)
    VALUES (outbox_write_body.topic, outbox_write_body.key, outbox_write_body.body,
            outbox_write_body.content_type, outbox_write_body.headers)
    RETURNING outbox_event.id INTO id;
    RETURN id;
END
$$;

-- The text overload: outbox_write('t', 'k', '{"b": 1, "a": 2}') publishes
-- {"b": 1, "a": 2} as written.
CREATE FUNCTION outbox_write(topic text, key text, payload text, headers jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE sql AS $$
    SELECT outbox_write_body(topic, key, convert_to(payload, 'UTF8'), NULL, headers)
$$;

COMMENT ON COLUMN outbox_event.payload IS
    'The event as jsonb, for SQL (payload->>''user_id''): set from body by the insert trigger when the body is JSON, NULL when it is not. Rows without a body (written before migration 008, or by an INSERT of payload only) are published as payload::text, normalised by jsonb.';
COMMENT ON COLUMN outbox_event.body IS
    'The message body exactly as the producer wrote it (outbox.Write, outbox_write, outbox_write_body), published byte for byte; at most 1 MiB. NULL: the body is payload::text.';
COMMENT ON COLUMN outbox_event.content_type IS
    'The AMQP content_type of body (and CloudEvents datacontenttype), e.g. application/x-protobuf; NULL means application/json. Set only together with body.';
COMMENT ON FUNCTION outbox_event_problem(text, text, jsonb, jsonb, bytea, text) IS
    'Why the relay could never send an outbox_event row with these values, or NULL if it can. The body and content_type arguments are optional (migration 008).';
COMMENT ON FUNCTION outbox_json_content_type(text) IS
    'Whether a body of this content type is JSON (NULL, application/json, */*+json; parameters and case ignored): outbox_event.payload is then set from it.';
COMMENT ON FUNCTION outbox_event_check() IS
    'Trigger function of outbox_event_sendable: raises check_violation when outbox_event_problem finds a problem in the new row; sets payload from a JSON body (NULL for other bodies).';
COMMENT ON FUNCTION outbox_write(text, text, jsonb, jsonb) IS
$$outbox_write with a jsonb payload (an argument typed jsonb, e.g. $3::jsonb): published as jsonb's text, normalised (key order, whitespace, escapes). An untyped or text payload goes to outbox_write(text, text, text, jsonb), which keeps the bytes as written.
Writes one event in the caller's transaction and returns its id; the relay publishes it after commit.
topic: the AMQP message type and routing key, 1 to 255 bytes.
key: events of one key are published in commit order (a per-key advisory lock is held until commit;
'' for no order and no lock); at most 255 bytes.
payload: at most 1 MiB as jsonb text.
headers: a JSON object of AMQP headers, at most 64 KiB as jsonb text; names 1 to 255 bytes,
not CC, BCC or x-jobsd-*.
An invalid event raises SQLSTATE 22023 (invalid_parameter_value) with the reason.
Several events of one transaction with different keys: write them in a consistent key order
(e.g. sorted), or two transactions may deadlock (40P01, retry the transaction).$$;
COMMENT ON FUNCTION outbox_write(text, text, text, jsonb) IS
$$outbox_write with the payload as text (what an untyped literal or parameter resolves to): the JSON is published exactly as written, byte for byte, and payload is set from it for SQL.
    SELECT outbox_write('user.signed_up', '42', '{"id": 42, "amount": 12345678901234567890.000}');
Validation, limits (1 MiB of body) and the per-key lock are those of outbox_write_body; invalid JSON raises SQLSTATE 22P02.$$;
COMMENT ON FUNCTION outbox_write_body(text, text, bytea, text, jsonb) IS
$$Writes one event whose body is any bytes, published exactly as given with content_type as the AMQP content type (NULL: application/json, then the body must be JSON), in the caller's transaction; returns its id.
    SELECT outbox_write_body('user.signed_up', '42', '\x0a02082a'::bytea, 'application/x-protobuf');
Same key lock and limits as outbox_write (body at most 1 MiB, content_type 1 to 255 bytes); an invalid event raises SQLSTATE 22023.$$;
