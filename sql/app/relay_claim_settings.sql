-- Runs before each claim, in the claim's transaction.
-- jit: the claim's cost estimate can cross jit_above_cost, and compiling it
-- takes far longer (~200ms) than running it (a few ms).
-- plan_cache_mode: the claim is a prepared statement; a generic plan, which
-- does not know the batch size, scans the whole table (seconds instead of ms).
SELECT set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true);
