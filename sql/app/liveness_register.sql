-- Process $1 of kind $2 is alive: take the session advisory lock on its
-- holder and, when it was free, insert or refresh its row, in one statement
-- (at start and after reconnecting). No row returned: an earlier session of
-- the process (a connection the server has not yet seen die) still holds the
-- lock.
WITH lock AS (
    SELECT pg_try_advisory_lock(hashtextextended('jobsd.process:' || $1, 0)) AS taken
)
INSERT INTO jobsd_process (holder, kind)
SELECT $1, $2 FROM lock WHERE lock.taken
ON CONFLICT (holder) DO UPDATE SET seen_at = now()
RETURNING true;
