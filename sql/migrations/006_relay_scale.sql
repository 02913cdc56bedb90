-- Indexes for the outbox gauges (/metrics, every 5 s per process), so that
-- they cost the same however many published rows retention keeps: dead rows
-- are counted on their own partial index, and the oldest pending row is the
-- first entry of outbox_event_pending_idx (ids grow with time).
CREATE INDEX outbox_event_dead_idx ON outbox_event (id) WHERE state = 'dead';
