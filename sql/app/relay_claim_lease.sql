-- Step 2 of a claim, in the transaction that locked the candidates $3: lease
-- to relay $4 for $5 ms the candidates that come before their key's barrier,
-- and return what the relay needs to publish them. $1 and $2 are the
-- candidates' keys and, per key, the last candidate id.
--
-- key_row: per candidate key, the key's pending rows up to its last
-- candidate that are not leased by this relay itself. barrier: per key, the
-- first of those rows that is not a candidate: a row leased by another relay,
-- backing off, or locked by a concurrent claim that SKIP LOCKED passed over.
-- A candidate after its key's barrier must not overtake it and stays
-- unclaimed, so a key's rows are claimed as the contiguous run that starts at
-- its earliest pending row. Rows this relay leased itself do not block: they
-- are ahead in its own pipeline, which publishes in claim order.
WITH key_row AS (
    SELECT k.key, e.id
    FROM unnest($1::text[], $2::bigint[]) AS k (key, last_id)
    CROSS JOIN LATERAL (
        SELECT e.id
        FROM outbox_event e
        WHERE e.key = k.key AND e.state = 'pending' AND e.id <= k.last_id
          AND (e.claimed_by IS DISTINCT FROM $4 OR e.claimed_until IS NULL OR e.claimed_until < now())
    ) AS e
),
barrier AS (
    SELECT key, min(id) AS id FROM key_row WHERE id <> ALL ($3::bigint[]) GROUP BY key
)
UPDATE outbox_event o
SET claimed_by = $4, claimed_until = now() + $5::float8 * interval '1 millisecond'
WHERE o.id = ANY ($3::bigint[])
  AND NOT EXISTS (SELECT 1 FROM barrier b WHERE b.key = o.key AND b.id < o.id)
RETURNING o.id, o.message_id::text, o.topic, o.key, o.payload, o.headers, o.created_at, o.attempt;
