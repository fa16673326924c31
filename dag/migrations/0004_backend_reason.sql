-- roar store, migration 4: why a run's backend was chosen (`--backend auto` explains its pick,
-- an explicit --backend says so). Numbered 4 so that it never clashes with other branches' 2 and
-- 3; it depends on nothing but 0001. Runs recorded before it have NULL.
ALTER TABLE runs ADD COLUMN backend_reason TEXT;
