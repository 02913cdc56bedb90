-- `jobsd bench notify`: marks the end of the writes on the relay's channel;
-- the benchmark's listener counts the notifications that came before it.
SELECT pg_notify('jobsd_outbox', $1);
