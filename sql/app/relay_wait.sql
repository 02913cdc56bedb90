-- Relay run $1 is about to wait for a notification: from its commit on,
-- writers notify (see migration 006). Rows of relays that died while
-- waiting (not refreshed for 10 minutes) go.
WITH stale AS (
    DELETE FROM outbox_relay_waiting WHERE seen_at < now() - interval '10 minutes' AND holder <> $1
)
INSERT INTO outbox_relay_waiting (holder) VALUES ($1)
ON CONFLICT (holder) DO UPDATE SET seen_at = now();
