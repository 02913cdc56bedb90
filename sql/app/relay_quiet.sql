-- Whether every writer that may have looked at outbox_relay_waiting before
-- this relay registered has committed (see migration 006): true when no
-- writer holds the shared notify lock. Never waits; the exclusive lock, when
-- taken, ends with this statement's implicit transaction.
SELECT pg_try_advisory_xact_lock(hashtextextended('jobsd.outbox.notify', 0));
