//! Snapshot decoding on hostile bytes, beyond what the fuzz target's random search reaches
//! each run: inputs it once found are kept here so they are tried on every test run.

use web4fed_core::attest::GenesisVerifier;
use web4fed_core::genesis::Genesis;
use web4fed_core::ledger::Ledger;
use web4fed_core::snapshot::SnapshotFile;
use web4fed_core::testkit::snapshot_around;

/// Found by the `snapshot` fuzz target: as a body behind a correct checksum, its length
/// prefixes claim billions of entries, and the persistent collections' own decoder reserved
/// that much memory before reading one (out of memory). Decoded through the standard
/// collections now (`persistent_serde`), it is refused with an error.
const LENGTH_PREFIX_OOM: &[u8] = &[
    0x57, 0x34, 0x46, 0x53, 0x4e, 0x41, 0x50, 0x00, 0x00, 0xa5, 0x00, 0x00, 0x00, 0x76, 0x3e, 0x0e,
    0x41, 0x50, 0x00, 0x40, 0x9e, 0xff, 0x0a, 0x3b, 0x3b, 0x3b, 0x3b, 0x3b, 0xe4, 0xe4, 0x00, 0xa5,
    0x4e, 0x00, 0x00, 0x3e, 0x00, 0x00, 0x0e, 0x41, 0x50, 0x00, 0x40, 0xff, 0x9e, 0xff, 0x0a, 0x3b,
    0x3b, 0x3b, 0x3b, 0x3b, 0xe4, 0xe4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xe4, 0xe4, 0x23, 0x23, 0x23,
    0x23, 0xe4, 0xe4, 0xe4, 0xe4, 0xe4, 0xe4, 0xe4, 0x00, 0x57, 0x50, 0x41, 0x41, 0xa5, 0xdf, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xe4, 0xe4, 0x23, 0x23, 0x23, 0x23, 0xe4, 0xe4, 0xe4, 0xe4, 0xe4,
    0xe4, 0xe4, 0x00, 0x57, 0x50, 0x41, 0x41, 0xa5, 0xdf, 0xff, 0xff, 0xff, 0xa0, 0xe4, 0xa0, 0x00,
    0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0xa0,
];

/// What the fuzz target does with one input: the bytes as a whole file, then (after 40 bytes
/// of header fields) as a body framed with a correct checksum. Returns whether either loaded.
fn load_both_ways(data: &[u8]) -> bool {
    let g = Genesis::with_pow_bits(1);
    let net = g.network_id();
    let load = |bytes: &[u8]| -> bool {
        let Ok(f) = SnapshotFile::decode(bytes, &net) else {
            return false;
        };
        let v = Box::new(GenesisVerifier::new(&g));
        Ledger::from_snapshot(g.clone(), v, &f, None).is_ok()
    };
    let mut loaded = load(data);
    if let (Some(fields), Some(body)) = (data.get(..40), data.get(40..)) {
        let fields: &[u8; 40] = fields.try_into().expect("40 bytes");
        loaded |= load(&snapshot_around(&net, fields, body));
    }
    loaded
}

#[test]
fn a_body_claiming_billions_of_entries_is_refused_without_reserving_them() {
    assert!(!load_both_ways(LENGTH_PREFIX_OOM));
}
