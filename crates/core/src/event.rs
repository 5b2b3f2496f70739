//! Events as producers publish them, and the envelope receivers get.
//!
//! A stream entry is a flat list of fields. [`Event::from_fields`] validates it
//! against the producer contract (docs/DESIGN.md) and builds the envelope once: the
//! exact JSON bytes every endpoint receives on every attempt. A bad entry gives
//! a [`Rejection`] whose `code` and `message` go to the dead-letter stream.

use serde_json::value::RawValue;

use crate::{id, time};

/// Envelope members hookd writes itself; an extra field may not reuse them.
const RESERVED: [&str; 5] = ["id", "type", "workspaceId", "createdAt", "data"];
/// Stream fields with a meaning of their own (everything else is passed through).
/// `traceparent` and `tracestate` are trace context, never payload.
const KNOWN: [&str; 8] = [
    "id",
    "type",
    "workspace",
    "data",
    "occurred_at",
    "traceparent",
    "tracestate",
    "ordering_key",
];
/// Longest `ordering_key`, in bytes.
pub const MAX_ORDERING_KEY: usize = 256;
/// An extra field named `json:<name>` holds JSON, and enters the envelope as
/// member `<name>` with that JSON value (validated like `data`); any other
/// extra field enters it as a string.
pub const JSON_PREFIX: &str = "json:";

/// Limits applied to every entry.
#[derive(Debug, Clone, Copy)]
pub struct EventLimits {
    /// Largest envelope accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Most fields an entry may have (the known ones and extras together).
    pub max_fields: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 256 * 1024,
            max_fields: 128,
        }
    }
}

impl EventLimits {
    /// Most bytes of field names and values an entry may carry: anything
    /// more cannot make an envelope within `max_payload_bytes` (whose own
    /// members add about as much as the field names it drops).
    pub fn max_entry_bytes(&self) -> usize {
        self.max_payload_bytes + 1024
    }

    /// Whether an entry has more fields or bytes than these limits allow
    /// (what the dead-letter stream keeps only cut short).
    pub fn oversized<K: AsRef<str>, V: AsRef<[u8]>>(&self, fields: &[(K, V)]) -> bool {
        fields.len() > self.max_fields || entry_bytes(fields) > self.max_entry_bytes()
    }

    /// The checks that cost nothing per byte of the entry, made before any
    /// of it is parsed: field count, total size, repeated names (in one pass).
    pub fn screen<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        fields: &[(K, V)],
    ) -> Result<(), Rejection> {
        if fields.len() > self.max_fields {
            return Err(reject(
                "too_many_fields",
                format!(
                    "{} fields, over the limit of {} ([ingest] max_fields)",
                    fields.len(),
                    self.max_fields
                ),
            ));
        }
        let bytes = entry_bytes(fields);
        if bytes > self.max_entry_bytes() {
            return Err(reject(
                "too_large",
                format!(
                    "the entry is {bytes} bytes, over the limit of {} ([ingest] max_payload_bytes)",
                    self.max_payload_bytes
                ),
            ));
        }
        let mut names = std::collections::HashSet::with_capacity(fields.len());
        for (k, _) in fields {
            // `labels` and `json:labels` are the same envelope member.
            let name = k.as_ref();
            if !names.insert(name.strip_prefix(JSON_PREFIX).unwrap_or(name)) {
                return Err(reject(
                    "duplicate_field",
                    format!("field `{}` appears more than once", k.as_ref()),
                ));
            }
        }
        Ok(())
    }
}

/// Bytes of field names and values in an entry.
fn entry_bytes<K: AsRef<str>, V: AsRef<[u8]>>(fields: &[(K, V)]) -> usize {
    fields
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
        .sum()
}

/// A validated event with its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The producer's id, or one hookd assigned (`evt_...`).
    pub id: String,
    /// `card.created`, ...: what endpoints subscribe to.
    pub event_type: String,
    /// The tenant it belongs to.
    pub workspace: String,
    /// When it happened (unix ms): `occurred_at`, else ingest time.
    pub created_at_ms: i64,
    /// The body of every delivery of this event.
    pub envelope: Vec<u8>,
    /// The producer's trace context, when it sent a valid one.
    pub trace: Option<crate::trace::TraceParent>,
    /// `ordering_key`: events of a workspace with the same key reach an
    /// endpoint with `ordering: key` in publish order.
    pub ordering_key: Option<String>,
}

/// Why an entry was refused. `code` is stable; `message` says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// Stable, for programs: `invalid_json`, `too_large`, ...
    pub code: &'static str,
    /// What to fix, for people.
    pub message: String,
}

fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// Is `s` a valid event type: `[a-z0-9_.-]{1,128}`?
pub fn is_valid_event_type(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-')
        })
}

/// Is `s` a valid event id: 1..128 visible ASCII characters (it travels in a header)?
pub fn is_valid_event_id(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_graphic())
}

/// Is `s` a valid workspace id: 1..128 characters, no control characters?
pub fn is_valid_workspace(s: &str) -> bool {
    (1..=128).contains(&s.chars().count()) && !s.chars().any(char::is_control)
}

fn text<'a>(name: &str, value: &'a [u8]) -> Result<&'a str, Rejection> {
    std::str::from_utf8(value)
        .map_err(|_| reject("invalid_utf8", format!("field `{name}` is not valid UTF-8")))
}

/// What routing an entry needs before it is read whole: its workspace and
/// event type, checked as [`Event::from_entry`] checks them. An entry
/// routed on these alone (its deliveries all wait in lanes) is read whole,
/// and refused if it must be, when its deliveries are taken.
pub fn route_key<K: AsRef<str>, V: AsRef<[u8]>>(
    fields: &[(K, V)],
) -> Result<(&str, &str), Rejection> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
            .ok_or_else(|| {
                reject(
                    "missing_field",
                    format!("required field `{name}` is missing"),
                )
            })
    };
    let event_type = text("type", get("type")?)?;
    if !is_valid_event_type(event_type) {
        return Err(reject(
            "invalid_type",
            format!("`type` {event_type:?} must match [a-z0-9_.-]{{1,128}}"),
        ));
    }
    let workspace = text("workspace", get("workspace")?)?;
    if !is_valid_workspace(workspace) {
        return Err(reject(
            "invalid_workspace",
            "`workspace` must be 1..128 characters without control characters",
        ));
    }
    Ok((workspace, event_type))
}

impl Event {
    /// Validates a stream entry's fields and builds its envelope.
    /// `now_ms` is the ingest time, used when `occurred_at` is absent.
    pub fn from_fields<K: AsRef<str>, V: AsRef<[u8]>>(
        fields: &[(K, V)],
        limits: EventLimits,
        now_ms: i64,
    ) -> Result<Event, Rejection> {
        Self::build(fields, limits, now_ms, || id::new_id("evt_"))
    }

    /// Validates the fields of stream entry `entry_id` and builds its
    /// envelope, the same bytes every time the entry is read: an event
    /// without `id` gets `evt_<entry id>`, and without `occurred_at` the
    /// entry's time.
    pub fn from_entry<K: AsRef<str>, V: AsRef<[u8]>>(
        entry_id: &str,
        fields: &[(K, V)],
        limits: EventLimits,
    ) -> Result<Event, Rejection> {
        let published = crate::delivery::entry_time_ms(entry_id).unwrap_or_else(time::now_ms);
        Self::build(fields, limits, published, || format!("evt_{entry_id}"))
    }

    fn build<K: AsRef<str>, V: AsRef<[u8]>>(
        fields: &[(K, V)],
        limits: EventLimits,
        now_ms: i64,
        fallback_id: impl FnOnce() -> String,
    ) -> Result<Event, Rejection> {
        limits.screen(fields)?;
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k.as_ref() == name)
                .map(|(_, v)| v.as_ref())
        };
        let required = |name: &'static str| {
            get(name).ok_or_else(|| {
                reject(
                    "missing_field",
                    format!("required field `{name}` is missing"),
                )
            })
        };

        let event_type = text("type", required("type")?)?;
        if !is_valid_event_type(event_type) {
            return Err(reject(
                "invalid_type",
                format!("`type` {event_type:?} must match [a-z0-9_.-]{{1,128}}"),
            ));
        }
        let workspace = text("workspace", required("workspace")?)?;
        if !is_valid_workspace(workspace) {
            return Err(reject(
                "invalid_workspace",
                "`workspace` must be 1..128 characters without control characters",
            ));
        }
        let data = required("data")?;
        if data.len() > limits.max_payload_bytes {
            return Err(reject(
                "too_large",
                format!(
                    "`data` is {} bytes, over the limit of {} ([ingest] max_payload_bytes)",
                    data.len(),
                    limits.max_payload_bytes
                ),
            ));
        }
        let data = text("data", data)?;
        let data: &RawValue = serde_json::from_str(data)
            .map_err(|e| reject("invalid_json", format!("`data` is not a JSON value: {e}")))?;
        let id = match get("id") {
            Some(v) => {
                let v = text("id", v)?;
                if !is_valid_event_id(v) {
                    return Err(reject(
                        "invalid_id",
                        "`id` must be 1..128 visible ASCII characters",
                    ));
                }
                v.to_string()
            }
            None => fallback_id(),
        };
        let created_at_ms = match get("occurred_at") {
            None => now_ms,
            Some(v) => parse_occurred_at(text("occurred_at", v)?).ok_or_else(|| {
                reject(
                    "invalid_occurred_at",
                    "`occurred_at` must be RFC 3339 or unix seconds",
                )
            })?,
        };

        let mut envelope = Vec::with_capacity(data.get().len() + 160);
        envelope.extend_from_slice(b"{\"id\":");
        push_json_string(&mut envelope, &id);
        envelope.extend_from_slice(b",\"type\":");
        push_json_string(&mut envelope, event_type);
        envelope.extend_from_slice(b",\"workspaceId\":");
        push_json_string(&mut envelope, workspace);
        envelope.extend_from_slice(b",\"createdAt\":\"");
        envelope.extend_from_slice(time::format_rfc3339_ms(created_at_ms).as_bytes());
        envelope.extend_from_slice(b"\",\"data\":");
        envelope.extend_from_slice(data.get().as_bytes());
        for (name, value) in fields {
            let name = name.as_ref();
            if KNOWN.contains(&name) {
                continue;
            }
            let (member, json) = match name.strip_prefix(JSON_PREFIX) {
                Some(member) => (member, true),
                None => (name, false),
            };
            if RESERVED.contains(&member) || KNOWN.contains(&member) || member.is_empty() {
                return Err(reject(
                    "reserved_field",
                    format!("extra field `{name}` would overwrite an envelope member"),
                ));
            }
            envelope.push(b',');
            push_json_string(&mut envelope, member);
            envelope.push(b':');
            let value = text(name, value.as_ref())?;
            if json {
                let raw: &RawValue = serde_json::from_str(value).map_err(|e| {
                    reject("invalid_json", format!("`{name}` is not a JSON value: {e}"))
                })?;
                envelope.extend_from_slice(raw.get().as_bytes());
            } else {
                push_json_string(&mut envelope, value);
            }
        }
        envelope.push(b'}');
        if envelope.len() > limits.max_payload_bytes {
            return Err(reject(
                "too_large",
                format!(
                    "envelope is {} bytes, over the limit of {} ([ingest] max_payload_bytes)",
                    envelope.len(),
                    limits.max_payload_bytes
                ),
            ));
        }
        let trace = get("traceparent")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|tp| {
                let state = get("tracestate").and_then(|v| std::str::from_utf8(v).ok());
                crate::trace::TraceParent::parse(tp, state)
            });
        let ordering_key = match get("ordering_key") {
            None => None,
            Some(v) => {
                let v = text("ordering_key", v)?;
                if v.is_empty() || v.len() > MAX_ORDERING_KEY {
                    return Err(reject(
                        "invalid_ordering_key",
                        format!("`ordering_key` must be 1..{MAX_ORDERING_KEY} bytes"),
                    ));
                }
                Some(v.to_string())
            }
        };
        Ok(Event {
            id,
            event_type: event_type.to_string(),
            workspace: workspace.to_string(),
            created_at_ms,
            envelope,
            trace,
            ordering_key,
        })
    }
}

/// The span RFC 3339 can write: years 0000 to 9999 (ms since the epoch).
const EARLIEST_MS: i64 = -62_167_219_200_000;
const LATEST_MS: i64 = 253_402_300_799_999;

fn parse_occurred_at(s: &str) -> Option<i64> {
    let ms = match s.parse::<i64>() {
        Ok(secs) => secs.checked_mul(1000)?,
        Err(_) => time::parse_rfc3339_ms(s)?,
    };
    (EARLIEST_MS..=LATEST_MS).contains(&ms).then_some(ms)
}

fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A fingerprint of an event's fields apart from its `id` (SHA-256, hex),
/// in the order given: publishing the same event again under the same id
/// gives the same fingerprint (whatever trace context it carries), a
/// different body another.
pub fn fingerprint(fields: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    // The id names the event; trace context is not part of it either.
    let skip = |k: &str| matches!(k, "id" | "traceparent" | "tracestate");
    for (k, v) in fields.iter().filter(|(k, _)| !skip(k)) {
        // Length-prefixed, so no two field lists run together the same way.
        hash.update((k.len() as u64).to_le_bytes());
        hash.update(k.as_bytes());
        hash.update((v.len() as u64).to_le_bytes());
        hash.update(v.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// The entry fields with a meaning of their own; a publisher's extra fields
/// may not use these names.
pub const RESERVED_FIELDS: [&str; 8] = [
    "type",
    "workspace",
    "data",
    "id",
    "occurred_at",
    "traceparent",
    "tracestate",
    "ordering_key",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_prefixed_extras_enter_the_envelope_as_json() {
        let ok = |fields: &[(&str, &str)]| Event::from_fields(fields, EventLimits::default(), 0);
        let base = [("type", "card.moved"), ("workspace", "ws"), ("data", "{}")];
        let mut fields = base.to_vec();
        fields.extend([
            ("json:labels", r#"["a", "b"]"#),
            ("boardId", "b_1"),
            ("json:n", "3"),
        ]);
        let e = ok(&fields).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&e.envelope).unwrap();
        assert_eq!(v["labels"], serde_json::json!(["a", "b"]));
        assert_eq!(v["n"], 3);
        assert_eq!(v["boardId"], "b_1");
        let code = |extra: (&'static str, &'static str)| {
            let mut f = base.to_vec();
            f.push(extra);
            ok(&f).unwrap_err().code
        };
        assert_eq!(code(("json:labels", "[oops")), "invalid_json");
        assert_eq!(code(("json:workspaceId", "1")), "reserved_field");
        assert_eq!(code(("json:data", "1")), "duplicate_field");
        assert_eq!(code(("json:", "1")), "reserved_field");
        let mut twice = base.to_vec();
        twice.extend([("labels", "x"), ("json:labels", "[]")]);
        assert_eq!(ok(&twice).unwrap_err().code, "duplicate_field");
    }

    fn parse(fields: &[(&str, &str)]) -> Result<Event, Rejection> {
        Event::from_fields(fields, EventLimits::default(), 1_636_936_200_000)
    }

    #[test]
    fn builds_the_envelope_with_extra_fields() {
        let e = parse(&[
            ("type", "card.created"),
            ("workspace", "ws_1"),
            ("data", r#"{"title":"x"}"#),
            ("id", "evt_1"),
            ("boardId", "b\"1"),
        ])
        .unwrap();
        assert_eq!(
            String::from_utf8(e.envelope).unwrap(),
            r#"{"id":"evt_1","type":"card.created","workspaceId":"ws_1","createdAt":"2021-11-15T00:30:00.000Z","data":{"title":"x"},"boardId":"b\"1"}"#
        );
    }

    #[test]
    fn trace_context_is_read_and_kept_out_of_the_envelope() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let fields = [
            ("type", "card.created"),
            ("workspace", "ws_1"),
            ("data", "{}"),
            ("id", "evt_1"),
            ("traceparent", tp),
            ("tracestate", "k=v"),
        ];
        let e = parse(&fields).unwrap();
        assert_eq!(e.trace.as_ref().map(|t| t.header()).as_deref(), Some(tp));
        assert_eq!(e.trace.unwrap().tracestate.as_deref(), Some("k=v"));
        assert_eq!(e.envelope, parse(&fields[..4]).unwrap().envelope);
        // An invalid one is ignored: the event is delivered, in a trace of its own.
        let e = parse(&[
            ("type", "card.created"),
            ("workspace", "ws_1"),
            ("data", "{}"),
            ("traceparent", "garbage"),
        ])
        .unwrap();
        assert!(e.trace.is_none());
        let owned = |f: &[(&str, &str)]| -> Vec<(String, String)> {
            f.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            fingerprint(&owned(&fields)),
            fingerprint(&owned(&fields[..4])),
            "a repeat with other trace context is the same event"
        );
    }

    #[test]
    fn assigns_ids_and_reads_occurred_at() {
        let e = parse(&[
            ("type", "a"),
            ("workspace", "w"),
            ("data", "1"),
            ("occurred_at", "1000"),
        ])
        .unwrap();
        assert!(e.id.starts_with("evt_"));
        assert_eq!(e.created_at_ms, 1_000_000);
        let e = parse(&[
            ("type", "a"),
            ("workspace", "w"),
            ("data", "1"),
            ("occurred_at", "2021-11-15T01:30:00+01:00"),
        ])
        .unwrap();
        assert_eq!(e.created_at_ms, 1_636_936_200_000);
    }

    #[test]
    fn rejects_bad_entries_with_a_reason() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("workspace", "w"), ("data", "1")], "missing_field"),
            (&[("type", "a"), ("data", "1")], "missing_field"),
            (&[("type", "a"), ("workspace", "w")], "missing_field"),
            (
                &[("type", "Card"), ("workspace", "w"), ("data", "1")],
                "invalid_type",
            ),
            (
                &[("type", "a"), ("workspace", ""), ("data", "1")],
                "invalid_workspace",
            ),
            (
                &[("type", "a"), ("workspace", "w"), ("data", "{nope")],
                "invalid_json",
            ),
            (
                &[
                    ("type", "a"),
                    ("workspace", "w"),
                    ("data", "1"),
                    ("id", "has space"),
                ],
                "invalid_id",
            ),
            (
                &[
                    ("type", "a"),
                    ("workspace", "w"),
                    ("data", "1"),
                    ("occurred_at", "soon"),
                ],
                "invalid_occurred_at",
            ),
            (
                &[
                    ("type", "a"),
                    ("workspace", "w"),
                    ("data", "1"),
                    ("occurred_at", "-99999999999"),
                ],
                "invalid_occurred_at",
            ),
            (
                &[
                    ("type", "a"),
                    ("workspace", "w"),
                    ("data", "1"),
                    ("occurred_at", "9000000000000000"),
                ],
                "invalid_occurred_at",
            ),
            (
                &[
                    ("type", "a"),
                    ("workspace", "w"),
                    ("data", "1"),
                    ("createdAt", "x"),
                ],
                "reserved_field",
            ),
        ];
        for (fields, code) in cases {
            assert_eq!(parse(fields).unwrap_err().code, *code, "{fields:?}");
        }
        let big = format!("\"{}\"", "x".repeat(300 * 1024));
        assert_eq!(
            parse(&[("type", "a"), ("workspace", "w"), ("data", &big)])
                .unwrap_err()
                .code,
            "too_large"
        );
        let bad_utf8: [(&str, &[u8]); 3] =
            [("type", b"a"), ("workspace", b"w"), ("data", b"\"\xff\"")];
        assert_eq!(
            Event::from_fields(&bad_utf8, EventLimits::default(), 0)
                .unwrap_err()
                .code,
            "invalid_utf8"
        );
    }
}
