-- Relay run $1 was woken and works: writers need not notify for it.
DELETE FROM outbox_relay_waiting WHERE holder = $1;
