//! Snapshots on real processes: a node writes its state at certified checkpoints, restarts
//! from the newest plus the log after it, refuses a damaged one (and says why) for the one
//! before, keeps whole files when killed at random moments while it writes them, and a
//! newcomer started from an exported snapshot joins with the same root.

mod common;

use common::{agree, run_ok, sentence, start_federation, wait, web4fed, Node, NodeExt};
use std::path::{Path, PathBuf};

/// Snapshot files of a node, oldest first.
fn snapshot_files(n: &Node) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(n.dir.join("snapshots"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "w4s"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The epoch in a snapshot file's name.
fn epoch_of(p: &Path) -> u64 {
    let name = p.file_stem().unwrap().to_string_lossy().into_owned();
    name.trim_start_matches("snapshot-").parse().unwrap()
}

/// The last "state rebuilt" line of a node's log, without terminal colour codes.
fn last_rebuild(n: &Node) -> String {
    let line = n
        .log()
        .lines()
        .rfind(|l| l.contains("state rebuilt"))
        .unwrap_or_default()
        .to_string();
    let mut plain = String::new();
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    plain
}

/// A field `name=value` of a log line.
fn field_of(line: &str, name: &str) -> Option<u64> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Legion and Thor on a network with 200 ms epochs, a checkpoint every epoch and rate
/// limits out of the way: certificates, candidate bases and so snapshots come within
/// seconds. Returns the genesis file and the running nodes.
fn fast_pair(root: &Path, network: &str) -> (PathBuf, Vec<Node>) {
    let g = common::genesis(
        root,
        network,
        &[
            "epoch_ms=200",
            "finality_every_epochs=1",
            "rate_base_thoughts=100000",
            "rate_base_bytes=100000000",
        ],
    );
    let mut nodes: Vec<Node> = ["legion", "thor"]
        .iter()
        .map(|n| Node::init(root, n, Some(&g)))
        .collect();
    start_federation(&mut nodes, &[]);
    (g, nodes)
}

/// Posts `k` thoughts, alternating between the first two nodes.
fn post(nodes: &[Node], posted: &mut u64, k: u64) {
    for _ in 0..k {
        let (st, v) = nodes[*posted as usize % 2].submit(&sentence(70_000 + *posted));
        assert_eq!(st, 201, "{v}");
        *posted += 1;
    }
}

fn verify(dir: &Path) -> std::process::Output {
    web4fed()
        .args(["snapshot", "verify", "--dir"])
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn restart_from_snapshot_refuse_damage_survive_kills_and_join_from_an_export() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, mut nodes) = fast_pair(tmp.path(), "snapshots");
    let mut posted = 0u64;
    // Post until legion has written two snapshots (a base every 6 checkpoints, behind the
    // newest twelve certificates: a few seconds at 200 ms epochs).
    let start = std::time::Instant::now();
    while snapshot_files(&nodes[0]).len() < 2 {
        post(&nodes, &mut posted, 10);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            start.elapsed() < common::DEADLINE,
            "no snapshots after {posted} thoughts"
        );
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("both agree", &refs, || agree(&refs, Some(posted + 2)));
    let out = verify(&nodes[0].dir);
    assert!(out.status.success(), "{out:?}");

    // 1. A restart starts from the newest snapshot and reads only the log after it.
    let total = nodes[0].status().unwrap()["events"].as_u64().unwrap();
    nodes[0].kill();
    let newest = epoch_of(snapshot_files(&nodes[0]).last().unwrap());
    let thor = nodes[1].addr();
    nodes[0].start(std::slice::from_ref(&thor), None);
    let line = last_rebuild(&nodes[0]);
    assert_eq!(field_of(&line, "snapshot_epoch"), Some(newest), "{line}");
    let tail = field_of(&line, "events").unwrap();
    assert!(tail < total, "read {tail} events again of {total}: {line}");
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("agree after the restart", &refs, || {
        agree(&refs, Some(posted + 2))
    });
    println!("MEASURED restart from snapshot: {line}");

    // 2. One flipped byte in the newest: refused with the reason, the one before is used.
    nodes[0].kill();
    let files = snapshot_files(&nodes[0]);
    assert!(files.len() >= 2, "{files:?}");
    let damaged = files.last().unwrap().clone();
    let mut bytes = std::fs::read(&damaged).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&damaged, &bytes).unwrap();
    let out = verify(&nodes[0].dir);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !out.status.success(),
        "verify passed a damaged file: {text}"
    );
    assert!(text.contains("checksum mismatch"), "{text}");
    nodes[0].start(std::slice::from_ref(&thor), None);
    let line = last_rebuild(&nodes[0]);
    let used = field_of(&line, "snapshot_epoch").expect("an older snapshot used");
    assert!(used < epoch_of(&damaged), "{line}");
    assert!(
        nodes[0].log().contains("snapshot refused"),
        "no refusal logged"
    );
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("agree after the refusal", &refs, || {
        agree(&refs, Some(posted + 2))
    });
    // The node keeps a refused file for the operator to look at (until newer snapshots
    // rotate it out); the operator removes it.
    let _ = std::fs::remove_file(&damaged);

    // 3. Killed (SIGKILL) at arbitrary moments while it keeps writing snapshots: every file
    //    left under a snapshot's name is whole, and the node starts from the newest.
    for round in 0..5u64 {
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(700 + round * 290) {
            post(&nodes, &mut posted, 10);
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
        nodes[0].kill();
        let out = verify(&nodes[0].dir);
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        nodes[0].start(std::slice::from_ref(&thor), None);
        let line = last_rebuild(&nodes[0]);
        assert!(field_of(&line, "snapshot_epoch").is_some(), "{line}");
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("agree after the kills", &refs, || {
        agree(&refs, Some(posted + 2))
    });

    // 4. A newcomer starts from thor's exported snapshot: an empty log, the state at the
    //    snapshot, the rest by sync.
    let export = tmp.path().join("thor.w4s");
    run_ok(
        web4fed()
            .args(["snapshot", "export", "--dir"])
            .arg(&nodes[1].dir)
            .arg("--out")
            .arg(&export),
    );
    let mut sprout = Node::init(tmp.path(), "sprout", Some(&g));
    let out = run_ok(
        web4fed()
            .args(["snapshot", "import", "--dir"])
            .arg(&sprout.dir)
            .arg("--file")
            .arg(&export),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported"));
    sprout.start(&[thor], None);
    let line = last_rebuild(&sprout);
    assert!(field_of(&line, "snapshot_epoch").is_some(), "{line}");
    // The only event read is its own registration, which `init` wrote.
    assert_eq!(field_of(&line, "events"), Some(1), "{line}");
    let refs: Vec<&Node> = nodes.iter().chain([&sprout]).collect();
    wait("the newcomer to agree", &refs, || {
        agree(&refs, Some(posted + 3))
    });
}

/// State sync on real processes: a newcomer started with `--state-sync` fetches the newest
/// snapshot two peers agree on, in checked chunks, and joins with the same root without
/// replaying history; a stranger flooding snapshot requests is told to slow down and the
/// peers keep serving.
#[test]
fn a_newcomer_joins_by_state_sync_and_a_flood_of_snapshot_requests_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, nodes) = fast_pair(tmp.path(), "state-sync");
    let mut posted = 0u64;
    let start = std::time::Instant::now();
    while nodes.iter().any(|n| snapshot_files(n).is_empty()) {
        post(&nodes, &mut posted, 10);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(start.elapsed() < common::DEADLINE, "no snapshots");
    }
    let addrs: Vec<String> = nodes.iter().map(Node::addr).collect();
    // A stranger asks for chunks far faster than any budget allows: refused with a reason,
    // never sent more than the budgets (a burst of ten seconds' worth plus the rate).
    let secs = 4.0;
    let out = nodes[0]
        .attack_command("snapshot-flood", secs)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let wire = &report["wire"];
    println!("MEASURED snapshot flood: {wire}");
    let bytes = wire["snapshot_bytes"].as_u64().unwrap();
    assert!(bytes > 0, "{report}");
    assert!(wire["refused_answers"].as_u64().unwrap() > 0, "{report}");
    // Every chunk costs the peer a whole chunk's worth of its budget (this snapshot is one
    // small chunk), so the chunks answered are bounded by the burst plus the rate: counted
    // against the smallest snapshot file (an upper bound on the count). Unbudgeted, the
    // flood's round trips on loopback would fetch thousands in these seconds.
    use web4fed_replica::limits::{SNAPSHOT_BYTES_PER_SEC_PER_PEER, SNAPSHOT_CHUNK_BYTES};
    let smallest = snapshot_files(&nodes[0])
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .min()
        .unwrap()
        .min(SNAPSHOT_CHUNK_BYTES as u64);
    let chunks = bytes / smallest;
    let allowed =
        SNAPSHOT_BYTES_PER_SEC_PER_PEER as f64 * (10.0 + secs + 2.0) / SNAPSHOT_CHUNK_BYTES as f64;
    println!("MEASURED snapshot flood: at most {chunks} chunks answered, {allowed} allowed");
    assert!(
        (chunks as f64) <= allowed,
        "{chunks} chunks answered, over the budget's {allowed}: {report}"
    );
    // The newcomer, asking for the history before its snapshot too.
    let mut sprout = Node::init(tmp.path(), "sprout", Some(&g));
    sprout.start_with(
        &addrs,
        &[
            "--state-sync",
            "--state-sync-quorum",
            "2",
            "--history",
            "lazy",
        ],
    );
    let line = last_rebuild(&sprout);
    assert!(field_of(&line, "snapshot_epoch").is_some(), "{line}");
    assert!(sprout.log().contains("snapshot fetched and checked"));
    assert!(
        sprout.log().contains("history backfill: fetching"),
        "no history to backfill: {}",
        sprout.log()
    );
    let refs: Vec<&Node> = nodes.iter().chain([&sprout]).collect();
    wait("the state-synced newcomer to agree", &refs, || {
        agree(&refs, Some(posted + 3))
    });
    // The history before the snapshot arrives, verified page by page: in the end the
    // newcomer's log holds every event Legion's does, byte for byte.
    let genesis = web4fed_store::node_dir::load_genesis(&g).unwrap();
    let rows = |n: &Node| -> Vec<Vec<u8>> {
        let store = web4fed_store::Store::open(&n.dir.join("events.db"), &genesis).unwrap();
        let mut all = Vec::new();
        let members = nodes.iter().chain([&sprout]).map(|n| {
            let key = web4fed_store::node_dir::NodeDir::new(&n.dir).key();
            web4fed_store::keyfile::read(&key).unwrap().id()
        });
        for author in members {
            all.extend(store.feed_range(&author, 0, u64::MAX).unwrap());
        }
        all.sort();
        // These three are the federation's only members: their feeds are the whole log.
        assert_eq!(all.len() as u64, store.event_count().unwrap());
        all
    };
    wait("the newcomer's history backfill", &refs, || {
        sprout.log().contains("history backfill done") && rows(&sprout) == rows(&nodes[0])
    });
    let done = sprout
        .log()
        .lines()
        .find(|l| l.contains("history backfill done"))
        .map(str::to_string)
        .unwrap_or_default();
    println!("MEASURED backfill: {done}");
}

/// Log retention: with a quota the node removes the events its oldest snapshot covers
/// (archiving them first), restarts from a snapshot to the same root, and with every
/// snapshot gone refuses to start from the trimmed log, saying why.
#[test]
fn retention_trims_covered_history_and_a_trimmed_log_needs_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, mut nodes) = fast_pair(tmp.path(), "retention");
    // Legion runs with a quota of 0: everything its oldest snapshot covers may go.
    nodes[0].kill();
    let archive = tmp.path().join("legion-archive.frames");
    let thor = nodes[1].addr();
    let archive_arg = archive.to_string_lossy().into_owned();
    nodes[0].start_with(
        std::slice::from_ref(&thor),
        &["--log-quota-mb", "0", "--archive", &archive_arg],
    );
    let mut posted = 0u64;
    let start = std::time::Instant::now();
    while nodes[0].metric("web4fed_log_trimmed_total") < 100.0 {
        post(&nodes, &mut posted, 10);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            start.elapsed() < common::DEADLINE,
            "nothing trimmed after {posted} thoughts"
        );
    }
    let trimmed = nodes[0].metric("web4fed_log_trimmed_total") as u64;
    let frames = std::fs::read(&archive).unwrap();
    let mut k = 0;
    let mut at = 0;
    while at + 4 <= frames.len() {
        let n = u32::from_be_bytes(frames[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + n;
        k += 1;
    }
    assert_eq!(at, frames.len(), "archive is whole frames");
    assert!(
        k as u64 >= trimmed,
        "{k} frames archived, {trimmed} trimmed"
    );
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("agree while trimming", &refs, || {
        agree(&refs, Some(posted + 2))
    });
    // A restart starts from a snapshot and agrees.
    nodes[0].kill();
    nodes[0].start_with(std::slice::from_ref(&thor), &["--log-quota-mb", "0"]);
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("agree after the restart", &refs, || {
        agree(&refs, Some(posted + 2))
    });
    // With no snapshot the trimmed log cannot rebuild the node: it says so and stops.
    nodes[0].kill();
    std::fs::remove_dir_all(nodes[0].dir.join("snapshots")).unwrap();
    let out = web4fed()
        .args(["run", "--dir"])
        .arg(&nodes[0].dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trimmed by retention"), "{err}");
}
