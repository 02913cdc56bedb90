-- After a claim whose outcome is unknown (the connection failed around its
-- COMMIT), gives back whichever of rows $2 the claim leased to run $1. The
-- relay never handed them to its publisher.
UPDATE outbox_event
SET claimed_by = NULL, claimed_until = NULL
WHERE id = ANY($2::bigint[]) AND state = 'pending' AND claimed_by = $1;
