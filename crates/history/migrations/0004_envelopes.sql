-- The payload of every event with deliveries, shipped with their first
-- records, so a delivery Redis has forgotten can be attempted again
-- (redelivery, recovery jobs). Partitioned like the deliveries, by the
-- event's stream entry time (its deliveries' creation time).
CREATE TABLE hookd_envelopes (
    created_ms bigint NOT NULL,
    workspace text NOT NULL,
    event_id text NOT NULL,
    envelope bytea NOT NULL,
    PRIMARY KEY (created_ms, workspace, event_id)
) PARTITION BY RANGE (created_ms);

-- Day partitions made before this table existed get their envelope
-- partitions as rows arrive (hookd makes partitions on demand).
