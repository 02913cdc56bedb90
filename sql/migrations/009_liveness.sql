-- Processes that hold work while they run: relays (leases on outbox_event
-- rows) and River clients (running jobs). Each one, while it lives, holds a
-- session advisory lock on its own connection (key: hashtextextended(
-- 'jobsd.process:' || holder, 0)) and refreshes seen_at every second. A
-- process killed with -9 loses its connection, so its lock, at once: another
-- process of the same kind that finds the lock free and seen_at older than a
-- few seconds deletes the row and, in the same transaction, gives back what
-- the dead one held (its leases, its running jobs), instead of waiting for
-- the lease to end or River's rescuer. See internal/liveness.
CREATE TABLE jobsd_process (
    holder     text        PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('relay', 'worker')),
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE jobsd_process IS
    'Live relays and River clients of jobsd: each holds an advisory lock on its holder while it runs; a row whose lock is free and seen_at old is a dead process, whose leases and running jobs other processes give back at once.';
COMMENT ON COLUMN jobsd_process.holder IS
    'The relay''s lease holder (outbox_event.claimed_by) or the River client ID (river_job.attempted_by).';
COMMENT ON COLUMN jobsd_process.kind IS
    'relay or worker.';
COMMENT ON COLUMN jobsd_process.started_at IS
    'When the process registered.';
COMMENT ON COLUMN jobsd_process.seen_at IS
    'When the process last refreshed its row (every second while it runs).';
