-- Adds counts to analytics_counts: arrays are parallel, one element per
-- (topic, day), each pair at most once, in key order.
INSERT INTO analytics_counts (topic, day, n)
SELECT c.topic, c.day, c.n
FROM unnest($1::text[], $2::date[], $3::bigint[]) WITH ORDINALITY AS c (topic, day, n, ord)
ORDER BY c.ord
ON CONFLICT (topic, day) DO UPDATE SET n = analytics_counts.n + EXCLUDED.n;
