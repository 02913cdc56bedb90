-- The chaos harness's marks at a fault: the last outbox event and the last
-- River job written so far. Recovery is over when everything up to them is
-- done (see chaos_behind).
SELECT coalesce((SELECT max(id) FROM outbox_event), 0) AS last_event,
       coalesce((SELECT max(id) FROM river_job), 0) AS last_job;
