-- Deliveries and their attempts, partitioned by the delivery's creation
-- time (ms since the epoch) into one table per UTC day, which retention
-- drops whole. Attempts carry their delivery's creation time so both
-- tables partition alike and an attempt's day goes with its delivery's.
CREATE TABLE hookd_deliveries (
    created_ms bigint NOT NULL,
    id text NOT NULL,
    workspace text NOT NULL,
    endpoint_id text NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    status text NOT NULL,
    attempts_made integer NOT NULL,
    -- When the record this row holds was written in Redis (ms): a record
    -- shipped again, or late, never overwrites a newer one.
    recorded_ms bigint NOT NULL,
    PRIMARY KEY (created_ms, id)
) PARTITION BY RANGE (created_ms);

CREATE TABLE hookd_attempts (
    created_ms bigint NOT NULL,
    delivery_id text NOT NULL,
    number integer NOT NULL,
    -- The attempt as the API shows it (JSON: times, status code, error kind, excerpt, trigger).
    attempt text NOT NULL,
    PRIMARY KEY (created_ms, delivery_id, number)
) PARTITION BY RANGE (created_ms);
