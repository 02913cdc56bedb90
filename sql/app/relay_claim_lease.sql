-- Step 2 of a claim, in the transaction that locked the candidates: lease rows
-- $2 to relay $1 for $3 ms and return what the relay needs to publish them.
UPDATE outbox_event
SET claimed_by = $1, claimed_until = now() + $3::float8 * interval '1 millisecond'
WHERE id = ANY ($2::bigint[])
RETURNING id, message_id::text, topic, key, payload, headers, created_at, attempt;
