//! `web4fed bench` at a small size, so the harness that produces BENCHMARKS.md cannot rot:
//! every row is produced from a real run and holds numbers, not NaN. (No figure is asserted:
//! timings belong in BENCHMARKS.md, not in tests on a shared machine.)

mod common;

use common::web4fed;

#[test]
fn bench_harness_produces_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bench.md");
    let run = web4fed()
        .args([
            "bench",
            "--samples",
            "10",
            "--corpus",
            "300",
            "--throughput-events",
            "3000",
            "--out",
        ])
        .arg(&out)
        .arg("--dir")
        .arg(tmp.path().join("nodes"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let md = std::fs::read_to_string(&out).unwrap();
    for row in [
        "one receiver, light load",
        "visible on both others",
        "equal state roots on all 3 nodes",
        "PoW verification",
        "corpus sync",
        "memory per node",
        "partition heal",
        "sustained event throughput",
        "per-event CPU cost",
        "Durable-commit floor",
    ] {
        assert!(md.contains(row), "missing {row:?} in\n{md}");
    }
    assert!(!md.contains("NaN"), "{md}");
    assert!(md.contains("Commit `") && md.contains("Machine: "), "{md}");
}
