-- Rescue the running jobs of River clients $1 that died
-- (liveness_reap.sql), as River's rescuer would, without waiting for
-- RescueStuckJobsAfter: a job whose cancel was requested is cancelled, a job
-- out of attempts is discarded, any other job is available again at once.
-- The attempt's error says which process died.
UPDATE river_job
SET state = CASE
        WHEN metadata ? 'cancel_attempted_at' THEN 'cancelled'
        WHEN attempt >= max_attempts THEN 'discarded'
        ELSE 'available'
    END::river_job_state,
    finalized_at = CASE
        WHEN metadata ? 'cancel_attempted_at' OR attempt >= max_attempts THEN now()
    END,
    scheduled_at = CASE
        WHEN metadata ? 'cancel_attempted_at' OR attempt >= max_attempts THEN scheduled_at
        ELSE now()
    END,
    errors = array_append(errors, jsonb_build_object(
        'at', now(),
        'attempt', greatest(attempt, 0),
        'error', 'jobsd: worker ' || attempted_by[array_upper(attempted_by, 1)] || ' died while running this job; rescued',
        'trace', ''))
WHERE state = 'running'
  AND attempted_by[array_upper(attempted_by, 1)] = ANY ($1::text[]);
