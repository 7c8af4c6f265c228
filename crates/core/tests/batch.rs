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
