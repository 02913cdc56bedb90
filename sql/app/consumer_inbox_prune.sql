-- Deletes at most $3 rows of queue $1's inbox processed more than $2 (an
-- interval) ago, oldest first, using consumer_inbox_processed_at_idx. Rows
-- another consumer is deleting are skipped, not waited for. The caller loops
-- until fewer than $3 rows were deleted.
DELETE FROM consumer_inbox
WHERE (queue, message_id) IN (
    SELECT queue, message_id
    FROM consumer_inbox
    WHERE queue = $1 AND processed_at < now() - $2::interval
    ORDER BY processed_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
);
