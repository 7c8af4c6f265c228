//! TPM evidence as a registration carries it: decoding and the whole verification (X.509
//! chain, quote, attestation key) never panic on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use web4fed_core::identity::MemberId;
use web4fed_core::tpm::{verify, Evidence, PcrPolicy};

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = Evidence::decode(data) {
        assert_eq!(ev.encode(), data, "evidence encoding is not canonical");
        let _ = ev.ak();
        let _ = ev.ek_public_key();
    }
    let root = data.get(..data.len().min(64)).unwrap_or_default().to_vec();
    let _ = verify(
        &[root],
        &PcrPolicy::default(),
        &[0; 32],
        &MemberId([7; 32]),
        1_767_225_600_000,
        data,
    );
});
