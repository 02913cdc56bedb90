-- Runs first in each transaction of the relay (claims, marks).
-- jit: the claim's cost estimate can cross jit_above_cost, and compiling it
-- takes far longer (~200 ms) than running it (a few ms).
-- plan_cache_mode: the statements are prepared; a generic plan, which knows
-- neither the batch size nor the arrays, can scan the whole table.
-- synchronous_commit: the relay's own writes (leases, marks) need not wait for
-- the WAL flush. If Postgres crashes before the flush, a lease or a mark is
-- lost: the row is published again (a duplicate), never lost. The events
-- themselves are as durable as the application's commit made them.
SELECT set_config('jit', 'off', true),
       set_config('plan_cache_mode', 'force_custom_plan', true),
       set_config('synchronous_commit', 'off', true);
