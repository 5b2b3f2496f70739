//! OpenAPI descriptions of values whose Rust types live in hookd-core (its
//! enums, event type names, JSON Schema documents), for the views and the
//! admin API's requests. The enums are read off core's own (`ALL`), not
//! written again.

use hookd_core::endpoint::{OnGiveUp, Ordering};
use hookd_core::{
    AttemptTrigger, DeliveryStatus, ErrorKind, RotationSignatures, Scope, SignatureScheme, api_key,
};
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
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::Array(vec![Type::Object, Type::Boolean]))
            .description(Some("A JSON Schema of the event's data"))
            .into()
    }
}

impl ToSchema for JsonSchemaDoc {}

/// The strings the API writes `all` as (how the views serialise them).
fn written<T: Serialize>(all: &[T]) -> Vec<String> {
    all.iter()
        .filter_map(|v| match serde_json::to_value(v) {
            Ok(serde_json::Value::String(s)) => Some(s),
            _ => None,
        })
        .collect()
}

/// Declares an OpenAPI string enum whose values are read off a core enum's
/// `ALL` (as the API writes them), so the document cannot drift from the
/// type: a variant added to core is documented with it.
macro_rules! derived_enum {
    ($(#[doc = $doc:literal])+ $name:ident = $values:expr) => {
        $(#[doc = $doc])+
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some($values))
                    .description(Some(concat!($($doc),+).trim()))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

derived_enum! {
    /// Where a delivery stands.
    DeliveryStatusName = written(&DeliveryStatus::ALL)
}

derived_enum! {
    /// How deliveries are signed.
    SchemeName = written(&SignatureScheme::ALL)
}

derived_enum! {
    /// Signatures during a rotation's grace window: one per valid secret, or
    /// only the newest.
    RotationSignaturesName = written(&RotationSignatures::ALL)
}

derived_enum! {
    /// `key`: events of one `ordering_key` arrive one at a time, in publish
    /// order; `none`: in parallel.
    OrderingName = written(&Ordering::ALL)
}

derived_enum! {
    /// What a given-up head does to its key: `continue` (the next goes) or
    /// `hold` (the key waits for an operator's redeliver or skip).
    OnGiveUpName = written(&OnGiveUp::ALL)
}

derived_enum! {
    /// What a key may do; each includes the ones before it.
    ScopeName = written(&Scope::ALL)
}

derived_enum! {
    /// The `<env>` of a key.
    KeyEnvName = api_key::KEY_ENVS
}

derived_enum! {
    /// Why an attempt failed.
    ErrorKindName = written(&ErrorKind::ALL)
}

derived_enum! {
    /// What started an attempt.
    TriggerName = written(&AttemptTrigger::ALL)
}
