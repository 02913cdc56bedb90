-- Failing kinds: which kinds of jobs are retrying or discarded, and the last
-- error of the most recently failed job of each kind.
-- Use when: jobs_by_state shows retryable or discarded jobs and you want to know why.
-- Parameters: none.
-- Run: psql "$DATABASE_URL" -f sql/queries/failing_kinds.sql
WITH failing AS (
    SELECT kind, state, id, errors[array_length(errors, 1)] AS last
    FROM river_job
    WHERE state IN ('retryable', 'discarded')
)
SELECT kind,
       count(*) FILTER (WHERE state = 'retryable') AS retryable,
       count(*) FILTER (WHERE state = 'discarded') AS discarded,
       (array_agg(id ORDER BY (last ->> 'at')::timestamptz DESC NULLS LAST, id DESC))[1] AS last_failed_job,
       (array_agg((last ->> 'at')::timestamptz ORDER BY (last ->> 'at')::timestamptz DESC NULLS LAST, id DESC))[1] AS last_failed_at,
       (array_agg(last ->> 'error' ORDER BY (last ->> 'at')::timestamptz DESC NULLS LAST, id DESC))[1] AS last_error
FROM failing
GROUP BY kind
ORDER BY count(*) DESC, kind;
