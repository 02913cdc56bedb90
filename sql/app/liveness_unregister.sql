-- Process $1 stops: it has given back what it held.
DELETE FROM jobsd_process WHERE holder = $1;
