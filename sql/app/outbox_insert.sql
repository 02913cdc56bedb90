-- Inserts a batch of events; arrays are parallel, one element per event.
INSERT INTO outbox_event (topic, key, payload, headers)
SELECT topic, key, payload, headers
FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[]) AS e (topic, key, payload, headers)
RETURNING id;
