-- Held by one session while `jobsd migrate` runs: concurrent runs queue here.
SELECT pg_advisory_lock($1);
