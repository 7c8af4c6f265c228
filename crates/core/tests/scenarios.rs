//! The seed's scenarios that need no network, driven through the core with a fake clock, and
//! one test per way an event can be refused.

use web4fed_core::event::{Body, Event, EventId, Evidence, Level};
use web4fed_core::fixed::{mul_div, DAY_MS, MICRO, MILLI};
use web4fed_core::genesis::Genesis;
use web4fed_core::ledger::{Admission, InsertError, Ledger};
use web4fed_core::quality::coherence_micro;
use web4fed_core::state::Status;
use web4fed_core::testkit::{sentence, Author};
use web4fed_core::verdict::{EjectCause, Ignored, Rule, Verdict};

const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, the fake clock's start

fn genesis() -> Genesis {
    Genesis::with_pow_bits(8)
}

fn admit(l: &mut Ledger, now: u64, ev: Event) -> EventId {
    let id = ev.id();
    assert_eq!(l.handle_event(now, ev), Ok(Admission::Admitted));
    id
}

fn members(l: &mut Ledger, n: u64) -> Vec<Author> {
    let g = l.genesis().clone();
    (0..n)
        .map(|i| {
            let mut a = Author::from_seed(&g, i + 1);
            let ev = a.register(&g, &format!("m{i}"), T0);
            admit(l, T0, ev);
            a
        })
        .collect()
}

/// Test 2: one member sends 100 thoughts in a minute. Every thought beyond its rate limit is
/// refused at layer 2; trust and ATP fall exactly per the table; the third violation ejects
/// it; its later events are ignored (and refused once the ejection is final: see
/// `finality.rs`).
#[test]
fn seed_test2_spam_is_rate_limited_penalised_and_ejected() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 3);
    let spammer = &mut ms[0];
    let sid = spammer.id();
    let mut expected_trust = g.trust_start_l4_micro;
    let mut expected_atp = g.atp_start_milli;
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..100u64 {
        let t = T0 + 1_000 + i * 600; // 100 thoughts within 60 s
        let content = sentence(i);
        let acct = l.state().account(&sid).unwrap().clone();
        let limit_before = acct.thought_limit(&g, t);
        let id = admit(&mut l, t, spammer.thought(t, &content));
        let v = l.verdict(&id).unwrap().clone();
        let acct = l.state().account(&sid).unwrap();
        if refused >= 3 {
            assert_eq!(v, Verdict::Ignored(Ignored::AuthorEjected), "thought {i}");
            continue;
        }
        match v {
            Verdict::Accepted => {
                accepted += 1;
                assert!(accepted <= limit_before, "accepted beyond limit");
                let c = coherence_micro(&content);
                expected_trust += mul_div(g.trust_gain_micro, c, MICRO);
                expected_atp += if c >= g.atp_high_coherence_micro {
                    2 * MILLI
                } else {
                    MILLI
                };
            }
            Verdict::Refused(Rule::ThoughtsPerWindow { count, limit }) => {
                // Each violation lowers trust and ATP, so the limit can fall below the
                // number already accepted in the window.
                assert!(count > limit);
                assert_eq!(count, accepted + 1);
                assert_eq!(limit, limit_before);
                assert_eq!(Rule::ThoughtsPerWindow { count, limit }.layer(), 2);
                refused += 1;
                expected_trust -= g.trust_penalty_micro;
                expected_atp -= g.atp_violation_milli;
            }
            other => panic!("thought {i}: unexpected {other:?}"),
        }
        if refused < 3 {
            assert_eq!(acct.trust_at(&g, t), expected_trust, "thought {i}");
            assert_eq!(acct.atp_at(&g, t), expected_atp, "thought {i}");
            assert_eq!(acct.status, Status::Active);
        } else {
            assert_eq!(acct.status, Status::Ejected);
            assert_eq!(acct.eject_cause, Some(EjectCause::Violations { count: 3 }));
            assert_eq!(acct.trust_at(&g, t), 0);
            assert_eq!(acct.atp_at(&g, t), 0);
        }
    }
    assert_eq!(refused, 3);
    assert!((11..=12).contains(&accepted), "accepted {accepted}");
    // Its thoughts left the corpus; the others are unaffected.
    assert!(l.state().corpus().all(|(_, e)| e.author != sid));
    let other = l.state().account(&ms[1].id()).unwrap();
    assert_eq!(other.trust_at(&g, T0), g.trust_start_l4_micro);
    // A transfer to the ejected member is ignored, not credited.
    let to = ms[1].transfer(T0 + 70_000, sid, 10);
    let id = admit(&mut l, T0 + 70_000, to);
    assert_eq!(
        l.verdict(&id),
        Some(&Verdict::Ignored(Ignored::BadRecipient))
    );
}

/// A node that admitted an ejected member's later events (before the ejection was final, or
/// before its fold saw it) and a node that never held them must fold to the same roots,
/// report the same feed heads (or anti-entropy would chase the difference for ever), serve
/// the same events and vote the same frontier.
#[test]
fn a_closed_feed_is_the_same_whether_its_dead_events_are_held_or_not() {
    let g = genesis();
    let mut holder = Ledger::new(g.clone());
    let mut lean = Ledger::new(g.clone());
    let mut regs = Vec::new();
    let mut authors: Vec<Author> = (0..3)
        .map(|i| {
            let mut a = Author::from_seed(&g, i + 1);
            regs.push(a.register(&g, &format!("m{i}"), T0));
            a
        })
        .collect();
    let burst: Vec<Event> = (0..40u64)
        .map(|i| authors[0].thought(T0 + 1_000 + i * 600, &sentence(i)))
        .collect();
    let end = T0 + 1_000 + 40 * 600;
    let tail: Vec<Event> = (0..5u64)
        .map(|i| authors[1].thought(end + i * 1_000, &sentence(100 + i)))
        .collect();
    let now = end + 10_000;
    for l in [&mut holder, &mut lean] {
        let rs = l.handle_batch(T0, regs.clone());
        assert!(rs.iter().all(|r| r == &Ok(Admission::Admitted)));
    }
    let rs = holder.handle_batch(now, burst.clone());
    assert!(rs.iter().all(|r| r == &Ok(Admission::Admitted)));
    let spammer = authors[0].id();
    let closed = holder
        .state()
        .closed_at(&spammer)
        .expect("the spammer's feed is closed");
    // The lean node holds the burst only up to the closure (seq 0 is the registration).
    let kept = usize::try_from(closed - 1).unwrap();
    assert!(kept < burst.len(), "the burst ran past the ejection");
    let rs = lean.handle_batch(now, burst[..kept].to_vec());
    assert!(rs.iter().all(|r| r == &Ok(Admission::Admitted)));
    for l in [&mut holder, &mut lean] {
        let rs = l.handle_batch(now, tail.clone());
        assert!(rs.iter().all(|r| r == &Ok(Admission::Admitted)));
        while l.poll_output().is_some() {}
    }
    assert_eq!(lean.feed_len(&spammer), closed);
    assert_eq!(lean.state().closed_at(&spammer), Some(closed));
    assert!(holder.feed_len(&spammer) > closed);
    assert_eq!(holder.served_len(&spammer), closed);
    assert!(holder.dead_events() > 0);
    assert_eq!(lean.dead_events(), 0);
    assert_eq!(holder.len() - holder.dead_events(), lean.len());
    assert_eq!(holder.feed_heads(), lean.feed_heads());
    assert_eq!(holder.state_root(), lean.state_root());
    assert_eq!(holder.state().frontier(), lean.state().frontier());
    assert_eq!(holder.state().frontier().get(&spammer), Some(&closed));
}

/// Test 5: hardware trust asymmetry. L5 needs evidence that verifies *and* vouches from more
/// than a third of the other members' trust; a claim without evidence, with evidence for
/// another key, or on hardware that already backs a member stays L4, with the reason.
/// Starting trust and ceilings follow the level. (The verifier here is a stand-in for the
/// TPM check, which `crates/cli/tests/tpm.rs` runs against real swtpm instances.)
#[test]
fn seed_test5_levels_start_trust_and_ceilings() {
    use web4fed_core::attest::{LevelReason, VerifyError};
    /// Evidence is `member id || hardware id`; valid when the first half is the member.
    struct AcceptTestEvidence;
    impl web4fed_core::attest::Verifier for AcceptTestEvidence {
        fn verify(
            &self,
            member: &web4fed_core::identity::MemberId,
            _: &[u8; 32],
            _: u64,
            a: &web4fed_core::event::Attestation,
        ) -> Result<web4fed_core::tpm::Verified, VerifyError> {
            if a.evidence.len() == 64 && a.evidence[..32] == member.0 {
                Ok(web4fed_core::tpm::Verified {
                    hardware_id: a.evidence[32..].try_into().unwrap(),
                    pcr_digest: [0; 32],
                })
            } else {
                Err(VerifyError::Refused("evidence is for another key".into()))
            }
        }
    }
    let evidence = |m: &Author, hw: u8| [m.id().0, [hw; 32]].concat();
    let g = genesis();
    let mut l = Ledger::with_verifier(g.clone(), Box::new(AcceptTestEvidence));
    let mut hw = Author::from_seed(&g, 1);
    let mut claim = Author::from_seed(&g, 2);
    let mut wrong = Author::from_seed(&g, 3);
    let mut sw = Author::from_seed(&g, 4);
    let mut twin = Author::from_seed(&g, 5);
    let hw_ev = hw.register_claiming(&g, "legion", T0, Level::L5, evidence(&hw, 1));
    admit(&mut l, T0, hw_ev);
    let claim_ev = claim.register_claiming(&g, "thor", T0, Level::L5, Vec::new());
    admit(&mut l, T0, claim_ev);
    let wrong_ev = wrong.register_claiming(&g, "sprout", T0, Level::L5, evidence(&hw, 3));
    admit(&mut l, T0, wrong_ev);
    let sw_ev = sw.register(&g, "laptop", T0);
    admit(&mut l, T0, sw_ev);
    // The same TPM (hardware id 1) behind a second key: registered later in fold order.
    let twin_ev = twin.register_claiming(&g, "twin", T0 + 1, Level::L5, evidence(&twin, 1));
    admit(&mut l, T0 + 1, twin_ev);
    let reason = |l: &Ledger, a: &Author| l.state().account(&a.id()).unwrap().level_reason.clone();
    assert_eq!(
        reason(&l, &hw),
        LevelReason::AwaitingVouches { vouchers: 0 }
    );
    assert_eq!(reason(&l, &twin), LevelReason::HardwareInUse(hw.id()));
    assert_eq!(reason(&l, &claim), LevelReason::NoEvidence);
    assert!(matches!(reason(&l, &wrong), LevelReason::Refused(_)));
    assert_eq!(reason(&l, &sw), LevelReason::ClaimedL4);
    // Vouches: self-vouches and vouches for members without hardware are ignored; one vouch
    // of 0.1 out of 0.4 is not more than a third; the second is.
    let t = T0 + 10;
    let own = hw.next(t, Body::Vouch { subject: hw.id() });
    let id = admit(&mut l, t, own);
    assert_eq!(l.verdict(&id), Some(&Verdict::Ignored(Ignored::SelfVouch)));
    let v = sw.next(
        t,
        Body::Vouch {
            subject: claim.id(),
        },
    );
    let id = admit(&mut l, t, v);
    assert_eq!(
        l.verdict(&id),
        Some(&Verdict::Ignored(Ignored::NotAwaitingVouches))
    );
    let v = sw.next(t + 1, Body::Vouch { subject: hw.id() });
    admit(&mut l, t + 1, v);
    assert_eq!(
        reason(&l, &hw),
        LevelReason::AwaitingVouches { vouchers: 1 }
    );
    assert_eq!(l.state().account(&hw.id()).unwrap().level, Level::L4);
    let again = sw.next(t + 2, Body::Vouch { subject: hw.id() });
    let id = admit(&mut l, t + 2, again);
    assert_eq!(
        l.verdict(&id),
        Some(&Verdict::Ignored(Ignored::AlreadyVouched))
    );
    let v = claim.next(t + 3, Body::Vouch { subject: hw.id() });
    admit(&mut l, t + 3, v);
    assert_eq!(reason(&l, &hw), LevelReason::Attested { vouchers: 2 });
    let s = l.state();
    let level = |a: &Author| s.account(&a.id()).unwrap().level;
    let trust = |a: &Author| s.account(&a.id()).unwrap().trust_at(&g, T0 + 20);
    assert_eq!(level(&hw), Level::L5);
    assert_eq!(trust(&hw), 300_000);
    for a in [&claim, &wrong, &sw, &twin] {
        assert_eq!(level(a), Level::L4);
        assert_eq!(trust(a), 100_000);
    }
    // Ceilings: 1,000 accepted thoughts spaced beyond the rate window push both to their cap.
    for i in 0..150u64 {
        let t = T0 + 20 + (i + 1) * 61_000;
        let e1 = hw.thought(t, &sentence(i));
        admit(&mut l, t, e1);
        let e2 = sw.thought(t, &sentence(10_000 + i));
        admit(&mut l, t, e2);
    }
    let t = T0 + 20 + 151 * 61_000;
    let s = l.state();
    assert_eq!(s.account(&hw.id()).unwrap().trust_at(&g, t), 1_000_000);
    assert_eq!(s.account(&sw.id()).unwrap().trust_at(&g, t), 850_000);
}

/// Test 6: a member holding 1,000 ATP gets double the base rate, and the limit is exact.
#[test]
fn seed_test6_thousand_atp_doubles_the_rate_exactly() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 10);
    let legion = ms[0].id();
    // Nine members give 100 ATP each: 100 + 900 = 1,000 ATP.
    for (k, m) in ms.iter_mut().enumerate().skip(1) {
        let t = T0 + k as u64;
        let ev = m.transfer(t, legion, 100);
        let id = admit(&mut l, t, ev);
        assert_eq!(l.verdict(&id), Some(&Verdict::Accepted));
    }
    let t0 = T0 + 100_000;
    let acct = l.state().account(&legion).unwrap();
    assert_eq!(acct.atp_at(&g, t0), 1_000 * MILLI);
    // Factor (1 + 0.5·0.1)·(1 + 1) = 2.1: 21 thoughts, against 10 without the bonus.
    assert_eq!(acct.rate_factor_micro(&g, t0), 2_100_000);
    assert_eq!(acct.thought_limit(&g, t0), 21);
    let base = mul_div(
        g.rate_base_thoughts,
        MICRO + g.rate_trust_weight_micro / 10,
        MICRO,
    );
    assert_eq!(base, 10);
    // All 21 land in one window; the 22nd is refused at layer 2. Each accepted thought raises
    // trust and ATP a little, so compute the live limit rather than assume it stays 21.
    let mut accepted = 0;
    loop {
        let t = t0 + accepted * 10;
        let limit = l.state().account(&legion).unwrap().thought_limit(&g, t);
        let ev = ms[0].thought(t, &sentence(500 + accepted));
        let id = admit(&mut l, t, ev);
        match l.verdict(&id).unwrap() {
            Verdict::Accepted => accepted += 1,
            Verdict::Refused(Rule::ThoughtsPerWindow { count, limit: l2 }) => {
                assert_eq!(*l2, limit);
                assert_eq!(*count, limit + 1);
                assert_eq!(accepted, limit);
                break;
            }
            v => panic!("unexpected {v:?}"),
        }
    }
    assert!(accepted >= 21, "double rate: accepted {accepted}");
    // The other nodes, holding the same events in another order, agree.
    let mut l2 = Ledger::new(g.clone());
    let mut all: Vec<Event> = Vec::new();
    for m in &ms {
        for s in 0..l.feed_len(&m.id()) {
            all.push((**l.feed_event(&m.id(), s).unwrap()).clone());
        }
    }
    all.reverse();
    l2.handle_batch(t0 + 100_000, all);
    assert_eq!(l2.state_root(), l.state_root());
}

#[test]
fn forged_signature_is_refused() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 1);
    let ev = ms[0].thought(T0 + 1, "A forged thought about federations and trust.");
    let mut bytes = ev.bytes().to_vec();
    bytes[web4fed_core::event::HEADER_LEN + 5] ^= 0x40; // flip a signature bit
    let forged = Event::decode(&bytes).unwrap();
    assert_eq!(
        l.handle_event(T0 + 1, forged),
        Err(InsertError::BadSignature)
    );
    // Another member cannot sign in this member's name either.
    let impostor = Author::from_seed(&g, 99);
    let mut h = ev.header.clone();
    h.timestamp_ms += 1;
    let sig = impostor.keypair.sign(&h.signing_bytes(l.network()));
    let mut b = h.encode().to_vec();
    b.extend_from_slice(&sig);
    b.extend_from_slice(&ev.bytes()[web4fed_core::event::HEADER_LEN + 64..]);
    let e2 = Event::decode(&b).unwrap();
    assert_eq!(l.handle_event(T0 + 1, e2), Err(InsertError::BadSignature));
}

#[test]
fn broken_hash_chain_is_refused() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let ms = members(&mut l, 1);
    let bad = ms[0].sign_at(1, EventId([7; 32]), T0 + 5, Body::Thought(sentence(1)));
    assert_eq!(
        l.handle_event(T0 + 5, bad),
        Err(InsertError::BrokenChain { seq: 1 })
    );
}

#[test]
fn equivocation_produces_evidence_and_ejects_on_every_node() {
    let g = genesis();
    let mut a = Ledger::new(g.clone());
    let mut b = Ledger::new(g.clone());
    let mut ms = members(&mut a, 2);
    for m in &ms {
        let ev = (**a.feed_event(&m.id(), 0).unwrap()).clone();
        b.handle_event(T0, ev).unwrap();
    }
    while a.poll_output().is_some() {}
    let x = ms[0].thought(T0 + 10, &sentence(1));
    let y = ms[0].sign_at(1, x.header.prev, T0 + 11, Body::Thought(sentence(2)));
    let z = ms[0].thought(T0 + 20, &sentence(3)); // builds on x
                                                  // Node a sees x then y; node b sees only y.
    admit(&mut a, T0 + 12, x.clone());
    admit(&mut a, T0 + 21, z.clone());
    assert_eq!(
        a.handle_event(T0 + 12, y.clone()),
        Err(InsertError::Equivocation { seq: 1 })
    );
    admit(&mut b, T0 + 12, y.clone());
    let proof = std::iter::from_fn(|| a.poll_output())
        .find_map(|o| match o {
            web4fed_core::ledger::Output::Proof(p) => Some(p),
            _ => None,
        })
        .expect("a proof is produced");
    let Evidence::Equivocation { a: h1, b: h2 } = &*proof else {
        panic!("expected an equivocation proof")
    };
    assert_eq!(h1.header.seq, h2.header.seq);
    // The honest member publishes the evidence; b folds it and agrees with a.
    let evid = ms[1].next(T0 + 30, Body::Evidence(proof.clone()));
    admit(&mut a, T0 + 30, evid.clone());
    admit(&mut b, T0 + 30, evid);
    for l in [&a, &b] {
        let acct = l.state().account(&ms[0].id()).unwrap();
        assert_eq!(acct.status, Status::Ejected);
        assert_eq!(acct.eject_cause, Some(EjectCause::Equivocation { seq: 1 }));
    }
    assert_eq!(a.state_root(), b.state_root());
    // Later events of the equivocator are refused outright.
    let late = ms[0].thought(T0 + 40, &sentence(4));
    assert!(matches!(
        b.handle_event(T0 + 40, late),
        Err(InsertError::AuthorEquivocated { fork_seq: 1 })
    ));
    // A false accusation is itself a violation of the accuser.
    let Evidence::Equivocation { a: h1, .. } = *proof else {
        panic!("expected an equivocation proof")
    };
    let fake = Evidence::Equivocation {
        a: h1.clone(),
        b: h1,
    };
    let e = ms[1].next(T0 + 50, Body::Evidence(Box::new(fake)));
    let id = admit(&mut a, T0 + 50, e);
    assert!(matches!(
        a.verdict(&id),
        Some(Verdict::Refused(Rule::InvalidEvidence { .. }))
    ));
}

#[test]
fn replayed_event_changes_nothing() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 1);
    let ev = ms[0].thought(T0 + 1, &sentence(1));
    admit(&mut l, T0 + 1, ev.clone());
    let root = l.state_root();
    assert_eq!(l.handle_event(T0 + 2, ev), Ok(Admission::AlreadyKnown));
    assert_eq!(l.state_root(), root);
}

#[test]
fn unregistered_author_events_wait_and_never_take_effect() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut stranger = Author::from_seed(&g, 42);
    let reg = stranger.register(&g, "stranger", T0);
    let ev = stranger.thought(T0 + 1, &sentence(1));
    assert_eq!(
        l.handle_event(T0 + 1, ev.clone()),
        Ok(Admission::MissingPredecessor { need_seq: 0 })
    );
    assert!(l.state().account(&stranger.id()).is_none());
    assert_eq!(l.state().corpus_len(), 0);
    // Once the registration arrives, the waiting event is admitted in order.
    admit(&mut l, T0 + 2, reg);
    assert_eq!(l.verdict(&ev.id()), Some(&Verdict::Accepted));
}

#[test]
fn pow_below_difficulty_is_refused_at_layer_1() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut weak = Author::from_seed(&g, 5);
    // Mined at 2 bits for this network id: the claimed difficulty is below 8.
    let pow = web4fed_core::pow::mine(l.network(), &weak.id(), 2);
    let ev = weak.next(
        T0,
        Body::Register(web4fed_core::event::Register {
            name: "weak".into(),
            entity_type: "ai".into(),
            pow,
            claimed_level: Level::L4,
            attestation: web4fed_core::event::Attestation {
                kind: web4fed_core::event::AttestationKind::None,
                evidence: vec![],
            },
        }),
    );
    let err = l.handle_event(T0, ev).unwrap_err();
    assert_eq!(err.layer(), Some(1));
    assert!(matches!(
        err,
        InsertError::Pow(web4fed_core::pow::PowError::BelowDifficulty {
            claimed: 2,
            required: 8
        })
    ));
}

#[test]
fn oversized_content_is_refused_by_decoder_and_by_layer_3() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 1);
    // Over the protocol's byte limit: the decoder refuses it before anything else.
    let huge = "word ".repeat(9_000);
    let ev = ms[0].sign_at(1, ms[0].prev(), T0 + 1, Body::Thought(huge));
    assert!(matches!(
        Event::decode(ev.bytes()),
        Err(web4fed_core::codec::DecodeError::TooLong { .. })
    ));
    // Within the byte limit but over 10,000 characters: layer 3.
    let long = "abcdefghi ".repeat(1_001);
    let ev = ms[0].thought(T0 + 1, &long);
    let id = admit(&mut l, T0 + 1, ev);
    match l.verdict(&id).unwrap() {
        Verdict::Refused(
            r @ Rule::TooLong {
                chars: 10_010,
                max: 10_000,
            },
        ) => {
            assert_eq!(r.layer(), 3)
        }
        v => panic!("unexpected {v:?}"),
    }
    let acct = l.state().account(&ms[0].id()).unwrap();
    assert_eq!(
        acct.atp_at(&g, T0 + 1),
        g.atp_start_milli - g.atp_spam_milli
    );
}

#[test]
fn future_dated_event_waits_until_the_clock_catches_up() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 1);
    let t = T0 + 60_000;
    let ev = ms[0].thought(t, &sentence(1));
    let now = T0 + 1_000;
    assert_eq!(
        l.handle_event(now, ev.clone()),
        Ok(Admission::FutureDated {
            until_ms: t - g.max_future_skew_ms
        })
    );
    assert_eq!(l.verdict(&ev.id()), None);
    l.handle_tick(t - g.max_future_skew_ms - 1);
    assert_eq!(l.verdict(&ev.id()), None);
    l.handle_tick(t - g.max_future_skew_ms);
    assert_eq!(l.verdict(&ev.id()), Some(&Verdict::Accepted));
}

#[test]
fn quality_and_duplicates() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 2);
    let text = "Edge boards should sync their ledgers after every partition heals.";
    let a = ms[0].thought(T0 + 1, text);
    let a_id = admit(&mut l, T0 + 1, a);
    assert_eq!(l.verdict(&a_id), Some(&Verdict::Accepted));
    // The same author repeating itself (modulo case and punctuation) is spam.
    let again = ms[0].thought(T0 + 2, &text.to_uppercase().replace('.', "!"));
    let id = admit(&mut l, T0 + 2, again);
    assert_eq!(
        l.verdict(&id),
        Some(&Verdict::Refused(Rule::DuplicateOwn { of: a_id }))
    );
    // Another member posting the same text gains nothing and loses nothing.
    let copy = ms[1].thought(T0 + 3, text);
    let id = admit(&mut l, T0 + 3, copy);
    assert_eq!(
        l.verdict(&id),
        Some(&Verdict::Ignored(Ignored::DuplicateOfOther { of: a_id }))
    );
    let b = l.state().account(&ms[1].id()).unwrap();
    assert_eq!(b.violations, 0);
    // Garbage.
    let junk = ms[1].thought(T0 + 4, "zzzzzzzzzzzzzzzzzzzzzzzz");
    let id = admit(&mut l, T0 + 4, junk);
    assert!(matches!(
        l.verdict(&id),
        Some(Verdict::Refused(Rule::Incoherent { .. }))
    ));
    let short = ms[1].thought(T0 + 5, "hi there");
    let id = admit(&mut l, T0 + 5, short);
    assert!(matches!(
        l.verdict(&id),
        Some(Verdict::Refused(Rule::TooShort { chars: 8, min: 10 }))
    ));
}

#[test]
fn transfers_beyond_balance_are_violations() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 2);
    let to = ms[1].id();
    let ev = ms[0].transfer(T0 + 1, to, 101);
    let id = admit(&mut l, T0 + 1, ev);
    assert_eq!(
        l.verdict(&id),
        Some(&Verdict::Refused(Rule::TransferBeyondBalance {
            amount_milli: 101 * MILLI,
            balance_milli: 100 * MILLI
        }))
    );
    let ev = ms[0].transfer(T0 + 2, to, 50);
    let id = admit(&mut l, T0 + 2, ev);
    assert_eq!(l.verdict(&id), Some(&Verdict::Accepted));
    let s = l.state();
    assert_eq!(s.account(&to).unwrap().atp_at(&g, T0 + 2), 150 * MILLI);
    assert_eq!(
        s.account(&ms[0].id()).unwrap().atp_at(&g, T0 + 2),
        (100 - 5 - 50) * MILLI
    );
}

#[test]
fn decay_and_recharge_follow_logical_time() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 1);
    for i in 0..20 {
        let t = T0 + i * 61_000;
        let ev = ms[0].thought(t, &sentence(i));
        admit(&mut l, t, ev);
    }
    let acct = l.state().account(&ms[0].id()).unwrap().clone();
    let last = acct.last_active_ms;
    let trust = acct.trust_at(&g, last);
    assert!(trust > 250_000);
    // No decay within the grace period; at 8 days idle, 0.01·ln(2) ≈ 0.006931.
    assert_eq!(acct.trust_at(&g, last + 7 * DAY_MS), trust);
    let decayed = acct.trust_at(&g, last + 8 * DAY_MS);
    assert!(
        (trust - decayed).abs_diff(6_931) <= 2,
        "{}",
        trust - decayed
    );
    // Never below the floor.
    assert_eq!(
        acct.trust_at(&g, last + 200_000_000 * DAY_MS),
        g.decay_floor_micro
    );
    // Recharge: +10 ATP per whole day since registration, capped.
    let atp = acct.atp_at(&g, last);
    assert_eq!(acct.atp_at(&g, T0 + 3 * DAY_MS), atp + 30 * MILLI);
    assert_eq!(acct.atp_at(&g, T0 + 100_000 * DAY_MS), g.atp_cap_milli);
}

#[test]
fn corpus_prunes_deterministically_at_the_trigger() {
    let g = Genesis {
        corpus_max_thoughts: 100,
        share_base_micro: MICRO,
        ..genesis()
    };
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 5);
    let mut all = Vec::new();
    for i in 0..200u64 {
        let t = T0 + 1 + i * 13_000;
        let m = &mut ms[(i % 5) as usize];
        let ev = m.thought(t, &sentence(i));
        all.push(ev.clone());
        admit(&mut l, t, ev);
        assert!(l.state().corpus_len() < 90, "pruned at the 90% trigger");
    }
    assert!(l.state().pruned_total > 0);
    // Another node receiving the same events shuffled agrees on the pruned corpus.
    let mut l2 = Ledger::new(g.clone());
    for m in &ms {
        l2.handle_event(T0, (**l.feed_event(&m.id(), 0).unwrap()).clone())
            .unwrap();
    }
    all.reverse();
    l2.handle_batch(T0 + 10_000_000, all);
    assert_eq!(l2.state_root(), l.state_root());
}

/// Regression (found by the order property): the same orphan delivered twice before its
/// predecessor was taken for a fork of identical headers and ejected an honest member.
/// Two *different* orphans at one seq, on the other hand, are a fork and must give a proof.
#[test]
fn regression_duplicate_orphan_is_not_a_fork_but_conflicting_orphans_are() {
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut m = Author::from_seed(&g, 7);
    let reg = m.register(&g, "honest", T0);
    let a = m.thought(T0 + 1, &sentence(1));
    assert!(matches!(
        l.handle_event(T0 + 1, a.clone()),
        Ok(Admission::MissingPredecessor { .. })
    ));
    assert!(matches!(
        l.handle_event(T0 + 1, a.clone()),
        Ok(Admission::MissingPredecessor { .. })
    ));
    admit(&mut l, T0 + 2, reg);
    assert_eq!(l.proofs().count(), 0);
    assert_eq!(l.state().account(&m.id()).unwrap().status, Status::Active);

    let mut x = Author::from_seed(&g, 8);
    let reg = x.register(&g, "forker", T0);
    let one = x.thought(T0 + 1, &sentence(2));
    let two = x.sign_at(1, one.header.prev, T0 + 1, Body::Thought(sentence(3)));
    l.handle_event(T0 + 1, one).unwrap();
    assert_eq!(
        l.handle_event(T0 + 1, two),
        Err(InsertError::Equivocation { seq: 1 })
    );
    admit(&mut l, T0 + 2, reg);
    // The fork is known here (later events are refused) and the proof is handed out to be
    // published; the state changes when the published Evidence event folds, everywhere alike.
    assert_eq!(l.fork_seq(&x.id()), Some(1));
    let proof = std::iter::from_fn(|| l.poll_output())
        .find_map(|o| match o {
            web4fed_core::ledger::Output::Proof(p) => Some(*p),
            _ => None,
        })
        .expect("a proof is handed out");
    let ev = m.next(T0 + 3, Body::Evidence(Box::new(proof)));
    admit(&mut l, T0 + 3, ev);
    assert_eq!(l.state().account(&x.id()).unwrap().status, Status::Ejected);
}

/// Test 4 (core part): a member that sends envelopes carrying forged signatures is penalised
/// per forgery, reaches the threshold and is ejected, on every node that holds the evidence.
#[test]
fn seed_test4_forged_envelopes_are_evidence_and_eject_the_sender() {
    use web4fed_core::envelope::Envelope;
    let g = genesis();
    let mut a = Ledger::new(g.clone());
    let mut ms = members(&mut a, 3);
    while a.poll_output().is_some() {}
    let mut b = Ledger::new(g.clone());
    for m in &ms {
        b.handle_event(T0, (**a.feed_event(&m.id(), 0).unwrap()).clone())
            .unwrap();
    }
    let byz = ms[0].keypair.clone();
    let net = *a.network();
    let mut evidence = Vec::new();
    for i in 0..3u64 {
        // A thought "by" member 1 that member 0 never could have signed.
        let real = ms[1].sign_at(1, ms[1].prev(), T0 + 10 + i, Body::Thought(sentence(i)));
        let mut forged = real.bytes().to_vec();
        forged[web4fed_core::event::HEADER_LEN + 1] ^= 0x80;
        let env = Envelope::seal(&byz, &net, T0 + 10 + i, &forged);
        assert!(Event::decode(&forged)
            .map(|e| !e.verify(&net))
            .unwrap_or(true));
        a.handle_forged_envelope(env).unwrap();
        for o in std::iter::from_fn(|| a.poll_output()) {
            if let web4fed_core::ledger::Output::Proof(p) = o {
                evidence.push(*p);
            }
        }
    }
    // The evidence takes effect when an Evidence event publishes it: on a and b alike.
    assert_eq!(evidence.len(), 3);
    for (i, e) in evidence.iter().enumerate() {
        let ev = ms[1].next(T0 + 40 + i as u64, Body::Evidence(Box::new(e.clone())));
        a.handle_event(T0 + 50, ev.clone()).unwrap();
        b.handle_event(T0 + 50, ev).unwrap();
        if i < 2 {
            assert_eq!(
                a.state().account(&byz.id()).unwrap().violations,
                (i + 1) as u32
            );
        }
    }
    // The same forgery reported again (by another detector) counts once.
    let again = ms[2].next(T0 + 60, Body::Evidence(Box::new(evidence[0].clone())));
    let id = again.id();
    a.handle_event(T0 + 60, again.clone()).unwrap();
    b.handle_event(T0 + 60, again).unwrap();
    assert!(matches!(a.verdict(&id), Some(Verdict::Ignored(_))));
    let acct = a.state().account(&byz.id()).unwrap();
    assert_eq!(acct.status, Status::Ejected);
    assert_eq!(acct.trust_at(&g, T0 + 20), 0);
    assert_eq!(acct.atp_at(&g, T0 + 20), 0);
    // An honest envelope is no evidence.
    let honest = ms[2].thought(T0 + 30, &sentence(9));
    let env = Envelope::seal(&ms[2].keypair, &net, T0 + 30, honest.bytes());
    assert!(a.handle_forged_envelope(env).is_err());
    assert_eq!(
        b.state().account(&byz.id()).unwrap().status,
        Status::Ejected
    );
    assert_eq!(a.state_root(), b.state_root());
}

/// Forged envelopes are kept only from registered senders and only a few per sender: a
/// stranger's forgeries penalise nobody, and more than a few of one member's prove nothing
/// new; either would only fill memory and the store. What is kept pages out in a stable
/// order with strictly increasing cursors.
#[test]
fn forgeries_are_kept_only_from_members_a_few_each_and_page_out_in_order() {
    use web4fed_core::envelope::Envelope;
    use web4fed_core::identity::Keypair;
    use web4fed_core::ledger::{EvidenceCursor, MAX_FORGERIES_PER_SENDER};
    let g = genesis();
    let mut l = Ledger::new(g.clone());
    let mut ms = members(&mut l, 3);
    while l.poll_output().is_some() {}
    let net = *l.network();
    let forged = |ms: &mut Vec<Author>, i: u64| {
        let real = ms[1].sign_at(1, ms[1].prev(), T0 + 10 + i, Body::Thought(sentence(i)));
        let mut bytes = real.bytes().to_vec();
        bytes[web4fed_core::event::HEADER_LEN + 1] ^= 0x80;
        bytes
    };
    let stranger = Keypair::from_secret([42; 32]);
    for i in 0..5 {
        let env = Envelope::seal(&stranger, &net, T0 + i, &forged(&mut ms, i));
        l.handle_forged_envelope(env).unwrap();
    }
    assert_eq!(
        l.forgeries().count(),
        0,
        "a stranger's forgeries are not kept"
    );
    let byz = ms[0].keypair.clone();
    for i in 0..20 {
        let env = Envelope::seal(&byz, &net, T0 + 100 + i, &forged(&mut ms, 100 + i));
        l.handle_forged_envelope(env).unwrap();
    }
    assert_eq!(l.forgeries().count(), MAX_FORGERIES_PER_SENDER);
    // Paging: every item once, cursors strictly increasing, resumable from any cursor.
    let all: Vec<(EvidenceCursor, Evidence)> = l.evidence_after(None).collect();
    assert_eq!(all.len(), MAX_FORGERIES_PER_SENDER);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    for (k, (c, _)) in all.iter().enumerate() {
        let rest: Vec<EvidenceCursor> = l.evidence_after(Some(*c)).map(|(c, _)| c).collect();
        let expected: Vec<EvidenceCursor> = all[k + 1..].iter().map(|(c, _)| *c).collect();
        assert_eq!(rest, expected);
        assert_eq!(EvidenceCursor::from_bytes(&c.0), Some(*c));
    }
    assert_eq!(EvidenceCursor::from_bytes(&[3; 33]), None);
    assert_eq!(EvidenceCursor::from_bytes(&[0; 32]), None);
    // Equivocation proofs about keys that never registered are not kept either, but one
    // about a key that registers later counts from its registration.
    let before = l.proofs().count();
    let mut late = Author::from_seed(&g, 999);
    let late_reg = late.register(&g, "late", T0 + 500);
    let (_, _, late_proof) = late.equivocate(T0 + 501, &sentence(1), &sentence(2));
    for i in 0..50 {
        let mut fresh = Author::from_seed(&g, 5_000 + i);
        let _ = fresh.register(&g, "never", T0);
        let (_, _, proof) = fresh.equivocate(T0 + 1, &sentence(1), &sentence(2));
        l.handle_proof(proof).unwrap();
    }
    l.handle_proof(late_proof).unwrap();
    assert_eq!(l.proofs().count(), before);
    admit(&mut l, T0 + 600, late_reg);
    assert_eq!(l.proofs().count(), before + 1);
    assert_eq!(l.fork_seq(&late.id()), Some(1));
}
