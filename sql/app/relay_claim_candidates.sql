-- Step 1 of a claim (one short transaction; see the relay package doc).
--
-- candidate: lock the first $1 pending rows in id order that are available
-- and whose lease is free. SKIP LOCKED: two relays claiming at once never take
-- the same row. $3 are keys the relay recently found blocked (an earlier row
-- leased by another relay or backing off); skipping them for a moment keeps a
-- blocked key with a large backlog from filling every batch while other keys
-- wait.
--
-- Returned with the candidates (candidate = true): per candidate key, the
-- key's pending rows up to its last candidate that relay $2 does not lease
-- itself (candidate = false). The relay claims a key's candidates only up to
-- the first of those rows that is not a candidate: a row leased by another
-- relay, backing off, or locked by a concurrent claim that SKIP LOCKED passed
-- over. So a key's rows are claimed as the contiguous run that starts at its
-- earliest pending row. Rows the relay leased itself do not block it: they
-- are ahead in its own pipeline, which publishes in claim order.
WITH candidate AS MATERIALIZED (
    SELECT o.key, o.id
    FROM outbox_event o
    WHERE o.state = 'pending'
      AND o.available_at <= now()
      AND (o.claimed_until IS NULL OR o.claimed_until < now())
      AND o.key <> ALL (coalesce($3::text[], '{}'))
    ORDER BY o.id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
span AS (
    SELECT key, max(id) AS last_id FROM candidate GROUP BY key
)
SELECT key, id, true AS candidate FROM candidate
UNION ALL
SELECT s.key, e.id, false
FROM span s
CROSS JOIN LATERAL (
    SELECT e.id
    FROM outbox_event e
    WHERE e.key = s.key AND e.state = 'pending' AND e.id <= s.last_id
      AND (e.claimed_by IS DISTINCT FROM $2 OR e.claimed_until IS NULL OR e.claimed_until < now())
) AS e;
