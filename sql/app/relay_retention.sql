-- Deletes at most $2 published rows older than the retention of $1 ms. The relay
-- runs it in a loop until fewer than $2 rows go, so that no statement holds
-- many row locks or runs long.
DELETE FROM outbox_event
WHERE id IN (
    SELECT id FROM outbox_event
    WHERE state = 'published' AND published_at < now() - $1::float8 * interval '1 millisecond'
    ORDER BY published_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
);
