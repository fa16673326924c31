-- roar store, schema version 2: what `status`, `lineage` and `show` need to stay fast on a long
-- history.

-- A run's position among all runs (the N of `@N`), stored so that it is not a count over the
-- whole table every time a run is shown. Runs are never deleted, so it never changes.
ALTER TABLE runs ADD COLUMN seq INTEGER;
UPDATE runs SET seq = n.seq
FROM (SELECT id, row_number() OVER (ORDER BY id) AS seq FROM runs) AS n
WHERE n.id = runs.id;
CREATE UNIQUE INDEX runs_seq ON runs(seq);

-- The newest finished run that wrote each path (filtered system files excluded), so that
-- "what does the project look like now" is one row per tracked path instead of a scan of every
-- output ever recorded. Older writers of a path are history: only the head can be stale.
CREATE TABLE path_heads (
    path        BLOB    PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    artifact_id INTEGER REFERENCES artifacts(id)
) WITHOUT ROWID;
CREATE INDEX path_heads_run ON path_heads(run_id);

INSERT OR REPLACE INTO path_heads (path, run_id, artifact_id)
SELECT o.path, o.run_id, o.artifact_id
FROM run_outputs AS o
JOIN runs AS r ON r.id = o.run_id AND r.finished = 1
WHERE o.filtered = 0
  AND o.run_id = (SELECT MAX(o2.run_id) FROM run_outputs AS o2
                  JOIN runs AS r2 ON r2.id = o2.run_id AND r2.finished = 1
                  WHERE o2.path = o.path AND o2.filtered = 0);
