-- Latency percentiles of one demo run (since $1, consumer queue $2), in seconds:
-- signup commit -> last profile job of that user completed, and
-- event commit -> consumer applied it. Timestamps are transaction start times
-- (now()), so each figure slightly under-states the wall-clock latency.
WITH profiles_done AS (
    SELECT extract(epoch FROM max(j.finalized_at) - u.created_at)::float8 AS s
    FROM users u
    JOIN river_job j ON j.kind = 'create_profile' AND (j.args ->> 'user_id')::bigint = u.id
    WHERE u.created_at >= $1
    GROUP BY u.id
    HAVING bool_and(j.state = 'completed')
), consumed AS (
    SELECT extract(epoch FROM c.processed_at - e.created_at)::float8 AS s
    FROM outbox_event e
    JOIN consumer_inbox c ON c.queue = $2 AND c.message_id = e.message_id
    WHERE e.created_at >= $1
)
SELECT
    (SELECT count(*) FROM profiles_done),
    coalesce((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM profiles_done), 0),
    coalesce((SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY s) FROM profiles_done), 0),
    (SELECT count(*) FROM consumed),
    coalesce((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM consumed), 0),
    coalesce((SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY s) FROM consumed), 0);
