-- roar store, migration 30: the container a run ran in (null on the host). Numbered 30 so it
-- never clashes with other branches' numbers; it depends only on 0001.
-- runtime: 'docker' or 'podman'; image: the name asked for; image_id: what that name was when
-- the run ran (sha256:...); container_id: the container's full id.
CREATE TABLE run_container (
    run_id       INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    runtime      TEXT NOT NULL,
    image        TEXT,
    image_id     TEXT,
    container_id TEXT
);
