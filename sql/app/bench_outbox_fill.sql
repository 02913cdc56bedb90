-- Pre-inserts $1 pending outbox rows for `jobsd bench` (outside the timing).
-- $2: number of distinct keys (0: each row its own key); $3: topic; $4: payload.
INSERT INTO outbox_event (topic, key, payload)
SELECT $3, 'bench-' || CASE WHEN $2::int > 0 THEN i % $2::int ELSE i END, $4::jsonb
FROM generate_series(1, $1::int) AS i
