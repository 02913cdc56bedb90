-- Refreshes outbox_event statistics after `jobsd bench` filled it.
VACUUM ANALYZE outbox_event
