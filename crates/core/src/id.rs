//! Identifiers: a short type prefix and a UUIDv7 (time-ordered, so ids sort by
//! creation), and random endpoint secrets.

/// `evt_`, `dlv_`, `ep_` ... followed by 32 hex digits of a UUIDv7.
pub fn new_id(prefix: &str) -> String {
    let uuid = uuid::Uuid::now_v7();
    let mut out = String::with_capacity(prefix.len() + 32);
    out.push_str(prefix);
    out.push_str(uuid.simple().encode_lower(&mut uuid::Uuid::encode_buffer()));
    out
}

/// A new endpoint signing secret: `hks_` and 256 random bits in hex.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("hks_{}", hex::encode(bytes)))
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

    #[test]
    fn secrets_differ() {
        assert_ne!(new_secret().unwrap(), new_secret().unwrap());
    }
}
