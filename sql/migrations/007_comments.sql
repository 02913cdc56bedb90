-- Comments for DBAs: every table, column, function and trigger of jobsd's own
-- schema says what it is for, in the catalog (psql \d+, \df+, pgAdmin), not
-- only in the -- comments of the migrations. sql.TestSchemaCommented fails
-- when a table or column of jobsd's lacks one, so a migration that adds a
-- table or column must comment it too. River's river_* tables are River's.

-- outbox_event (migrations 001, 003, 004, 006)
COMMENT ON TABLE outbox_event IS
$$The transactional outbox: one row per event, written in the application's transaction by outbox.Write (Go), the function outbox_write (SQL) or a plain INSERT (topic, key, payload). After commit the relay (jobsd serve) leases pending rows, publishes them to RabbitMQ with publisher confirms and marks them published only once the broker confirmed them. Published rows are deleted after the relay's retention (24h by default). Change rows only through jobsd (jobsd outbox replay), not by UPDATE.$$;
COMMENT ON COLUMN outbox_event.id IS
    'Event id (identity); the order of publication within a key. What jobsd outbox replay --id takes.';
COMMENT ON COLUMN outbox_event.message_id IS
    'Stable, globally unique id sent as the AMQP message_id; consumers dedupe on it (consumer_inbox.message_id). A row published again after a relay crash keeps it.';
COMMENT ON COLUMN outbox_event.topic IS
    'The event type: sent as the AMQP type and used as the routing key; 1 to 255 bytes.';
COMMENT ON COLUMN outbox_event.key IS
    'Ordering key (e.g. the user id): events of one key are published in commit order (writers take a per-key advisory lock until commit). Empty: no order, no lock. Sent as the x-jobsd-key header; at most 255 bytes.';
COMMENT ON COLUMN outbox_event.payload IS
    'The message body: JSON as jsonb stores it, sent with content_type application/json; at most 1 MiB as jsonb text.';
COMMENT ON COLUMN outbox_event.headers IS
    'A JSON object copied into the AMQP message headers (next to x-jobsd-key); names 1 to 255 bytes, not CC, BCC or x-jobsd-*; at most 64 KiB as jsonb text.';
COMMENT ON COLUMN outbox_event.state IS
    'pending: waiting for the relay (or leased by it, see claimed_by); published: the broker confirmed it; dead: the relay gave up, after jobsd serve --relay-max-attempts failed publishes, or at the first for a row that can never be sent. jobsd outbox replay makes a dead row pending again.';
COMMENT ON COLUMN outbox_event.attempt IS
    'Number of FAILED publishes (nack, return, channel or connection closed over this message), not of publishes: 0 for a row published at its first try. A publish cut short by a lost connection or a shutdown counts nothing (the row is released). Reset to 0 by a replay.';
COMMENT ON COLUMN outbox_event.last_error IS
    'Why the last failed publish failed (broker nack or return, a row that can never be sent, ...); NULL if none failed. Kept when the row is published later or replayed.';
COMMENT ON COLUMN outbox_event.created_at IS
    'When the event was written (the writing transaction''s time); sent as the AMQP timestamp.';
COMMENT ON COLUMN outbox_event.available_at IS
    'The retry backoff: relays claim a pending row only once available_at <= now(). now() at insert and at replay; after a failed publish, now() plus an exponential backoff with jitter.';
COMMENT ON COLUMN outbox_event.published_at IS
    'When the relay marked the row published, after the broker''s confirm; NULL unless state = published. Retention deletes by it.';
COMMENT ON COLUMN outbox_event.claimed_by IS
    'The relay run that leases the row, as "<relay id>/<run token>" (a restart with the same relay id is a new run and takes the earlier run''s leases back); NULL when not leased.';
COMMENT ON COLUMN outbox_event.claimed_until IS
    'End of the lease: after it (a relay that died) any relay may claim the row again; NULL when not leased.';

COMMENT ON TRIGGER outbox_event_notify ON outbox_event IS
    'After each inserting statement, notifies channel jobsd_outbox (delivered at commit) when a relay waits in outbox_relay_waiting, so that it claims at once instead of at its next poll.';
COMMENT ON FUNCTION outbox_event_notify() IS
    'Trigger function of outbox_event_notify: takes the shared notify lock (held until commit, see migration 006), then pg_notify(''jobsd_outbox'', '''') if a relay waits (a row in outbox_relay_waiting).';
COMMENT ON TRIGGER outbox_event_sendable ON outbox_event IS
    'Refuses at INSERT (and COPY) a row the relay could never send, with SQLSTATE 23514 (check_violation) and the reason from outbox_event_problem. A trigger, not a CHECK: a CHECK would be evaluated again on every relay UPDATE. Rows written before migration 004 are not checked.';
COMMENT ON FUNCTION outbox_event_check() IS
    'Trigger function of outbox_event_sendable: raises check_violation when outbox_event_problem finds a problem in the new row.';

-- outbox_relay_waiting (migration 006)
COMMENT ON TABLE outbox_relay_waiting IS
    'Relay runs waiting for a notification. A relay with nothing to do inserts its row before it LISTENs and deletes it when woken; the outbox_event_notify trigger notifies only while this table has rows, so busy relays cost writers no NOTIFY (a NOTIFY serialises commits). Rows not refreshed for 10 minutes (a relay that died while waiting) are deleted by other relays.';
COMMENT ON COLUMN outbox_relay_waiting.holder IS
    'The waiting relay run, as "<relay id>/<run token>" (like outbox_event.claimed_by).';
COMMENT ON COLUMN outbox_relay_waiting.seen_at IS
    'When the relay last said it waits; rows older than 10 minutes belong to a dead relay and are deleted.';

-- The demo application (migration 002)
COMMENT ON TABLE users IS
    'The demo application''s users: one row per signup (POST /signup, jobsd signup), written in the transaction that also inserts the create_profile jobs and the user.signed_up event.';
COMMENT ON COLUMN users.id IS 'User id (identity); the key of the user''s events.';
COMMENT ON COLUMN users.email IS 'The email the user signed up with; unique.';
COMMENT ON COLUMN users.name IS 'Display name; empty when not given.';
COMMENT ON COLUMN users.created_at IS 'When the signup transaction ran.';

COMMENT ON TABLE profiles IS
    'The demo''s downstream services: one row per user and service, created by the River job create_profile (idempotent: a second run changes nothing).';
COMMENT ON COLUMN profiles.user_id IS 'The user (users.id); deleted with the user.';
COMMENT ON COLUMN profiles.service IS 'The downstream service the profile is in (ride, pay, food by default).';
COMMENT ON COLUMN profiles.created_at IS 'When the create_profile job created it.';

-- The consumer side (migrations 002, 005)
COMMENT ON TABLE consumer_inbox IS
    'What each queue''s consumer (jobsd consume) has applied: a message''s row is inserted in the transaction that applies its effect, so a redelivered message is a no-op. Rows older than the consumer''s inbox retention (7 days by default) are pruned.';
COMMENT ON COLUMN consumer_inbox.queue IS 'The RabbitMQ queue (consumer group) that applied the message.';
COMMENT ON COLUMN consumer_inbox.message_id IS
    'The AMQP message_id (outbox_event.message_id for messages from jobsd''s relay); messages whose id is not a UUID are dead-lettered, never recorded.';
COMMENT ON COLUMN consumer_inbox.processed_at IS 'When the message was applied; pruning deletes by it.';

COMMENT ON TABLE consumer_inbox_legacy IS
    'consumer_inbox rows from before migration 005 whose message_id was not a UUID (or was a second spelling of one), kept for audit. Never read by jobsd; drop it once nobody needs it.';
COMMENT ON COLUMN consumer_inbox_legacy.queue IS 'As consumer_inbox.queue.';
COMMENT ON COLUMN consumer_inbox_legacy.message_id IS 'The message id as it was recorded, in text.';
COMMENT ON COLUMN consumer_inbox_legacy.processed_at IS 'As consumer_inbox.processed_at.';

COMMENT ON TABLE analytics_counts IS
    'The demo analytics consumer''s effect: messages per topic and UTC day, incremented in the transaction that records them in consumer_inbox.';
COMMENT ON COLUMN analytics_counts.topic IS 'The message type (AMQP type, the outbox_event topic).';
COMMENT ON COLUMN analytics_counts.day IS 'UTC day of the message timestamp (of its processing when it has none).';
COMMENT ON COLUMN analytics_counts.n IS 'Messages counted; a redelivered message (same queue and message_id) is counted once.';

-- jobsd_migration (sql/app/migration_table.sql, created by jobsd migrate
-- before it applies any migration)
COMMENT ON TABLE jobsd_migration IS
    'jobsd''s own schema versions applied by jobsd migrate (sql/migrations/NNN_name.sql). River records its versions in river_migration.';
COMMENT ON COLUMN jobsd_migration.version IS 'The migration''s number (NNN of its file name).';
COMMENT ON COLUMN jobsd_migration.name IS 'The migration''s name (of its file name, without number and extension).';
COMMENT ON COLUMN jobsd_migration.applied_at IS 'When jobsd migrate applied it.';

-- Indexes (those behind a primary key or unique constraint explain themselves)
COMMENT ON INDEX outbox_event_pending_idx IS
    'The relay''s claim walks pending rows in id order; the oldest pending row (gauges, outbox stats) is its first entry.';
COMMENT ON INDEX outbox_event_pending_key_idx IS
    'Per key, the pending rows in id order: the relay''s claim checks that no earlier row of a candidate''s key stands in its way.';
COMMENT ON INDEX outbox_event_published_at_idx IS
    'Retention deletes published rows by published_at.';
COMMENT ON INDEX outbox_event_dead_idx IS
    'Counts dead rows (jobsd_outbox_dead, outbox stats) without reading published ones.';
COMMENT ON INDEX consumer_inbox_processed_at_idx IS
    'Pruning deletes a queue''s rows older than the consumer''s inbox retention, oldest first.';
