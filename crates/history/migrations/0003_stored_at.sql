-- When each delivery row was first stored (ms). With recorded_ms, it says how
-- long history took to become queryable here (BENCHMARKS.md, shipping lag).
ALTER TABLE hookd_deliveries
    ADD COLUMN stored_ms bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
