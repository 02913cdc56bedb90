-- Whether no pending outbox row is left (`jobsd bench`): the first entry of
-- the partial index on pending rows, constant time whatever the backlog.
SELECT NOT EXISTS (SELECT 1 FROM outbox_event WHERE state = 'pending');
