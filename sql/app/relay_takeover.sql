-- At start, a relay takes back the leases of an earlier run with the same
-- relay id ($1 is the id, $2 this run's lease holder "<id>/<run>"): relay ids
-- are unique among running relays, so that run is gone (crashed, or stopped
-- before it could release), and its rows need not wait for their lease to end.
-- The rows become claimable at once, from each key's earliest pending row.
UPDATE outbox_event
SET claimed_by = NULL, claimed_until = NULL
WHERE state = 'pending' AND claimed_until > now()
  AND claimed_by LIKE replace(replace(replace($1, '\', '\\'), '%', '\%'), '_', '\_') || '/%'
  AND claimed_by <> $2;
