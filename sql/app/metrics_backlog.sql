-- The job backlog of /metrics and /readyz: jobs waiting to run now, i.e.
-- available, plus retryable and scheduled whose time has come (River's
-- scheduler makes those available every few seconds), and the age of the
-- oldest of them from its scheduled_at.
--
-- Index-friendly whatever the backlog: a loose index scan of River's
-- river_job_prioritized_fetching_index (state, queue, priority, scheduled_at,
-- id) finds each (state, queue, priority) that has jobs, and within each the
-- oldest due job is the first index entry and the count is a range of the
-- index, stopped after $1 rows. The total is capped at $1: a backlog of at
-- least $1 reads as $1. Completed, discarded and cancelled jobs are never read.
WITH RECURSIVE groups AS (
    (SELECT s.state, first.queue, first.priority
     FROM unnest('{available,retryable,scheduled}'::river_job_state[]) AS s(state)
     CROSS JOIN LATERAL (SELECT j.queue, j.priority FROM river_job j
                         WHERE j.state = s.state
                         ORDER BY j.queue, j.priority LIMIT 1) first)
    UNION ALL
    SELECT g.state, next.queue, next.priority
    FROM groups g
    CROSS JOIN LATERAL (SELECT j.queue, j.priority FROM river_job j
                        WHERE j.state = g.state AND (j.queue, j.priority) > (g.queue, g.priority)
                        ORDER BY j.queue, j.priority LIMIT 1) next
)
SELECT least(coalesce(sum(due.n), 0), $1)::bigint AS backlog,
       coalesce(extract(epoch FROM now() - min(due.oldest)), 0)::float8 AS oldest_age_seconds
FROM groups g
CROSS JOIN LATERAL (
    SELECT (SELECT count(*) FROM (SELECT FROM river_job j
                                  WHERE j.state = g.state AND j.queue = g.queue AND j.priority = g.priority
                                    AND j.scheduled_at <= now()
                                  LIMIT $1) capped) AS n,
           (SELECT j.scheduled_at FROM river_job j
            WHERE j.state = g.state AND j.queue = g.queue AND j.priority = g.priority
              AND j.scheduled_at <= now()
            ORDER BY j.scheduled_at LIMIT 1) AS oldest
) due;
