INSERT INTO jobsd_migration (version, name) VALUES ($1, $2);
