-- Step 2 of a claim, in the transaction that locked the candidates: lease rows
-- $2 to relay $1 for $3 ms and return what the relay needs to publish them.
-- The body is the bytes the producer wrote, or for a row without one (from
-- before migration 008, or a plain INSERT of payload) jsonb's text of payload.
UPDATE outbox_event
SET claimed_by = $1, claimed_until = now() + $3::float8 * interval '1 millisecond'
WHERE id = ANY ($2::bigint[])
RETURNING id, message_id::text, topic, key, coalesce(body, convert_to(payload::text, 'UTF8')),
          coalesce(content_type, 'application/json'), headers, created_at, attempt;
