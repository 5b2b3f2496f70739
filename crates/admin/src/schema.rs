//! OpenAPI-only descriptions of values whose Rust types live in other crates
//! (enums of hookd-core), and the responses every `/api/v1` operation can give.

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, Ref};

/// An event type name: `[a-z0-9_.-]{1,128}`.
pub struct EventTypeName;

impl utoipa::PartialSchema for EventTypeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[a-z0-9_.-]{1,128}$"))
            .description(Some("An event type, e.g. card.created"))
            .into()
    }
}

impl ToSchema for EventTypeName {}

/// A JSON Schema document: an object or a boolean.
pub struct JsonSchemaDoc;

impl utoipa::PartialSchema for JsonSchemaDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Object))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .description(Some("A JSON Schema of the event's data"))
            .into()
    }
}

impl ToSchema for JsonSchemaDoc {}

/// Where a delivery stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatusName {
    Pending,
    Held,
    Retrying,
    Succeeded,
    Failed,
}

/// How deliveries are signed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeName {
    Sha256,
    StandardWebhooks,
}

/// Signatures during a rotation's grace window: one per valid secret, or
/// only the newest.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RotationSignaturesName {
    All,
    Newest,
}

/// What a key may do; each includes the ones before it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeName {
    Read,
    Write,
    Admin,
}

/// The `<env>` of a key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyEnvName {
    Live,
    Stg,
    Dev,
    Test,
}

/// Why an attempt failed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKindName {
    Timeout,
    Connect,
    Dns,
    Tls,
    Status,
    Blocked,
    /// The receiver's answer was not readable HTTP (a head too large, a bad status line).
    Response,
    /// hookd failed the attempt itself (its task ended before an answer).
    Internal,
}

/// What started an attempt.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerName {
    Scheduled,
    Manual,
}

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
