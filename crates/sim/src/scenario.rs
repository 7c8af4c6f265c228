//! Named scenarios: the seed's tests, its research questions (latency, scale) and one per
//! adversary. Each is a [`Config`]; a seed makes it one exact run.

use crate::{Behaviour, Config, Crash, Dissemination, Partition};
use web4fed_core::genesis::Genesis;

/// PoW difficulty in the simulator: real proofs, cheap enough for hundreds of members.
pub const SIM_POW_BITS: u8 = 8;

fn base(name: &str, behaviours: Vec<Behaviour>) -> Config {
    Config {
        name: name.into(),
        behaviours,
        latency_ms: 10,
        jitter_ms: 5,
        loss_ppm: 0,
        dup_ppm: 0,
        dissemination: Dissemination::FullMesh,
        fault_ms: 60_000,
        heal_ms: 30_000,
        partitions: Vec::new(),
        crashes: Vec::new(),
        max_skew_ms: 0,
        honest_per_minute: 6,
        heartbeat_ms: 1_000,
        // Rating windows a fifth of a run's length, so thoughts whose committees hold a
        // silent seat settle (or lapse) within the run and the report shows it.
        genesis: Genesis {
            rating_window_ms: 20_000,
            ..Genesis::with_pow_bits(SIM_POW_BITS)
        },
        exempt_from_convergence: Vec::new(),
        links: None,
        peer_set: false,
        expect_finality: true,
    }
}

fn honest(n: usize) -> Vec<Behaviour> {
    vec![Behaviour::Honest; n]
}

fn with(mut v: Vec<Behaviour>, extra: &[Behaviour]) -> Vec<Behaviour> {
    v.extend_from_slice(extra);
    v
}

/// Every scenario name, in report order.
pub const ALL: &[&str] = &[
    "basic",
    "spam",
    "partition",
    "forger",
    "faults",
    "restart",
    "garbage",
    "sybil",
    "equivocator",
    "atp-forger",
    "timing",
    "eclipse",
    "eclipse-partial",
    "silent",
    "finality-byzantine",
    "finality-withhold",
    "finality-partition",
    "latency-1",
    "latency-10",
    "latency-100",
    "latency-1000",
    "scale-3-mesh",
    "scale-10-mesh",
    "scale-30-mesh",
    "scale-100-mesh",
    "scale-200-mesh",
    "scale-3-gossip",
    "scale-10-gossip",
    "scale-30-gossip",
    "scale-100-gossip",
    "scale-200-gossip",
    "scale-10-peers",
    "scale-30-peers",
    "scale-100-peers",
    "scale-300-peers",
    "scale-1000-peers",
    "scale-10-idle",
    "scale-30-idle",
    "scale-100-idle",
    "scale-300-idle",
    "scale-1000-idle",
];

/// Scenarios too slow for every CI run (hundreds of nodes, each folding every event).
pub const SLOW: &[&str] = &[
    "scale-100-mesh",
    "scale-200-mesh",
    "scale-100-gossip",
    "scale-200-gossip",
    "scale-100-peers",
    "scale-300-peers",
    "scale-1000-peers",
    "scale-100-idle",
    "scale-300-idle",
    "scale-1000-idle",
];

/// Scenarios quick enough for every CI run: all but [`SLOW`].
pub fn quick() -> Vec<&'static str> {
    ALL.iter().copied().filter(|n| !SLOW.contains(n)).collect()
}

/// What each scenario shows, for the report.
pub fn describe(name: &str) -> &'static str {
    match name {
        "basic" => "Seed Test 1: three honest nodes post and replicate.",
        "spam" => "Seed Test 2: a member signs thoughts far above its rate limit.",
        "partition" => "Seed Test 3: {0} | {1,2} for 30 s with 1 % loss, then heal.",
        "forger" => "Seed Test 4: a member relays events with forged signatures in envelopes it signs.",
        "faults" => "Loss 5 %, duplication 2 %, 50 ms jitter, 2 s clock skew, a crash and restart, a one-way partition.",
        "restart" => "One node restarts from its newest snapshot plus the log after it; another comes back after 110 s down and catches up on every certificate it missed.",
        "garbage" => "Corpus poisoning: low-quality and near-duplicate thoughts at the full rate.",
        "sybil" => "Sybil swarm: twelve silent registrations with valid PoW (4:1 against three honest founders), five without.",
        "equivocator" => "Two different events at one seq, each sent to half the peers.",
        "atp-forger" => "Transfers beyond the balance, and transfers claiming another member as author.",
        "timing" => "Future-dated (+1 h) and back-dated events, bursts at the rate window's edge.",
        "eclipse" => "Node 0's only links are six Sybils that drop everything: fully eclipsed.",
        "eclipse-partial" => "As eclipse, but node 0 keeps one honest link.",
        "silent" => "A member that relays and answers nothing, under gossip fan-out 2.",
        "finality-byzantine" => "Two of seven members sign two different roots per checkpoint (under a third of the weight).",
        "finality-withhold" => "Two of seven members never sign (withholding under a third of the weight).",
        "finality-partition" => "{0,1} | {2,3} for 30 s: no side holds two thirds, so nothing finalises until the heal.",
        n if n.starts_with("latency-") => "Research question 1: the same federation at one link latency.",
        n if n.starts_with("scale-") => "Research question 2: messages per event and convergence as the federation grows.",
        _ => "",
    }
}

/// The configuration of a named scenario, or `None` for an unknown name.
pub fn config(name: &str) -> Option<Config> {
    use Behaviour::*;
    let c = match name {
        "basic" => base(name, honest(3)),
        "spam" => base(name, with(honest(3), &[Spammer])),
        "partition" => {
            let mut c = base(name, honest(3));
            c.loss_ppm = 10_000;
            c.partitions.push(Partition {
                from_ms: 10_000,
                until_ms: 40_000,
                groups: vec![vec![0], vec![1, 2]],
                one_way: false,
            });
            c
        }
        "forger" => base(name, with(honest(3), &[Forger])),
        "faults" => {
            let mut c = base(name, honest(5));
            c.loss_ppm = 50_000;
            c.dup_ppm = 20_000;
            c.jitter_ms = 50;
            c.max_skew_ms = 2_000;
            c.crashes.push(Crash {
                node: 1,
                at_ms: 20_000,
                restart_ms: 35_000,
                from_snapshot: false,
            });
            c.partitions.push(Partition {
                from_ms: 10_000,
                until_ms: 25_000,
                groups: vec![vec![0, 1], vec![2, 3, 4]],
                one_way: true,
            });
            c
        }
        "restart" => {
            // Long enough for certified history to leave memory and a snapshot to be written
            // (a base every 30 s of event time, a minute behind the newest certificate), then
            // a crash and a restart from it under loss and jitter. Node 3 is down from 30 s
            // to 140 s: back, it must check every certificate it missed against its own
            // fold of epochs long past (found by this scenario: it kept only the last 64
            // epochs' checkpoints and stalled at the first certificate it could not check).
            let mut c = base(name, honest(5));
            c.loss_ppm = 20_000;
            c.jitter_ms = 30;
            c.fault_ms = 150_000;
            c.crashes.push(Crash {
                node: 2,
                at_ms: 130_000,
                restart_ms: 140_000,
                from_snapshot: true,
            });
            c.crashes.push(Crash {
                node: 3,
                at_ms: 30_000,
                restart_ms: 140_000,
                from_snapshot: false,
            });
            c
        }
        "garbage" => base(name, with(honest(3), &[Garbage])),
        "sybil" => {
            // Twelve admitted Sybils against three honest founders (4:1), five more without
            // PoW. Admitted Sybils are not founders and earned nothing: they weigh nothing,
            // and finality must hold.
            let mut b = honest(3);
            b.extend([Sybil; 12]);
            b.extend([SybilNoPow; 5]);
            base(name, b)
        }
        "equivocator" => base(name, with(honest(4), &[Equivocator])),
        "atp-forger" => base(name, with(honest(3), &[AtpForger])),
        "timing" => {
            let mut c = base(name, with(honest(3), &[Timing]));
            c.max_skew_ms = 2_000;
            c
        }
        "eclipse" | "eclipse-partial" => {
            let mut c = base(name, with(honest(4), &[Sybil; 6]));
            let sybils: Vec<usize> = (4..10).collect();
            let mut links: Vec<Vec<usize>> = vec![Vec::new(); 10];
            links[0] = sybils.clone();
            if name == "eclipse-partial" {
                links[0].push(1);
            }
            for (i, l) in links.iter_mut().enumerate().take(4).skip(1) {
                *l = (0..10).filter(|j| *j != i && *j != 0).collect();
                if name == "eclipse-partial" && i == 1 {
                    l.push(0);
                }
            }
            for &s in &sybils {
                links[s] = (0..10).filter(|j| *j != s).collect();
            }
            c.links = Some(links);
            if name == "eclipse" {
                c.exempt_from_convergence = vec![0];
            }
            // The victim holds a quarter of the founders' weight and never hears the others:
            // it cannot finalise (and must not finalise alone); the three others can.
            c.expect_finality = false;
            c
        }
        "finality-byzantine" => base(name, with(honest(5), &[DoubleVoter, DoubleVoter])),
        "finality-withhold" => base(name, with(honest(5), &[Withholder, Withholder])),
        "finality-partition" => {
            let mut c = base(name, honest(4));
            c.partitions.push(Partition {
                from_ms: 10_000,
                until_ms: 40_000,
                groups: vec![vec![0, 1], vec![2, 3]],
                one_way: false,
            });
            c
        }
        "silent" => {
            let mut c = base(name, with(honest(4), &[Silent]));
            c.dissemination = Dissemination::Gossip { fanout: 2 };
            c
        }
        _ => {
            if let Some(ms) = name.strip_prefix("latency-") {
                let ms: u64 = ms.parse().ok()?;
                let mut c = base(name, honest(3));
                c.latency_ms = ms;
                c.jitter_ms = ms / 2;
                c
            } else if let Some(rest) = name.strip_prefix("scale-") {
                let (n, mode) = rest.split_once('-')?;
                let n: usize = n.parse().ok()?;
                let mut c = base(name, honest(n));
                c.fault_ms = 30_000;
                c.heal_ms = 30_000;
                c.honest_per_minute = 2;
                c.dissemination = match mode {
                    "mesh" => Dissemination::FullMesh,
                    "gossip" => Dissemination::Gossip { fanout: 6 },
                    // What the daemon does: bounded neighbour sets, a gossipsub mesh on them.
                    "peers" => {
                        c.peer_set = true;
                        Dissemination::FullMesh
                    }
                    // The same federation with nothing posted: what a node pays to stay
                    // in it (heartbeats, votes, presence).
                    "idle" => {
                        c.peer_set = true;
                        c.honest_per_minute = 0;
                        Dissemination::FullMesh
                    }
                    _ => return None,
                };
                c
            } else {
                return None;
            }
        }
    };
    Some(c)
}
