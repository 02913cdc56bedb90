-- Nothing lost: reconciles signups with their profiles, profile jobs, outbox
-- events and what each consumer queue applied. After a crash or a scale-out
-- drill, "profile jobs without a profile" must equal the open plus discarded
-- jobs, and "published events not applied by <queue>" (counted from the first
-- event the queue applied: older events were published before the queue
-- existed) must reach 0 once the consumers caught up. Duplicates never show:
-- the inbox keeps one row per message id.
-- Use when: proving that a kill -9 of a worker, relay or consumer lost nothing.
-- Parameters: queue (optional): report only that consumer queue's inbox, e.g.
-- the drill's, and not the demo's or others'; default every queue found in
-- consumer_inbox.
-- Run: psql "$DATABASE_URL" -v queue=analytics.walkthrough -f sql/queries/nothing_lost.sql
\if :{?queue}
\else
\set queue ''
\endif
SELECT 'users' AS check, count(*) AS value FROM users
UNION ALL
SELECT 'profiles', count(*) FROM profiles
UNION ALL
SELECT 'profile jobs ' || state, count(*)
FROM river_job WHERE kind = 'create_profile' GROUP BY state
UNION ALL
SELECT 'profile jobs without a profile', count(*)
FROM river_job j
WHERE j.kind = 'create_profile'
  AND NOT EXISTS (SELECT 1 FROM profiles p
                  WHERE p.user_id = (j.args ->> 'user_id')::bigint AND p.service = j.args ->> 'service')
UNION ALL
SELECT 'events ' || state, count(*) FROM outbox_event GROUP BY state
UNION ALL
SELECT 'events applied by ' || queue, count(*) FROM consumer_inbox
WHERE :'queue' = '' OR queue = :'queue' GROUP BY queue
UNION ALL
SELECT 'published events not applied by ' || q.queue,
       (SELECT count(*) FROM outbox_event e
        WHERE e.state = 'published' AND e.id >= q.first_event_id
          AND NOT EXISTS (SELECT 1 FROM consumer_inbox c
                          WHERE c.queue = q.queue AND c.message_id = e.message_id))
FROM (SELECT c.queue, min(e.id) AS first_event_id -- events older than a queue never reached it
      FROM consumer_inbox c JOIN outbox_event e ON e.message_id = c.message_id
      WHERE :'queue' = '' OR c.queue = :'queue'
      GROUP BY c.queue) AS q
ORDER BY 1;
