-- The least-privilege role for workers: they push (INSERT) and pull (SELECT), nothing else.
-- They cannot change or delete a run, create tables or migrate the schema.
--
-- As the database owner, after the schema exists (the first `roar push` as the owner creates
-- it, or apply pg/0001_init.sql ... with psql):
--
--   CREATE ROLE roar_worker LOGIN;       -- then \password roar_worker, or a cert/pgpass setup
--   \i worker_role.sql                   -- or team_store::grant_worker(&owner, "roar_worker")
--
-- USAGE on the sequence is what nextval() for roar.runs.seq needs; it grants no UPDATE or
-- DELETE on any table. Re-run it after a schema upgrade that adds tables (the default
-- privileges below cover tables the owner creates later).
GRANT USAGE ON SCHEMA roar TO roar_worker;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA roar TO roar_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA roar TO roar_worker;
ALTER DEFAULT PRIVILEGES IN SCHEMA roar GRANT SELECT, INSERT ON TABLES TO roar_worker;
ALTER DEFAULT PRIVILEGES IN SCHEMA roar GRANT USAGE ON SEQUENCES TO roar_worker;
