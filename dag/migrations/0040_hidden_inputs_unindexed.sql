-- roar store, migration 40: the path index of run_inputs leaves out hidden (filtered) inputs.
-- A run reads a few hundred interpreter, library and .git files that the filter hides; each
-- went into this index at its own place, so a run of `python -c 'import json, ...'` rewrote
-- about 150 index pages (185 WAL frames, a checkpoint with its fsyncs every run) for rows no
-- query looks up by path but `latest_at_path`'s last resort, which scans for them instead.
-- Depends only on 0001.
DROP INDEX run_inputs_path;
CREATE INDEX run_inputs_path ON run_inputs(path, run_id) WHERE filtered = 0;
