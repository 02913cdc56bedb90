-- Records a batch of messages as applied by queue $1 ($2: message ids, UUIDs
-- in canonical form, sorted so that concurrent batches take the index locks
-- in one order). Returns the ids that were not in the inbox yet, in canonical
-- text form: only their effects are applied.
INSERT INTO consumer_inbox (queue, message_id)
SELECT $1::text, m.id
FROM unnest($2::uuid[]) WITH ORDINALITY AS m (id, ord)
ORDER BY m.ord
ON CONFLICT (queue, message_id) DO NOTHING
RETURNING message_id::text;
