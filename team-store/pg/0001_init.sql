-- roar team store, PostgreSQL schema version 1. Applied by the team-store crate under an
-- advisory lock (see schema.rs); apply by hand with psql if workers may not create tables.
-- Runs are immutable once finished, so every table is insert-only: nothing is ever updated,
-- and a retried push is a no-op (ON CONFLICT DO NOTHING).

CREATE SCHEMA IF NOT EXISTS roar;

-- remote_id: this database's identity; clients key their push/pull marks by it, never by URL.
CREATE TABLE roar.meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO roar.meta (key, value) VALUES ('remote_id', gen_random_uuid()::text);

-- seq orders rows within a transaction; tx (the inserting transaction) lets pull stop below
-- the oldest transaction still running, so a batch that commits late is never skipped.
CREATE TABLE roar.runs (
    seq            bigserial PRIMARY KEY,
    tx             xid8      NOT NULL DEFAULT pg_current_xact_id(),
    uuid           uuid      NOT NULL UNIQUE,
    digest         text      NOT NULL,   -- blake3 of everything below: same uuid, same digest
    origin_store   uuid      NOT NULL,
    origin_host    text,
    order_key      bigint    NOT NULL,
    label          text,
    cwd            bytea     NOT NULL,
    backend        text      NOT NULL,
    backend_reason text,
    started_at_ms  bigint    NOT NULL,
    duration_ms    bigint,
    exit_code      integer,
    signal         integer,
    complete       boolean   NOT NULL,
    git_commit     text,
    git_branch     text,
    git_dirty      boolean,              -- NULL exactly when the run had no git information
    git_remote     text,
    roar_pid       bigint    NOT NULL,
    openjd         boolean   NOT NULL,   -- the openjd_* columns mean something
    openjd_session text,
    openjd_dir     bytea,
    openjd_step    text,
    openjd_envs    text      NOT NULL DEFAULT '',
    pushed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_pull ON roar.runs (tx, seq);
CREATE INDEX runs_origin ON roar.runs (origin_store);

CREATE TABLE roar.run_args (
    run uuid    NOT NULL,
    idx integer NOT NULL,
    arg bytea   NOT NULL,
    PRIMARY KEY (run, idx)
);

CREATE TABLE roar.run_env (
    run   uuid    NOT NULL,
    idx   integer NOT NULL,
    name  text    NOT NULL,
    value text,
    PRIMARY KEY (run, idx)
);

CREATE TABLE roar.run_warnings (
    run  uuid    NOT NULL,
    idx  integer NOT NULL,
    text text    NOT NULL,
    PRIMARY KEY (run, idx)
);

-- Inputs (output = false) and outputs; hash is "blake3:<hex>", the artifact's identity.
CREATE TABLE roar.run_files (
    run      uuid    NOT NULL,
    output   boolean NOT NULL,
    idx      integer NOT NULL,
    path     bytea   NOT NULL,
    hash     text,
    size     bigint,
    filtered boolean NOT NULL,
    PRIMARY KEY (run, output, idx)
);
CREATE INDEX run_files_hash ON roar.run_files (hash);

CREATE TABLE roar.processes (
    run        uuid    NOT NULL,
    idx        integer NOT NULL,
    pid        bigint  NOT NULL,
    ppid       bigint  NOT NULL,
    exe        bytea   NOT NULL,
    cwd        bytea   NOT NULL,
    exit_code  integer,
    signal     integer,
    started_ns bigint  NOT NULL,
    PRIMARY KEY (run, idx)
);

CREATE TABLE roar.process_argv (
    run  uuid    NOT NULL,
    proc integer NOT NULL,
    idx  integer NOT NULL,
    arg  bytea   NOT NULL,
    PRIMARY KEY (run, proc, idx)
);
