//! Pruning final history from memory changes nothing anyone can observe: a ledger that
//! prunes as aggressively as possible and one that keeps every event, handed the same input
//! (paced thoughts, validations and transfers, out-of-order deliveries, events withheld until
//! after the certificates that pass them by, certificates every checkpoint), hold the same
//! root, the same verdicts and the same epoch roots after every step; one rebuilt from the log
//! as a restarted node does agrees too. Then what a pruned ledger does with old input:
//! replays are known, a conflict at a pruned seq is refused with a reason, and a competing
//! certificate built before the floor is refused.

use web4fed_core::event::{Body, Event};
use web4fed_core::finality::{CertError, Certificate};
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::Keypair;
use web4fed_core::ledger::{Admission, InsertError, Ledger, Output};
use web4fed_core::testkit::{certify, sentence, Author};

const T0: u64 = 1_767_225_600_000;
/// Seconds of event time: long enough for several pruning rounds (a candidate base every
/// 30 s of event time at the defaults).
const SECONDS: u64 = 200;
/// Settling delay before the "nodes" vote on a checkpoint, as the daemon does.
const VOTE_LAG_MS: u64 = 3_000;

fn genesis() -> Genesis {
    Genesis {
        rate_base_thoughts: 1_000,
        rate_base_bytes: 10_000_000,
        ..Genesis::with_pow_bits(4)
    }
}

/// xorshift: the test's only randomness, from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What the harness hands the ledgers, in order.
enum Input {
    Event(u64, Event),
    Cert(Certificate),
}

/// Builds the input: four members post each second (a thought, now and then a validation or a
/// transfer), some events are delivered a little out of order, some are withheld for 20 s
/// (past the certificates of their epochs), and at each checkpoint all members vote on the
/// view of `oracle` once the checkpoint is settled.
fn script(seed: u64) -> (Genesis, Vec<Author>, Vec<Input>) {
    script_paced(seed, 1)
}

/// [`script`] with each member posting `per_second` events a second.
fn script_paced(seed: u64, per_second: u64) -> (Genesis, Vec<Author>, Vec<Input>) {
    script_with(seed, per_second, &[])
}

/// [`script_paced`] where the first member's first thought in each of `short_at` seconds is
/// too short (a layer-3 violation, refused).
fn script_with(seed: u64, per_second: u64, short_at: &[u64]) -> (Genesis, Vec<Author>, Vec<Input>) {
    let g = genesis();
    let slot = 1_000 / per_second;
    let mut rng = Rng(seed | 1);
    let mut authors: Vec<Author> = (0..4).map(|i| Author::from_seed(&g, 900 + i)).collect();
    let ids: Vec<_> = authors.iter().map(Author::id).collect();
    let mut pending: Vec<(u64, Event)> = authors
        .iter_mut()
        .enumerate()
        .map(|(i, a)| (T0, a.register(&g, &format!("m{i}"), T0)))
        .collect();
    let mut last_thought = None;
    for (s, j) in (1..=SECONDS).flat_map(|s| (0..per_second).map(move |j| (s, j))) {
        for (i, a) in authors.iter_mut().enumerate() {
            let t = T0 + s * 1_000 + j * slot + (i as u64 * 37 + rng.next() % 200) * slot / 1_000;
            let ev = match rng.next() % 10 {
                _ if i == 0 && j == 0 && short_at.contains(&s) => a.thought(t, "short"),
                0 if last_thought.is_some() => {
                    a.validate(t, last_thought.unwrap_or_default(), 700_000)
                }
                1 => a.transfer(t, ids[(i + 1) % ids.len()], 1),
                _ => a.thought(t, &sentence(seed ^ ((s * per_second + j) * 10 + i as u64))),
            };
            if matches!(ev.body, Body::Thought(_)) {
                last_thought = Some(ev.id());
            }
            let delay = match rng.next() % 40 {
                0 => 20_000,           // withheld past its epoch's certificate
                1..=6 => 1_500,        // overtaken by later events
                _ => rng.next() % 100, // ordinary network delay
            };
            pending.push((t + delay, ev));
        }
    }
    pending.sort_by_key(|(at, _)| *at);

    // Interleave votes: an oracle ledger fed the same deliveries supplies each checkpoint's
    // vote body once the checkpoint has settled.
    let mut oracle = Ledger::new(g.clone());
    oracle.set_reorg_window(None);
    let mut input = Vec::new();
    let mut next_checkpoint = T0 / g.epoch_ms;
    for (at, ev) in pending {
        while (next_checkpoint + 1) * g.epoch_ms + VOTE_LAG_MS <= at {
            let e = next_checkpoint;
            next_checkpoint += 1;
            if !oracle.is_checkpoint(e) {
                continue;
            }
            if oracle.vote_body(e).is_some() {
                let keys: Vec<&Keypair> = authors.iter().map(|a| &a.keypair).collect();
                let c = certify(&mut oracle, e, &keys).expect("all members decide our own view");
                input.push(Input::Cert(c));
                while oracle.poll_output().is_some() {}
            }
        }
        oracle.handle_event(at, ev.clone()).expect("valid event");
        while oracle.poll_output().is_some() {}
        input.push(Input::Event(at, ev));
    }
    (g, authors, input)
}

fn feed(l: &mut Ledger, i: &Input) -> Vec<Certificate> {
    match i {
        Input::Event(at, ev) => {
            l.handle_event(*at, ev.clone()).expect("valid event");
        }
        Input::Cert(c) => {
            l.handle_certificate(c.clone())
                .expect("a valid certificate");
        }
    }
    std::iter::from_fn(|| l.poll_output())
        .filter_map(|o| match o {
            Output::Certificate(c) => Some(*c),
            _ => None,
        })
        .collect()
}

#[test]
fn pruning_final_history_changes_no_root_and_no_verdict() {
    for seed in [1u64, 7, 42] {
        let (g, _, input) = script(seed);
        let mut keeps = Ledger::new(g.clone());
        keeps.set_reorg_window(None);
        let mut prunes = Ledger::new(g.clone());
        prunes.set_reorg_window(Some(1));
        let mut events = Vec::new();
        let mut certs = Vec::new();
        for (step, i) in input.iter().enumerate() {
            let a = feed(&mut keeps, i);
            let b = feed(&mut prunes, i);
            assert_eq!(a.len(), b.len(), "seed {seed} step {step}: certificates");
            certs.extend(b);
            if let Input::Event(_, ev) = i {
                events.push(ev.clone());
            }
            assert_eq!(
                keeps.state_root(),
                prunes.state_root(),
                "seed {seed} step {step}: roots differ"
            );
            assert_eq!(keeps.len(), prunes.len(), "seed {seed} step {step}: counts");
            assert_eq!(keeps.final_epoch(), prunes.final_epoch());
        }
        for ev in &events {
            if prunes.event(&ev.id()).is_some() {
                assert_eq!(prunes.verdict(&ev.id()), keeps.verdict(&ev.id()));
            }
        }
        let fin = prunes.final_epoch().expect("certificates formed");
        assert!(
            certs.len() >= 20,
            "seed {seed}: {} certificates",
            certs.len()
        );
        for e in fin.saturating_sub(30)..=fin {
            assert_eq!(keeps.epoch_root(e), prunes.epoch_root(e), "epoch {e}");
        }
        // Most of the log has left memory, none of it from the ledger that keeps everything.
        assert!(
            prunes.pruned() * 2 > prunes.len(),
            "seed {seed}: only {} of {} pruned",
            prunes.pruned(),
            prunes.len()
        );
        assert_eq!(keeps.pruned(), 0);
        // The certificate chain keeps only what can still be read, not one entry per
        // certificate ever.
        println!(
            "seed {seed}: chain {} of {} certificates",
            prunes.chain_len(),
            keeps.chain_len()
        );
        assert_eq!(keeps.chain_len(), certs.len());
        assert!(
            prunes.chain_len() * 2 < keeps.chain_len(),
            "seed {seed}: chain {} of {}",
            prunes.chain_len(),
            keeps.chain_len()
        );
        // Pruned events keep an 8-byte id prefix instead of the whole id.
        assert!(
            prunes.feed_index_bytes() * 2 < keeps.feed_index_bytes(),
            "id index {} vs {} bytes",
            prunes.feed_index_bytes(),
            keeps.feed_index_bytes()
        );

        // A restarted node: the log in admission order, then the certificates.
        let mut restarted = Ledger::new(g.clone());
        restarted.set_reorg_window(Some(1));
        restarted.handle_batch(T0 + (SECONDS + 60) * 1_000, events.clone());
        for c in &certs {
            restarted.restore_certificate(c.clone());
        }
        while restarted.poll_output().is_some() {}
        assert_eq!(restarted.state_root(), keeps.state_root(), "seed {seed}");
        assert!(restarted.pruned() > 0);
    }
}

#[test]
fn a_pruned_ledger_knows_replays_refuses_old_conflicts_and_old_branches() {
    let (g, authors, input) = script(3);
    let mut l = Ledger::new(g.clone());
    l.set_reorg_window(Some(1));
    let mut first = None;
    for i in &input {
        feed(&mut l, i);
        if let (Input::Event(at, ev), None) = (i, &first) {
            if ev.seq() == 3 {
                first = Some((*at, ev.clone()));
            }
        }
    }
    let (_, old) = first.expect("a seq-3 event");
    assert!(
        l.event(&old.id()).is_none(),
        "an early event has been pruned"
    );
    let now = T0 + (SECONDS + 60) * 1_000;
    let before = l.state_root();
    // Replay: known, nothing changes.
    assert_eq!(
        l.handle_event(now, old.clone()),
        Ok(Admission::AlreadyKnown)
    );
    // A different event at that pruned seq: refused, with the reason, no panic.
    let author = authors
        .iter()
        .find(|a| a.id() == old.author())
        .expect("author");
    let conflict = author.sign_at(
        old.seq(),
        old.header.prev,
        old.timestamp_ms(),
        Body::Thought(sentence(77_777)),
    );
    assert_eq!(
        l.handle_event(now, conflict),
        Err(InsertError::BeyondHorizon { seq: old.seq() })
    );
    assert_eq!(l.state_root(), before);
    // The registration is still served (hardware evidence is asked for later).
    assert!(l.feed_event(&old.author(), 0).is_some());

    // A competing certificate built on no certificate at all (signers who saw none): its
    // base is before the floor, so it is refused and the chain stays.
    let fin = l.final_epoch().expect("final");
    let mut fresh = Ledger::new(g.clone());
    fresh.set_reorg_window(None);
    for i in &input {
        if let Input::Event(at, ev) = i {
            fresh.handle_event(*at, ev.clone()).expect("valid");
        }
    }
    let e = fin + g.finality_every_epochs;
    let body = fresh.vote_body(e).expect("a checkpoint ahead of the chain");
    assert_eq!(body.prev, None);
    let keys: Vec<&Keypair> = authors.iter().map(|a| &a.keypair).collect();
    let cert = certify(&mut fresh, e, &keys).expect("the fresh view certifies");
    // It decides height 0 again, with another value: a conflict, never adopted.
    assert_eq!(l.handle_certificate(cert), Err(CertError::Conflicting(0)));
    assert_eq!(l.final_epoch(), Some(fin));
    assert_eq!(l.state_root(), before);
}

#[test]
fn a_long_feed_keeps_a_count_not_an_id_per_pruned_event() {
    use web4fed_core::ledger::PRUNED_IDS_KEPT;
    // Eight events a member a second: feeds of 1,600 events, most of them pruned.
    let (g, authors, input) = script_paced(5, 8);
    let (mut l, delivered) = pruning_all_the_way(&g, &input);
    let now = T0 + (SECONDS + 60) * 1_000;
    for a in &authors {
        let forgotten = l.forgotten(&a.id());
        assert!(forgotten > 0, "{}: nothing forgotten", a.id());
        assert!(
            l.feed_len(&a.id()) - forgotten >= PRUNED_IDS_KEPT as u64,
            "prefixes kept for the {PRUNED_IDS_KEPT} events pruned last"
        );
    }
    // The id index holds a bounded number of prefixes, not one per pruned event.
    let members = authors.len();
    let in_memory = l.len() - l.pruned();
    assert!(
        l.feed_index_bytes() <= members * PRUNED_IDS_KEPT * 8 + in_memory * 32,
        "id index {} bytes",
        l.feed_index_bytes()
    );
    let at = |a: &Author, seq: u64| {
        delivered
            .iter()
            .find(|e| e.author() == a.id() && e.seq() == seq)
            .expect("delivered")
            .clone()
    };
    let a = &authors[0];
    let answers = |l: &mut Ledger| {
        let before = l.state_root();
        let forgotten = l.forgotten(&a.id());
        let ancient = at(a, forgotten - 1);
        let recent = at(a, forgotten);
        // A replay of a just-pruned event is still recognised; one of an event so old its id
        // is forgotten is refused as final history, with the reason, changing nothing.
        assert_eq!(
            l.handle_event(now, recent.clone()),
            Ok(Admission::AlreadyKnown)
        );
        assert_eq!(
            l.handle_event(now, ancient.clone()),
            Err(InsertError::BeyondHorizon { seq: ancient.seq() })
        );
        assert!(!l.holds(&ancient) && l.holds(&recent));
        assert_eq!(l.state_root(), before);
    };
    answers(&mut l);

    // The snapshot carries counts and the kept prefixes: it does not grow with history, and
    // a ledger restored from it answers the same.
    let mut r = restart_from_snapshot(&g, &l, &delivered, now);
    assert_eq!(r.state_root(), l.state_root());
    assert_eq!(r.len(), l.len());
    assert!(r.forgotten(&a.id()) > 0);
    answers(&mut r);
}

#[test]
fn refused_events_kept_as_evidence_survive_a_restart_from_a_snapshot() {
    // Two violations early (one short of an ejection), then enough history to prune them.
    let (g, authors, input) = script_with(11, 1, &[2, 3]);
    let (l, delivered) = pruning_all_the_way(&g, &input);
    let offender = authors[0].id();
    let ids = |l: &Ledger| -> Vec<_> {
        l.refused_events(&offender)
            .iter()
            .map(|(e, v)| (e.id(), (*v).clone()))
            .collect()
    };
    let before = ids(&l);
    assert_eq!(before.len(), 2, "both violations are evidence");
    assert!(
        before.iter().all(|(id, _)| l.event(id).is_none()),
        "the refused events have left memory"
    );
    let now = T0 + (SECONDS + 60) * 1_000;
    let r = restart_from_snapshot(&g, &l, &delivered, now);
    assert_eq!(
        ids(&r),
        before,
        "the restarted node shows the same evidence"
    );
}

/// A ledger that prunes as much as it may, handed the whole input; with the events delivered.
fn pruning_all_the_way(g: &Genesis, input: &[Input]) -> (Ledger, Vec<Event>) {
    let mut l = Ledger::new(g.clone());
    l.set_reorg_window(Some(1));
    let mut delivered = Vec::new();
    for i in input {
        feed(&mut l, i);
        if let Input::Event(_, ev) = i {
            delivered.push(ev.clone());
        }
    }
    (l, delivered)
}

/// `l`'s snapshot written, read back through the file format and restored, then given the
/// tail of what was delivered: what a node restarted from it holds.
fn restart_from_snapshot(g: &Genesis, l: &Ledger, delivered: &[Event], now: u64) -> Ledger {
    use web4fed_core::attest::GenesisVerifier;
    use web4fed_core::snapshot::SnapshotFile;
    let file = l.snapshot().expect("a certified base");
    let read = SnapshotFile::decode(&file.encode(), l.network()).expect("decodes");
    let certified = l.certificate(read.header.epoch).map(|c| c.body.root);
    let (mut r, _) = Ledger::from_snapshot(
        g.clone(),
        Box::new(GenesisVerifier::new(g)),
        &read,
        certified,
    )
    .expect("a sound snapshot loads");
    let tail = tail(&r, delivered);
    assert!(tail.len() < delivered.len(), "only the tail is read again");
    r.handle_batch(now, tail);
    while r.poll_output().is_some() {}
    r
}

/// The tail a restarted node reads from its log after loading a snapshot: every event
/// delivered so far that the snapshot's feeds do not cover, in delivery order.
fn tail(restored: &Ledger, delivered: &[Event]) -> Vec<Event> {
    delivered
        .iter()
        .filter(|ev| ev.seq() >= restored.feed_len(&ev.author()))
        .cloned()
        .collect()
}

#[test]
fn a_ledger_restored_from_its_snapshot_agrees_with_one_that_never_stopped() {
    for seed in [1u64, 7] {
        let (g, _, input) = script(seed);
        let mut never = Ledger::new(g.clone());
        let mut delivered: Vec<Event> = Vec::new();
        let mut restored: Vec<Ledger> = Vec::new();
        let mut now = T0;
        for (step, i) in input.iter().enumerate() {
            if let Input::Event(at, ev) = i {
                delivered.push(ev.clone());
                now = *at;
            }
            match i {
                Input::Event(at, ev) => {
                    never.handle_event(*at, ev.clone()).expect("valid event");
                }
                Input::Cert(c) => never.handle_certificate(c.clone()).expect("valid cert"),
            }
            let due = std::iter::from_fn(|| never.poll_output())
                .filter(|o| matches!(o, Output::Snapshot { .. }))
                .count();
            for r in &mut restored {
                feed(r, i);
            }
            if due > 0 && restored.len() < 3 {
                // Written, read back through the file format, restored, given the tail.
                let epoch = never.snapshot_epoch().expect("a certified base");
                let r = restart_from_snapshot(&g, &never, &delivered, now);
                assert!(r.pruned() > 0, "the snapshot covers history");
                assert_eq!(
                    r.state_root(),
                    never.state_root(),
                    "seed {seed} step {step}: restored at epoch {epoch}"
                );
                restored.push(r);
            }
            for (k, r) in restored.iter().enumerate() {
                assert_eq!(
                    r.state_root(),
                    never.state_root(),
                    "seed {seed} step {step}: restore {k} drifted"
                );
                assert_eq!(r.final_epoch(), never.final_epoch());
            }
        }
        assert!(!restored.is_empty(), "seed {seed}: no snapshot was offered");
        let fin = never.final_epoch().expect("final");
        for r in &restored {
            // Events both still hold (a restored ledger has let go of everything its
            // snapshot covers, which can be more than the never-stopped one pruned).
            for ev in &delivered {
                if never.event(&ev.id()).is_some() && r.event(&ev.id()).is_some() {
                    assert_eq!(r.verdict(&ev.id()), never.verdict(&ev.id()), "verdict");
                }
            }
            for e in fin.saturating_sub(5)..=fin {
                assert_eq!(r.epoch_root(e), never.epoch_root(e), "epoch {e}");
            }
            assert_eq!(r.len(), never.len(), "events held or pruned");
        }
    }
}

#[test]
fn a_damaged_or_uncertified_snapshot_is_refused_with_the_reason() {
    use web4fed_core::attest::GenesisVerifier;
    use web4fed_core::snapshot::{SnapshotError, SnapshotFile, HEADER_LEN};
    let (g, _, input) = script(5);
    let mut l = Ledger::new(g.clone());
    let mut file = None;
    for i in &input {
        feed(&mut l, i);
        if let Some(f) = l.snapshot() {
            file = Some(f);
        }
    }
    let bytes = file.expect("a snapshot").encode();
    let network = *l.network();
    let load = |b: &[u8], certified: Option<[u8; 32]>| {
        let f = SnapshotFile::decode(b, &network)?;
        Ledger::from_snapshot(g.clone(), Box::new(GenesisVerifier::new(&g)), &f, certified)
            .map(|_| ())
    };
    load(&bytes, None).expect("the intact file loads");
    // Any one flipped bit, in the header or anywhere in the body, is refused.
    let mut rng = Rng(99);
    let positions: Vec<usize> = (0..HEADER_LEN)
        .chain((0..300).map(|_| HEADER_LEN + (rng.next() as usize) % (bytes.len() - HEADER_LEN)))
        .collect();
    for p in positions {
        let mut b = bytes.clone();
        b[p] ^= 1 << (p % 8);
        let err = load(&b, None).expect_err("a flipped bit is refused");
        if p >= HEADER_LEN {
            assert!(
                matches!(err, SnapshotError::Checksum { .. }),
                "byte {p}: {err}"
            );
        }
    }
    // Cut short, or with bytes after it.
    assert!(matches!(
        load(&bytes[..bytes.len() - 1], None),
        Err(SnapshotError::Length { .. })
    ));
    // Not the root the node's own certificate names.
    let err = load(&bytes, Some([7; 32])).expect_err("uncertified root");
    assert!(matches!(err, SnapshotError::NotCertified { .. }), "{err}");
    assert!(err.to_string().contains("certified root"), "{err}");
    // Another network's node refuses it.
    assert!(matches!(
        SnapshotFile::decode(&bytes, &[0; 32]),
        Err(SnapshotError::WrongNetwork { .. })
    ));
}
