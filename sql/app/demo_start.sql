-- The start of a demo run on the database's clock, a second early so that
-- rows of the first signup are never missed by clock skew.
SELECT now() - interval '1 second';
