-- Serialises writers of the same key until they commit, so that within one key
-- ids are assigned in commit order. Keys are locked in sorted order to avoid
-- deadlocks between two writers of several keys. The empty key promises no
-- order and takes no lock: keyless writers never wait for each other. The SQL
-- function outbox_write (migration 004) takes the same lock for its key.
SELECT count(pg_advisory_xact_lock(hashtextextended('jobsd.outbox:' || k, 0)))
FROM (SELECT DISTINCT k FROM unnest($1::text[]) AS k WHERE k <> '' ORDER BY k) AS keys;
