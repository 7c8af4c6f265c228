//! Property tests: the state root is a function of the event set (any order, any
//! duplication), and no byte string panics the decoder.

use proptest::prelude::*;
use web4fed_core::event::{Body, Event};
use web4fed_core::genesis::Genesis;
use web4fed_core::ledger::Ledger;
use web4fed_core::testkit::{sentence, Author};

const T0: u64 = 1_767_225_600_000;

/// One step a member may take in a generated history.
#[derive(Debug, Clone)]
enum Step {
    Thought {
        member: usize,
        gap_ms: u64,
        text: u64,
    },
    Garbage {
        member: usize,
        gap_ms: u64,
    },
    Repeat {
        member: usize,
        gap_ms: u64,
    },
    Transfer {
        member: usize,
        to: usize,
        atp: u64,
        gap_ms: u64,
    },
    Validate {
        member: usize,
        score: u32,
        gap_ms: u64,
    },
    Equivocate {
        member: usize,
        gap_ms: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let m = 0usize..4;
    // Mostly paced like an honest member, with bursts (rate violations) and long silences
    // (decay, recharge, recency) mixed in.
    let gap = prop_oneof![1 => 0u64..50, 8 => 5_000u64..15_000, 1 => 0u64..30 * 3_600_000];
    prop_oneof![
        12 => (m.clone(), gap.clone(), 0u64..400).prop_map(|(member, gap_ms, text)| Step::Thought { member, gap_ms, text }),
        1 => (m.clone(), gap.clone()).prop_map(|(member, gap_ms)| Step::Garbage { member, gap_ms }),
        1 => (m.clone(), gap.clone()).prop_map(|(member, gap_ms)| Step::Repeat { member, gap_ms }),
        2 => (m.clone(), 0usize..4, 1u64..150, gap.clone()).prop_map(|(member, to, atp, gap_ms)| Step::Transfer { member, to, atp, gap_ms }),
        2 => (m.clone(), 0u32..=1_000_000, gap.clone()).prop_map(|(member, score, gap_ms)| Step::Validate { member, score, gap_ms }),
        // Only member 3 ever forks, so most histories keep three honest feeds going.
        1 => gap.prop_map(|gap_ms| Step::Equivocate { member: 3, gap_ms }),
    ]
}

/// Builds the event set of a generated history. Members' clocks advance independently, so
/// the canonical order interleaves feeds in ways no single arrival order would.
fn history(steps: &[Step]) -> (Genesis, Vec<Event>) {
    let g = Genesis {
        corpus_max_thoughts: 30,
        share_base_micro: 300_000,
        ..Genesis::with_pow_bits(4)
    };
    let mut authors: Vec<Author> = (0..4).map(|i| Author::from_seed(&g, 100 + i)).collect();
    let mut clocks = [T0; 4];
    let mut events = Vec::new();
    for (i, a) in authors.iter_mut().enumerate() {
        events.push(a.register(&g, &format!("member{i}"), T0 + i as u64));
        clocks[i] = T0 + i as u64;
    }
    let ids: Vec<_> = authors.iter().map(Author::id).collect();
    let mut last_thought = None;
    let mut equivocated = [false; 4];
    for s in steps {
        let (member, gap) = match s {
            Step::Thought { member, gap_ms, .. }
            | Step::Garbage { member, gap_ms }
            | Step::Repeat { member, gap_ms }
            | Step::Transfer { member, gap_ms, .. }
            | Step::Validate { member, gap_ms, .. }
            | Step::Equivocate { member, gap_ms } => (*member, *gap_ms),
        };
        if equivocated[member] {
            continue;
        }
        clocks[member] += gap;
        let t = clocks[member];
        let a = &mut authors[member];
        let ev = match s {
            Step::Thought { text, .. } => a.thought(t, &sentence(*text)),
            Step::Garbage { .. } => a.thought(t, "xxxxxxxxxxxxxxxxxxxxxxx"),
            Step::Repeat { .. } => a.thought(t, &sentence(member as u64)),
            Step::Transfer { to, atp, .. } => a.transfer(t, ids[*to], *atp),
            Step::Validate { score, .. } => match last_thought {
                Some(id) => a.validate(t, id, *score),
                None => continue,
            },
            Step::Equivocate { .. } => {
                // A second event at the seq of the member's latest one: a fork.
                let seq = a.next_seq();
                let (one, other, proof) =
                    a.equivocate(t, &sentence(1_000 + seq), &sentence(2_000 + seq));
                events.push(other);
                equivocated[member] = true;
                clocks[0] = clocks[0].max(t + 2);
                events.push(authors[0].next(clocks[0], Body::Evidence(Box::new(proof))));
                one
            }
        };
        if matches!(ev.body, Body::Thought(_)) {
            last_thought = Some(ev.id());
        }
        events.push(ev);
    }
    (g, events)
}

fn fold_in_order(g: &Genesis, events: &[Event], order: &[usize]) -> Ledger {
    let mut l = Ledger::new(g.clone());
    let now = T0 + 10 * 365 * 86_400_000;
    for &i in order {
        let _ = l.handle_event(now, events[i].clone());
    }
    l
}

/// A readable summary of the state, so a failing case shows what differs, not only a hash.
fn dump(l: &Ledger) -> Vec<String> {
    let g = l.genesis();
    let t = l.state().head_ms();
    let mut out: Vec<String> = l
        .state()
        .accounts()
        .map(|(id, a)| {
            format!(
                "{id} trust={} atp={} v={} {:?} last={}",
                a.trust_at(g, t),
                a.atp_at(g, t),
                a.violations,
                a.status,
                a.last_active_ms
            )
        })
        .collect();
    out.push(format!("head={t} corpus={}", l.state().corpus_len()));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// Any permutation of the same events, with duplicates, gives the same state root.
    #[test]
    fn any_order_and_duplication_gives_the_same_root(
        steps in prop::collection::vec(step(), 1..220),
        perm_seed in any::<u64>(),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let (g, events) = history(&steps);
        let n = events.len();
        let reference = fold_in_order(&g, &events, &(0..n).collect::<Vec<_>>());
        // A seeded shuffle plus duplicates anywhere.
        let mut order: Vec<usize> = (0..n).collect();
        let mut x = perm_seed | 1;
        for i in (1..n).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for d in &dups {
            let at = d.index(order.len());
            order.insert(at, order[d.index(n)]);
        }
        let shuffled = fold_in_order(&g, &events, &order);
        prop_assert_eq!(dump(&shuffled), dump(&reference));
        prop_assert_eq!(shuffled.state_root(), reference.state_root());
        prop_assert_eq!(shuffled.state().corpus_len(), reference.state().corpus_len());
        // Recent epoch roots (what heartbeats compare) agree too.
        // (The newest event held, which may be an ejected member's: those leave the state's
        // head alone but the fold still passes their epochs.)
        let newest = events.iter().map(Event::timestamp_ms).max().unwrap_or(T0) / g.epoch_ms;
        prop_assert!(reference.epoch_root(newest - 1).is_some());
        for e in newest.saturating_sub(8)..=newest + 1 {
            prop_assert_eq!(shuffled.epoch_root(e), reference.epoch_root(e), "epoch {}", e);
        }
        // And the batch path (one fold at the end) agrees too.
        let mut batch = Ledger::new(g.clone());
        batch.handle_batch(T0 + 10 * 365 * 86_400_000, order.iter().rev().map(|&i| events[i].clone()));
        prop_assert_eq!(dump(&batch), dump(&reference));
        prop_assert_eq!(batch.state_root(), reference.state_root());
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2_000)) {
        let _ = Event::decode(&bytes);
    }

    /// Mutated valid events never panic the decoder, and whatever decodes re-encodes to the
    /// same bytes (the encoding is canonical).
    #[test]
    fn mutated_events_never_panic(
        steps in prop::collection::vec(step(), 1..10),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let (_, events) = history(&steps);
        for ev in &events {
            let mut b = ev.bytes().to_vec();
            for (i, v) in &flips {
                let at = i.index(b.len());
                b[at] ^= *v;
            }
            if let Ok(d) = Event::decode(&b) {
                prop_assert_eq!(d.bytes(), &b[..]);
            }
            let _ = Event::decode(&b[..cut.index(b.len() + 1)]);
        }
    }
}

/// A thousand random byte strings, deterministic, over every kind tag: none panics.
#[test]
fn a_thousand_random_strings_never_panic() {
    let mut x: u64 = 0x243f_6a88_85a3_08d3;
    for i in 0..1_000 {
        let len = (i * 7) % 700;
        let mut b: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        if b.len() > 80 {
            b[0] = 1; // a valid version, so decoding goes deeper
            b[81] = (i % 6) as u8; // every kind tag and one unknown
        }
        let _ = Event::decode(&b);
    }
}
