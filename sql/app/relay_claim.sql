-- Claims up to $2 pending rows for relay $1 under a lease of $3 ms, keeping
-- per-key order across relays. It is one short statement (its own
-- transaction): no transaction stays open while the relay talks to the broker.
--
-- candidate: the first $2 pending rows in id order that are available, whose
-- lease is free and whose key's earliest pending row (head) is free and
-- available too, or leased by this relay itself. Rows are locked with SKIP
-- LOCKED, so two relays claiming at once never take the same row. Checking the
-- head keeps keys that are blocked (head leased by another relay, or backing
-- off after a failed publish) out of the batch, so that they cannot crowd out
-- the keys that can flow.
--
-- barrier: per key of the candidates, the earliest pending row of that key
-- (below the key's last candidate) that this statement does not claim and that
-- is not leased by this relay itself: a row leased by another relay, backing
-- off, or skipped because another relay's claim is locking it right now. A
-- candidate is claimed only when it comes before its key's barrier, so a key's
-- rows are claimed as the contiguous run that starts at its earliest pending
-- row, and never while another relay still holds an earlier row of the key.
-- Rows this relay leased itself do not block: they are ahead of the new rows
-- in its own pipeline, which publishes in claim order on one channel.
WITH candidate AS MATERIALIZED (
    SELECT o.id, o.key
    FROM outbox_event o
    CROSS JOIN LATERAL (
        SELECT h.available_at, h.claimed_by, h.claimed_until
        FROM outbox_event h
        WHERE h.key = o.key AND h.state = 'pending'
        ORDER BY h.id
        LIMIT 1
    ) head
    WHERE o.state = 'pending'
      AND o.available_at <= now()
      AND (o.claimed_until IS NULL OR o.claimed_until < now())
      AND head.available_at <= now()
      AND (head.claimed_until IS NULL OR head.claimed_until < now() OR head.claimed_by = $1)
    ORDER BY o.id
    LIMIT $2
    FOR UPDATE OF o SKIP LOCKED
),
span AS (
    SELECT key, max(id) AS last_id FROM candidate GROUP BY key
),
barrier AS (
    SELECT e.key, min(e.id) AS id
    FROM span s
    JOIN outbox_event e ON e.key = s.key AND e.id < s.last_id AND e.state = 'pending'
    WHERE (e.claimed_by IS DISTINCT FROM $1 OR e.claimed_until IS NULL OR e.claimed_until < now())
      AND NOT EXISTS (SELECT 1 FROM candidate c WHERE c.id = e.id)
    GROUP BY e.key
)
UPDATE outbox_event o
SET claimed_by = $1, claimed_until = now() + $3::float8 * interval '1 millisecond'
FROM candidate c
LEFT JOIN barrier b ON b.key = c.key
WHERE o.id = c.id
  AND (b.id IS NULL OR c.id < b.id)
RETURNING o.id, o.message_id::text, o.topic, o.key, o.payload, o.headers, o.created_at, o.attempt;
