//! The responses every `/api/v1` operation can give, added to the OpenAPI
//! document once. (The descriptions of hookd-core's values are in
//! `hookd_control::schema`.)

use utoipa::openapi::OpenApi;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, Ref};

/// The responses about a request's body: not JSON, too large, not
/// `application/json`.
const BODY_ERRORS: [&str; 3] = ["400", "413", "415"];

/// Adds the error responses any `/api/v1` operation can give (bad JSON, body
/// too large, not JSON: only where there is a body; invalid input, rate
/// limited, Redis unavailable or timeout) where the operation does not
/// describe them itself.
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
        for (op, has_body) in [
            (&mut item.get, false),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.patch, true),
            (&mut item.delete, false),
        ] {
            let Some(op) = op else { continue };
            for (status, description) in common {
                // Errors about a request body only where there is one.
                if !has_body && BODY_ERRORS.contains(&status) {
                    continue;
                }
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
