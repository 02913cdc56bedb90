-- consumer_inbox.message_id becomes uuid, like outbox_event.message_id: half
-- the size of its text form in the primary key, and the consumer now rejects
-- (dead-letters) messages whose id is not a UUID, so no new row can need text.
--
-- Rows written before, whose id is not a UUID Postgres accepts, cannot be
-- converted. They are moved to consumer_inbox_legacy (same columns, text id)
-- rather than dropped, for audit; the consumer never reads that table, since
-- a message with such an id is rejected before it reaches the inbox, so
-- moving them changes no dedupe decision. Drop it once nobody needs it. Two
-- texts of one UUID (upper and lower case, with and without hyphens) would
-- collide after the conversion: the later row moves to the legacy table too.
--
-- The conversion rewrites the table under an ACCESS EXCLUSIVE lock: stop the
-- consumers of a very large inbox first, or prune it (see consumer.Config
-- InboxRetention) before migrating.
CREATE TABLE consumer_inbox_legacy (
    queue        text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL
);

WITH checked AS (
    SELECT queue, message_id, processed_at,
           message_id ~ '^([0-9a-fA-F]{4}(-?[0-9a-fA-F]{4}){7}|\{[0-9a-fA-F]{4}(-?[0-9a-fA-F]{4}){7}\})$' AS is_uuid
    FROM consumer_inbox
), ranked AS (
    SELECT queue, message_id, is_uuid,
           row_number() OVER (PARTITION BY queue, CASE WHEN is_uuid THEN message_id::uuid END
                              ORDER BY processed_at, message_id) AS n
    FROM checked
), moved AS (
    DELETE FROM consumer_inbox i
    USING ranked r
    WHERE i.queue = r.queue AND i.message_id = r.message_id AND (NOT r.is_uuid OR r.n > 1)
    RETURNING i.queue, i.message_id, i.processed_at
)
INSERT INTO consumer_inbox_legacy (queue, message_id, processed_at)
SELECT queue, message_id, processed_at FROM moved;

ALTER TABLE consumer_inbox ALTER COLUMN message_id TYPE uuid USING message_id::uuid;

-- The consumer prunes its queue's rows older than its retention, oldest
-- first, in small batches.
CREATE INDEX consumer_inbox_processed_at_idx ON consumer_inbox (queue, processed_at);
