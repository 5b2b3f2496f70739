//! The audit log: every change made to a workspace, by whom. One entry per
//! change in the workspace's stream (`P:ws:<ws>:audit`), trimmed to the
//! history retention as entries are added. An entry names the actor (an API
//! key's id and name, `cli`, or `hookd` for automatic pauses), the action
//! (`endpoint.created`, `endpoint.paused`, `key.revoked`, ...), its target,
//! the request id, and a short detail (a pause's reason, a rotation's
//! grace). Never a secret or a header value: callers pass only these.

use hookd_core::delivery::entry_time_ms;
use hookd_core::time;

use crate::{Result, Store};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// An API key's id, `cli`, or `hookd`.
    pub id: String,
    /// The key's name, when it has one.
    pub name: Option<String>,
    /// The admin request that made the change.
    pub request_id: Option<String>,
}

impl Actor {
    /// The `hookd` command line (whoever can reach Redis).
    pub fn cli() -> Self {
        Self {
            id: "cli".into(),
            name: None,
            request_id: None,
        }
    }

    /// hookd itself (the circuit breaker, a receiver's 410).
    pub fn hookd() -> Self {
        Self {
            id: "hookd".into(),
            name: None,
            request_id: None,
        }
    }
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The stream entry id (the page cursor).
    pub id: String,
    /// When the change was made (Unix ms).
    pub at_ms: i64,
    /// Who made it.
    pub actor: Actor,
    /// What was done: `endpoint.created`, `key.revoked`, ...
    pub action: String,
    /// What was changed: an endpoint, key, delivery or job id, or an event type.
    pub target: String,
    /// More about it: a pause's reason, the settings an update changed, ...
    pub detail: Option<String>,
}

impl Store {
    /// Appends an entry to `workspace`'s audit log. A failure to write it is
    /// logged, not returned: the change it records was made.
    pub async fn audit(
        &self,
        workspace: &str,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: Option<&str>,
    ) {
        if let Err(e) = self
            .append_audit(workspace, actor, action, target, detail)
            .await
        {
            tracing::error!(error = %e, workspace, action, target, "could not write the audit log");
        }
    }

    async fn append_audit(
        &self,
        workspace: &str,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: Option<&str>,
    ) -> Result<()> {
        let key = self.keys.partition_of(workspace).audit(workspace);
        let horizon = time::now_ms() - self.settings.history_retention.as_millis() as i64;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&key)
            .arg("MINID")
            .arg("~")
            .arg(horizon.max(0))
            .arg("*")
            .arg("actor")
            .arg(&actor.id)
            .arg("action")
            .arg(action)
            .arg("target")
            .arg(target);
        if let Some(name) = &actor.name {
            cmd.arg("actor_name").arg(name);
        }
        if let Some(id) = &actor.request_id {
            cmd.arg("request_id").arg(id);
        }
        if let Some(detail) = detail {
            cmd.arg("detail").arg(detail);
        }
        let _: String = cmd.query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// A page of `workspace`'s audit log, newest first, from before the
    /// entry `before` (exclusive); and where the next page starts.
    pub async fn audit_page(
        &self,
        workspace: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>)> {
        let key = self.keys.partition_of(workspace).audit(workspace);
        let end = before.map_or("+".to_string(), |b| format!("({b}"));
        type Entries = Vec<(String, Vec<(String, String)>)>;
        let entries: Entries = redis::cmd("XREVRANGE")
            .arg(&key)
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit + 1)
            .query_async(&mut self.conn.clone())
            .await?;
        let mut out: Vec<AuditEntry> = entries
            .into_iter()
            .map(|(id, fields)| {
                let get = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                AuditEntry {
                    at_ms: entry_time_ms(&id).unwrap_or(0),
                    actor: Actor {
                        id: get("actor").unwrap_or_default(),
                        name: get("actor_name"),
                        request_id: get("request_id"),
                    },
                    action: get("action").unwrap_or_default(),
                    target: get("target").unwrap_or_default(),
                    detail: get("detail"),
                    id,
                }
            })
            .collect();
        let next = if out.len() > limit {
            out.truncate(limit);
            out.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok((out, next))
    }
}
