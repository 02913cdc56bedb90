-- The chaos harness's recovery and drain check: outbox events up to $1 that
-- consumer queue $3 has not applied yet, and River jobs up to $2 that have not
-- reached a final state.
SELECT (SELECT count(*) FROM outbox_event e
        WHERE e.id <= $1
          AND NOT EXISTS (SELECT 1 FROM consumer_inbox c
                          WHERE c.queue = $3 AND c.message_id = e.message_id)) AS events_behind,
       (SELECT count(*) FROM river_job
        WHERE id <= $2 AND state NOT IN ('completed', 'discarded', 'cancelled')) AS jobs_behind;
