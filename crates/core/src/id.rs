//! Identifiers: a short type prefix and a UUIDv7 (time-ordered, so ids sort by
//! creation), and random endpoint secrets.

use crate::endpoint::SignatureScheme;

/// `evt_`, `dlv_`, `ep_` ... followed by 32 hex digits of a UUIDv7.
pub fn new_id(prefix: &str) -> String {
    let uuid = uuid::Uuid::now_v7();
    let mut out = String::with_capacity(prefix.len() + 32);
    out.push_str(prefix);
    out.push_str(uuid.simple().encode_lower(&mut uuid::Uuid::encode_buffer()));
    out
}

/// A new endpoint signing secret of 256 random bits: `hks_<hex>` for the
/// default scheme, `whsec_<base64>` for Standard Webhooks.
pub fn new_secret(scheme: SignatureScheme) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(match scheme {
        SignatureScheme::Sha256 => format!("hks_{}", hex::encode(bytes)),
        SignatureScheme::StandardWebhooks => hookd_signature::standard::encode_secret(&bytes),
    })
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
        let a = new_secret(SignatureScheme::Sha256).unwrap();
        assert!(a.starts_with("hks_"));
        assert_ne!(a, new_secret(SignatureScheme::Sha256).unwrap());
        let w = new_secret(SignatureScheme::StandardWebhooks).unwrap();
        assert_eq!(
            hookd_signature::standard::decode_secret(&w).unwrap().len(),
            32
        );
    }
}
