-- Outbox counts per topic for `jobsd outbox stats` and `jobsd stats`, in time
-- that does not grow with the published rows kept: pending and dead rows are
-- counted on their partial indexes (exact), the age of the oldest pending row
-- per topic comes with them, and published rows are not counted per topic
-- (NULL; absent from --json). stats_outbox_published.sql estimates their total.
WITH pending AS (
    SELECT topic, count(*) AS n, min(created_at) AS oldest
    FROM outbox_event WHERE state = 'pending' GROUP BY topic
), dead AS (
    SELECT topic, count(*) AS n
    FROM outbox_event WHERE state = 'dead' GROUP BY topic
)
SELECT topic,
       coalesce(p.n, 0) AS pending,
       NULL::bigint AS published,
       coalesce(d.n, 0) AS dead,
       coalesce(extract(epoch FROM now() - p.oldest), 0)::float8 AS oldest_pending_age_seconds
FROM pending p FULL JOIN dead d USING (topic)
ORDER BY topic;
