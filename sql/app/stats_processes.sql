-- Registered relays and River clients by kind (jobsd_process, migration 009):
-- live ones refreshed their row within the last 5 s (liveness.Grace); stale
-- ones did not, and are dead unless their connection is only down for a
-- moment: a live process of their kind gives back their work.
SELECT k.kind,
       count(p.holder) FILTER (WHERE p.seen_at >= now() - interval '5 seconds') AS live,
       count(p.holder) FILTER (WHERE p.seen_at < now() - interval '5 seconds') AS stale
FROM (VALUES ('relay'), ('worker')) AS k (kind)
LEFT JOIN jobsd_process p ON p.kind = k.kind
GROUP BY k.kind
ORDER BY k.kind;
