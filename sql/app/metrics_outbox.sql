-- The outbox gauges of /metrics: pending rows (partial index), the age of the
-- oldest pending row, and dead rows. Published rows are not counted here; the
-- relay counts what it publishes.
SELECT (SELECT count(*) FROM outbox_event WHERE state = 'pending') AS pending,
       coalesce((SELECT extract(epoch FROM now() - min(created_at))
                 FROM outbox_event WHERE state = 'pending'), 0)::float8 AS oldest_pending_age_seconds,
       (SELECT count(*) FROM outbox_event WHERE state = 'dead') AS dead;
