-- Records a failed publish of rows leased to $1 (a relay run; arrays $2 ids,
-- $3 errors and $7 permanent are parallel): one more attempt, the error, and
-- either a retry after an exponential backoff with jitter (base $4 ms, capped
-- at $5 ms) or, after $6 attempts or at once when the failure is permanent
-- (the row can never be sent: headers that do not fit in a frame, ...), the
-- dead state. The lease ends either way.
UPDATE outbox_event o
SET attempt       = o.attempt + 1,
    last_error    = f.error,
    state         = CASE WHEN o.attempt + 1 >= $6 OR f.permanent THEN 'dead' ELSE 'pending' END,
    available_at  = now() + interval '1 millisecond'
                    * least($5::float8, $4::float8 * power(2, o.attempt)) * (0.75 + random() / 2),
    claimed_by    = NULL,
    claimed_until = NULL
FROM unnest($2::bigint[], $3::text[], $7::bool[]) AS f (id, error, permanent)
WHERE o.id = f.id AND o.state = 'pending' AND o.claimed_by = $1
RETURNING o.id, o.state, o.attempt;
