-- The history pages: a workspace's deliveries, an endpoint's, a workspace's
-- by status, newest first (the primary key serves one delivery by id, whose
-- creation time is in the id).
CREATE INDEX hookd_deliveries_workspace ON hookd_deliveries (workspace, created_ms DESC, id DESC);
CREATE INDEX hookd_deliveries_endpoint ON hookd_deliveries (endpoint_id, created_ms DESC, id DESC);
CREATE INDEX hookd_deliveries_workspace_status ON hookd_deliveries (workspace, status, created_ms DESC, id DESC);
