-- Registered relays and River clients by kind (jobsd_process, migration 009):
-- live ones refreshed their row within the last $1 ms (liveness.Grace); stale
-- ones did not, and are dead unless their connection is only down for a
-- moment: a live process of their kind gives back their work.
SELECT k.kind,
       count(p.holder) FILTER (WHERE p.seen_at >= now() - $1::float8 * interval '1 millisecond') AS live,
       count(p.holder) FILTER (WHERE p.seen_at < now() - $1::float8 * interval '1 millisecond') AS stale
FROM (VALUES ('relay'), ('worker')) AS k (kind)
LEFT JOIN jobsd_process p ON p.kind = k.kind
GROUP BY k.kind
ORDER BY k.kind;
