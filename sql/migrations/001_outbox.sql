-- The transactional outbox: one row per event written by outbox.Write (or by a
-- plain INSERT (topic, key, payload)). The relay claims pending rows, publishes
-- them to RabbitMQ and marks them published once the broker confirmed them.
CREATE TABLE outbox_event (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stable, globally unique id sent as the AMQP message_id; consumers dedupe on it.
    message_id    uuid        NOT NULL DEFAULT gen_random_uuid(),
    topic         text        NOT NULL CHECK (topic <> '' AND length(topic) <= 255),
    -- Ordering key (e.g. the user id): events of one key are published in commit order.
    key           text        NOT NULL DEFAULT '',
    payload       jsonb       NOT NULL DEFAULT '{}',
    headers       jsonb       NOT NULL DEFAULT '{}',
    state         text        NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'published', 'dead')),
    attempt       int         NOT NULL DEFAULT 0,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    available_at  timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    -- Relay lease: which relay holds the row and until when.
    claimed_by    text,
    claimed_until timestamptz
);

-- The relay's claim scans pending rows in id order, and checks per key that no
-- earlier pending row exists.
CREATE INDEX outbox_event_pending_idx ON outbox_event (id) WHERE state = 'pending';
CREATE INDEX outbox_event_pending_key_idx ON outbox_event (key, id) WHERE state = 'pending';
-- Retention deletes published rows by age.
CREATE INDEX outbox_event_published_at_idx ON outbox_event (published_at) WHERE state = 'published';

-- Wake relays after commit: NOTIFY is delivered when the inserting transaction
-- commits, and duplicates within one transaction are folded into one.
CREATE FUNCTION outbox_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobsd_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_event_notify AFTER INSERT ON outbox_event
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_event_notify();
