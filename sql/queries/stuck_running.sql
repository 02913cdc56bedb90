-- Jobs stuck running: jobs in state running whose current attempt started
-- longer ago than :'timeout'. A job past River's job timeout had its context
-- cancelled; if it is still running, its worker ignores the context or its
-- process died (River's rescuer makes such jobs retryable after its
-- RescueStuckJobsAfter, 1 hour by default; `jobsd serve --rescue-after`).
-- Use when: jobsd_jobs{state="running"} stays high, or a job never finishes.
-- Parameters: timeout (an interval, default '1 minute', River's default job timeout).
-- Run: psql "$DATABASE_URL" -v timeout='5 minutes' -f sql/queries/stuck_running.sql
\if :{?timeout}
\else
\set timeout '1 minute'
\endif
SELECT id, kind, queue, attempt, max_attempts, attempted_at,
       now() - attempted_at AS running_for,
       attempted_by[array_length(attempted_by, 1)] AS last_attempted_by,
       metadata ? 'cancel_attempted_at' AS cancel_requested
FROM river_job
WHERE state = 'running'
  AND attempted_at < now() - :'timeout'::interval
ORDER BY attempted_at, id;
