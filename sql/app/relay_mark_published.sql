-- Marks rows the broker confirmed as published and ends their lease. It does
-- not check the lease holder: the broker has the message, whoever published it.
UPDATE outbox_event
SET state = 'published', published_at = now(), claimed_by = NULL, claimed_until = NULL
WHERE id = ANY($1::bigint[]) AND state = 'pending';
