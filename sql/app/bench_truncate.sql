-- Empties the scratch database of `jobsd bench` (never the operator's database).
TRUNCATE outbox_event, users, profiles, consumer_inbox, analytics_counts, river_job
