-- At start, a relay drops the waiting row of an earlier run with its relay id
-- ($1; see relay_takeover.sql).
DELETE FROM outbox_relay_waiting
WHERE holder LIKE replace(replace(replace($1, '\', '\\'), '%', '\%'), '_', '\_') || '/%';
