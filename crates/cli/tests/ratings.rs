//! Committee ratings on a real three-node federation: a node rates the thoughts its member is
//! drawn to rate, an operator rates by hand (`web4fed rate`, `POST /v1/ratings`), and once
//! every seat has rated, the author and the raters are paid by the committee's median on
//! every node. Refusals are typed; a flood of bad ratings signs nothing; forged and replayed
//! ratings change nothing.

mod common;

use common::*;
use serde_json::{json, Value};
use web4fed_core::event::{Body, Event, EventId, Validate};
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::Keypair;

/// ATP recharge over a test's seconds stays well under this many thousandths.
const RECHARGE_SLACK_MILLI: u64 = 100;

fn member(n: &Node) -> String {
    n.status().unwrap()["member"].as_str().unwrap().to_string()
}

/// The live thought `id` as node `n` shows it.
fn thought(n: &Node, id: &str) -> Option<Value> {
    n.get("/v1/thoughts?limit=200")?["thoughts"]
        .as_array()?
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
}

fn rate(n: &Node, body: &Value) -> (u16, Value) {
    n.post(
        "/v1/ratings",
        "application/json",
        body.to_string().as_bytes(),
    )
    .unwrap()
}

fn account_milli(n: &Node, m: &str, field: &str) -> u64 {
    n.account(m).unwrap()[field].as_u64().unwrap()
}

#[test]
fn committees_rate_settle_and_pay_by_the_median_everywhere() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = ["legion", "thor", "sprout"]
        .iter()
        .map(|n| Node::init(root.path(), n, None))
        .collect();
    // Sprout's operator rates by hand.
    let cfg = nodes[2].dir.join("node.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("rate_thoughts = true"), "{text}");
    std::fs::write(
        &cfg,
        text.replace("rate_thoughts = true", "rate_thoughts = false"),
    )
    .unwrap();
    start_federation(&mut nodes, &[]);
    let ids: Vec<String> = nodes.iter().map(member).collect();
    let g = Genesis::with_pow_bits(8);
    let refs: Vec<&Node> = nodes.iter().collect();

    // Legion posts two thoughts: with three members, Thor and Sprout are each one's committee.
    let mut posted = Vec::new();
    for i in 0..2 {
        let (st, v) = nodes[0].submit(&sentence(40 + i));
        assert_eq!(st, 201, "{v}");
        posted.push(v["id"].as_str().unwrap().to_string());
    }
    // Thor's node rates both by itself; nothing is paid while Sprout's seats are open.
    wait("thor's ratings on every node", &refs, || {
        nodes.iter().all(|n| {
            posted
                .iter()
                .all(|t| thought(n, t).is_some_and(|v| v["committee"]["rated"].as_u64() == Some(1)))
        })
    });
    let t0 = thought(&nodes[0], &posted[0]).unwrap();
    let seats = t0["committee"]["seats"].as_array().unwrap().clone();
    let mut seat_members: Vec<&str> = seats
        .iter()
        .map(|s| s["member"].as_str().unwrap())
        .collect();
    seat_members.sort();
    let mut expected = vec![ids[1].as_str(), ids[2].as_str()];
    expected.sort();
    assert_eq!(
        seat_members, expected,
        "the committee is the two other members"
    );
    assert_eq!(t0["committee"]["settled"], false);
    let thor_score = seats
        .iter()
        .find(|s| s["member"] == ids[1])
        .and_then(|s| s["score"].as_f64())
        .unwrap();
    let before: Vec<(u64, u64)> = ids
        .iter()
        .map(|m| {
            (
                account_milli(&nodes[0], m, "atp_milli"),
                account_milli(&nodes[0], m, "trust_micro"),
            )
        })
        .collect();

    // Sprout rates the first by the CLI and the second by the API.
    let dir = nodes[2].dir.to_str().unwrap().to_string();
    let out = run_ok(web4fed().args([
        "rate",
        "--thought",
        &posted[0],
        "--score",
        "0.9",
        "--api",
        &nodes[2].url(""),
        "--dir",
        &dir,
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("accepted"), "{text}");
    let (st, v) = rate(&nodes[2], &json!({"thought": posted[1], "score": 0.05}));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["score_micro"], 50_000);

    // Both settle on every node, with the same median.
    wait("both thoughts settled on every node", &refs, || {
        nodes.iter().all(|n| {
            posted
                .iter()
                .all(|t| thought(n, t).is_some_and(|v| v["committee"]["settled"] == true))
        })
    });
    let medians: Vec<f64> = posted
        .iter()
        .map(|t| {
            thought(&nodes[1], t).unwrap()["committee"]["median"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let thor_score_2 = thought(&nodes[1], &posted[1]).unwrap()["committee"]["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["member"] == ids[1])
        .and_then(|s| s["score"].as_f64())
        .unwrap();
    assert!(
        (medians[0] - (thor_score + 0.9) / 2.0).abs() < 1e-6,
        "{medians:?}"
    );
    assert!(
        (medians[1] - (thor_score_2 + 0.05) / 2.0).abs() < 1e-6,
        "{medians:?}"
    );

    // What each member got, by the rule, the same on every node.
    let micro = |x: f64| (x * 1e6).round() as u64;
    let author_atp: u64 = medians
        .iter()
        .map(|m| g.rating_reward_milli * micro(*m) / 1_000_000)
        .sum();
    let author_trust: u64 = medians
        .iter()
        .map(|m| g.rating_trust_gain_micro * micro(*m) / 1_000_000)
        .sum();
    let mut rater_atp = [0u64; 3];
    let mut rater_trust_lost = [0u64; 3];
    for (t, m) in posted.iter().zip(&medians) {
        for s in thought(&nodes[1], t).unwrap()["committee"]["seats"]
            .as_array()
            .unwrap()
        {
            let who = ids.iter().position(|i| s["member"] == *i).unwrap();
            let score = micro(s["score"].as_f64().unwrap());
            if score.abs_diff(micro(*m)) <= g.rating_tolerance_micro {
                rater_atp[who] += g.rater_reward_milli;
            } else {
                rater_trust_lost[who] += g.rater_stray_penalty_micro;
            }
        }
    }
    for n in &nodes {
        let atp = account_milli(n, &ids[0], "atp_milli");
        assert!(
            atp >= before[0].0 + author_atp
                && atp <= before[0].0 + author_atp + RECHARGE_SLACK_MILLI,
            "{}: legion's ATP {atp}, expected {} + {author_atp}",
            n.name,
            before[0].0
        );
        assert_eq!(
            account_milli(n, &ids[0], "trust_micro"),
            before[0].1 + author_trust,
            "{}: legion's trust",
            n.name
        );
        for who in 1..3 {
            let atp = account_milli(n, &ids[who], "atp_milli");
            let want = before[who].0 + rater_atp[who];
            assert!(
                atp >= want && atp <= want + RECHARGE_SLACK_MILLI,
                "{}: {}'s ATP {atp}, expected {want}",
                n.name,
                nodes[who].name
            );
            assert_eq!(
                account_milli(n, &ids[who], "trust_micro"),
                before[who].1 - rater_trust_lost[who],
                "{}: {}'s trust",
                n.name,
                nodes[who].name
            );
        }
    }
    // Sprout's 0.05 against Thor's score for the second thought: with two ratings both lie
    // half their distance from the median, so both stray exactly when they differ by more
    // than twice the tolerance.
    let strays = (thor_score_2 - 0.05).abs() > 2.0 * g.rating_tolerance_micro as f64 / 1e6;
    assert_eq!(
        rater_trust_lost[1] > 0 && rater_trust_lost[2] > 0,
        strays,
        "thor {thor_score_2}, lost {rater_trust_lost:?}"
    );

    // Refusals, typed and naming the field.
    let (st, v) = rate(&nodes[2], &json!({"thought": posted[0], "score": 0.5}));
    assert_eq!(
        (st, v["error"].as_str()),
        (409, Some("already_rated")),
        "{v}"
    );
    let (st, v) = rate(&nodes[0], &json!({"thought": posted[0], "score": 0.5}));
    assert_eq!(
        (st, v["error"].as_str()),
        (422, Some("not_in_committee")),
        "{v}"
    );
    let unknown = "ab".repeat(32);
    let (st, v) = rate(&nodes[2], &json!({"thought": unknown, "score": 0.5}));
    assert_eq!(
        (st, v["error"].as_str()),
        (404, Some("unknown_thought")),
        "{v}"
    );
    for (body, field) in [
        (json!({"thought": posted[0], "score": 1.5}), "score"),
        (json!({"thought": posted[0], "score": -0.1}), "score"),
        (json!({"thought": posted[0], "score": "high"}), "score"),
        (json!({"thought": posted[0], "score": 0.1234567}), "score"),
        (json!({"thought": posted[0]}), "score"),
        (json!({"thought": "xyz", "score": 0.5}), "thought"),
        (json!({"thought": 7, "score": 0.5}), "thought"),
        (json!({"score": 0.5}), "thought"),
    ] {
        let (st, v) = rate(&nodes[2], &body);
        assert_eq!(st, 400, "{body} -> {v}");
        assert_eq!(v["field"], field, "{body} -> {v}");
    }
    let (st, v) = nodes[2].post_bytes("/v1/ratings", "application/json", b"{not json");
    assert_eq!(st, 400, "{v}");

    // A flood of ratings for thoughts that do not exist and of replays of a done rating:
    // every one answered 4xx, and Sprout signs nothing for any of them.
    let feed_before = nodes[2].account(&ids[2]).unwrap()["feed_len"].as_u64();
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..300u64 {
        let body = if i % 3 == 0 {
            json!({"thought": posted[1], "score": 0.5})
        } else {
            json!({"thought": format!("{:064x}", i + 1), "score": 0.5})
        };
        let (st, _) = rate(&nodes[2], &body);
        *statuses.entry(st).or_insert(0u32) += 1;
    }
    assert_eq!(statuses.get(&409), Some(&100), "{statuses:?}");
    assert_eq!(statuses.get(&404), Some(&200), "{statuses:?}");
    assert_eq!(
        nodes[2].account(&ids[2]).unwrap()["feed_len"].as_u64(),
        feed_before,
        "the flood made sprout sign something"
    );

    // Forged ratings through the events endpoint: one under Sprout's name with a broken
    // signature, and one signed by a key that is no member. Neither counts anywhere.
    let network = hex::decode(nodes[0].status().unwrap()["network"].as_str().unwrap()).unwrap();
    let network: [u8; 32] = network.try_into().unwrap();
    let stranger = Keypair::from_secret([9; 32]);
    let body = Body::Validate(Validate {
        thought: EventId::from_hex(&posted[0]).unwrap(),
        score_micro: 0,
        scorer: "forged".into(),
    });
    let fake = Event::sign(&stranger, &network, 1, EventId([7; 32]), now_ms(), body);
    let r = nodes[1]
        .post_frames("/v1/events", &framed(&[fake]))
        .unwrap();
    assert_eq!(r["admitted"], 0, "{r}");
    let settled_ratings = |n: &Node| thought(n, &posted[0]).unwrap()["committee"]["rated"].clone();
    assert_eq!(settled_ratings(&nodes[1]), 2);
    assert_eq!(settled_ratings(&nodes[0]), 2);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
