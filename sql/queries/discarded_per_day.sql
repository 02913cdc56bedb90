-- Discarded jobs per day and kind over the last :'days' days (UTC days by the
-- session's TimeZone): jobs that exhausted their attempts and will not run
-- again unless retried (`jobsd retry --state discarded --kind K`).
-- Use when: you want the trend of permanent failures, e.g. after a deploy.
-- Parameters: days (default 7).
-- Run: psql "$DATABASE_URL" -v days=30 -f sql/queries/discarded_per_day.sql
\if :{?days}
\else
\set days 7
\endif
SELECT finalized_at::date AS day, kind, count(*) AS discarded
FROM river_job
WHERE state = 'discarded'
  AND finalized_at >= date_trunc('day', now()) - (:'days'::int - 1) * interval '1 day'
GROUP BY 1, 2
ORDER BY 1 DESC, 2;
