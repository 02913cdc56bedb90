-- Outbox counts per topic and the age of the oldest pending event, used by
-- `jobsd outbox stats` and `jobsd stats`. Counting published rows scans the
-- table; retention keeps it bounded.
SELECT topic,
       count(*) FILTER (WHERE state = 'pending')   AS pending,
       count(*) FILTER (WHERE state = 'published') AS published,
       count(*) FILTER (WHERE state = 'dead')      AS dead,
       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending')), 0)::float8
                                                   AS oldest_pending_age_seconds
FROM outbox_event
GROUP BY topic
ORDER BY topic;
