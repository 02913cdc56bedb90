-- The chaos harness's figures once a scenario drained, for consumer queue $1
-- (each scenario has its own database, so analytics_counts is that queue's
-- effect alone).
SELECT (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM profiles) AS profiles,
       (SELECT count(*) FROM river_job WHERE state <> 'completed') AS jobs_stuck,
       (SELECT count(*) FROM outbox_event WHERE state = 'pending') AS events_pending,
       (SELECT count(*) FROM outbox_event WHERE state = 'dead') AS events_dead,
       (SELECT count(*) FROM outbox_event WHERE state = 'published') AS events_published,
       (SELECT count(*) FROM outbox_event) AS events,
       (SELECT count(*) FROM consumer_inbox WHERE queue = $1) AS events_applied,
       (SELECT coalesce(sum(n), 0) FROM analytics_counts)::bigint AS effects,
       (SELECT count(*) FROM outbox_event e
        WHERE NOT EXISTS (SELECT 1 FROM consumer_inbox c
                          WHERE c.queue = $1 AND c.message_id = e.message_id)) AS events_not_applied;
