-- The chaos harness's backend kill storm and pool exhaustion: terminates every
-- backend connected to database $1 except the caller's own and the pids in $2;
-- returns how many.
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid() AND pid <> ALL ($2::int[]);
