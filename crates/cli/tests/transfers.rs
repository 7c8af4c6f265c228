//! ATP transfers through the public API and CLI on a real three-node federation: balances
//! move by the amount on every node, refusals are typed errors, malformed requests get a 400
//! naming the field, and a flood of transfers costs the sender exactly what its balance
//! allows and nothing more.

mod common;

use common::*;
use serde_json::{json, Value};

/// ATP recharge over a test's few seconds is well under this many thousandths (10 ATP a
/// day is about 0.12 thousandths a second).
const RECHARGE_SLACK_MILLI: u64 = 100;

fn member(n: &Node) -> String {
    n.status().unwrap()["member"].as_str().unwrap().to_string()
}

fn atp_milli(n: &Node, m: &str) -> u64 {
    n.account(m).unwrap()["atp_milli"].as_u64().unwrap()
}

fn transfer(n: &Node, body: &Value) -> (u16, Value) {
    n.post(
        "/v1/transfers",
        "application/json",
        body.to_string().as_bytes(),
    )
    .unwrap()
}

#[test]
fn transfers_move_their_amount_everywhere_and_refusals_are_typed() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = ["legion", "thor", "sprout"]
        .iter()
        .map(|n| Node::init(root.path(), n, None))
        .collect();
    start_federation(&mut nodes, &[]);
    let ids: Vec<String> = nodes.iter().map(member).collect();
    // No member here has a TPM: a network density of none of three.
    let d = &nodes[0].status().unwrap()["network_density"];
    assert_eq!(
        (d["verified"].as_u64(), d["active"].as_u64()),
        (Some(0), Some(3)),
        "{d}"
    );
    let (a0, b0, c0) = (
        atp_milli(&nodes[0], &ids[0]),
        atp_milli(&nodes[0], &ids[1]),
        atp_milli(&nodes[0], &ids[2]),
    );

    // One by the API, one by the CLI.
    let (st, v) = transfer(&nodes[0], &json!({"to": ids[1], "atp": 12.5}));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["verdict"], "accepted");
    assert_eq!(v["atp_milli"], 12_500);
    let dir = nodes[0].dir.to_str().unwrap();
    let out = run_ok(web4fed().args([
        "transfer",
        "--to",
        &ids[2],
        "--atp",
        "0.25",
        "--api",
        &nodes[0].url(""),
        "--dir",
        dir,
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("accepted"), "{text}");

    // Every node folds them: the sender is down by the amounts, the recipients up.
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("both transfers on every node", &refs, || {
        nodes.iter().all(|n| {
            n.account(&ids[2])
                .and_then(|a| a["atp_milli"].as_u64())
                .is_some_and(|c| c >= c0 + 250)
        })
    });
    for n in &nodes {
        let (a, b, c) = (
            atp_milli(n, &ids[0]),
            atp_milli(n, &ids[1]),
            atp_milli(n, &ids[2]),
        );
        let spent = a0 - 12_750;
        assert!(
            (spent..=spent + RECHARGE_SLACK_MILLI).contains(&a),
            "{}: sender {a}",
            n.name
        );
        assert!((b0 + 12_500..=b0 + 12_500 + RECHARGE_SLACK_MILLI).contains(&b));
        assert!((c0 + 250..=c0 + 250 + RECHARGE_SLACK_MILLI).contains(&c));
    }

    // Refusals, each typed: above the balance (layer 9, with the balance), to nobody, to
    // oneself.
    let (st, v) = transfer(&nodes[0], &json!({"to": ids[1], "atp": 1_000_000}));
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["layer"], 9);
    assert_eq!(v["rule"], "transfer_beyond_balance");
    assert!(v["detail"]["balance_milli"].as_u64().is_some(), "{v}");
    let nobody = "ab".repeat(32);
    for to in [nobody.as_str(), ids[0].as_str()] {
        let (st, v) = transfer(&nodes[0], &json!({"to": to, "atp": 1}));
        assert_eq!(st, 422, "{v}");
        assert_eq!(v["error"], "bad_recipient");
        assert_eq!(v["field"], "to");
    }

    // Malformed requests: 400 naming the field, nothing signed.
    let events_before = nodes[0].events().unwrap();
    let cases = [
        (json!({"atp": 1}), "to"),
        (json!({"to": 5, "atp": 1}), "to"),
        (json!({"to": "xyz", "atp": 1}), "to"),
        (json!({"to": ids[1]}), "atp"),
        (json!({"to": ids[1], "atp": "5"}), "atp"),
        (json!({"to": ids[1], "atp": 0}), "atp"),
        (json!({"to": ids[1], "atp": -3}), "atp"),
        (json!({"to": ids[1], "atp": 0.0001}), "atp"),
        (json!({"to": ids[1], "atp": 1e300}), "atp"),
    ];
    for (body, field) in cases {
        let (st, v) = transfer(&nodes[0], &body);
        assert_eq!(st, 400, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let (st, v) = nodes[0]
        .post("/v1/transfers", "application/json", b"{not json")
        .unwrap();
    assert_eq!((st, v["field"].as_str()), (400, Some("body")));
    let (st, _) = nodes[0].post("/v1/transfers", "text/plain", b"{}").unwrap();
    assert_eq!(st, 415);
    assert_eq!(nodes[0].events().unwrap(), events_before);

    // A flood: 60 transfers of 3 ATP against a balance of about 87. Each is answered; those
    // the balance covers are accepted and the rest refused at layer 9; the balance never
    // goes below zero, and every node agrees afterwards.
    let balance = atp_milli(&nodes[0], &ids[0]);
    let (mut ok, mut refused) = (0u64, 0u64);
    for _ in 0..60 {
        let (st, v) = transfer(&nodes[0], &json!({"to": ids[1], "atp": 3}));
        match st {
            201 => ok += 1,
            422 => {
                assert_eq!(v["rule"], "transfer_beyond_balance", "{v}");
                refused += 1;
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!(
        ok,
        balance / 3_000,
        "accepted exactly what the balance covered"
    );
    assert_eq!(ok + refused, 60);
    let left = atp_milli(&nodes[0], &ids[0]);
    assert!(left < 3_000 + RECHARGE_SLACK_MILLI, "left {left}");
    let events = nodes[0].events().unwrap();
    wait(
        "every node holds every transfer, at one root",
        &refs,
        || agree(&refs, Some(events)),
    );
}
