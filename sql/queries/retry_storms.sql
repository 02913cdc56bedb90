-- Retry storms: jobs that failed at least :'min_errors' times in the last
-- hour, most failures first. A storm is usually a downstream outage or a bug
-- that every retry hits again; River's backoff grows, but many jobs failing
-- at once still load the workers and the downstream service.
-- Use when: jobsd_jobs_failed_total rises fast, or retryable jobs pile up.
-- Parameters: min_errors (default 3).
-- Run: psql "$DATABASE_URL" -v min_errors=5 -f sql/queries/retry_storms.sql
\if :{?min_errors}
\else
\set min_errors 3
\endif
SELECT j.id, j.kind, j.state, j.attempt, j.max_attempts, recent.errors_last_hour,
       j.errors[array_length(j.errors, 1)] ->> 'error' AS last_error,
       j.scheduled_at AS next_attempt_at
FROM river_job j
CROSS JOIN LATERAL (
    SELECT count(*) AS errors_last_hour
    FROM unnest(j.errors) AS e
    WHERE (e ->> 'at')::timestamptz > now() - interval '1 hour'
) recent
WHERE recent.errors_last_hour >= :'min_errors'::int
ORDER BY recent.errors_last_hour DESC, j.id;
