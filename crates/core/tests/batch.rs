//! One call admits a bounded batch, and nothing it outputs is ever dropped.

use web4fed_core::genesis::Genesis;
use web4fed_core::ledger::{Admission, InsertError, Ledger, Output, MAX_BATCH_EVENTS};
use web4fed_core::testkit::Author;

#[test]
fn a_batch_past_the_bound_has_the_rest_refused_and_every_admission_is_output() {
    let g = Genesis::with_pow_bits(4);
    let mut a = Author::from_seed(&g, 1);
    let reg = a.register(&g, "a", 1_000);
    let mut batch = vec![reg.clone(); MAX_BATCH_EVENTS + 2];
    batch[1] = a.thought(2_000, "a first thought that is long enough to count");
    let mut l = Ledger::new(g);
    let r = l.handle_batch(10_000, batch);
    assert_eq!(r.len(), MAX_BATCH_EVENTS + 2);
    assert_eq!(r[0], Ok(Admission::Admitted));
    assert_eq!(r[1], Ok(Admission::Admitted));
    assert_eq!(r[2], Ok(Admission::AlreadyKnown));
    for x in &r[MAX_BATCH_EVENTS..] {
        assert_eq!(
            *x,
            Err(InsertError::BatchTooLarge {
                max: MAX_BATCH_EVENTS
            })
        );
    }
    let mut admitted = 0;
    while let Some(o) = l.poll_output() {
        if matches!(o, Output::Admitted(_)) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 2);
}

#[test]
fn the_waiting_pools_hold_strangers_and_the_far_future_to_their_quotas() {
    use web4fed_core::ledger::{MAX_FUTURE_AHEAD_MS, MAX_FUTURE_PER_AUTHOR, MAX_STRANGER_ORPHANS};
    let g = Genesis::with_pow_bits(4);
    let now = 1_767_225_600_000;
    let mut l = Ledger::new(g.clone());
    // Dated beyond the horizon: refused, not held.
    let mut a = Author::from_seed(&g, 1);
    let reg = a.register(&g, "a", now);
    l.handle_batch(now, vec![reg]);
    let far = a.thought(
        now + MAX_FUTURE_AHEAD_MS + 1,
        "dated far beyond what any clock skew explains",
    );
    assert!(matches!(
        l.handle_batch(now, vec![far])[0],
        Err(InsertError::TooFarAhead { .. })
    ));
    assert_eq!(l.waiting().1, 0);
    // One author's future events: at most its quota.
    let mut b = Author::from_seed(&g, 2);
    let reg = b.register(&g, "b", now);
    l.handle_batch(now, vec![reg]);
    let soon: Vec<_> = (0..MAX_FUTURE_PER_AUTHOR + 5)
        .map(|i| {
            b.thought(
                now + 60_000 + i as u64,
                &format!("a thought for later, number {i}"),
            )
        })
        .collect();
    let r = l.handle_batch(now, soon);
    let held = r
        .iter()
        .filter(|x| matches!(x, Ok(Admission::FutureDated { .. })))
        .count();
    assert_eq!(held, MAX_FUTURE_PER_AUTHOR);
    // Keys that never registered: their orphans take at most their share of the pool.
    let mut refused = 0;
    for k in 0..(MAX_STRANGER_ORPHANS as u64 + 50) {
        let mut s = Author::from_seed(&g, 1_000 + k);
        let _ = s.register(&g, "never sent", now);
        let orphan = s.thought(now, "an event whose registration never arrives");
        if l.handle_batch(now, vec![orphan])[0].is_err() {
            refused += 1;
        }
    }
    assert_eq!(refused, 50);
    assert_eq!(l.waiting().0, MAX_STRANGER_ORPHANS);
    // A member's out-of-order event still finds room.
    let mut c = Author::from_seed(&g, 3);
    let reg = c.register(&g, "c", now);
    l.handle_batch(now, vec![reg]);
    let _ = c.thought(now + 1, "skipped so the next waits for it");
    let next = c.thought(now + 2, "waits for its predecessor, as members' events may");
    assert_eq!(
        l.handle_batch(now, vec![next])[0],
        Ok(Admission::MissingPredecessor { need_seq: 1 })
    );
    while l.poll_output().is_some() {}
}
