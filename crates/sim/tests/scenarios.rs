//! The CI set of simulations: every quick scenario on fixed seeds must keep every invariant
//! and show its defence working; the same seed must give the same report byte for byte; and
//! seeds that once found bugs stay here.

use web4fed_sim::{report, run, scenario, Outcome};

fn outcomes(name: &str, seeds: std::ops::RangeInclusive<u64>) -> Vec<Outcome> {
    let cfg = scenario::config(name).unwrap();
    seeds.map(|s| run(&cfg, s)).collect()
}

fn assert_passed(os: &[Outcome]) {
    for o in os {
        assert!(
            o.passed(),
            "{} seed={} broke invariants: {:?}\nreplay: web4fed sim --scenario {} --seed {}",
            o.name,
            o.seed,
            o.failures,
            o.name,
            o.seed
        );
    }
}

/// Index of the (single) attacker in a scenario: the first non-honest node.
fn attacker(name: &str) -> usize {
    scenario::config(name)
        .unwrap()
        .behaviours
        .iter()
        .position(|b| !b.is_honest())
        .unwrap()
}

#[test]
fn every_quick_scenario_keeps_its_invariants() {
    for name in scenario::quick() {
        let os = outcomes(name, 1..=2);
        assert_passed(&os);
        let s = report::summarise(name, &os);
        assert!(s.acked > 0, "{name}: honest nodes acknowledged nothing");
    }
}

#[test]
fn attackers_are_ejected_by_evidence() {
    for name in [
        "spam",
        "forger",
        "equivocator",
        "atp-forger",
        "garbage",
        "timing",
    ] {
        let a = attacker(name);
        for o in outcomes(name, 1..=2) {
            assert!(o.passed(), "{name} seed={}: {:?}", o.seed, o.failures);
            assert!(
                o.ejected.iter().any(|(i, _)| *i == a),
                "{name} seed={}: attacker not ejected",
                o.seed
            );
            assert!(
                o.stats.time_to_eject_ms.is_some(),
                "{name}: no time to eject"
            );
            // Only the attacker is ever ejected.
            assert!(
                o.ejected.iter().all(|(i, _)| *i == a),
                "{name}: {:?}",
                o.ejected
            );
        }
    }
}

#[test]
fn sybils_pay_pow_and_eclipse_is_reported_honestly() {
    for o in outcomes("sybil", 1..=2) {
        assert_eq!(
            o.stats.sybils,
            (17, 12),
            "only the twelve with a valid PoW get in"
        );
        assert!(!o.stats.finalized.is_empty(), "and finality holds");
    }
    for o in outcomes("eclipse", 1..=2) {
        assert!(o.passed());
        assert!(
            o.stats.converged < o.stats.honest_nodes,
            "a fully eclipsed victim cannot converge; if it did, the scenario is not an eclipse"
        );
    }
    for o in outcomes("eclipse-partial", 1..=2) {
        assert_eq!(o.stats.converged, o.stats.honest_nodes);
    }
    for o in outcomes("timing", 1..=1) {
        assert!(
            o.stats.future_held > 0,
            "future-dated events wait in the future pool"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let names = ["faults", "equivocator", "partition"];
    let make = || {
        let sums: Vec<_> = names
            .iter()
            .map(|n| report::summarise(n, &outcomes(n, 3..=4)))
            .collect();
        let mut text = report::markdown(&sums, "test");
        for (f, svg) in report::plots(&sums) {
            text.push_str(&f);
            text.push_str(&svg);
        }
        text
    };
    let text = make();
    assert_eq!(text, make());
    // Every row of the table has as many cells as its header.
    let table: Vec<&str> = text.lines().filter(|l| l.starts_with("| ")).collect();
    let cells = |l: &str| l.matches(" | ").count();
    assert!(table.len() > names.len());
    for row in &table {
        assert_eq!(cells(row), cells(table[0]), "{row}");
    }
}

/// Seeds that found bugs. Each failed before its fix.
#[test]
fn regression_seeds() {
    // equivocator seed=1: anti-entropy compared feed lengths only, so two nodes holding the
    // two branches of a fork (equal lengths) never exchanged them and never converged. Fixed
    // by comparing feed heads as well (Ledger::feed_heads, heartbeat digests, sync summaries).
    assert_passed(&outcomes("equivocator", 1..=1));
    // eclipse seed=1: the invariants demanded that the eclipsed victim's own events reach the
    // others, which no protocol can do with no honest link; the victim is now reported.
    assert_passed(&outcomes("eclipse", 1..=1));
    // faults seed=1: crash, loss, duplication, skew and a one-way partition together.
    assert_passed(&outcomes("faults", 1..=1));
    // silent seeds 1032 and 1070 (found by the 2,000-seed soak of the replica): under gossip
    // fan-out 2 a node missed a vote and the certificate, and waited for the 10 s periodic
    // sync, which picked the silent member; finality stalled past the healed phase. Fixed by
    // a sync round per heartbeat, rotating over peers, while finality lags.
    assert_passed(&outcomes("silent", 1032..=1032));
    assert_passed(&outcomes("silent", 1070..=1070));
    // Found while moving agreement to Tendermint: silent seed 1 (a value named the
    // certificate before the latest as its `prev`); finality-byzantine seed 12 (a node
    // refused a certificate signed by a double voter ejected since); latency-1000 seed 2
    // (rounds shorter than the links).
    assert_passed(&outcomes("silent", 1..=1));
    assert_passed(&outcomes("finality-byzantine", 12..=12));
    assert_passed(&outcomes("latency-1000", 2..=2));
}

#[test]
fn finality_holds_under_a_third_byzantine_and_waits_out_a_partition() {
    // Two double voters of seven: they are ejected by their own votes, and finality goes on.
    for o in outcomes("finality-byzantine", 1..=2) {
        assert!(o.passed(), "{:?}", o.failures);
        assert!(
            o.ejected.len() == 2,
            "both double voters ejected: {:?}",
            o.ejected
        );
        assert!(!o.stats.finalized.is_empty());
    }
    for o in outcomes("finality-withhold", 1..=2) {
        assert!(o.passed(), "{:?}", o.failures);
        assert!(!o.stats.finalized.is_empty());
    }
    // {0,1} | {2,3} from 10 s to 40 s: no side holds two thirds, so no epoch ending inside
    // the partition (after the last pre-partition votes) is ever certified; after the heal
    // finality resumes (the invariant checks that).
    let cfg = scenario::config("finality-partition").unwrap();
    let epoch_ms = cfg.genesis.epoch_ms;
    for o in outcomes("finality-partition", 1..=2) {
        assert!(o.passed(), "{:?}", o.failures);
        let start = (web4fed_sim::T0 + 10_000) / epoch_ms;
        let end = (web4fed_sim::T0 + 40_000) / epoch_ms;
        let inside: Vec<u64> = o
            .stats
            .finalized
            .iter()
            .copied()
            .filter(|e| *e > start && *e + 1 < end)
            .collect();
        assert!(
            inside.is_empty(),
            "certified during the partition: {inside:?}"
        );
        assert!(o.stats.finalized.iter().any(|e| *e >= end));
    }
}

/// Certificate-chain forks (found by soaking `faults`): a node that certified checkpoint e
/// while the others, not yet holding that certificate, certified the next checkpoint on e's
/// predecessor refused every later certificate and its finality stalled. Fixed by the fork
/// choice in `Ledger::handle_certificate` (the branch that reaches further wins).
#[test]
fn regression_certificate_chain_forks() {
    for seed in [2009, 2015, 2071, 4192, 4236] {
        assert_passed(&outcomes("faults", seed..=seed));
    }
}
