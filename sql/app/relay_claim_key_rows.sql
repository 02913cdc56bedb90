-- Step 2 of a claim: for each candidate key $1 (with its last candidate id
-- $2), the key's pending rows up to that id that are not leased by relay $3,
-- in id order. The relay claims a key's candidates only up to the first of
-- these rows that is not a candidate (leased by another relay, backing off,
-- or locked by a concurrent claim), so a key's rows are claimed as the
-- contiguous run that starts at its earliest pending row.
SELECT k.key, e.id
FROM unnest($1::text[], $2::bigint[]) AS k (key, last_id)
CROSS JOIN LATERAL (
    SELECT e.id
    FROM outbox_event e
    WHERE e.key = k.key AND e.state = 'pending' AND e.id <= k.last_id
      AND (e.claimed_by IS DISTINCT FROM $3 OR e.claimed_until IS NULL OR e.claimed_until < now())
    ORDER BY e.id
) AS e;
