-- roar store, migration 3: standalone-preload ingest and OpenJD context.
-- Numbered 3, not 2, so that it never clashes with another branch's 0002; the migration runner
-- records each applied number in roar_migrations and applies missing ones in any order, so this
-- file must not depend on anything but 0001.

-- One row per process tree that `roar ingest` turned into a run (or decided to skip), keyed by
-- the stream file name of the tree root's first process image. Stream names carry the pid, a
-- monotonic timestamp, 64 random bits and the writer's boot/pid-namespace identity, so they are
-- unique across containers sharing one trace directory. Ingesting twice finds the key and adds
-- nothing.
CREATE TABLE ingested_trees (
    tree           TEXT    PRIMARY KEY,
    run_id         INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    streams        INTEGER NOT NULL,
    ingested_at_ms INTEGER NOT NULL
);

-- The OpenJD context of a run started by an OpenJD session (wrap mode).
CREATE TABLE run_openjd (
    run_id       INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    session_id   TEXT,
    working_dir  BLOB,
    step         TEXT,
    environments TEXT    NOT NULL DEFAULT ''  -- environment names, one per line, in entry order
);
