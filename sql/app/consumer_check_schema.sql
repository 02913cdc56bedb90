-- Fails with undefined_table (42P01) when `jobsd migrate` has not run.
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM consumer_inbox LIMIT 0) AS i)
  + (SELECT count(*) FROM (SELECT 1 FROM analytics_counts LIMIT 0) AS a);
