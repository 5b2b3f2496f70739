//! Identifiers: a short type prefix and a UUIDv7 (time-ordered, so ids sort by
//! creation).

/// `evt_`, `dlv_`, `ep_` ... followed by 32 hex digits of a UUIDv7.
pub fn new_id(prefix: &str) -> String {
    let uuid = uuid::Uuid::now_v7();
    let mut out = String::with_capacity(prefix.len() + 32);
    out.push_str(prefix);
    out.push_str(uuid.simple().encode_lower(&mut uuid::Uuid::encode_buffer()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation() {
        let a = new_id("evt_");
        let b = new_id("evt_");
        assert!(a.starts_with("evt_") && a.len() == 36);
        assert!(a < b);
    }
}
