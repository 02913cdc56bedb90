-- The outbox's write boundary in SQL, for producers in other languages and for
-- plain INSERTs. The limits are those of the Go package outbox (MaxTopicBytes,
-- MaxKeyBytes, MaxPayloadBytes, MaxHeaderNameBytes, MaxHeadersBytes,
-- ReservedHeader); outbox.TestGoAndSQLLimitsAgree checks both sides agree.

-- outbox_event_problem says why the relay could never send a row with these
-- values (RabbitMQ would refuse it, or close the connection), or returns NULL
-- when the row is fine. Used by the trigger outbox_event_sendable below and by
-- outbox_write.
CREATE FUNCTION outbox_event_problem(topic text, key text, payload jsonb, headers jsonb)
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
    ELSIF payload IS NULL THEN
        RETURN 'payload is null (use ''null''::jsonb for a JSON null)';
    ELSIF octet_length(payload::text) > 1048576 THEN
        RETURN format('payload is %s bytes as stored, more than the 1048576 allowed', octet_length(payload::text));
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
    -- Names inside nested header values (AMQP tables) are short strings too.
    IF EXISTS (SELECT FROM jsonb_path_query(headers, 'strict $.** ? (@.type() == "object").keyvalue()') AS kv
               WHERE octet_length(kv->>'key') > 255) THEN
        RETURN 'a header name nested in a header value is longer than 255 bytes';
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION outbox_event_problem(text, text, jsonb, jsonb) IS
    'Why the relay could never send an outbox_event row with these values, or NULL if it can.';

-- Refuse at INSERT (and COPY) a row the relay could never send, with
-- SQLSTATE 23514 (check_violation) and the reason. A BEFORE INSERT trigger, not
-- a CHECK constraint: Postgres evaluates a CHECK on every UPDATE of a row too,
-- even of other columns, so
--   * a row written before this migration that fails the check (say, a CC
--     header of type string; NOT VALID would only skip it at ALTER time) would
--     make the relay's lease, release and mark UPDATEs fail for its whole batch
--     and stop the relay for every key, instead of the row going dead;
--   * the relay's two UPDATEs per row would re-serialise every payload.
-- The trigger checks a row once, when it is written; rows written before this
-- migration are left alone (the relay makes them dead, as before).
CREATE FUNCTION outbox_event_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    problem text := outbox_event_problem(NEW.topic, NEW.key, NEW.payload, NEW.headers);
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'outbox_event row refused: %', problem
            USING ERRCODE = 'check_violation', CONSTRAINT = 'outbox_event_sendable',
                  TABLE = 'outbox_event', HINT = 'see outbox_event_problem(); the relay could never send this row';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER outbox_event_sendable BEFORE INSERT ON outbox_event
    FOR EACH ROW EXECUTE FUNCTION outbox_event_check();

-- outbox_write is outbox.Write for one event in SQL: it validates like the Go
-- side, takes the same per-key transaction-scoped advisory lock before the row
-- gets its id (so ids of a key follow commit order), inserts, returns the id.
CREATE FUNCTION outbox_write(topic text, key text, payload jsonb, headers jsonb DEFAULT '{}')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    problem text := outbox_event_problem(topic, key, payload, headers);
    id bigint;
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'invalid outbox event: %', problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF key <> '' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('jobsd.outbox:' || key, 0));
    END IF;
    INSERT INTO outbox_event (topic, key, payload, headers)
    VALUES (outbox_write.topic, outbox_write.key, outbox_write.payload, outbox_write.headers)
    RETURNING outbox_event.id INTO id;
    RETURN id;
END
$$;

COMMENT ON FUNCTION outbox_write(text, text, jsonb, jsonb) IS
$$Writes one event to the outbox in the caller's transaction and returns its id; the relay publishes it after commit.
Call it in the same transaction as the application's own rows:
    SELECT outbox_write('user.signed_up', '42', '{"id": 42}', '{"source": "billing"}');
topic: the AMQP message type and routing key, 1 to 255 bytes.
key: events of one key are published in commit order (a per-key advisory lock is held until commit;
'' for no order and no lock); at most 255 bytes.
payload: the message body, at most 1 MiB as jsonb text.
headers: a JSON object of AMQP headers, at most 64 KiB as jsonb text; names 1 to 255 bytes,
not CC, BCC or x-jobsd-*.
An invalid event raises SQLSTATE 22023 (invalid_parameter_value) with the reason.
Several events of one transaction with different keys: write them in a consistent key order
(e.g. sorted), or two transactions may deadlock (40P01, retry the transaction).$$;
