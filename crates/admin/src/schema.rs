//! The responses every `/api/v1` operation can give, added to the OpenAPI
//! document once. (The descriptions of hookd-core's values are in
//! `hookd_control::schema`.)

use utoipa::openapi::OpenApi;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, Ref};

/// Adds the error responses any `/api/v1` operation can give (bad JSON, body
/// too large, not JSON, invalid input, rate limited, Redis unavailable or
/// timeout) where the operation does not describe them itself.
pub fn add_common_responses(doc: &mut OpenApi) {
    let common = [
        ("400", "The body is not valid JSON (`invalid_json`)."),
        (
            "401",
            "Missing, malformed, unknown or revoked key (`unauthorized`).",
        ),
        (
            "413",
            "The body is larger than [admin] max_body_bytes (`payload_too_large`).",
        ),
        (
            "415",
            "The body is not application/json (`unsupported_media_type`).",
        ),
        (
            "422",
            "Invalid input (`validation_failed`), one issue per field.",
        ),
        (
            "429",
            "Past the key's rate limit (`rate_limited`); see Retry-After.",
        ),
        (
            "503",
            "Redis is not answering (`store_unavailable`) or the request took too long (`timeout`).",
        ),
    ];
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/api/v1") {
            continue;
        }
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            for (status, description) in common {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hookd_core::{
        AttemptTrigger, DeliveryStatus, ErrorKind, RotationSignatures, Scope, SignatureScheme,
        api_key,
    };
    use serde::Serialize;

    /// The `enum` values the served document gives schema `name`.
    fn documented(name: &str) -> Vec<String> {
        let doc = serde_json::to_value(crate::openapi()).expect("the document serialises");
        let values = doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is documented as an enum"));
        values
            .iter()
            .map(|v| v.as_str().expect("a string value").to_string())
            .collect()
    }

    /// How the API writes each of `all` (the views serialise core's enums).
    fn written<T: Serialize>(all: &[T]) -> Vec<String> {
        all.iter()
            .map(|v| match serde_json::to_value(v) {
                Ok(serde_json::Value::String(s)) => s,
                other => panic!("not a string: {other:?}"),
            })
            .collect()
    }

    /// The OpenAPI mirror enums (hookd_control::schema) name exactly the
    /// values core's enums are written as: a variant added to one and not
    /// the other fails here, not in a client generated from the document.
    #[test]
    fn the_documented_enums_are_core_s_enums() {
        assert_eq!(
            documented("DeliveryStatusName"),
            written(&DeliveryStatus::ALL)
        );
        assert_eq!(documented("SchemeName"), written(&SignatureScheme::ALL));
        assert_eq!(
            documented("RotationSignaturesName"),
            written(&RotationSignatures::ALL)
        );
        assert_eq!(documented("ScopeName"), written(&Scope::ALL));
        assert_eq!(documented("KeyEnvName"), api_key::KEY_ENVS.to_vec());
        assert_eq!(documented("ErrorKindName"), written(&ErrorKind::ALL));
        assert_eq!(documented("TriggerName"), written(&AttemptTrigger::ALL));
    }
}
