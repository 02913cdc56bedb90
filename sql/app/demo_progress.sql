-- Progress of one demo run: everything created since $1, consumed by queue $2.
SELECT
    (SELECT count(*) FROM users WHERE created_at >= $1)                                AS signups,
    count(*) FILTER (WHERE j.state = 'completed')                                      AS jobs_completed,
    count(*) FILTER (WHERE j.state = 'retryable')                                      AS jobs_retrying,
    count(*) FILTER (WHERE j.state = 'discarded')                                      AS jobs_discarded,
    count(*) FILTER (WHERE j.state NOT IN ('completed', 'discarded', 'cancelled'))     AS jobs_open,
    coalesce(sum(coalesce(array_length(j.errors, 1), 0)), 0)                           AS retries,
    (SELECT count(*) FROM outbox_event WHERE created_at >= $1 AND state = 'pending')   AS events_pending,
    (SELECT count(*) FROM outbox_event WHERE created_at >= $1 AND state = 'published') AS events_published,
    (SELECT count(*) FROM outbox_event WHERE created_at >= $1 AND state = 'dead')      AS events_dead,
    (SELECT count(*) FROM consumer_inbox c JOIN outbox_event e ON c.message_id = e.message_id
     WHERE c.queue = $2 AND e.created_at >= $1)                                        AS events_consumed,
    coalesce((SELECT extract(epoch FROM now() - min(created_at))::float8
              FROM outbox_event WHERE state = 'pending'), 0)                           AS outbox_lag_seconds
FROM river_job j
WHERE j.kind = 'create_profile' AND j.created_at >= $1;
