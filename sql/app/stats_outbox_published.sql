-- The number of published rows kept, as Postgres estimates it: the size of
-- the partial index on published rows as of the last VACUUM or ANALYZE
-- (autovacuum keeps it current). Constant time, however many rows are kept;
-- `jobsd outbox stats --exact` counts them instead. 0 before the first
-- VACUUM or ANALYZE.
SELECT greatest(reltuples, 0)::bigint
FROM pg_class
WHERE oid = 'outbox_event_published_at_idx'::regclass;
