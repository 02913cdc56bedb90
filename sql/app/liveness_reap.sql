-- The processes of kind $1 other than $2 that are dead: not seen for $3 ms
-- and their advisory lock free (taken here until the transaction ends, so
-- that no session of theirs can come back while their work is given back).
-- The caller gives back their work in the same transaction.
WITH stale AS MATERIALIZED (
    SELECT holder FROM jobsd_process
    WHERE kind = $1 AND holder <> $2
      AND seen_at < now() - $3::float8 * interval '1 millisecond'
)
DELETE FROM jobsd_process p
USING stale
WHERE p.holder = stale.holder
  AND pg_try_advisory_xact_lock(hashtextextended('jobsd.process:' || stale.holder, 0))
RETURNING p.holder;
