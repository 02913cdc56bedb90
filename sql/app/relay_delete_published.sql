-- With a retention of zero, rows the broker confirmed are deleted at once
-- instead of being marked published.
DELETE FROM outbox_event
WHERE id = ANY($1::bigint[]) AND state = 'pending';
