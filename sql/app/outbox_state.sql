-- The state of outbox event $1, locked until the end of the transaction so
-- that a replay decides on the state it changes.
SELECT state FROM outbox_event WHERE id = $1 FOR UPDATE;
