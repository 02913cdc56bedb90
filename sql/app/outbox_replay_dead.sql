-- Makes every dead event pending again ($1 topic, or NULL for every topic).
-- With $2 true (dry run) it only lists the ids it would replay.
WITH dead AS (
    SELECT id FROM outbox_event
    WHERE state = 'dead' AND ($1::text IS NULL OR topic = $1)
    ORDER BY id
    FOR UPDATE
), replayed AS (
    UPDATE outbox_event e
    SET state = 'pending', attempt = 0, available_at = now(), claimed_by = NULL, claimed_until = NULL
    FROM dead
    WHERE e.id = dead.id AND NOT $2::bool
    RETURNING e.id
)
SELECT id FROM dead ORDER BY id;
