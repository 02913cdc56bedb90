-- Idempotent: a second run for the same (user, service) changes nothing.
INSERT INTO profiles (user_id, service) VALUES ($1, $2)
ON CONFLICT (user_id, service) DO NOTHING;
