-- Jobs by queue and state: one cheap GROUP BY over river_job, used by
-- `jobsd stats` and by the jobsd_jobs gauge of /metrics.
SELECT queue, state::text AS state, count(*) AS jobs
FROM river_job
GROUP BY queue, state
ORDER BY queue, state;
