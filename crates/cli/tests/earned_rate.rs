//! The seed's Test 6 on real processes: Legion earns 1,000 ATP through accepted, well-rated
//! thoughts (no transfers), its rate limit doubles, and Thor and Sprout accept exactly the
//! quota Legion's balance allows and refuse the next, with the same roots.
//!
//! The genesis is scaled so the run takes seconds rather than days: a 10 s rate window, 10
//! ATP per accepted thought and up to 40 ATP more from the committee's median rating.

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use web4fed_core::event::{Body, Event, EventId};
use web4fed_store::node_dir::NodeDir;

const WINDOW_MS: u64 = 10_000;
const ACCEPT_REWARD_ATP: u64 = 10;
const RATING_REWARD_ATP: u64 = 40;
/// The balance at which the rate bonus is full (the default genesis value, 1,000 ATP).
const FULL_BONUS_MILLI: u64 = 1_000_000;

fn member(n: &Node) -> String {
    n.status().unwrap()["member"].as_str().unwrap().to_string()
}

fn acct(n: &Node, m: &str) -> Value {
    n.account(m).unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Legion's thoughts as node `n` holds them, by id: their verdicts.
fn verdicts(n: &Node) -> std::collections::BTreeMap<String, Value> {
    n.get("/v1/thoughts?limit=200").unwrap()["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_string(), t["verdict"].clone()))
        .collect()
}

#[test]
fn legion_earns_a_thousand_atp_by_rated_thoughts_and_everyone_honours_the_doubled_quota() {
    let root = tempfile::tempdir().unwrap();
    let g = genesis(
        root.path(),
        "test6.toml",
        &[
            &format!("rate_window_ms={WINDOW_MS}"),
            &format!("atp_reward_milli={}", ACCEPT_REWARD_ATP * 1_000),
            &format!("atp_reward_high_milli={}", ACCEPT_REWARD_ATP * 1_000),
            &format!("rating_reward_milli={}", RATING_REWARD_ATP * 1_000),
        ],
    );
    let mut nodes: Vec<Node> = ["legion", "thor", "sprout"]
        .iter()
        .map(|n| Node::init(root.path(), n, Some(&g)))
        .collect();
    start_federation(&mut nodes, &[]);
    let ids: Vec<String> = nodes.iter().map(member).collect();
    let legion = ids[0].clone();
    let start = acct(&nodes[1], &legion);
    let limit_at_start = start["thought_limit"].as_u64().unwrap();
    let atp_at_start = start["atp_milli"].as_u64().unwrap();

    // Earning: one thought every 1.2 s (under the limit, 8 in a window), each rated by Thor's
    // and Sprout's nodes, until Thor and Sprout both see Legion at 1,000 ATP.
    let began = Instant::now();
    let mut posted = 0u64;
    while acct(&nodes[1], &legion)["atp_milli"].as_u64().unwrap() < FULL_BONUS_MILLI
        || acct(&nodes[2], &legion)["atp_milli"].as_u64().unwrap() < FULL_BONUS_MILLI
    {
        assert!(
            posted < 200,
            "1,000 ATP not reached after {posted} thoughts"
        );
        let (st, v) = nodes[0].submit(&sentence(3_000 + posted));
        assert_eq!(st, 201, "{v}");
        posted += 1;
        std::thread::sleep(Duration::from_millis(1_200));
    }
    let earned_in = began.elapsed();
    // Every thought settled and every node agrees on what Legion holds.
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("every thought settled everywhere", &refs, || {
        nodes.iter().all(|n| {
            n.get("/v1/thoughts?limit=200").is_some_and(|v| {
                v["thoughts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|t| t["author"] == legion.as_str())
                    .all(|t| t["committee"]["settled"] == true)
            })
        })
    });
    let a = acct(&nodes[1], &legion);
    let accepted = a["thoughts_accepted"].as_u64().unwrap();
    let atp_now = a["atp_milli"].as_u64().unwrap();
    let from_acceptance = accepted * ACCEPT_REWARD_ATP * 1_000;
    let from_ratings = atp_now.saturating_sub(atp_at_start + from_acceptance);
    eprintln!(
        "legion: {accepted} thoughts accepted in {earned_in:.1?}; ATP {} -> {}: {} from \
         acceptance, {} from ratings; without ratings it would need {} thoughts",
        atp_at_start / 1_000,
        atp_now / 1_000,
        from_acceptance / 1_000,
        from_ratings / 1_000,
        (FULL_BONUS_MILLI - atp_at_start).div_ceil(ACCEPT_REWARD_ATP * 1_000)
    );
    assert!(from_ratings > 0, "ratings paid nothing");
    // No transfer was made: the whole balance is the start, the rewards, and the recharge.
    assert_eq!(a["violations"], 0);

    // The rate limit doubled: the ATP part of the factor is full (×2).
    let trust = a["trust"].as_f64().unwrap();
    let base_at_trust = (10.0 * (1.0 + 0.5 * trust) + 1e-9).floor() as u64;
    let limit = a["thought_limit"].as_u64().unwrap();
    eprintln!(
        "legion: limit {limit_at_start} at the start, {limit} now (trust {trust:.3}; \
         {base_at_trust} at this trust without the ATP bonus)"
    );
    assert!((a["rate_factor"].as_f64().unwrap() - 2.0 * (1.0 + 0.5 * trust)).abs() < 1e-5);
    assert!(limit >= 2 * base_at_trust, "{limit} vs {base_at_trust}");

    // An empty window, then a burst: Legion's node signs thoughts until its own rate layer
    // refuses one.
    std::thread::sleep(Duration::from_millis(WINDOW_MS + 500));
    let mut burst: Vec<(String, u64)> = Vec::new();
    let refusal = loop {
        let (st, v) = nodes[0].submit(&sentence(5_000 + burst.len() as u64));
        match st {
            201 => burst.push((
                v["id"].as_str().unwrap().to_string(),
                v["seq"].as_u64().unwrap(),
            )),
            429 => break v,
            _ => panic!("{st} {v}"),
        }
        assert!(burst.len() < 200, "no refusal");
    };
    assert_eq!(refusal["rule"], "thoughts_per_window", "{refusal}");
    let quota = refusal["detail"]["limit"].as_u64().unwrap();
    assert_eq!(burst.len() as u64, quota, "{refusal}");
    assert!(
        quota >= limit,
        "the limit only grows with trust: {quota} vs {limit}"
    );
    eprintln!("legion: burst of {quota} accepted in one window, the next refused by its own node");

    // Legion's node stops, and the next thought is signed with its key by hand and handed to
    // Thor: Thor and Sprout refuse it at layer 2 with the same count and limit.
    let burst_began = Instant::now();
    assert!(nodes[0].terminate());
    let live: Vec<&Node> = nodes[1..].iter().collect();
    let live = &live[..];
    wait("the burst on thor and sprout", live, || {
        nodes[1..].iter().all(|n| {
            let v = verdicts(n);
            burst.iter().all(|(id, _)| v.contains_key(id))
        })
    });
    let key = web4fed_store::keyfile::read(&NodeDir::new(&nodes[0].dir).key()).unwrap();
    let network: [u8; 32] = hex::decode(nodes[1].status().unwrap()["network"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let (last_id, last_seq) = burst.last().unwrap().clone();
    let next = Event::sign(
        &key,
        &network,
        last_seq + 1,
        EventId::from_hex(&last_id).unwrap(),
        now_ms(),
        Body::Thought(sentence(9_999)),
    );
    let next_id = next.id().to_hex();
    assert!(
        burst_began.elapsed() < Duration::from_millis(WINDOW_MS / 2),
        "the next thought must fall in the burst's window"
    );
    let r = nodes[1]
        .post_frames("/v1/events", &framed(&[next]))
        .unwrap();
    assert_eq!(r["admitted"], 1, "{r}");
    wait("the refusal on thor and sprout", live, || {
        nodes[1..]
            .iter()
            .all(|n| verdicts(n).contains_key(&next_id))
    });
    for n in &nodes[1..] {
        let v = verdicts(n);
        let accepted_in_burst = burst
            .iter()
            .filter(|(id, _)| v[id]["verdict"] == "accepted")
            .count() as u64;
        assert_eq!(accepted_in_burst, quota, "{}: accepted", n.name);
        let refused = &v[&next_id];
        assert_eq!(refused["verdict"], "refused", "{}: {refused}", n.name);
        assert_eq!(
            refused["rule"], "thoughts_per_window",
            "{}: {refused}",
            n.name
        );
        assert_eq!(refused["limit"], quota, "{}: {refused}", n.name);
        assert_eq!(refused["count"], quota + 1, "{}: {refused}", n.name);
    }
    wait("thor and sprout on one root", live, || {
        let a = nodes[1].head();
        a.is_some() && a == nodes[2].head()
    });
}
