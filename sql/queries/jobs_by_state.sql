-- Jobs by state and kind: the first look at the queue's health.
-- Use when: you want to know how much work is waiting, running, retrying or dead.
-- Parameters: none.
-- Run: psql "$DATABASE_URL" -f sql/queries/jobs_by_state.sql
SELECT state, kind, count(*) AS jobs
FROM river_job
GROUP BY state, kind
ORDER BY state, kind;
