-- The outbox gauges of /metrics: pending rows and dead rows (each counted on
-- its own partial index), and the age of the oldest pending row (the first
-- entry of the pending index: ids grow with time). Published rows are not
-- counted here; the relay counts what it publishes.
SELECT (SELECT count(*) FROM outbox_event WHERE state = 'pending') AS pending,
       coalesce((SELECT extract(epoch FROM now() - created_at)
                 FROM outbox_event WHERE state = 'pending' ORDER BY id LIMIT 1), 0)::float8 AS oldest_pending_age_seconds,
       (SELECT count(*) FROM outbox_event WHERE state = 'dead') AS dead;
