-- roar team store, schema version 2: the environment a run used (the packages whose files it
-- read or executed, and the host), as the local store keeps it (dag migration 0020). Runs
-- pushed before this version have no rows here; insert-only like every other table.

CREATE TABLE roar.run_packages (
    run      uuid    NOT NULL,
    idx      integer NOT NULL,
    manager  text    NOT NULL,   -- pip, dpkg or conda
    name     text    NOT NULL,
    version  text    NOT NULL,
    location bytea   NOT NULL,   -- site-packages directory or conda prefix; empty for dpkg
    PRIMARY KEY (run, idx)
);
CREATE INDEX run_packages_name ON roar.run_packages (manager, name);

CREATE TABLE roar.run_host (
    run          uuid PRIMARY KEY,
    hostname     text,
    kernel       text,
    os           text,
    cpu_model    text,
    cpus         integer,
    memory_bytes bigint,
    gpus         text NOT NULL DEFAULT ''   -- one line per GPU
);

-- The container a run ran in, for runs that ran in one (dag migration 0030).
CREATE TABLE roar.run_container (
    run          uuid PRIMARY KEY,
    runtime      text NOT NULL,   -- docker or podman
    image        text,
    image_id     text,
    container_id text
);
