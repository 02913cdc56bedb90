-- Step 1 of a claim (one short transaction; see the relay package doc): lock
-- the first $1 pending rows in id order that are available and whose lease is
-- free. SKIP LOCKED: two relays claiming at once never take the same row.
-- $2 are keys the relay recently found blocked (an earlier row leased by
-- another relay or backing off); skipping them for a moment keeps a blocked
-- key with a large backlog from filling every batch while other keys wait.
SELECT o.key, o.id
FROM outbox_event o
WHERE o.state = 'pending'
  AND o.available_at <= now()
  AND (o.claimed_until IS NULL OR o.claimed_until < now())
  AND o.key <> ALL (coalesce($2::text[], '{}'))
ORDER BY o.id
LIMIT $1
FOR UPDATE SKIP LOCKED;
