-- The highest River job id so far (0 when none), for `jobsd bench`.
SELECT coalesce(max(id), 0) FROM river_job
