-- Makes dead event $1 pending again, as if it were new: the relay picks it up
-- on its next pass. Only dead rows change; the last error is kept for history.
UPDATE outbox_event
SET state = 'pending', attempt = 0, available_at = now(), claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND state = 'dead'
RETURNING id;
