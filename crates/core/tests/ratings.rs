//! Committee ratings: what settles a thought, what the author and each rater get for it, and
//! that the outcome does not depend on the order the ratings arrive in.

use web4fed_core::event::{Body, Event, EventId};
use web4fed_core::fixed::{mul_div, MICRO};
use web4fed_core::genesis::Genesis;
use web4fed_core::ledger::{Admission, Ledger};
use web4fed_core::testkit::{sentence, Author};
use web4fed_core::verdict::{Ignored, Verdict};

const T0: u64 = 1_767_225_600_000;

fn admit(l: &mut Ledger, now: u64, ev: Event) -> EventId {
    let id = ev.id();
    assert_eq!(l.handle_event(now, ev), Ok(Admission::Admitted));
    id
}

/// Four members (a committee of three for each thought), one thought by the first.
fn setup() -> (Genesis, Ledger, Vec<Author>, EventId, u64) {
    let g = Genesis::with_pow_bits(8);
    let mut l = Ledger::new(g.clone());
    let mut ms: Vec<Author> = (0..4u64)
        .map(|i| {
            let mut a = Author::from_seed(&g, i + 1);
            let ev = a.register(&g, &format!("m{i}"), T0);
            admit(&mut l, T0, ev);
            a
        })
        .collect();
    let t = T0 + 1_000;
    let ev = ms[0].thought(t, &sentence(7));
    let thought = admit(&mut l, t, ev);
    assert_eq!(l.verdict(&thought), Some(&Verdict::Accepted));
    (g, l, ms, thought, t)
}

/// Every event of the members' feeds, newest first: another arrival order for the same log.
fn newest_first(l: &Ledger, ms: &[Author]) -> Vec<Event> {
    let mut all: Vec<Event> = Vec::new();
    for m in ms {
        for s in 0..l.feed_len(&m.id()) {
            all.push((**l.feed_event(&m.id(), s).unwrap()).clone());
        }
    }
    all.reverse();
    all
}

fn atp(l: &Ledger, a: &Author, t: u64) -> u64 {
    l.state().account(&a.id()).unwrap().atp_at(l.genesis(), t)
}

fn trust(l: &Ledger, a: &Author) -> u64 {
    l.state()
        .account(&a.id())
        .unwrap()
        .trust_at(l.genesis(), T0)
}

#[test]
fn a_fully_rated_thought_pays_by_the_median_and_charges_the_stray_rater() {
    let (g, mut l, mut ms, thought, t) = setup();
    let committee = l.state().thought(&thought).unwrap().committee.clone();
    assert_eq!(committee.len(), 3);
    let scores = [900_000u32, 800_000, 100_000];
    let before: Vec<(u64, u64)> = ms.iter().map(|m| (atp(&l, m, t), trust(&l, m))).collect();
    // Each committee member rates in turn; nothing is paid before the last rating.
    for (k, (rater, score)) in committee.iter().zip(scores).enumerate() {
        let i = ms.iter().position(|m| m.id() == *rater).unwrap();
        let tr = t + 100 + k as u64;
        let ev = ms[i].validate(tr, thought, score);
        let id = admit(&mut l, tr, ev);
        assert_eq!(l.verdict(&id), Some(&Verdict::Accepted));
        let entry = l.state().thought(&thought).unwrap();
        assert_eq!(entry.settled, k == 2);
        if k < 2 {
            assert_eq!(atp(&l, &ms[0], t), before[0].0, "paid before settling");
        }
    }
    let entry = l.state().thought(&thought).unwrap();
    let median = 800_000;
    assert_eq!(entry.median_rating(), Some(median));
    let t_end = t + 200;
    assert_eq!(
        atp(&l, &ms[0], t_end),
        before[0].0 + mul_div(g.rating_reward_milli, median, MICRO)
    );
    assert_eq!(
        trust(&l, &ms[0]),
        before[0].1 + mul_div(g.rating_trust_gain_micro, median, MICRO)
    );
    for (rater, score) in committee.iter().zip(scores) {
        let i = ms.iter().position(|m| m.id() == *rater).unwrap();
        if u64::from(score).abs_diff(median) <= g.rating_tolerance_micro {
            assert_eq!(atp(&l, &ms[i], t_end), before[i].0 + g.rater_reward_milli);
            assert_eq!(trust(&l, &ms[i]), before[i].1);
        } else {
            assert_eq!(atp(&l, &ms[i], t_end), before[i].0);
            assert_eq!(trust(&l, &ms[i]), before[i].1 - g.rater_stray_penalty_micro);
        }
    }
    // A second rating by a committee member, and one by the author (never on its own
    // committee), change nothing.
    let again = ms
        .iter()
        .position(|m| m.id() == committee[0])
        .map(|i| ms[i].validate(t + 300, thought, 0))
        .unwrap();
    let id = admit(&mut l, t + 300, again);
    assert_eq!(
        l.verdict(&id),
        Some(&Verdict::Ignored(Ignored::AlreadyRated))
    );
    let own = ms[0].validate(t + 301, thought, MICRO as u32);
    let id = admit(&mut l, t + 301, own);
    assert_eq!(
        l.verdict(&id),
        Some(&Verdict::Ignored(Ignored::NotInCommittee))
    );
    assert_eq!(
        atp(&l, &ms[0], t_end),
        before[0].0 + mul_div(g.rating_reward_milli, median, MICRO)
    );
}

#[test]
fn the_settlement_does_not_depend_on_arrival_order() {
    let (g, mut l, mut ms, thought, t) = setup();
    let committee = l.state().thought(&thought).unwrap().committee.clone();
    for (k, rater) in committee.iter().enumerate() {
        let i = ms.iter().position(|m| m.id() == *rater).unwrap();
        let tr = t + 100 + k as u64;
        let ev = ms[i].validate(tr, thought, 300_000 + 250_000 * k as u32);
        admit(&mut l, tr, ev);
    }
    assert!(l.state().thought(&thought).unwrap().settled);
    // The same events, newest first, on another ledger.
    let all = newest_first(&l, &ms);
    let mut l2 = Ledger::new(g);
    let now = t + 1_000;
    for ev in all {
        let _ = l2.handle_event(now, ev);
    }
    assert!(l2.state().thought(&thought).unwrap().settled);
    assert_eq!(l2.state_root(), l.state_root());
}

#[test]
fn a_silent_seat_cannot_hold_a_quorum_back_and_ratings_close_with_the_window() {
    let (g, mut l, mut ms, thought, t) = setup();
    let committee = l.state().thought(&thought).unwrap().committee.clone();
    let before = atp(&l, &ms[0], t);
    // Two of three seats rate; the third never does.
    let mut raters = Vec::new();
    for (k, rater) in committee.iter().take(2).enumerate() {
        let i = ms.iter().position(|m| m.id() == *rater).unwrap();
        let tr = t + 100 + k as u64;
        let ev = ms[i].validate(tr, thought, 600_000 + 100_000 * k as u32);
        admit(&mut l, tr, ev);
        raters.push(i);
    }
    assert!(!l.state().thought(&thought).unwrap().settled);
    // The window ends; the next event in the log (anyone's) is where it closes.
    let end = t + g.rating_window_ms;
    let silent = ms.iter().position(|m| m.id() == committee[2]).unwrap();
    let late = ms[silent].validate(end, thought, 0);
    let late_id = admit(&mut l, end, late);
    assert_eq!(
        l.verdict(&late_id),
        Some(&Verdict::Ignored(Ignored::RatingClosed))
    );
    let e = l.state().thought(&thought).unwrap();
    assert!(e.settled && e.closed);
    assert_eq!(e.median_rating(), Some(650_000));
    assert_eq!(
        atp(&l, &ms[0], end),
        before + mul_div(g.rating_reward_milli, 650_000, MICRO)
    );

    // Order does not matter: the same events newest first.
    let all = newest_first(&l, &ms);
    let mut l2 = Ledger::new(g);
    for ev in all {
        let _ = l2.handle_event(end + 1_000, ev);
    }
    assert_eq!(l2.state_root(), l.state_root());
}

#[test]
fn without_a_quorum_the_window_closes_unpaid() {
    let (g, mut l, mut ms, thought, t) = setup();
    let committee = l.state().thought(&thought).unwrap().committee.clone();
    let i = ms.iter().position(|m| m.id() == committee[0]).unwrap();
    let ev = ms[i].validate(t + 100, thought, 900_000);
    admit(&mut l, t + 100, ev);
    let before: Vec<u64> = ms.iter().map(|m| atp(&l, m, t + 200)).collect();
    // Any event after the window's end closes it (here the author's presence, which pays
    // nothing by itself).
    let end = t + g.rating_window_ms + 1;
    let ev = ms[0].next(end, Body::Presence);
    admit(&mut l, end, ev);
    let e = l.state().thought(&thought).unwrap();
    assert!(e.closed && !e.settled);
    assert_eq!(atp(&l, &ms[0], end), before[0]);
    assert_eq!(atp(&l, &ms[i], end), before[i]);
}
