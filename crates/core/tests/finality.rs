//! Finality certificates in the core: precommits of more than two thirds of the voting
//! weight, late events settling after final history, and refusals.

use web4fed_core::event::Event;
use web4fed_core::finality::{At, CertError, Certificate, Vote, VoteKind};
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::Keypair;
use web4fed_core::ledger::{Admission, InsertError, Ledger, Output};
use web4fed_core::testkit::{certify, sentence, Author};

const T0: u64 = 1_767_225_600_000;

fn setup(n: u64) -> (Genesis, Vec<Author>, Vec<Event>) {
    let g = Genesis::with_pow_bits(4);
    let mut authors: Vec<Author> = (0..n).map(|i| Author::from_seed(&g, 200 + i)).collect();
    let regs = authors
        .iter_mut()
        .enumerate()
        .map(|(i, a)| a.register(&g, &format!("m{i}"), T0))
        .collect();
    (g, authors, regs)
}

fn cert_from(l: &mut Ledger) -> Option<Certificate> {
    std::iter::from_fn(|| l.poll_output()).find_map(|o| match o {
        Output::Certificate(c) => Some(*c),
        _ => None,
    })
}

#[test]
fn two_thirds_of_the_weight_certify_and_late_events_settle_after_final_history() {
    let (g, mut authors, regs) = setup(4);
    let net = g.network_id();
    let now = T0 + 60_000;
    let mut ledgers: Vec<Ledger> = (0..4).map(|_| Ledger::new(g.clone())).collect();
    let t1 = authors[0].thought(T0 + 1_000, &sentence(1));
    let late = authors[1].thought(T0 + 2_000, &sentence(2)); // withheld from everyone at first
    for l in &mut ledgers {
        l.handle_batch(now, regs.clone());
        l.handle_event(now, t1.clone()).unwrap();
        while l.poll_output().is_some() {}
    }
    // Checkpoint epoch 1767225605 (every 5 epochs of 1 s).
    let e = (T0 + 5_000) / 1_000;
    assert!(ledgers[0].is_checkpoint(e));
    let bodies: Vec<_> = ledgers.iter().map(|l| l.vote_body(e).unwrap()).collect();
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "same events, same vote"
    );
    let _ = net;
    let keys: Vec<&Keypair> = authors.iter().map(|a| &a.keypair).collect();
    // Precommits of two of four equal weights: not over two thirds, nothing final.
    assert!(matches!(
        certify(&mut ledgers[0], e, &keys[..2]),
        Err(CertError::UnderWeight { .. })
    ));
    assert_eq!(ledgers[0].final_epoch(), None);
    certify(&mut ledgers[0], e, &keys[..3]).expect("three of four certify");
    assert_eq!(ledgers[0].final_epoch(), Some(e));
    let cert = cert_from(&mut ledgers[0]).expect("certificate formed");
    assert_eq!(cert.signatures.len(), 3);
    let root_e = ledgers[0].epoch_root(e).unwrap();

    // Another node verifies it on its own and adopts it.
    ledgers[1].handle_certificate(cert.clone()).unwrap();
    assert_eq!(ledgers[1].final_epoch(), Some(e));

    // The withheld event (dated inside epoch e) arrives after finality: it settles after the
    // certified epoch, so the certified root does not move, and every node agrees.
    for l in &mut ledgers[..2] {
        l.handle_event(now, late.clone()).unwrap();
        assert_eq!(
            l.epoch_root(e).unwrap(),
            root_e,
            "final history never changes"
        );
    }
    assert_eq!(ledgers[0].state_root(), ledgers[1].state_root());

    // A node that had the late event before the certificate was formed disagrees with the
    // certified root until... it adopts the certificate, which re-times the late event.
    ledgers[2].handle_event(now, late.clone()).unwrap();
    assert_ne!(ledgers[2].epoch_root(e).unwrap(), root_e);
    ledgers[2].handle_certificate(cert.clone()).unwrap();
    assert_eq!(ledgers[2].epoch_root(e).unwrap(), root_e);
    assert_eq!(ledgers[2].state_root(), ledgers[0].state_root());

    // Refusals: under weight, forged signature, missing events.
    let mut under = cert.clone();
    under.signatures.truncate(2);
    let mut fresh = Ledger::new(g.clone());
    fresh.handle_batch(now, regs.clone());
    fresh.handle_event(now, t1.clone()).unwrap();
    assert!(matches!(
        fresh.handle_certificate(under),
        Err(CertError::UnderWeight { .. })
    ));
    let mut forged = cert.clone();
    forged.signatures[0].1[5] ^= 1;
    assert!(matches!(
        fresh.handle_certificate(forged),
        Err(CertError::BadSignature(_))
    ));
    let mut empty = Ledger::new(g.clone());
    assert_eq!(
        empty.handle_certificate(cert.clone()),
        Err(CertError::MissingEvents)
    );
    fresh.handle_certificate(cert).unwrap();
}

#[test]
fn two_different_votes_for_one_epoch_are_evidence() {
    let (g, mut authors, regs) = setup(3);
    let net = g.network_id();
    let now = T0 + 60_000;
    let mut l = Ledger::new(g.clone());
    l.handle_batch(now, regs);
    while l.poll_output().is_some() {}
    let e = (T0 + 5_000) / 1_000;
    let body = l.vote_body(e).unwrap();
    let mut other = body.clone();
    other.root[0] ^= 1;
    let at = At::default();
    let kp = &authors[2].keypair;
    l.handle_double_vote(
        Vote::sign(kp, &net, at, VoteKind::Prevote, Some(body.id())),
        Vote::sign(kp, &net, at, VoteKind::Prevote, Some(other.id())),
    )
    .unwrap();
    let proof = std::iter::from_fn(|| l.poll_output())
        .find_map(|o| match o {
            Output::Proof(p) => Some(*p),
            _ => None,
        })
        .expect("double vote is evidence");
    let ev = authors[0].next(
        T0 + 10_000,
        web4fed_core::event::Body::Evidence(Box::new(proof)),
    );
    l.handle_event(now, ev).unwrap();
    let acct = l.state().account(&authors[2].id()).unwrap();
    assert_eq!(acct.status, web4fed_core::state::Status::Ejected);
}

#[test]
fn certificates_round_trip_through_their_encoding() {
    let (g, authors, regs) = setup(3);
    let net = g.network_id();
    let mut l = Ledger::new(g.clone());
    l.handle_batch(T0 + 60_000, regs);
    let e = (T0 + 5_000) / 1_000;
    let _ = net;
    let keys: Vec<&Keypair> = authors.iter().map(|a| &a.keypair).collect();
    certify(&mut l, e, &keys).unwrap();
    let cert = cert_from(&mut l).unwrap();
    let back = Certificate::decode(&cert.encode()).unwrap();
    assert_eq!(back, cert);
    assert!(Certificate::decode(&cert.encode()[..40]).is_err());
}

/// Regression (found by the `gossip` fuzz target): a frontier listing one member twice
/// decoded to the same certificate as the canonical bytes, so one certificate had many
/// encodings (and many gossip message ids). Only strictly ascending members decode now.
#[test]
fn a_frontier_out_of_order_or_repeated_does_not_decode() {
    use web4fed_core::finality::{frontier_digest, Frontier, VoteBody};
    use web4fed_core::identity::MemberId;
    let (a, b) = (MemberId([0x03; 32]), MemberId([0x19; 32]));
    let frontier: Frontier = [(a, 1), (b, 2)].into_iter().collect();
    let cert = Certificate {
        at: At::default(),
        body: VoteBody {
            epoch: 10,
            prev: None,
            root: [7; 32],
            frontier: frontier_digest(&frontier),
        },
        frontier,
        signatures: Vec::new(),
    };
    let bytes = cert.encode();
    assert_eq!(Certificate::decode(&bytes).unwrap(), cert);
    let at = |m: &MemberId| bytes.windows(32).position(|w| w == m.0).unwrap();
    let (ia, ib) = (at(&a), at(&b));
    let mut repeated = bytes.clone();
    repeated[ib..ib + 32].copy_from_slice(&a.0);
    assert!(
        Certificate::decode(&repeated).is_err(),
        "a member listed twice"
    );
    let mut swapped = repeated.clone();
    swapped[ia..ia + 32].copy_from_slice(&b.0);
    assert!(
        Certificate::decode(&swapped).is_err(),
        "members out of order"
    );
}

/// A member ejected for violations has its feed closed: its later events are admitted (and
/// ignored) while a late event could still move the ejection, and refused once the ejection
/// is in certified history.
#[test]
fn an_ejection_in_certified_history_closes_the_feed_for_good() {
    let (g, mut authors, regs) = setup(4);
    let now = T0 + 60_000;
    let mut l = Ledger::new(g.clone());
    l.handle_batch(now, regs);
    let (honest, rest) = authors.split_at_mut(3);
    let spammer = &mut rest[0];
    let sid = spammer.id();
    // Twenty thoughts in two seconds: past the rate limit three times, so ejected.
    for i in 0..20u64 {
        let ev = spammer.thought(T0 + 1_000 + i * 100, &sentence(i));
        assert_eq!(l.handle_event(now, ev), Ok(Admission::Admitted));
    }
    let closed = l.state().closed_at(&sid).expect("the spammer is ejected");
    assert!(closed < 21);
    // Not final yet: admitted, ignored, and not served.
    let more = spammer.thought(T0 + 3_500, &sentence(50));
    assert_eq!(l.handle_event(now, more), Ok(Admission::Admitted));
    assert_eq!(l.served_len(&sid), closed);
    // The honest three certify checkpoint e, which holds the ejection.
    let e = (T0 + 5_000) / 1_000;
    let after = honest[0].thought(T0 + 6_500, &sentence(60));
    l.handle_event(now, after).unwrap();
    while l.poll_output().is_some() {}
    let keys: Vec<&Keypair> = honest.iter().map(|a| &a.keypair).collect();
    certify(&mut l, e, &keys).unwrap();
    assert_eq!(l.final_epoch(), Some(e));
    let late = spammer.thought(T0 + 7_000, &sentence(70));
    assert_eq!(
        l.handle_event(now, late),
        Err(InsertError::FeedClosed { closed_at: closed })
    );
    // Its registration and open events are still held and served.
    assert_eq!(l.served_len(&sid), closed);
}
