-- Dead events by topic: events the relay gave up on after its attempts, with
-- the newest error and the ids to replay (`jobsd outbox replay --id N`, or
-- `jobsd outbox replay --all-dead --topic T`).
-- Use when: jobsd_outbox_dead is above 0.
-- Parameters: none.
-- Run: psql "$DATABASE_URL" -f sql/queries/outbox_dead.sql
SELECT topic,
       count(*) AS dead,
       min(created_at) AS oldest_created_at,
       (array_agg(last_error ORDER BY id DESC))[1] AS newest_error,
       (array_agg(id ORDER BY id))[1:20] AS first_ids
FROM outbox_event
WHERE state = 'dead'
GROUP BY topic
ORDER BY dead DESC, topic;
