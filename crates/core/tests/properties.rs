//! Property tests (fuzzing with proptest) of the stream-entry parser and the
//! envelope builder: any input gives an event or a stable rejection code,
//! never a panic, and an accepted event's envelope is valid JSON carrying the
//! producer's data unchanged. `make fuzz` runs these with many more cases.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use hookd_core::{Event, EventLimits};
use proptest::prelude::*;

const CODES: &[&str] = &[
    "missing_field",
    "invalid_type",
    "invalid_workspace",
    "invalid_json",
    "invalid_utf8",
    "invalid_id",
    "invalid_occurred_at",
    "too_large",
    "reserved_field",
    "duplicate_field",
];

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("type".to_string()),
        Just("workspace".to_string()),
        Just("data".to_string()),
        Just("id".to_string()),
        Just("occurred_at".to_string()),
        Just("createdAt".to_string()),
        "[a-zA-Z]{1,8}",
        ".{0,8}",
    ]
}

fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        "[a-z0-9_.-]{1,12}".prop_map(String::into_bytes),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        "[0-9]{1,12}".prop_map(String::into_bytes),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z\"\\\\]{0,5}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Arbitrary fields and bytes: an event or a known rejection, never a panic.
    #[test]
    fn any_entry_is_accepted_or_refused_with_a_code(
        fields in prop::collection::vec((field_name(), field_value()), 0..8),
        max in 16usize..512,
    ) {
        let limits = EventLimits { max_payload_bytes: max, ..EventLimits::default() };
        match Event::from_fields(&fields, limits, 1_700_000_000_000) {
            Ok(event) => {
                let v: serde_json::Value = serde_json::from_slice(&event.envelope).unwrap();
                prop_assert!(v.is_object());
                prop_assert!(event.envelope.len() <= max);
            }
            Err(r) => prop_assert!(CODES.contains(&r.code), "unknown code {}", r.code),
        }
    }

    /// A valid entry's envelope is JSON whose members are exactly what was sent.
    #[test]
    fn envelopes_carry_the_data_and_fields_unchanged(
        data in json_value(),
        event_type in "[a-z0-9_.-]{1,20}",
        workspace in "[^\\p{Cc}]{1,20}",
        id in "[!-~]{1,30}",
        extra in prop::collection::btree_map("[a-zA-Z][a-zA-Z0-9]{0,8}", ".{0,16}", 0..4),
    ) {
        let mut fields = vec![
            ("type".to_string(), event_type.clone()),
            ("workspace".to_string(), workspace.clone()),
            ("data".to_string(), data.to_string()),
            ("id".to_string(), id.clone()),
        ];
        let reserved = ["type", "workspace", "data", "id", "occurred_at", "createdAt", "workspaceId"];
        let extra: Vec<(String, String)> = extra
            .into_iter()
            .filter(|(k, _)| !reserved.contains(&k.as_str()))
            .collect();
        fields.extend(extra.iter().cloned());
        let limits = EventLimits { max_payload_bytes: 1 << 20, ..EventLimits::default() };
        let event = Event::from_fields(&fields, limits, 0).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&event.envelope).unwrap();
        prop_assert_eq!(&v["data"], &data);
        prop_assert_eq!(v["type"].as_str(), Some(event_type.as_str()));
        prop_assert_eq!(v["workspaceId"].as_str(), Some(workspace.as_str()));
        prop_assert_eq!(v["id"].as_str(), Some(id.as_str()));
        for (k, val) in &extra {
            prop_assert_eq!(v[k].as_str(), Some(val.as_str()));
        }
    }
}
