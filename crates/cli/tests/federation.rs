//! Real federations on loopback: separate `web4fed run` processes talking libp2p over TCP,
//! driven through their HTTP APIs. No timing is asserted beyond generous deadlines.

mod common;

use common::{agent, agree, framed, sentence, start_federation, wait, web4fed, Node, NodeExt};
use serde_json::Value;
use std::path::Path;

fn federation(root: &Path, adversary_last: Option<&str>) -> Vec<Node> {
    let mut nodes: Vec<Node> = ["legion", "thor", "sprout"]
        .iter()
        .map(|n| Node::init(root, n, None))
        .collect();
    match adversary_last {
        Some(a) => start_federation(&mut nodes, &[(2, a)]),
        None => start_federation(&mut nodes, &[]),
    }
    nodes
}

fn roots_equal(nodes: &[&Node], events: u64) -> bool {
    agree(nodes, Some(events))
}

/// The seed's Test 1 and Test 3 on real processes: thoughts posted on every node reach every
/// node; a node that was down (killed) catches up through anti-entropy sync on restart; all
/// roots agree. Also the API's error contract.
#[test]
fn replicate_agree_and_catch_up_after_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = federation(tmp.path(), None);
    for i in 0..5u64 {
        for (k, n) in nodes.iter().enumerate() {
            let (st, v) = n.submit(&sentence(i * 3 + k as u64));
            assert_eq!(st, 201, "{v}");
            assert_eq!(v["verdict"], "accepted");
        }
    }
    {
        let refs: Vec<&Node> = nodes.iter().collect();
        wait("18 events and one root on all three", &refs, || {
            roots_equal(&refs, 18)
        });
        for n in &nodes {
            assert_eq!(n.status().unwrap()["corpus"], 15);
        }
    }

    // Sprout goes down hard; the other two keep working.
    nodes[2].kill();
    for i in 0..6u64 {
        let (st, _) = nodes[i as usize % 2].submit(&sentence(100 + i));
        assert_eq!(st, 201);
    }
    {
        let refs: Vec<&Node> = nodes[..2].iter().collect();
        wait("the two survivors to agree", &refs, || {
            roots_equal(&refs, 24)
        });
    }
    // It comes back knowing only legion's address and catches up from the log.
    let first = nodes[0].addr();
    nodes[2].start(&[first], None);
    {
        let refs: Vec<&Node> = nodes.iter().collect();
        wait("sprout to catch up and agree", &refs, || {
            roots_equal(&refs, 24)
        });
    }
    let peers = nodes[0].get("/v1/peers").unwrap();
    assert_eq!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["connected"] == true)
            .count(),
        2
    );

    // The API's error contract: JSON errors naming the field or the layer.
    let n = &nodes[0];
    let (st, v) = n.post_raw("{not json");
    assert_eq!((st, v["field"].as_str()), (400, Some("body")));
    let (st, v) = n.post_raw("{}");
    assert_eq!((st, v["field"].as_str()), (400, Some("content")));
    let (st, v) = n.post_raw(r#"{"content": 5}"#);
    assert_eq!((st, v["field"].as_str()), (400, Some("content")));
    let (st, v) = n.submit("too short");
    assert_eq!((st, v["layer"].as_u64()), (422, Some(3)), "{v}");
    let (st, v) = n.submit("qwrtp zxcvb bnmkl plkjh sdfgh");
    assert_eq!((st, v["rule"].as_str()), (422, Some("incoherent")), "{v}");
    // Flooding the rate limit: refused at layer 2 with 429, and never signed (no violation).
    let mut saw_429 = false;
    for i in 0..30 {
        let (st, v) = n.submit(&sentence(5_000 + i));
        if st == 429 {
            assert_eq!(v["layer"], 2);
            saw_429 = true;
            break;
        }
    }
    assert!(saw_429);
    let me = n.status().unwrap()["me"].clone();
    assert_eq!(
        me["violations"], 0,
        "an honest node never signs a violation"
    );
    let token = n.token.clone().unwrap();
    let st = agent()
        .get(n.url("/v1/nope"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(st, 404);
    let dir = n.dir.to_str().unwrap();

    // The CLI client commands against the running node.
    let out = web4fed()
        .args(["state", "--json", "--api", &n.url(""), "--dir", dir])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["accounts"].as_array().unwrap().len(), 3);
    for cmd in ["status", "peers", "thoughts"] {
        let out = web4fed()
            .args([cmd, "--api", &n.url(""), "--dir", dir])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = web4fed()
        .args(["submit", "hi", "--api", &n.url(""), "--dir", dir])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // After the flood above the rate layer answers first; either way the layer is named.
    assert!(String::from_utf8_lossy(&out.stderr).contains("layer "));
}

/// The seed's Test 4: a Byzantine node publishes thoughts with forged signatures inside
/// envelopes it signs. Every honest node turns each into evidence; after three violations the
/// forger is ejected everywhere (trust and ATP zero), disconnected, and the honest nodes agree.
#[test]
fn forger_is_ejected_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = federation(tmp.path(), Some("forge"));
    let byz = nodes[2].status().unwrap()["member"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        let (st, v) = nodes[2].submit(&sentence(900 + i));
        assert_eq!(st, 201);
        assert_eq!(v["verdict"], "forged");
    }
    let honest: Vec<&Node> = nodes[..2].iter().collect();
    wait("the forger ejected on both honest nodes", &honest, || {
        honest.iter().all(|n| {
            n.account(&byz).is_some_and(|a| {
                a["status"] == "ejected" && a["trust_micro"] == 0 && a["atp_milli"] == 0
            })
        })
    });
    wait("honest nodes to agree", &honest, || {
        let s: Vec<Value> = honest.iter().filter_map(|n| n.status()).collect();
        s.len() == 2 && s[0]["state_root"] == s[1]["state_root"]
    });
    wait("the forger disconnected", &honest, || {
        honest.iter().all(|n| {
            n.get("/v1/peers").is_some_and(|p| {
                p["peers"].as_array().unwrap().iter().any(|p| {
                    p["member"] == byz.as_str() && p["blocked"] == true && p["connected"] == false
                })
            })
        })
    });
    // Honest nodes continue unaffected.
    let (st, _) = nodes[0].submit(&sentence(42));
    assert_eq!(st, 201);
    let (st, _) = nodes[1].submit(&sentence(43));
    assert_eq!(st, 201);
    for n in &honest {
        let me = n.status().unwrap()["me"].clone();
        assert_eq!(me["status"], "active");
        assert_eq!(me["violations"], 0);
    }
}

/// The seed's Test 2 across the network: a member that signs thoughts beyond its rate limit
/// has every one of them refused at layer 2 on every node, loses trust and ATP, and is ejected
/// after the third violation; all nodes agree.
#[test]
fn spammer_is_refused_and_ejected_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = federation(tmp.path(), Some("spam"));
    let spammer = nodes[2].status().unwrap()["member"]
        .as_str()
        .unwrap()
        .to_string();
    let mut sent = 0;
    for i in 0..30 {
        let (st, _) = nodes[2].submit(&sentence(700 + i));
        assert_eq!(st, 201);
        sent += 1;
    }
    let all: Vec<&Node> = nodes.iter().collect();
    wait(
        "the spammer ejected on all nodes with three violations",
        &all,
        || {
            all.iter().all(|n| {
                n.account(&spammer)
                    .is_some_and(|a| a["status"] == "ejected" && a["violations"] == 3)
            })
        },
    );
    // Once ejected the spammer is disconnected, so its later events may never arrive; the
    // honest nodes still agree with each other.
    let _ = sent;
    let honest: Vec<&Node> = nodes[..2].iter().collect();
    wait("the honest nodes to agree", &honest, || {
        let s: Vec<Value> = honest.iter().filter_map(|n| n.status()).collect();
        s.len() == 2 && s[0]["state_root"] == s[1]["state_root"] && s[0]["events"] == s[1]["events"]
    });
    let th = nodes[0].get("/v1/thoughts?limit=100").unwrap();
    let refused = th["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["verdict"]["verdict"] == "refused")
        .inspect(|t| assert_eq!(t["verdict"]["rule"], "thoughts_per_window"))
        .count();
    assert_eq!(refused, 3);
}

/// Parses Prometheus/OpenMetrics text: every line is a comment (`# HELP`, `# TYPE`, `# UNIT`,
/// `# EOF`) or `name{labels} value`. Returns the samples, or the first malformed line.
fn parse_exposition(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    let mut saw_eof = false;
    for line in text.lines() {
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let kind = rest.split_whitespace().next().unwrap_or("");
            if !["HELP", "TYPE", "UNIT"].contains(&kind) {
                return Err(format!("bad comment: {line}"));
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value: {line}"))?;
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(format!("bad metric name: {line}"));
        }
        if name_end < series.len() && !series.ends_with('}') {
            return Err(format!("unclosed labels: {line}"));
        }
        let v: f64 = value.parse().map_err(|_| format!("bad value: {line}"))?;
        out.push((series.to_string(), v));
    }
    if !saw_eof {
        return Err("no # EOF".into());
    }
    Ok(out)
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| *v)
}

/// `/metrics` parses as exposition format and its counters move as events flow.
#[test]
fn metrics_parse_and_move() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = federation(tmp.path(), None);
    let scrape = |n: &Node| {
        let text = n.get_text("/metrics").unwrap();
        parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    };
    let before = scrape(&nodes[1]);
    for i in 0..3 {
        assert_eq!(nodes[0].submit(&sentence(300 + i)).0, 201);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    wait("replication", &all, || roots_equal(&all, 6));
    let (st, _) = nodes[1].submit("too short");
    assert_eq!(st, 422);
    // Heartbeats run every 250 ms here: give a few time to arrive.
    std::thread::sleep(std::time::Duration::from_millis(800));
    let after = scrape(&nodes[1]);
    let admitted = |s: &[(String, f64)]| {
        sample(s, "web4fed_events_admitted_total{kind=\"gossip\"}")
            + sample(s, "web4fed_events_admitted_total{kind=\"sync\"}")
            + sample(s, "web4fed_events_admitted_total{kind=\"push\"}")
    };
    assert!(
        admitted(&after) >= admitted(&before) + 3.0,
        "admitted counter moved"
    );
    assert_eq!(
        sample(
            &after,
            "web4fed_submits_refused_total{layer=\"3\",rule=\"too_short\"}"
        ),
        1.0
    );
    assert!(
        sample(&after, "web4fed_heartbeats_total") > sample(&before, "web4fed_heartbeats_total")
    );
    assert_eq!(sample(&after, "web4fed_peers_connected"), 2.0);
    assert!(sample(&after, "web4fed_replication_latency_seconds_count") >= 3.0);
}

/// Bulk ingest: pre-signed events of new members posted to one node are validated, stored,
/// pushed to the others, and agreed on; a forged event in a batch is rejected and counted;
/// malformed bodies and addresses get a 400 naming the field.
#[test]
fn bulk_ingest_validates_pushes_and_refuses_bad_input() {
    use web4fed_core::testkit::Author;
    let tmp = tempfile::tempdir().unwrap();
    let nodes = federation(tmp.path(), None);
    let genesis =
        web4fed_store::node_dir::load_genesis(&nodes[0].dir.join("genesis.toml")).unwrap();
    let t0 = web4fed_node::now_ms();
    let mut events = Vec::new();
    for k in 0..3u64 {
        let mut a = Author::from_seed(&genesis, 500 + k);
        events.push(a.register(&genesis, &format!("bulk-{k}"), t0));
        for i in 0..4u64 {
            events.push(a.thought(t0 + 1 + i, &sentence(50_000 + k * 10 + i)));
        }
    }
    let before = nodes[0].events().unwrap();
    let (st, v) = nodes[0].post_bytes("/v1/events", "application/octet-stream", &framed(&events));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["admitted"], 15, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    // The same batch again: all known, nothing new.
    let (_, v) = nodes[0].post_bytes("/v1/events", "application/octet-stream", &framed(&events));
    assert_eq!(v["known"], 15, "{v}");
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("the bulk events on every node with one root", &refs, || {
        roots_equal(&refs, before + 15)
    });
    // A forged signature in a batch: that event is rejected with the reason, the rest kept.
    let mut a = Author::from_seed(&genesis, 600);
    let reg = a.register(&genesis, "bulk-forger", t0);
    let good = a.thought(t0 + 10, &sentence(60_000));
    let mut bytes = framed(&[reg]);
    let mut forged = good.bytes().to_vec();
    forged[web4fed_core::event::HEADER_LEN] ^= 1;
    bytes.extend_from_slice(&(forged.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&forged);
    let (st, v) = nodes[1].post_bytes("/v1/events", "application/octet-stream", &bytes);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["admitted"], 1, "{v}");
    assert_eq!(v["rejected"], 1, "{v}");
    assert!(v["first_error"].as_str().is_some(), "{v}");
    // Malformed framing and bad addresses: 400 with the field named.
    let (st, v) = nodes[1].post_bytes("/v1/events", "application/octet-stream", &[0, 0, 1]);
    assert_eq!((st, v["field"].as_str()), (400, Some("body")), "{v}");
    let (st, v) = nodes[1].post_bytes("/v1/events", "application/octet-stream", &[0, 0, 0, 9, 1]);
    assert_eq!((st, v["field"].as_str()), (400, Some("body")), "{v}");
    let (st, v) = nodes[1].post_bytes("/v1/peers", "application/json", br#"{"addr": "nope"}"#);
    assert_eq!((st, v["field"].as_str()), (400, Some("addr")), "{v}");
    let (st, v) = nodes[1].post_bytes("/v1/peers", "application/json", b"{}");
    assert_eq!((st, v["field"].as_str()), (400, Some("addr")), "{v}");
}

/// Final history leaves memory and is still served: with a certificate every 200 ms epoch the
/// reorg window passes in seconds, so a node prunes; a node that joins afterwards syncs the
/// whole log from it (the pruned part read from its store), and the pruned node restarts from
/// its log to the same root.
#[test]
fn final_history_leaves_memory_and_is_still_served() {
    let tmp = tempfile::tempdir().unwrap();
    let g = common::genesis(
        tmp.path(),
        "fast-finality",
        &[
            "epoch_ms=200",
            "finality_every_epochs=1",
            "rate_base_thoughts=100000",
            "rate_base_bytes=100000000",
        ],
    );
    let mut nodes: Vec<Node> = ["legion", "thor"]
        .iter()
        .map(|n| Node::init(tmp.path(), n, Some(&g)))
        .collect();
    start_federation(&mut nodes, &[]);
    let mut posted = 0u64;
    let in_memory = |n: &Node| {
        let s = n.status().unwrap();
        (
            s["events"].as_u64().unwrap(),
            s["events_in_memory"].as_u64().unwrap(),
        )
    };
    // Post steadily until both have pruned two thirds of their log (candidate bases are taken
    // as the fold crosses checkpoints, so pruning needs events to keep flowing). Two thirds,
    // not half: the restarted node below must hold under half, and what it keeps (the last
    // certificates' worth) is a smaller share of a longer log; with finality quick, a half
    // was reached so early that the restart kept 886 of 1,743.
    let start = std::time::Instant::now();
    loop {
        for _ in 0..10 {
            let (st, v) = nodes[posted as usize % 2].submit(&sentence(50_000 + posted));
            assert_eq!(st, 201, "{v}");
            posted += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        if nodes.iter().all(|n| {
            let (all, mem) = in_memory(n);
            mem * 3 < all
        }) {
            break;
        }
        assert!(
            start.elapsed() < common::DEADLINE,
            "no pruning after {posted} thoughts: {:?}, agreement {:?}",
            nodes.iter().map(in_memory).collect::<Vec<_>>(),
            nodes
                .iter()
                .map(|n| n.status().unwrap()["agreement"].clone())
                .collect::<Vec<_>>()
        );
    }
    let total = posted + 2;
    {
        let refs: Vec<&Node> = nodes.iter().collect();
        wait("both agree after pruning", &refs, || {
            agree(&refs, Some(total))
        });
    }
    println!(
        "MEASURED pruning: after {posted} thoughts, in memory (of {total}): {:?}",
        nodes.iter().map(|n| in_memory(n).1).collect::<Vec<_>>()
    );
    // A newcomer that knows only legion gets the whole log, pruned part included.
    let mut sprout = Node::init(tmp.path(), "sprout", Some(&g));
    sprout.start(&[nodes[0].addr()], None);
    {
        let refs: Vec<&Node> = nodes.iter().chain([&sprout]).collect();
        wait("the newcomer to sync pruned history", &refs, || {
            agree(&refs, Some(total + 1))
        });
    }
    // Legion restarts from its log and agrees again.
    nodes[0].kill();
    let thor = nodes[1].addr();
    nodes[0].start(&[thor], None);
    // It prunes while it rebuilds (certificates restored as their events load), so the log
    // never sits in memory whole.
    let (all, mem) = in_memory(&nodes[0]);
    assert!(
        mem * 2 < all,
        "after restart {mem} of {all} events in memory"
    );
    let refs: Vec<&Node> = nodes.iter().chain([&sprout]).collect();
    wait("legion to rebuild and agree", &refs, || {
        agree(&refs, Some(total + 1))
    });
}

/// Members without a node of their own vote through a node's API: registered by bulk ingest,
/// they hold two thirds of the trust, so finality stalls until they sign a prevote and a
/// precommit for the proposal `GET /v1/checkpoint` shows (at its height, generation and
/// round) and post them to `POST /v1/votes`; then certificates form again on both nodes.
/// Malformed and forged votes are refused with a reason.
#[test]
fn members_without_nodes_vote_and_finality_resumes() {
    use web4fed_core::finality::{At, Vote, VoteBody, VoteKind};
    use web4fed_core::testkit::Author;
    let tmp = tempfile::tempdir().unwrap();
    let g = common::genesis(
        tmp.path(),
        "light-voters",
        &["epoch_ms=200", "finality_every_epochs=1"],
    );
    let mut nodes: Vec<Node> = ["legion", "thor"]
        .iter()
        .map(|n| Node::init(tmp.path(), n, Some(&g)))
        .collect();
    start_federation(&mut nodes, &[]);
    let genesis = web4fed_store::node_dir::load_genesis(&g).unwrap();
    let network = genesis.network_id();
    let t0 = web4fed_node::now_ms();
    let mut light: Vec<Author> = (0..4u64)
        .map(|k| Author::from_seed(&genesis, 700 + k))
        .collect();
    let regs: Vec<_> = light
        .iter_mut()
        .enumerate()
        .map(|(k, a)| a.register(&genesis, &format!("light-{k}"), t0))
        .collect();
    let (st, v) = nodes[0].post_bytes("/v1/events", "application/octet-stream", &framed(&regs));
    assert_eq!((st, &v["admitted"]), (200, &serde_json::json!(4)), "{v}");
    let fin = |n: &Node| n.get("/v1/finality").unwrap()["final_epoch"].as_u64();
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("six members everywhere", &refs, || {
        nodes.iter().all(|n| n.status().unwrap()["members"] == 6)
    });
    // Two of six votes: whatever was certified before the light members joined, nothing after.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let stalled = fin(&nodes[0]);
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(
        fin(&nodes[0]),
        stalled,
        "finality must wait for the light members"
    );

    let sign_all = |at: At, id: [u8; 32]| {
        let mut out = Vec::new();
        for a in &light {
            for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                let v = Vote::sign(&a.keypair, &network, at, kind, Some(id)).encode();
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(&v);
            }
        }
        out
    };
    let mut last_batch = Vec::new();
    wait(
        "certificates again after the light members vote",
        &refs,
        || {
            let cp = nodes[0].get("/v1/checkpoint").unwrap();
            if let Some(b) = cp["body"].as_str() {
                let body = VoteBody::decode(&hex::decode(b).unwrap()).unwrap();
                let at = At {
                    height: cp["height"].as_u64().unwrap(),
                    gen: cp["gen"].as_u64().unwrap() as u32,
                    round: cp["round"].as_u64().unwrap() as u32,
                };
                last_batch = sign_all(at, body.id());
                let (st, v) =
                    nodes[0].post_bytes("/v1/votes", "application/octet-stream", &last_batch);
                assert_eq!(st, 200, "{v}");
                assert_eq!(v["rejected"], 0, "{v}");
            }
            nodes
                .iter()
                .all(|n| fin(n).is_some_and(|f| stalled.is_none_or(|s| f > s)))
        },
    );
    // The same votes again: known, not counted twice.
    let (_, v) = nodes[0].post_bytes("/v1/votes", "application/octet-stream", &last_batch);
    assert_eq!(v["accepted"], 0, "{v}");
    // Refusals: a frame that is not a vote, forged votes, broken framing.
    let (st, v) = nodes[1].post_bytes(
        "/v1/votes",
        "application/octet-stream",
        &[0, 0, 0, 3, 1, 2, 3],
    );
    assert_eq!((st, &v["rejected"]), (200, &serde_json::json!(1)), "{v}");
    let mut forged = sign_all(At::default(), [9; 32]);
    // The last byte of each framed vote is its signature's last byte.
    let vote_len = forged.len() / 8;
    for k in 1..=8 {
        forged[k * vote_len - 1] ^= 0x01;
    }
    let (_, v) = nodes[1].post_bytes("/v1/votes", "application/octet-stream", &forged);
    assert_eq!(v["rejected"], 8, "{v}");
    assert!(
        v["first_error"].as_str().unwrap().contains("signature"),
        "{v}"
    );
    let (st, v) = nodes[1].post_bytes("/v1/votes", "application/octet-stream", &[0, 0, 9, 9, 1]);
    assert_eq!((st, v["field"].as_str()), (400, Some("body")), "{v}");
}
