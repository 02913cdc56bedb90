SELECT version FROM jobsd_migration;
