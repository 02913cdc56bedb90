-- Runs first in each transaction of the relay (claims, marks).
-- jit: a claim's cost estimate can cross jit_above_cost, and compiling it
-- takes far longer (~200 ms) than running it (a few ms).
-- synchronous_commit: the relay's own writes (leases, marks) need not wait for
-- the WAL flush. If Postgres crashes before the flush, a lease or a mark is
-- lost: the row is published again (a duplicate), never lost. The events
-- themselves are as durable as the application's commit made them.
SELECT set_config('jit', 'off', true), set_config('synchronous_commit', 'off', true);
