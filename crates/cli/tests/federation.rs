//! Real federations on loopback: separate `web4fed run` processes talking libp2p over TCP,
//! driven through their HTTP APIs. No timing is asserted beyond generous deadlines.

mod common;

use common::{agent, agree, sentence, start_federation, wait, web4fed, Node};
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
    let st = agent()
        .get(n.url("/v1/nope"))
        .call()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(st, 404);

    // The CLI client commands against the running node.
    let out = web4fed()
        .args(["state", "--json", "--api", &n.url("")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["accounts"].as_array().unwrap().len(), 3);
    for cmd in ["status", "peers", "thoughts"] {
        let out = web4fed().args([cmd, "--api", &n.url("")]).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = web4fed()
        .args(["submit", "hi", "--api", &n.url("")])
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
