-- roar store, migration 20: the environment a run used. Numbered 20 so that it never clashes
-- with other branches' numbers; it depends only on 0001.

-- The packages whose files the run read or executed (never the whole environment).
-- manager: 'pip', 'dpkg' or 'conda'. location: where the package was installed (a
-- site-packages directory, a conda prefix; empty for dpkg), so that `roar status --packages`
-- can look up the version there now.
CREATE TABLE run_packages (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    manager  TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    version  TEXT    NOT NULL,
    location BLOB    NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
CREATE INDEX run_packages_name ON run_packages(manager, name);

-- The machine the run ran on, one row per run that has it.
CREATE TABLE run_host (
    run_id       INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    hostname     TEXT,
    kernel       TEXT,
    os           TEXT,
    cpu_model    TEXT,
    cpus         INTEGER,
    memory_bytes INTEGER,
    gpus         TEXT NOT NULL DEFAULT '' -- one GPU per line
);
