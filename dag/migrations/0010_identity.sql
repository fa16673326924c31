-- roar store, migration 10: identity across stores (the team store). Numbered 10 so that it
-- never clashes with other branches' lower numbers; it depends on nothing but 0001..0002.

-- The store's own identity: a random UUID (version 4) made once, here. Runs recorded in this
-- store name it as their origin when they are pushed.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO store_meta (key, value)
SELECT 'store_uuid', lower(
    hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
    || '-' || substr('89ab', 1 + (random() & 3), 1) || substr(hex(randomblob(2)), 2)
    || '-' || hex(randomblob(6)));

-- uuid: the run's identity in every store (UUIDv7: its first 48 bits are the start time in ms).
-- origin_store / origin_host: NULL origin_store means recorded here; a pulled run names the
-- store and host that recorded it and is read-only. origin_host of a local run is the host
-- that recorded it (NULL for runs recorded before this migration).
-- order_key: the run's place in time, shared by every store: its start time in microseconds,
-- raised where needed to stay above the store's previous run, so that within one store it
-- follows id order and across stores it follows start time. Lineage and path heads compare
-- runs by (order_key, id), since a pulled run gets a local id when it arrives, not when it ran.
-- finished_seq: the order in which local runs were finished; push sends them in that order
-- and remembers how far it got (runs finish out of id order).
ALTER TABLE runs ADD COLUMN uuid TEXT;
ALTER TABLE runs ADD COLUMN origin_store TEXT;
ALTER TABLE runs ADD COLUMN origin_host TEXT;
ALTER TABLE runs ADD COLUMN order_key INTEGER;
ALTER TABLE runs ADD COLUMN finished_seq INTEGER;

-- Existing runs: UUIDv7 from their start time, the 12 bits after the version from their id,
-- so that they sort by (start time, id); the rest random.
UPDATE runs SET uuid = lower(
    substr(printf('%012x', started_at_ms & 281474976710655), 1, 8) || '-'
    || substr(printf('%012x', started_at_ms & 281474976710655), 9, 4) || '-7'
    || printf('%03x', id & 4095) || '-' || substr('89ab', 1 + (random() & 3), 1)
    || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)));

-- key_i = max(start_i * 1000, key_(i-1) + 1) in closed form: rank + running max of
-- (start * 1000 - rank).
UPDATE runs SET order_key = k.key
FROM (SELECT id, rk + max(started_at_ms * 1000 - rk) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING) AS key
      FROM (SELECT id, started_at_ms, row_number() OVER (ORDER BY id) AS rk FROM runs)) AS k
WHERE k.id = runs.id;

UPDATE runs SET finished_seq = n.seq
FROM (SELECT id, row_number() OVER (ORDER BY id) AS seq FROM runs WHERE finished = 1) AS n
WHERE n.id = runs.id;

CREATE UNIQUE INDEX runs_uuid ON runs(uuid);
CREATE INDEX runs_local_order ON runs(order_key) WHERE origin_store IS NULL;
CREATE UNIQUE INDEX runs_finished_seq ON runs(finished_seq) WHERE finished_seq IS NOT NULL;

-- What this store has exchanged with each team store, keyed by the remote's own identity (a
-- UUID the remote keeps in its schema), never by its URL, which may carry credentials.
-- pushed_seq: local runs up to this finished_seq are on the remote (moved after its commit).
-- pulled_tx/pulled_seq: the remote's position (its transaction id and row sequence) up to which
-- its runs were brought in (moved in the same transaction as the runs).
CREATE TABLE remote_marks (
    remote     TEXT    PRIMARY KEY,
    pushed_seq INTEGER NOT NULL DEFAULT 0,
    pulled_tx  INTEGER NOT NULL DEFAULT 0,
    pulled_seq INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
