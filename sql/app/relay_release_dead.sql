-- Give back the leases of relay runs $1 that died (liveness_reap.sql): their
-- rows are claimable at once, from each key's earliest pending row, instead of
-- when the lease ends. Their waiting rows go too.
WITH waiting AS (
    DELETE FROM outbox_relay_waiting WHERE holder = ANY ($1::text[])
)
UPDATE outbox_event
SET claimed_by = NULL, claimed_until = NULL
WHERE state = 'pending' AND claimed_until > now() AND claimed_by = ANY ($1::text[]);
