-- Exact outbox counts per topic and the age of the oldest pending event:
-- `jobsd outbox stats --exact`. Counting published rows reads every row kept
-- (retention bounds them); without --exact, stats_outbox.sql does not.
SELECT topic,
       count(*) FILTER (WHERE state = 'pending')   AS pending,
       count(*) FILTER (WHERE state = 'published') AS published,
       count(*) FILTER (WHERE state = 'dead')      AS dead,
       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending')), 0)::float8
                                                   AS oldest_pending_age_seconds
FROM outbox_event
GROUP BY topic
ORDER BY topic;
