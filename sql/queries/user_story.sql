-- A user's whole story, in time order: the signup (users row), each
-- create_profile job with its state and last error, the profiles created, the
-- user.signed_up outbox event, and which consumer queues applied it.
-- Use when: a user reports that something from their signup is missing.
-- Parameters: email (required; compared lower-cased, as signup stores it).
-- Run: psql "$DATABASE_URL" -v email=ada@example.com -f sql/queries/user_story.sql
-- The job lookup reads river_job.args (GIN-indexed containment).
\if :{?email}
\else
\set ON_ERROR_STOP 1
DO $$ BEGIN RAISE EXCEPTION 'user_story.sql needs an email: psql -v email=ada@example.com -f sql/queries/user_story.sql'; END $$;
\endif
WITH u AS (
    SELECT id, email, name, created_at FROM users WHERE email = lower(:'email')
), story AS (
    SELECT u.created_at AS at, 1 AS ord, 'user' AS step, u.id, 'created' AS state,
           u.email || ' (' || u.name || ')' AS detail
    FROM u
    UNION ALL
    SELECT j.created_at, 2, 'job ' || j.kind, j.id, j.state::text,
           (j.args ->> 'service') || ', attempt ' || j.attempt || '/' || j.max_attempts
           || CASE WHEN j.state = 'completed' THEN ''
                   ELSE coalesce(', last error: ' || (j.errors[array_length(j.errors, 1)] ->> 'error'), '') END
    FROM u JOIN river_job j
      ON j.kind = 'create_profile' AND j.args @> jsonb_build_object('user_id', u.id)
    UNION ALL
    SELECT p.created_at, 3, 'profile', u.id, 'created', p.service
    FROM u JOIN profiles p ON p.user_id = u.id
    UNION ALL
    SELECT e.created_at, 4, 'event ' || e.topic, e.id, e.state,
           'failed publishes: ' || e.attempt
           || coalesce(', published ' || to_char(e.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || 'Z', '')
           || coalesce(', last error: ' || e.last_error, '')
    FROM u JOIN outbox_event e ON e.topic = 'user.signed_up' AND e.key = u.id::text
    UNION ALL
    SELECT i.processed_at, 5, 'consumed by ' || i.queue, e.id, 'applied', i.message_id::text
    FROM u JOIN outbox_event e ON e.topic = 'user.signed_up' AND e.key = u.id::text
           JOIN consumer_inbox i ON i.message_id = e.message_id
)
SELECT at, step, id, state, detail FROM story ORDER BY at, ord, id, detail;
