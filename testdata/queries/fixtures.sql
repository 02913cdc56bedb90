-- Fixture rows for the golden tests of sql/queries (sql/queries_test.go).
-- Every timestamp is fixed, relative to the test clock 2026-01-15 12:00:00 UTC:
-- the test runs the queries with search_path testclock, public, pg_catalog, so
-- that their now() is testclock.now() and the output never changes.
CREATE SCHEMA testclock;
CREATE FUNCTION testclock.now() RETURNS timestamptz LANGUAGE sql IMMUTABLE
    AS $$ SELECT timestamptz '2026-01-15 12:00:00+00' $$;

INSERT INTO users (id, email, name, created_at) OVERRIDING SYSTEM VALUE VALUES
    (1, 'ada@example.com', 'Ada', '2026-01-15 11:00:00+00'),
    (2, 'bob@example.com', 'Bob', '2026-01-14 09:00:00+00');

INSERT INTO profiles (user_id, service, created_at) VALUES
    (1, 'ride', '2026-01-15 11:00:01+00'),
    (1, 'pay',  '2026-01-15 11:00:01.5+00'),
    (2, 'ride', '2026-01-14 09:00:01+00'),
    (2, 'pay',  '2026-01-14 09:00:01+00');

-- Errors as River stores them: one jsonb per failed attempt.
CREATE FUNCTION pg_temp.err(at text, attempt int, msg text) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT jsonb_build_object('at', at, 'attempt', attempt, 'error', msg, 'trace', '') $$;

INSERT INTO river_job (id, kind, queue, state, args, attempt, max_attempts, created_at, scheduled_at,
                       attempted_at, finalized_at, attempted_by, errors, metadata) VALUES
    -- Ada's profile jobs: two done, food retrying in a storm.
    (1, 'create_profile', 'default', 'completed', '{"user_id": 1, "service": "ride"}', 1, 25,
     '2026-01-15 11:00:00+00', '2026-01-15 11:00:00+00', '2026-01-15 11:00:01+00', '2026-01-15 11:00:01+00',
     '{host-a}', NULL, '{}'),
    (2, 'create_profile', 'default', 'completed', '{"user_id": 1, "service": "pay"}', 2, 25,
     '2026-01-15 11:00:00+00', '2026-01-15 11:00:01+00', '2026-01-15 11:00:01.5+00', '2026-01-15 11:00:01.5+00',
     '{host-a}', ARRAY[pg_temp.err('2026-01-15T11:00:00.5Z', 1, 'pay: 503 Service Unavailable')], '{}'),
    (3, 'create_profile', 'default', 'retryable', '{"user_id": 1, "service": "food"}', 5, 25,
     '2026-01-15 11:00:00+00', '2026-01-15 12:10:00+00', '2026-01-15 11:50:00+00', NULL,
     '{host-a,host-b}', ARRAY[
        pg_temp.err('2026-01-15T10:50:00Z', 1, 'food: connection refused'),
        pg_temp.err('2026-01-15T10:55:00Z', 2, 'food: connection refused'),
        pg_temp.err('2026-01-15T11:10:00Z', 3, 'food: connection refused'),
        pg_temp.err('2026-01-15T11:30:00Z', 4, 'food: timeout'),
        pg_temp.err('2026-01-15T11:50:00Z', 5, 'food: timeout')], '{}'),
    -- Bob's: two done yesterday, food discarded.
    (4, 'create_profile', 'default', 'completed', '{"user_id": 2, "service": "ride"}', 1, 25,
     '2026-01-14 09:00:00+00', '2026-01-14 09:00:00+00', '2026-01-14 09:00:01+00', '2026-01-14 09:00:01+00',
     '{host-a}', NULL, '{}'),
    (5, 'create_profile', 'default', 'completed', '{"user_id": 2, "service": "pay"}', 1, 25,
     '2026-01-14 09:00:00+00', '2026-01-14 09:00:00+00', '2026-01-14 09:00:01+00', '2026-01-14 09:00:01+00',
     '{host-a}', NULL, '{}'),
    (6, 'create_profile', 'default', 'discarded', '{"user_id": 2, "service": "food"}', 3, 3,
     '2026-01-14 09:00:00+00', '2026-01-14 09:00:30+00', '2026-01-14 10:00:00+00', '2026-01-14 10:00:00+00',
     '{host-a}', ARRAY[
        pg_temp.err('2026-01-14T09:00:01Z', 1, 'food: 500 Internal Server Error'),
        pg_temp.err('2026-01-14T09:00:30Z', 2, 'food: 500 Internal Server Error'),
        pg_temp.err('2026-01-14T10:00:00Z', 3, 'food: 400 Bad Request: unknown user')], '{}'),
    -- Another kind in another queue: one stuck, one just started, one old discard, one waiting.
    (7, 'send_email', 'mail', 'running', '{"to": "ada@example.com"}', 1, 25,
     '2026-01-15 11:57:00+00', '2026-01-15 11:57:00+00', '2026-01-15 11:58:00+00', NULL,
     '{host-b}', NULL, '{"cancel_attempted_at": "2026-01-15T11:59:00Z"}'),
    (8, 'send_email', 'mail', 'running', '{"to": "bob@example.com"}', 1, 25,
     '2026-01-15 11:59:00+00', '2026-01-15 11:59:00+00', '2026-01-15 11:59:30+00', NULL,
     '{host-a}', NULL, '{}'),
    (9, 'send_email', 'mail', 'discarded', '{"to": "nobody@example.com"}', 1, 1,
     '2026-01-13 08:00:00+00', '2026-01-13 08:00:00+00', '2026-01-13 08:00:01+00', '2026-01-13 08:00:01+00',
     '{host-a}', ARRAY[pg_temp.err('2026-01-13T08:00:01Z', 1, 'smtp: 550 no such user')], '{}'),
    (10, 'send_email', 'mail', 'available', '{"to": "cy@example.com"}', 0, 25,
     '2026-01-15 11:59:59+00', '2026-01-15 11:59:59+00', NULL, NULL, NULL, NULL, '{}'),
    -- A discard long ago, outside a 7-day window, and a job scheduled for later.
    (11, 'create_profile', 'default', 'discarded', '{"user_id": 3, "service": "ride"}', 25, 25,
     '2025-12-01 00:00:00+00', '2025-12-01 00:00:00+00', '2025-12-02 00:00:00+00', '2025-12-02 00:00:00+00',
     '{host-a}', ARRAY[pg_temp.err('2025-12-02T00:00:00Z', 25, 'ride: gone')], '{}'),
    (12, 'send_email', 'mail', 'scheduled', '{"to": "later@example.com"}', 0, 25,
     '2026-01-15 11:00:00+00', '2026-01-16 00:00:00+00', NULL, NULL, NULL, NULL, '{}');

INSERT INTO outbox_event (id, message_id, topic, key, payload, state, attempt, last_error,
                          created_at, available_at, published_at) OVERRIDING SYSTEM VALUE VALUES
    (1, '00000000-0000-4000-8000-000000000001', 'user.signed_up', '2', '{"id": 2}', 'published', 1, NULL,
     '2026-01-14 09:00:00+00', '2026-01-14 09:00:00+00', '2026-01-14 09:00:00.2+00'),
    (2, '00000000-0000-4000-8000-000000000002', 'user.signed_up', '1', '{"id": 1}', 'pending', 2, 'broker: connection reset',
     '2026-01-15 11:00:00+00', '2026-01-15 12:00:30+00', NULL),
    (3, '00000000-0000-4000-8000-000000000003', 'user.signed_up', '5', '{"id": 5}', 'dead', 10, 'NOT_FOUND - no exchange ''analytics''',
     '2026-01-15 10:00:00+00', '2026-01-15 10:30:00+00', NULL),
    (4, '00000000-0000-4000-8000-000000000004', 'order.placed', 'o-1', '{}', 'pending', 0, NULL,
     '2026-01-15 11:59:00+00', '2026-01-15 11:59:00+00', NULL),
    (5, '00000000-0000-4000-8000-000000000005', 'order.placed', 'o-2', '{}', 'dead', 10, 'message too large',
     '2026-01-15 11:30:00+00', '2026-01-15 11:45:00+00', NULL),
    (6, '00000000-0000-4000-8000-000000000006', 'order.placed', 'o-3', '{}', 'published', 1, NULL,
     '2026-01-15 11:20:00+00', '2026-01-15 11:20:00+00', '2026-01-15 11:20:00.1+00');

INSERT INTO consumer_inbox (queue, message_id, processed_at) VALUES
    ('analytics', '00000000-0000-4000-8000-000000000001', '2026-01-14 09:00:00.3+00');
