//! Real processes over slow links: three nodes whose every connection passes through a
//! userspace relay adding 100 ms (and up to 20 ms of jitter) each way, since this kernel has
//! no netem qdisc. Thoughts still reach every node, the federation keeps one root and
//! finality advances; and each thought takes at least the link's delay to arrive, which
//! shows the traffic went through the relays.

mod common;

use common::*;
use std::time::{Duration, Instant};
use web4fed_harness::{LinkSpec, Relay};

const LINK_DELAY: Duration = Duration::from_millis(100);

fn holds(n: &Node, id: &str) -> bool {
    n.get("/v1/thoughts?limit=50").is_some_and(|v| {
        v["thoughts"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x["id"] == id))
    })
}

#[test]
fn three_nodes_over_100ms_links_converge_and_finalise() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = ["legion", "thor", "sprout"]
        .iter()
        .map(|n| Node::init(root.path(), n, None))
        .collect();
    let spec = LinkSpec {
        delay: LINK_DELAY,
        jitter: Duration::from_millis(20),
        bytes_per_sec: None,
    };
    // relays[j] leads to node j; node i dials every earlier node through its relay, so all
    // three connections pass through one.
    let relays: Vec<Relay> = nodes
        .iter()
        .map(|n| Relay::start(([127, 0, 0, 1], n.p2p).into(), spec).unwrap())
        .collect();
    for i in 0..nodes.len() {
        let peers: Vec<String> = relays[..i].iter().map(Relay::multiaddr).collect();
        nodes[i].start(&peers, None);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("a full mesh over the relays", &refs, || {
        refs.iter().all(|n| {
            n.status().is_some_and(|s| {
                s["peers_connected"].as_u64() == Some(2) && s["members"].as_u64() == Some(3)
            })
        })
    });
    let before = nodes[0].final_epoch();

    let mut took = Vec::new();
    for i in 0..5u64 {
        let (st, v) = nodes[0].submit(&sentence(500 + i));
        assert_eq!(st, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let acked = Instant::now();
        wait("the thought on the far nodes", &refs, || {
            holds(&nodes[1], &id) && holds(&nodes[2], &id)
        });
        took.push(acked.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    let (median, p99) = median_p99(&mut took);
    eprintln!(
        "MEASURED over {LINK_DELAY:?} links: delivery median {median:.0} ms, p99 {p99:.0} ms"
    );
    for t in &took {
        assert!(
            *t >= LINK_DELAY,
            "a thought arrived in {t:?}, faster than the link"
        );
    }
    let events = nodes[0].events().unwrap();
    wait("one root over slow links", &refs, || {
        agree(&refs, Some(events))
    });
    wait("finality to advance over slow links", &refs, || {
        refs.iter().all(|n| n.final_epoch() > before)
    });
}
