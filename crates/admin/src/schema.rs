//! The responses every `/api/v1` operation can give, added to the OpenAPI
//! document once, and the document as served (`/openapi.json`). (The
//! descriptions of hookd-core's values are in `hookd_control::schema`.)

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

/// The document as `/openapi.json` serves it: `doc` with each nullable
/// reference among its schemas (`oneOf: [{$ref}, {type: null}]`, how utoipa
/// writes an `Option` of a named schema) written out in place as that schema with
/// `null` among its types (and its values, for an enum). Both mean the
/// same; the API reference page's validator (Scalar) refuses the first in
/// most objects, and generators read the second as plainly.
pub fn published(doc: &OpenApi) -> serde_json::Value {
    let mut value = serde_json::to_value(doc).unwrap_or_default();
    let schemas = value
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or_default();
    // (In the components only: an optional request body stays a reference,
    // which client generators turn into their model class.)
    if let Some(components) = value.pointer_mut("/components/schemas") {
        inline_nullable_refs(components, &schemas);
    }
    value
}

fn inline_nullable_refs(v: &mut serde_json::Value, schemas: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(members) => {
            if let Some(inlined) = nullable_ref(members, schemas) {
                *v = inlined;
                return;
            }
            for member in members.values_mut() {
                inline_nullable_refs(member, schemas);
            }
        }
        Value::Array(items) => {
            for item in items {
                inline_nullable_refs(item, schemas);
            }
        }
        _ => {}
    }
}

/// `{oneOf: [{$ref: X, description?}, {type: null}]}` as X's schema
/// admitting `null`, with the reference's description.
fn nullable_ref(
    members: &serde_json::Map<String, serde_json::Value>,
    schemas: &serde_json::Value,
) -> Option<serde_json::Value> {
    use serde_json::Value;
    let [first, second] = members.get("oneOf")?.as_array()?.as_slice() else {
        return None;
    };
    if second != &serde_json::json!({"type": "null"}) {
        return None;
    }
    let name = first
        .get("$ref")?
        .as_str()?
        .strip_prefix("#/components/schemas/")?;
    let mut schema = schemas.get(name)?.as_object()?.clone();
    let types = match schema.get("type")? {
        Value::String(t) => vec![Value::from(t.as_str()), Value::from("null")],
        Value::Array(ts) => ts.iter().cloned().chain([Value::from("null")]).collect(),
        _ => return None,
    };
    schema.insert("type".into(), Value::Array(types));
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.push(Value::Null);
    }
    for (k, v) in members.iter().chain(first.as_object()?.iter()) {
        if k == "description" {
            schema.insert(k.clone(), v.clone());
        }
    }
    Some(Value::Object(schema))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// The names of the types deriving `ToSchema` in the crates whose types
    /// the document describes, with the file of each.
    fn schema_names() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut out = Vec::new();
        let mut dirs = vec![root.join("admin/src"), root.join("control/src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let mut deriving = false;
                for line in text.lines().map(str::trim) {
                    if line.starts_with("#[derive(") && line.contains("ToSchema") {
                        deriving = true;
                    }
                    let item = line
                        .strip_prefix("pub struct ")
                        .or_else(|| line.strip_prefix("pub enum "));
                    if let (true, Some(item)) = (deriving, item) {
                        let name: String = item
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        out.push((name, path.display().to_string()));
                        deriving = false;
                    }
                }
            }
        }
        out
    }

    /// utoipa keeps one schema per name: a second type of the same name
    /// silently replaces the first's in the document (a test event's
    /// answer was once described as a delivery's request that way).
    #[test]
    fn no_two_schemas_share_a_name() {
        let names = schema_names();
        assert!(names.len() > 30, "the scan finds the views: {names:?}");
        let mut seen = std::collections::HashMap::new();
        for (name, file) in &names {
            if let Some(other) = seen.insert(name, file) {
                panic!("schema {name} is defined in {other} and in {file}");
            }
        }
    }

    #[test]
    fn a_nullable_reference_is_its_schema_admitting_null() {
        let schemas = json!({
            "Kind": {"type": "string", "enum": ["a", "b"], "description": "A kind."},
            "Box": {"type": "object", "properties": {"n": {"type": "integer"}}}
        });
        let mut doc = json!({"properties": {
            "kind": {"oneOf": [{"$ref": "#/components/schemas/Kind", "description": "Its kind."}, {"type": "null"}]},
            "box": {"oneOf": [{"$ref": "#/components/schemas/Box"}, {"type": "null"}]},
            "plain": {"$ref": "#/components/schemas/Box"}
        }});
        super::inline_nullable_refs(&mut doc, &schemas);
        assert_eq!(
            doc["properties"]["kind"],
            json!({"type": ["string", "null"], "enum": ["a", "b", null], "description": "Its kind."})
        );
        assert_eq!(
            doc["properties"]["box"],
            json!({"type": ["object", "null"], "properties": {"n": {"type": "integer"}}})
        );
        assert_eq!(
            doc["properties"]["plain"],
            json!({"$ref": "#/components/schemas/Box"})
        );
    }
}
