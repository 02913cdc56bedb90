-- The chaos harness: how many of the acknowledged signups' emails ($1) have no
-- user row.
SELECT count(*)
FROM unnest($1::text[]) AS a (email)
WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.email = a.email);
