//! Snapshot files: any bytes as a whole file (framing, checksum), and any bytes as a body
//! framed with a correct checksum (so the fuzzer reaches the body's decoder and every check
//! a restart makes: root, certificate, frontier, registrations). Never panics; a body that
//! loads hashes to its header's root.
#![no_main]
use libfuzzer_sys::fuzz_target;
use web4fed_core::attest::GenesisVerifier;
use web4fed_core::genesis::Genesis;
use web4fed_core::ledger::Ledger;
use web4fed_core::snapshot::SnapshotFile;
use web4fed_core::testkit::snapshot_around;

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
    if let (Some(fields), Some(body)) = (data.get(..40), data.get(40..)) {
        let fields: &[u8; 40] = fields.try_into().expect("40 bytes");
        load(&snapshot_around(&net, fields, body));
    }
});
