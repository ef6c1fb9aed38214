-- ping --
-- The cheapest statement: whether the database answers at all.
SELECT 1

-- lock_migrations --
-- One migrator at a time, even if several deploy jobs start together.
SELECT pg_advisory_lock(7305521)

-- unlock_migrations --
-- Let the next migrator in.
SELECT pg_advisory_unlock(7305521)

-- create_schema_migrations --
-- Where applied migrations are recorded; the first migration run creates it.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())

-- applied_migrations --
-- Migrations already applied, by version (the file's name).
SELECT version FROM schema_migrations

-- record_migration --
-- A migration is applied, in the same transaction as its statements.
INSERT INTO schema_migrations (version) VALUES ($1)
