-- `log`, `latest` and `@N`-free listings go by when runs started, across
-- machines: a run pulled from another store arrives with a high local id,
-- but takes its place by its start time (order_key), not by its arrival.
CREATE INDEX runs_time_order ON runs(order_key, id);
