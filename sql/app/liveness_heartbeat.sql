-- Process $1 is still alive. No row: another process found it dead.
UPDATE jobsd_process SET seen_at = now() WHERE holder = $1;
