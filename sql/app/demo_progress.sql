-- Progress of one demo run: everything created since $1, consumed by queue $2.
-- The job columns partition the run's jobs (completed + running + retrying +
-- waiting + discarded + cancelled = 3 per signup, in one snapshot): retrying is
-- River's retryable (failed, waiting for its backoff), waiting is available,
-- scheduled or pending. retries counts attempts beyond the first (the reruns
-- started so far), failures the errors recorded.
SELECT
    (SELECT count(*) FROM users WHERE created_at >= $1)                                AS signups,
    count(*)                                                                           AS jobs,
    count(*) FILTER (WHERE j.state = 'completed')                                      AS jobs_completed,
    count(*) FILTER (WHERE j.state = 'running')                                        AS jobs_running,
    count(*) FILTER (WHERE j.state = 'retryable')                                      AS jobs_retrying,
    count(*) FILTER (WHERE j.state IN ('available', 'scheduled', 'pending'))           AS jobs_waiting,
    count(*) FILTER (WHERE j.state = 'discarded')                                      AS jobs_discarded,
    count(*) FILTER (WHERE j.state = 'cancelled')                                      AS jobs_cancelled,
    coalesce(sum(greatest(j.attempt - 1, 0)), 0)                                       AS retries,
    coalesce(sum(coalesce(array_length(j.errors, 1), 0)), 0)                           AS failures,
    (SELECT count(*) FROM outbox_event WHERE created_at >= $1 AND state = 'pending')   AS events_pending,
    (SELECT count(*) FROM outbox_event WHERE created_at >= $1 AND state = 'published') AS events_published,
    (SELECT count(*) FROM outbox_event WHERE created_at >= $1 AND state = 'dead')      AS events_dead,
    (SELECT count(*) FROM consumer_inbox c JOIN outbox_event e ON c.message_id = e.message_id
     WHERE c.queue = $2 AND e.created_at >= $1)                                        AS events_consumed,
    coalesce((SELECT extract(epoch FROM now() - min(created_at))::float8
              FROM outbox_event WHERE state = 'pending'), 0)                           AS outbox_lag_seconds
FROM river_job j
WHERE j.kind = 'create_profile' AND j.created_at >= $1;
