-- The chaos harness's backend kill storm: terminates every backend connected
-- to database $1 except the caller's own; returns how many.
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid();
