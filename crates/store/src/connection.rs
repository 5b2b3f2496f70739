//! The connection to Redis: one node (a `ConnectionManager`, reconnecting by
//! itself) or a Redis Cluster (redis-rs's async cluster connection, which
//! discovers the topology from the seed nodes and follows MOVED, ASK and
//! failovers). Every other module talks to Redis through this one type.
//! Each atomic step (a script, a MULTI/EXEC) touches the keys of one
//! partition, which share a hash tag and so one slot; the cluster
//! connection routes it by its first key.

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

#[derive(Clone)]
pub(crate) enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
    /// One node of a cluster, for what is asked of a node rather than of a
    /// slot (`SCAN` of a partition's keys).
    Direct(MultiplexedConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
            Connection::Direct(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Direct(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
            Connection::Direct(c) => c.get_db(),
        }
    }
}

impl Connection {
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }

    /// A connection to the node serving `key`'s slot: this one on a single
    /// node; on a cluster a new one to the slot's primary (`seed` gives the
    /// credentials and TLS settings).
    pub(crate) async fn node_for(
        &self,
        key: &str,
        seed: &redis::ConnectionInfo,
    ) -> redis::RedisResult<Connection> {
        let Some((host, port)) = self.primary_for(key).await? else {
            return Ok(self.clone());
        };
        let info = seed
            .clone()
            .set_addr(redis::ConnectionAddr::Tcp(host, port));
        let client = redis::Client::open(info)?;
        Ok(Connection::Direct(
            client.get_multiplexed_async_connection().await?,
        ))
    }

    /// The `host:port` of the primary serving `key`'s slot (cluster only).
    pub(crate) async fn primary_for(&self, key: &str) -> redis::RedisResult<Option<(String, u16)>> {
        let Connection::Cluster(c) = self else {
            return Ok(None);
        };
        let mut c = c.clone();
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut c)
            .await?;
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut c)
            .await?;
        let Value::Array(ranges) = slots else {
            return Ok(None);
        };
        for range in ranges {
            let Value::Array(parts) = range else { continue };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                continue;
            };
            if (*start..=*end).contains(&slot)
                && let (Some(host), Some(Value::Int(port))) = (primary.first(), primary.get(1))
            {
                let host = match host {
                    Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    Value::SimpleString(s) => s.clone(),
                    _ => continue,
                };
                return Ok(Some((host, *port as u16)));
            }
        }
        Ok(None)
    }
}
