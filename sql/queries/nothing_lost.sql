-- Nothing lost: reconciles signups with their profiles, profile jobs, outbox
-- events and what each consumer queue applied. After a crash or a scale-out
-- drill, "profile jobs without a profile" must equal the open plus discarded
-- jobs, and "published events not applied by <queue>" must reach 0 once the
-- consumers caught up (duplicates never show: the inbox keeps one row per id).
-- Use when: proving that a kill -9 of a worker, relay or consumer lost nothing.
-- Parameters: none.
-- Run: psql "$DATABASE_URL" -f sql/queries/nothing_lost.sql
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
SELECT 'events applied by ' || queue, count(*) FROM consumer_inbox GROUP BY queue
UNION ALL
SELECT 'published events not applied by ' || q.queue,
       (SELECT count(*) FROM outbox_event e
        WHERE e.state = 'published'
          AND NOT EXISTS (SELECT 1 FROM consumer_inbox c
                          WHERE c.queue = q.queue AND c.message_id = e.message_id::text))
FROM (SELECT DISTINCT queue FROM consumer_inbox) AS q
ORDER BY 1;
