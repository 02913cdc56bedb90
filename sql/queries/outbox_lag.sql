-- Outbox lag by topic: how many events wait for the relay, how old the oldest
-- is, how many are dead, and how many were published in the last hour.
-- A growing oldest_pending_age means the relay is down, the broker refuses
-- the events, or an earlier event of the same key blocks the key.
-- max_pending_attempt is the most failed publishes of a pending event (attempt
-- counts failures, not tries: 0 for an event that has not failed yet).
-- Use when: jobsd_outbox_oldest_pending_age_seconds alerts, or consumers miss events.
-- Parameters: none.
-- Run: psql "$DATABASE_URL" -f sql/queries/outbox_lag.sql
SELECT topic,
       count(*) FILTER (WHERE state = 'pending') AS pending,
       now() - min(created_at) FILTER (WHERE state = 'pending') AS oldest_pending_age,
       max(attempt) FILTER (WHERE state = 'pending') AS max_pending_attempt,
       count(*) FILTER (WHERE state = 'dead') AS dead,
       count(*) FILTER (WHERE state = 'published' AND published_at > now() - interval '1 hour') AS published_last_hour
FROM outbox_event
GROUP BY topic
ORDER BY oldest_pending_age DESC NULLS LAST, topic;
