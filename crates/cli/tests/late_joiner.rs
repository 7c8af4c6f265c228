//! A member registered with the others but started late, after finality moved on without it,
//! joins and agrees on every root, committee ratings included.
//!
//! Regression: such a node used to vote at start, when its view held its own registration
//! alone; in a genesis without founders that view holds all the weight, so it certified a
//! chain of its own that the federation's certificates could never extend. Its finality
//! stopped for good, and once nodes rated thoughts (committees drawn from a different order
//! of registrations) its root differed for good too. A replica given peers to join now votes
//! only once a peer's summary has shown it nothing left to fetch.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_member_started_late_agrees_on_every_root() {
    let root = tempfile::tempdir().unwrap();
    let g = genesis(root.path(), "g.toml", &["rate_base_thoughts=1000"]);
    let mut nodes: Vec<Node> = ["legion", "thor", "sprout"]
        .iter()
        .map(|n| Node::init(root.path(), n, Some(&g)))
        .collect();
    let first = nodes[0].addr();
    nodes[0].start(&[], None);
    nodes[1].start(std::slice::from_ref(&first), None);
    let two: Vec<&Node> = nodes[..2].iter().collect();
    wait("two connected", &two, || {
        nodes[0].status().is_some_and(|s| s["members"] == 2)
    });
    for i in 0..40u64 {
        let (st, v) = nodes[0].submit(&sentence(700 + i));
        assert_eq!(st, 201, "{v}");
        std::thread::sleep(Duration::from_millis(250));
    }
    wait("finality among the two", &two, || {
        nodes[0].final_epoch().is_some() && nodes[1].final_epoch().is_some()
    });
    nodes[2].start(&[first], None);
    let all: Vec<&Node> = nodes.iter().collect();
    wait("three agree", &all, || agree(&all, Some(43)));
    // Its finality advances on the federation's chain: the certificate it holds for an
    // epoch is the one Legion holds.
    let fin = nodes[2].final_epoch();
    wait("the late member's finality advances", &all, || {
        nodes[2].final_epoch() > fin
    });
    let certs = |n: &Node| -> Vec<(u64, String)> {
        n.get("/v1/finality?limit=40").unwrap()["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["epoch"].as_u64().unwrap(),
                    c["root"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let legion = certs(&nodes[0]);
    let sprout = certs(&nodes[2]);
    assert!(!sprout.is_empty());
    for c in &sprout {
        if let Some(l) = legion.iter().find(|l| l.0 == c.0) {
            assert_eq!(l, c, "sprout and legion certified different roots");
        }
    }
}
