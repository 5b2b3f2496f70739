//! Reading raw Redis replies (`redis::Value`) into plain Rust values.

use redis::Value;

use crate::{Result, StoreError};

pub(crate) fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

pub(crate) fn string(v: &Value) -> Result<String> {
    match v {
        Value::Int(i) => Ok(i.to_string()),
        _ => bytes(v)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| StoreError::Reply(format!("expected a string, got {v:?}"))),
    }
}

pub(crate) fn items(v: &Value) -> Result<&[Value]> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        _ => Err(StoreError::Reply(format!("expected an array, got {v:?}"))),
    }
}

pub(crate) fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => string(v)?
            .parse()
            .map_err(|_| StoreError::Reply(format!("expected an integer, got {v:?}"))),
    }
}

/// The name/value pairs of a reply that is a map (RESP3) or a flat list of
/// alternating names and values (RESP2), as XINFO replies are.
pub(crate) fn pairs(v: &Value) -> Result<Vec<(String, &Value)>> {
    Ok(match v {
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((string(k).ok()?, v)))
            .collect(),
        other => items(other)?
            .chunks_exact(2)
            .filter_map(|kv| Some((string(&kv[0]).ok()?, &kv[1])))
            .collect(),
    })
}
