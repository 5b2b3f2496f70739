//! Request extractors that fail in the API's error shape: JSON bodies
//! (400 bad JSON, 413 too large, 415 not JSON, 422 wrong shape, with the
//! path of the offending field) and query strings (422).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// A JSON request body.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| {
                // Media types are case-insensitive; parameters (charset) may follow.
                let essence = v.split(';').next().unwrap_or_default().trim();
                essence.eq_ignore_ascii_case("application/json")
                    || essence.to_ascii_lowercase().ends_with("+json")
            });
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than [admin] max_body_bytes",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
            }
        })?;
        // No body, or `null`, is an empty object: optional bodies may be left out.
        let bytes = if bytes.is_empty() || bytes.trim_ascii() == b"null" {
            Bytes::from_static(b"{}")
        } else {
            bytes
        };
        parse(&bytes).map(JsonBody)
    }
}

/// Parses a JSON object, reporting every member with the wrong shape.
///
/// Syntax errors and trailing data after the object are 400 `invalid_json`.
/// Otherwise each member serde refuses is recorded (its JSON Pointer and
/// why), taken out, and the rest parsed again, so one answer lists every
/// bad member, not only the first.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // (serde_json refuses trailing data after the value: "trailing characters".)
    let mut doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !doc.is_object() {
        return Err(ApiError::invalid("", "the body must be a JSON object"));
    }
    let mut issues: Vec<(String, String)> = Vec::new();
    let mut taken_out: Vec<String> = Vec::new();
    // Each turn takes one member out; a body has few members.
    for _ in 0..64 {
        let err = match serde_path_to_error::deserialize::<_, T>(&doc) {
            Ok(value) if issues.is_empty() => return Ok(value),
            Ok(_) => break,
            Err(e) => e,
        };
        let at = pointer(err.path());
        let message = strip_position(&err.inner().to_string());
        if let Some(name) = named(&message, "missing field `") {
            // Reported after every present member parsed: the last one to find.
            let member = format!("{at}/{}", escape(name));
            if !taken_out.contains(&member) {
                issues.push((member, "is required".to_string()));
            }
            break;
        }
        let member = match named(&message, "unknown field `") {
            Some(name) if !at.ends_with(&format!("/{}", escape(name))) => {
                format!("{at}/{}", escape(name))
            }
            _ => at,
        };
        issues.push((member.clone(), unknown_said_once(message, "member")));
        if !take_out(&mut doc, &member) {
            break;
        }
        taken_out.push(member);
    }
    Err(ApiError::validation(issues))
}

/// A serde path as a JSON Pointer (RFC 6901): `headers.X-Team` -> `/headers/X-Team`.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{}", escape(key))),
            Segment::Enum { variant } => out.push_str(&format!("/{}", escape(variant))),
            Segment::Unknown => {}
        }
    }
    out
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The name in a serde message like ``missing field `url` ``.
fn named<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    Some(&rest[..rest.find('`')?])
}

/// Removes the object member `at` points to; false when it cannot (the
/// root, or an array element, whose removal would renumber the rest).
fn take_out(doc: &mut Value, at: &str) -> bool {
    let Some((parent, last)) = at.rsplit_once('/') else {
        return false;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match doc.pointer_mut(parent) {
        Some(Value::Object(members)) => members.remove(&key).is_some(),
        _ => false,
    }
}

/// serde's ``unknown field `x`, expected one of ...`` without the name the
/// issue's path already carries: ``is not a known member; expected one of ...``.
fn unknown_said_once(message: String, what: &str) -> String {
    match message.strip_prefix("unknown field `") {
        Some(rest) => match rest.split_once('`') {
            Some((_, expected)) => {
                format!("is not a known {what}{}", expected.replacen(",", ";", 1))
            }
            None => message,
        },
        None => message,
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Query-string parameters. A parameter serde refuses is reported at
/// `/query/<name>`, every one of them, as body members are.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let mut issues = Vec::new();
        for _ in 0..64 {
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            let de =
                serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
            let err = match serde_path_to_error::deserialize::<_, T>(de) {
                Ok(value) if issues.is_empty() => return Ok(QueryParams(value)),
                Ok(_) => break,
                Err(e) => e,
            };
            let message = strip_position(&err.inner().to_string());
            let name = named(&message, "unknown field `")
                .or_else(|| named(&message, "missing field `"))
                .map(str::to_string)
                .unwrap_or_else(|| pointer(err.path()).trim_start_matches('/').to_string());
            issues.push((
                format!("/query/{}", escape(&name)),
                unknown_said_once(message, "parameter"),
            ));
            let before = pairs.len();
            pairs.retain(|(k, _)| *k != name);
            if pairs.len() == before {
                break;
            }
        }
        Err(ApiError::validation(issues))
    }
}

/// A whole number sent as a JSON integer; `3.0` is the integer 3 (JSON Schema agrees).
pub fn whole<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::Deserialize;
    let Some(n) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    let out_of_range = || serde::de::Error::custom(format!("{n} is not a whole number in range"));
    if n.fract() != 0.0 || !(0.0..=9.0e15).contains(&n) {
        return Err(out_of_range());
    }
    T::try_from(n as u64).map(Some).map_err(|_| out_of_range())
}

/// An empty query parameter (`?status=`) reads as absent.
pub fn non_empty<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    use serde::Deserialize;
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Reads a time in any of `hookd_core::time::WHEN_FORMS` (422 at `field`,
/// with the forms or the range, when it is none of them).
pub(crate) fn parse_time(
    field: &str,
    value: &str,
    direction: hookd_core::time::Direction,
) -> Result<i64, ApiError> {
    hookd_core::time::parse_when(value, hookd_core::time::now_ms(), direction)
        .map_err(|why| ApiError::invalid(field, why))
}

/// A page size from `?limit=` (`default` when absent): 1 to 500, else 422
/// at `/query/limit`.
pub fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=500).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(
            "/query/limit",
            "must be between 1 and 500",
        ))
    }
}
