-- roar store, schema version 1.
-- Paths, argv elements and working directories are BLOBs: they are bytes on Linux and must
-- round-trip exactly, including bytes that are not UTF-8.
-- u64 quantities (dev, ino, sizes, ns timestamps) are stored as their i64 bit pattern.

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so a run id stays meaningful
    label         TEXT,
    cwd           BLOB    NOT NULL,
    backend       TEXT    NOT NULL,
    started_at_ms INTEGER NOT NULL,
    git_commit    TEXT,
    git_branch    TEXT,
    git_dirty     INTEGER,          -- NULL exactly when the run had no git information
    git_remote    TEXT,
    exit_code     INTEGER,
    signal        INTEGER,
    duration_ms   INTEGER,
    complete      INTEGER NOT NULL DEFAULT 0,
    finished      INTEGER NOT NULL DEFAULT 0,
    trace_dir     BLOB,
    roar_pid      INTEGER NOT NULL
);
-- "Newest first" walks the rowid b-tree backwards, so runs needs no separate id index.
-- Crash recovery only looks at the few unfinished runs.
CREATE INDEX runs_unfinished ON runs(id) WHERE finished = 0;

CREATE TABLE run_command (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx    INTEGER NOT NULL,
    arg    BLOB    NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;

CREATE TABLE run_env (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx    INTEGER NOT NULL,
    name   TEXT    NOT NULL,
    value  TEXT,                    -- NULL unless the variable is allow-listed
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;

CREATE TABLE processes (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    pid        INTEGER NOT NULL,
    ppid       INTEGER NOT NULL,
    exe        BLOB    NOT NULL,
    cwd        BLOB    NOT NULL,
    exit_code  INTEGER,
    signal     INTEGER,
    started_ns INTEGER NOT NULL,
    UNIQUE (run_id, idx)
);

CREATE TABLE process_argv (
    process_id INTEGER NOT NULL REFERENCES processes(id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    arg        BLOB    NOT NULL,
    PRIMARY KEY (process_id, idx)
) WITHOUT ROWID;

-- One row per distinct content: the same bytes at two paths, or in two runs, are one artifact.
CREATE TABLE artifacts (
    id   INTEGER PRIMARY KEY,
    hash TEXT    NOT NULL UNIQUE,   -- "blake3:<64 hex>"
    size INTEGER
);

-- size is kept on the link too, so that a file whose content is unknown (NULL artifact) still
-- reports the size that was seen.
CREATE TABLE run_inputs (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    path        BLOB    NOT NULL,
    artifact_id INTEGER REFERENCES artifacts(id),
    size        INTEGER,
    filtered    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
CREATE INDEX run_inputs_artifact ON run_inputs(artifact_id);
CREATE INDEX run_inputs_path ON run_inputs(path, run_id);

CREATE TABLE run_outputs (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    path        BLOB    NOT NULL,
    artifact_id INTEGER REFERENCES artifacts(id),
    size        INTEGER,
    filtered    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
CREATE INDEX run_outputs_artifact ON run_outputs(artifact_id);
CREATE INDEX run_outputs_path ON run_outputs(path, run_id);

CREATE TABLE warnings (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    text   TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- One row per file identity; a lookup must match size and mtime too, so a rewritten file misses.
CREATE TABLE hash_cache (
    dev      INTEGER NOT NULL,
    ino      INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash     TEXT    NOT NULL,
    PRIMARY KEY (dev, ino)
) WITHOUT ROWID;
