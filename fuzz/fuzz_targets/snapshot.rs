//! Snapshot files: any bytes as a whole file (framing, checksum), and any bytes as a body
//! framed with a correct checksum (so the fuzzer reaches the body's decoder and every check
//! a restart makes: root, certificate, frontier, registrations). Never panics; a body that
//! loads hashes to its header's root.
#![no_main]
use libfuzzer_sys::fuzz_target;
use web4fed_core::attest::GenesisVerifier;
use web4fed_core::genesis::Genesis;
use web4fed_core::ledger::Ledger;
use web4fed_core::snapshot::{SnapshotFile, HEADER_LEN, MAGIC, SNAPSHOT_FORMAT};

fuzz_target!(|data: &[u8]| {
    let g = Genesis::with_pow_bits(1);
    let net = g.network_id();
    let load = |bytes: &[u8]| {
        if let Ok(f) = SnapshotFile::decode(bytes, &net) {
            assert_eq!(f.encode(), bytes, "a decoded file re-encodes to its bytes");
            let v = Box::new(GenesisVerifier::new(&g));
            if let Ok((l, _)) = Ledger::from_snapshot(g.clone(), v, &f, None) {
                let _ = l.state_root();
            }
        }
    };
    load(data);
    // The same bytes as a body (after 40 bytes of header fields), with a correct checksum.
    if data.len() >= 40 {
        use sha2::Digest;
        let (fields, body) = data.split_at(40);
        let mut file = Vec::with_capacity(HEADER_LEN + body.len());
        file.extend_from_slice(&MAGIC);
        file.extend_from_slice(&SNAPSHOT_FORMAT.to_be_bytes());
        file.extend_from_slice(&net);
        file.extend_from_slice(&fields[..8]);
        file.extend_from_slice(&fields[8..40]);
        file.extend_from_slice(&(body.len() as u64).to_be_bytes());
        file.extend_from_slice(&sha2::Sha256::digest(body));
        file.extend_from_slice(body);
        load(&file);
    }
});
