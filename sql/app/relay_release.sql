-- Gives back rows relay $1 leased but will not publish now (broker connection
-- lost, shutdown): they stay pending with no attempt counted, and relays are
-- woken (NOTIFY at commit) to claim them at once.
WITH released AS (
    UPDATE outbox_event
    SET claimed_by = NULL, claimed_until = NULL
    WHERE id = ANY($2::bigint[]) AND state = 'pending' AND claimed_by = $1
    RETURNING 1
)
SELECT pg_notify('jobsd_outbox', '')
FROM (SELECT count(*) AS n FROM released) AS r
WHERE r.n > 0;
