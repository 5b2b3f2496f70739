//! OpenAPI descriptions of values whose Rust types live in hookd-core (its
//! enums, event type names, JSON Schema documents), for the views and the
//! admin API's requests. A test in the admin crate holds each mirror enum to
//! the core enum it describes.

use serde::Serialize;
use utoipa::ToSchema;

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
