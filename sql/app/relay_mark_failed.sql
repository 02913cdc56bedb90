-- Records a failed publish of rows leased by relay $1 (arrays $2 ids and $3
-- errors are parallel): one more attempt, the error, and either a retry after
-- an exponential backoff with jitter (base $4 ms, capped at $5 ms) or, after
-- $6 attempts, the dead state. The lease ends either way.
UPDATE outbox_event o
SET attempt       = o.attempt + 1,
    last_error    = f.error,
    state         = CASE WHEN o.attempt + 1 >= $6 THEN 'dead' ELSE 'pending' END,
    available_at  = now() + interval '1 millisecond'
                    * least($5::float8, $4::float8 * power(2, o.attempt)) * (0.75 + random() / 2),
    claimed_by    = NULL,
    claimed_until = NULL
FROM unnest($2::bigint[], $3::text[]) AS f (id, error)
WHERE o.id = f.id AND o.state = 'pending' AND o.claimed_by = $1
RETURNING o.id, o.state, o.attempt;
