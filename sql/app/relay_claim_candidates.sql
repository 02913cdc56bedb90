-- Step 1 of a claim (one short transaction; see the relay package doc): lock
-- the first $1 pending rows in id order that are available, whose lease is
-- free, and whose key's earliest pending row (head) is free and available too
-- or leased by relay $2 itself. SKIP LOCKED: two relays claiming at once never
-- take the same row. Checking the head keeps blocked keys (head leased by
-- another relay, or backing off after a failed publish) out of the batch, so
-- that they cannot crowd out the keys that can flow.
SELECT o.key, o.id
FROM outbox_event o
CROSS JOIN LATERAL (
    SELECT h.available_at, h.claimed_by, h.claimed_until
    FROM outbox_event h
    WHERE h.key = o.key AND h.state = 'pending'
    ORDER BY h.id
    LIMIT 1
) AS head
WHERE o.state = 'pending'
  AND o.available_at <= now()
  AND (o.claimed_until IS NULL OR o.claimed_until < now())
  AND head.available_at <= now()
  AND (head.claimed_until IS NULL OR head.claimed_until < now() OR head.claimed_by = $2)
ORDER BY o.id
LIMIT $1
FOR UPDATE OF o SKIP LOCKED;
