-- Outbox events, newest first. $1 state or NULL for every state, $2 topic or
-- NULL for every topic, $3 the maximum number of rows. payload is the jsonb
-- of a JSON body (NULL for other content types).
SELECT id, message_id::text, topic, key, state, attempt, coalesce(last_error, ''),
       created_at, available_at, published_at, payload, headers, coalesce(content_type, 'application/json')
FROM outbox_event
WHERE ($1::text IS NULL OR state = $1)
  AND ($2::text IS NULL OR topic = $2)
ORDER BY id DESC
LIMIT $3;
