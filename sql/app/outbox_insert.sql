-- Inserts a batch of events; arrays are parallel, one element per event.
-- $3 are the bodies exactly as written, $5 their content types ('' for
-- application/json). The trigger outbox_event_sendable sets payload from a
-- JSON body (migration 008).
INSERT INTO outbox_event (topic, key, body, headers, content_type)
SELECT topic, key, body, headers, nullif(content_type, '')
FROM unnest($1::text[], $2::text[], $3::bytea[], $4::jsonb[], $5::text[]) AS e (topic, key, body, headers, content_type)
RETURNING id;
