-- Step 1 of a claim (one short transaction; see the relay package doc).
--
-- candidate: lock the first $1 pending rows in id order that are available
-- and whose lease is free, walking the partial index on id (the relay's
-- settings turn bitmap and sequential scans off, so the cost is the rows
-- walked, not the backlog). SKIP LOCKED: two relays claiming at once never
-- take the same row. $2 are keys the relay recently found blocked; skipping
-- them for a moment keeps a blocked key from filling every batch.
--
-- Returned with the candidates (candidate = true): per candidate key, the
-- key's pending rows after $4 (the last row of that key, $3, that this relay
-- still holds in its pipeline; 0 when it holds none) up to the key's last
-- candidate (candidate = false). Each key is one index range scan on
-- (key, id) WHERE state = 'pending'; OFFSET 0 keeps Postgres from turning
-- the LATERAL into a join over every pending row. The relay claims a key's
-- candidates only up to the first of those rows that is not a candidate: a
-- row leased by another relay or by an earlier run, backing off, or locked by
-- a concurrent claim. So a key's rows are claimed as the contiguous run that
-- follows what the relay already holds, or that starts at the key's earliest
-- pending row. The empty key promises no order and is not checked.
WITH candidate AS MATERIALIZED (
    SELECT o.key, o.id
    FROM outbox_event o
    WHERE o.state = 'pending'
      AND o.available_at <= now()
      AND (o.claimed_until IS NULL OR o.claimed_until < now())
      AND o.key <> ALL (coalesce($2::text[], '{}'))
    ORDER BY o.id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
span AS MATERIALIZED (
    SELECT c.key, coalesce(h.last_id, 0) AS after, max(c.id) AS last_id
    FROM candidate c
    LEFT JOIN unnest($3::text[], $4::bigint[]) AS h (key, last_id) ON h.key = c.key
    WHERE c.key <> ''
    GROUP BY c.key, h.last_id
)
SELECT key, id, true AS candidate FROM candidate
UNION ALL
SELECT s.key, e.id, false
FROM span s
CROSS JOIN LATERAL (
    SELECT e.id
    FROM outbox_event e
    WHERE e.key = s.key AND e.state = 'pending' AND e.id > s.after AND e.id <= s.last_id
    OFFSET 0
) AS e;
