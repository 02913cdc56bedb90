-- Runs first in each transaction of the relay (claims, marks).
-- jit: a claim's cost estimate can cross jit_above_cost, and compiling it
-- takes far longer (~200 ms) than running it (a few ms).
-- enable_bitmapscan, enable_seqscan: every relay statement walks an index in
-- order and stops after a batch; with a large backlog the planner may prefer
-- a bitmap or sequential scan over every pending row and a sort (measured on
-- 300k pending rows: 140 ms instead of 12 ms per claim). See docs/relay-queries.md.
-- synchronous_commit: the relay's own writes (leases, marks) need not wait for
-- the WAL flush. If Postgres crashes before the flush, a lease or a mark is
-- lost: the row is published again (a duplicate), never lost. The events
-- themselves are as durable as the application's commit made them.
SELECT set_config('jit', 'off', true),
       set_config('enable_bitmapscan', 'off', true),
       set_config('enable_seqscan', 'off', true),
       set_config('synchronous_commit', 'off', true);
