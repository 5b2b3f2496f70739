//! Property tests (fuzzing with proptest) of signing and the signature header
//! parsers: any header text is parsed or refused without a panic; what hookd
//! signs verifies, and any change to the body, timestamp or secret does not.
//! `make fuzz` runs these with many more cases.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashMap;

use hookd_signature::{Verifier, parse_signature_header, sign, signature_header, standard};
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_header_text_is_parsed_or_refused(header in ".{0,200}") {
        let _ = parse_signature_header(&header);
        let _ = Verifier::new("s").verify_parts_at(Some("1"), Some(&header), b"{}", 1);
        let _ = Verifier::new("s").verify_parts_at(Some(&header), Some("sha256=00"), b"{}", 1);
        let _ = standard::decode_secret(&header);
        if let Ok(v) = standard::Verifier::new(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]) {
            let _ = v.verify_parts_at(Some("id"), Some("1"), Some(&header), b"{}", 1);
        }
    }

    #[test]
    fn what_is_signed_verifies_and_nothing_else_does(
        secret in prop::collection::vec(any::<u8>(), 1..64),
        other in prop::collection::vec(any::<u8>(), 1..64),
        body in prop::collection::vec(any::<u8>(), 0..256),
        timestamp in 1_000_000_000i64..4_000_000_000,
        flip in any::<prop::sample::Index>(),
    ) {
        let header = signature_header(&[&secret], timestamp, &body);
        prop_assert_eq!(&header, &sign(&secret, timestamp, &body));
        let ts = timestamp.to_string();
        let verifier = Verifier::new(&secret);
        prop_assert!(verifier.verify_parts_at(Some(&ts), Some(&header), &body, timestamp).is_ok());
        let mut headers = HashMap::new();
        headers.insert("x-hookd-timestamp".to_string(), ts.clone());
        headers.insert("x-hookd-signature".to_string(), header.clone());
        prop_assert!(verifier.verify_at(&headers, &body, timestamp).is_ok());

        if !body.is_empty() {
            let mut changed = body.clone();
            let i = flip.index(changed.len());
            changed[i] ^= 1;
            prop_assert!(verifier.verify_parts_at(Some(&ts), Some(&header), &changed, timestamp).is_err());
        }
        let later = (timestamp + 1).to_string();
        prop_assert!(verifier.verify_parts_at(Some(&later), Some(&header), &body, timestamp).is_err());
        if other != secret {
            prop_assert!(Verifier::new(&other).verify_parts_at(Some(&ts), Some(&header), &body, timestamp).is_err());
        }
    }

    #[test]
    fn standard_webhooks_round_trip(
        key in prop::collection::vec(any::<u8>(), 16..48),
        id in "[a-zA-Z0-9_]{1,40}",
        body in prop::collection::vec(any::<u8>(), 0..256),
        timestamp in 1_000_000_000i64..4_000_000_000,
    ) {
        let secret = standard::encode_secret(&key);
        prop_assert_eq!(standard::decode_secret(&secret).unwrap(), key.clone());
        let header = standard::signature_header(&[&key], &id, timestamp, &body);
        let v = standard::Verifier::new([secret.as_str()]).unwrap();
        let ts = timestamp.to_string();
        prop_assert!(v.verify_parts_at(Some(&id), Some(&ts), Some(&header), &body, timestamp).is_ok());
        let mut changed = body.clone();
        changed.push(b'x');
        prop_assert!(v.verify_parts_at(Some(&id), Some(&ts), Some(&header), &changed, timestamp).is_err());
    }
}
