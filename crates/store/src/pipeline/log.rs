//! The history log: one member per delivery in its endpoint's log (a sorted
//! set scored by creation time), written when the delivery settles after its
//! first attempt (or without one: held, waiting for a slot). A delivery whose
//! first attempt succeeded has nothing else in Redis; one that outlived it
//! also has durable state (`P:dlv:<id>`), which is newer than its log member
//! wherever the two differ.
//!
//! A member is the stream entry id, `_`, then a compact JSON array:
//! `[event id, event type, status, started ms, duration ms, status code,
//! error kind, error, response excerpt, response headers]`, the attempt's fields left off when
//! no attempt was made (and trailing empty ones omitted). Starting with
//! `<entry id>_`, members of the same creation time sort as their delivery
//! ids (`dlv_<entry id>_<endpoint>`) do, which history pages rely on.

use hookd_core::{Attempt, AttemptTrigger, DeliveryStatus, ErrorKind};
use serde_json::Value;

/// One delivery as its log member records it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// The delivery's stream entry.
    pub entry_id: String,
    /// Its event's id.
    pub event_id: String,
    /// Its event's type.
    pub event_type: String,
    /// Its status when the member was written.
    pub status: DeliveryStatus,
    /// The first attempt, when one was made before the delivery settled.
    pub attempt: Option<Attempt>,
}

impl LogRecord {
    /// The member's text: `<entry id>_<JSON array>`.
    pub fn encode(&self) -> String {
        let mut v = vec![
            Value::from(self.event_id.as_str()),
            Value::from(self.event_type.as_str()),
            Value::from(self.status.as_str()),
        ];
        if let Some(a) = &self.attempt {
            v.push(Value::from(a.started_at_ms));
            v.push(Value::from(a.duration_ms));
            v.push(a.status_code.map_or(Value::Null, Value::from));
            v.push(
                a.error_kind
                    .and_then(|k| serde_json::to_value(k).ok())
                    .unwrap_or(Value::Null),
            );
            v.push(a.error.as_deref().map_or(Value::Null, Value::from));
            v.push(
                a.response_excerpt
                    .as_deref()
                    .map_or(Value::Null, Value::from),
            );
            if !a.response_headers.is_empty() {
                v.push(Value::Array(
                    a.response_headers
                        .iter()
                        .map(|(k, v)| Value::from(vec![k.as_str(), v.as_str()]))
                        .collect(),
                ));
            }
            while v.last() == Some(&Value::Null) {
                v.pop();
            }
        }
        format!("{}_{}", self.entry_id, Value::Array(v))
    }

    /// The record a member holds, if it is one.
    pub fn decode(member: &str) -> Option<Self> {
        let (entry_id, json) = member.split_once('_')?;
        let Value::Array(v) = serde_json::from_str(json).ok()? else {
            return None;
        };
        let text = |i: usize| v.get(i).and_then(Value::as_str).map(str::to_string);
        let optional = |i: usize| v.get(i).filter(|x| !x.is_null());
        let attempt = match optional(3) {
            None => None,
            Some(started) => {
                let status_code = optional(5).and_then(Value::as_u64).map(|c| c as u16);
                let error_kind: Option<ErrorKind> =
                    optional(6).and_then(|k| serde_json::from_value(k.clone()).ok());
                Some(Attempt {
                    number: 1,
                    started_at_ms: started.as_i64()?,
                    duration_ms: optional(4).and_then(Value::as_u64).unwrap_or(0),
                    succeeded: error_kind.is_none()
                        && status_code.is_some_and(|c| (200..300).contains(&c)),
                    status_code,
                    error_kind,
                    error: text(7),
                    response_excerpt: text(8),
                    response_headers: optional(9)
                        .and_then(Value::as_array)
                        .map(|pairs| {
                            pairs
                                .iter()
                                .filter_map(|p| {
                                    Some((
                                        p.get(0)?.as_str()?.to_string(),
                                        p.get(1)?.as_str()?.to_string(),
                                    ))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    trigger: AttemptTrigger::Scheduled,
                })
            }
        };
        Some(Self {
            entry_id: entry_id.to_string(),
            event_id: text(0)?,
            event_type: text(1)?,
            status: DeliveryStatus::parse(&text(2)?)?,
            attempt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_compactly() {
        let mut r = LogRecord {
            entry_id: "1700000000000-0".into(),
            event_id: "evt_1".into(),
            event_type: "order.created".into(),
            status: DeliveryStatus::Succeeded,
            attempt: Some(Attempt {
                number: 1,
                started_at_ms: 1_700_000_000_123,
                duration_ms: 2,
                succeeded: true,
                status_code: Some(204),
                error_kind: None,
                error: None,
                response_excerpt: None,
                response_headers: Vec::new(),
                trigger: AttemptTrigger::Scheduled,
            }),
        };
        let member = r.encode();
        assert_eq!(
            member,
            r#"1700000000000-0_["evt_1","order.created","succeeded",1700000000123,2,204]"#
        );
        assert_eq!(LogRecord::decode(&member), Some(r.clone()));
        r.status = DeliveryStatus::Retrying;
        r.attempt = r.attempt.map(|a| Attempt {
            succeeded: false,
            status_code: None,
            error_kind: Some(ErrorKind::Connect),
            error: Some("refused".into()),
            ..a
        });
        assert_eq!(LogRecord::decode(&r.encode()), Some(r.clone()));
        r.attempt = r.attempt.map(|a| Attempt {
            status_code: Some(503),
            error_kind: Some(ErrorKind::Status),
            response_headers: vec![("retry-after".into(), "30".into())],
            ..a
        });
        assert_eq!(LogRecord::decode(&r.encode()), Some(r.clone()));
        r.status = DeliveryStatus::Held;
        r.attempt = None;
        assert_eq!(LogRecord::decode(&r.encode()), Some(r));
        assert_eq!(LogRecord::decode("1-0_[1,2]"), None);
        assert_eq!(LogRecord::decode("[1,2]"), None);
    }
}
