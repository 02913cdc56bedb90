-- Counts completed River jobs of kind $1 with an id above $2, for `jobsd bench`.
SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed' AND id > $2
