//! The ledger as a state machine under adversarial input: three members whose events arrive
//! out of order, replayed, equivocated, future-dated, back-dated and with gaps, with clock
//! ticks between. Asserts the hard caps (waiting pools) and that nothing it outputs is lost:
//! every admission is reported exactly once.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use web4fed_core::event::{Body, Event};
use web4fed_core::genesis::Genesis;
use web4fed_core::ledger::{Admission, Ledger, Output, MAX_FUTURE, MAX_ORPHANS};
use web4fed_core::testkit::{sentence, Author};

const T0: u64 = 1_767_225_600_000;

fuzz_target!(|data: &[u8]| {
    let g = Genesis::with_pow_bits(1);
    let mut authors: Vec<Author> = (0..3).map(|i| Author::from_seed(&g, i + 1)).collect();
    let mut l = Ledger::new(g.clone());
    let mut now = T0;
    let regs: Vec<Event> = authors
        .iter_mut()
        .enumerate()
        .map(|(i, a)| a.register(&g, &format!("m{i}"), T0))
        .collect();
    let mut made: Vec<Event> = regs.clone();
    let mut held: BTreeSet<_> = BTreeSet::new();
    let feed = |l: &mut Ledger, now: u64, evs: Vec<Event>, held: &mut BTreeSet<_>| {
        let r = l.handle_batch(now, evs);
        let admitted = r
            .iter()
            .filter(|x| matches!(x, Ok(Admission::Admitted)))
            .count();
        let mut out = 0;
        while let Some(o) = l.poll_output() {
            if let Output::Admitted(e) = o {
                assert!(held.insert(e.id()), "an event admitted twice");
                out += 1;
            }
        }
        // Released orphans and future events add to the batch's own admissions.
        assert!(out >= admitted, "admissions not reported");
        let (orphans, future) = l.waiting();
        assert!(orphans <= MAX_ORPHANS && future <= MAX_FUTURE);
    };
    feed(&mut l, now, regs, &mut held);
    for (k, op) in data.chunks(3).enumerate().take(256) {
        let who = op[0] as usize % 3;
        let arg = u64::from(*op.get(1).unwrap_or(&0));
        let a = &mut authors[who];
        let ev = match op.get(2).copied().unwrap_or(0) % 8 {
            // An honest next thought, a little later.
            0 | 1 => a.thought(now + arg * 10, &sentence(k as u64 + 100 * who as u64)),
            // Two events at one seq.
            2 => {
                let (x, y, _) =
                    a.equivocate(now + arg, &sentence(k as u64), &sentence(k as u64 + 1));
                feed(&mut l, now, vec![y], &mut held);
                x
            }
            // Far in the future.
            3 => a.thought(now + 3_600_000 + arg, &sentence(k as u64 + 7)),
            // Dated before its predecessor.
            4 => a.sign_at(
                a.next_seq(),
                a.prev(),
                now.saturating_sub(60_000),
                Body::Thought(sentence(k as u64)),
            ),
            // A replay of anything made so far.
            5 => made[arg as usize % made.len()].clone(),
            // A gap: skip a seq so the next waits as an orphan.
            6 => {
                let _ = a.thought(now, &sentence(k as u64 + 9));
                a.thought(now + 1, &sentence(k as u64 + 11))
            }
            // Time passes.
            _ => {
                now += arg * 1_000;
                l.handle_tick(now);
                while l.poll_output().is_some() {}
                continue;
            }
        };
        made.push(ev.clone());
        feed(&mut l, now, vec![ev], &mut held);
    }
    let _ = l.state_root();
});
