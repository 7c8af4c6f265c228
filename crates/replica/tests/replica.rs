//! The replica's policy tested without processes: a few replicas, a fake clock that jumps to
//! the next deadline, and a lossless in-memory network whose links can be cut.

use std::collections::{BTreeSet, VecDeque};
use web4fed_core::envelope::Heartbeat;
use web4fed_core::event::Body;
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::{Keypair, MemberId};
use web4fed_core::ledger::{Ledger, VerifiedEvent};
use web4fed_core::testkit::{sentence, Author};
use web4fed_replica::limits::{MAX_KNOWN_PEERS, REQUEST_TIMEOUT_MS, SYNC_BUFFER_MAX_AGE_MS};
use web4fed_replica::{
    Acceptance, Command, Config, Destination, Event, Gossip, Message, Replica, Reply, Request,
    RequestId, Response,
};

const T0: u64 = 1_767_225_600_000;
const HEARTBEAT_MS: u64 = 250;

fn genesis() -> Genesis {
    let mut g = Genesis::with_pow_bits(4);
    g.epoch_ms = 200;
    g.finality_every_epochs = 1;
    g.rate_base_thoughts = 100_000;
    g.rate_base_bytes = 100_000_000;
    g
}

/// A few replicas on a fake network: every message is delivered at once unless its link is
/// cut; persisted events are kept per node, as a driver would.
struct Net {
    now: u64,
    nodes: Vec<Replica>,
    ids: Vec<MemberId>,
    cut: BTreeSet<(usize, usize)>,
    inbox: VecDeque<(usize, usize, Message)>,
    /// Per node: every durable event in the order the replica emitted it.
    durable: Vec<Vec<Event>>,
    /// Per node: the kind of each output, events and transmissions interleaved in the order
    /// the drain rule hands them out.
    outputs: Vec<Vec<&'static str>>,
}

impl Net {
    /// `n` registered replicas, all connected.
    fn new(n: usize) -> Self {
        let g = genesis();
        let mut authors: Vec<Author> = (0..n)
            .map(|i| Author::from_seed(&g, i as u64 + 1))
            .collect();
        let regs: Vec<_> = authors
            .iter_mut()
            .enumerate()
            .map(|(i, a)| a.register(&g, &format!("n{i}"), T0))
            .collect();
        let nodes: Vec<Replica> = authors
            .iter()
            .map(|a| {
                let mut l = Ledger::new(g.clone());
                l.handle_batch(T0, regs.clone());
                while l.poll_output().is_some() {}
                let cfg = Config {
                    keypair: a.keypair.clone(),
                    heartbeat_ms: HEARTBEAT_MS,
                    bootstrap: Vec::new(),
                    last_vote: None,
                    has_tpm: false,
                    rate_thoughts: true,
                };
                Replica::new(cfg, l, T0)
            })
            .collect();
        let ids = authors.iter().map(Author::id).collect();
        // The registrations are in every node's durable log too.
        let persisted: Vec<Event> = regs
            .iter()
            .map(|r| Event::Admitted {
                event: std::sync::Arc::new(r.clone()),
                source: web4fed_replica::Source::Local,
                verdict: None,
            })
            .collect();
        let mut net = Self {
            now: T0,
            nodes,
            ids,
            cut: BTreeSet::new(),
            inbox: VecDeque::new(),
            durable: vec![persisted; n],
            outputs: vec![Vec::new(); n],
        };
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let m = net.ids[j];
                    net.nodes[i].handle_connected(T0, m, None);
                }
            }
        }
        net.pump();
        net
    }

    fn index(&self, m: &MemberId) -> usize {
        self.ids.iter().position(|x| x == m).unwrap()
    }

    /// Drains node `i` by the drain rule and queues its transmissions.
    fn drain(&mut self, i: usize) {
        while let Some(e) = self.nodes[i].poll_event() {
            self.outputs[i].push(match &e {
                Event::Voted { .. } => "voted",
                Event::Admitted { .. } => "admitted",
                _ => "event",
            });
            self.on_event(i, e);
        }
        while let Some(t) = self.nodes[i].poll_transmit() {
            let kind = match &t.message {
                Message::Gossip(Gossip::Vote(_)) => "vote",
                _ => "transmit",
            };
            self.outputs[i].push(kind);
            match t.to {
                Destination::Gossip => {
                    for j in 0..self.nodes.len() {
                        if j != i {
                            self.inbox.push_back((i, j, t.message.clone()));
                        }
                    }
                }
                Destination::Peer(m) => {
                    if let Some(j) = self.ids.iter().position(|x| *x == m) {
                        self.inbox.push_back((i, j, t.message));
                    }
                }
            }
        }
    }

    fn on_event(&mut self, i: usize, e: Event) {
        if let Event::ReadArchive {
            to,
            request,
            author,
            from_seq,
            max,
        } = &e
        {
            let rows = self.durable[i]
                .iter()
                .filter_map(|d| match d {
                    Event::Admitted { event, .. }
                        if event.author() == *author && event.seq() >= *from_seq =>
                    {
                        Some(event.bytes().to_vec())
                    }
                    _ => None,
                })
                .take(*max as usize)
                .collect();
            let cmd = Command::ArchiveRead {
                to: *to,
                request: *request,
                result: Ok(rows),
            };
            self.nodes[i].handle_command(self.now, cmd).unwrap();
        }
        self.durable[i].push(e);
    }

    /// Delivers everything in flight (and what that causes) at the current time.
    fn pump(&mut self) {
        for i in 0..self.nodes.len() {
            self.drain(i);
        }
        let mut budget = 1_000_000;
        while let Some((from, to, msg)) = self.inbox.pop_front() {
            budget -= 1;
            assert!(budget > 0, "messages never settle");
            if self.cut.contains(&(from, to)) {
                continue;
            }
            let m = self.ids[from];
            self.nodes[to].handle_message(self.now, m, msg);
            self.drain(to);
        }
    }

    /// Advances the clock deadline by deadline until `until`, pumping at each.
    fn run_until(&mut self, until: u64) {
        loop {
            let next = self.nodes.iter().map(Replica::poll_timeout).min().unwrap();
            if next > until {
                self.now = until;
                return;
            }
            self.now = next.max(self.now);
            for i in 0..self.nodes.len() {
                if self.nodes[i].poll_timeout() <= self.now {
                    self.nodes[i].handle_timeout(self.now);
                    // A timeout handled consumes every deadline up to now: one left in the
                    // past makes the daemon wake at once, again and again (a decided
                    // height's stall deadline did: every node spun for seconds after each
                    // decision).
                    assert!(
                        self.nodes[i].poll_timeout() > self.now,
                        "node {i} asks to be woken again at once (at {})",
                        self.now
                    );
                }
            }
            self.pump();
        }
    }

    fn submit(&mut self, i: usize, k: u64) -> Reply {
        let r = self.nodes[i]
            .handle_command(
                self.now,
                Command::Submit {
                    content: sentence(k),
                },
            )
            .unwrap();
        self.pump();
        r
    }

    fn root(&self, i: usize) -> [u8; 32] {
        self.nodes[i].ledger().state_root()
    }

    fn cut_both(&mut self, a: usize, b: usize) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }
}

#[test]
fn a_submitted_thought_is_pushed_and_every_root_agrees() {
    let mut net = Net::new(3);
    let Reply::Submitted(ev) = net.submit(0, 1) else {
        panic!("not submitted");
    };
    for i in 1..3 {
        assert!(
            net.nodes[i].ledger().holds(&ev),
            "node {i} lacks the thought"
        );
    }
    assert_eq!(net.root(0), net.root(1));
    assert_eq!(net.root(1), net.root(2));
    // Persisted on the author before it was sent: the admitted event precedes any transmit
    // of that step.
    let first_admit = net.outputs[0]
        .iter()
        .rposition(|k| *k == "admitted")
        .unwrap();
    assert!(net.outputs[0][first_admit + 1..]
        .iter()
        .all(|k| *k != "admitted"));
}

#[test]
fn a_node_that_missed_gossip_catches_up_by_sync_in_one_fold() {
    let mut net = Net::new(3);
    net.cut_both(0, 2);
    net.cut_both(1, 2);
    for k in 0..20 {
        net.submit(k as usize % 2, k);
    }
    assert_ne!(net.root(2), net.root(0));
    net.cut.clear();
    // A heartbeat shows a different digest; a sync round fetches the ranges and folds them
    // together once no range is in flight or the buffer has aged.
    net.run_until(net.now + 4 * HEARTBEAT_MS + SYNC_BUFFER_MAX_AGE_MS);
    assert_eq!(net.root(2), net.root(0));
    assert_eq!(net.nodes[2].ledger().len(), net.nodes[0].ledger().len());
}

#[test]
fn events_for_a_disconnected_peer_are_queued_and_pushed_on_reconnect() {
    let mut net = Net::new(2);
    let b = net.ids[1];
    net.nodes[0].handle_disconnected(net.now, b);
    net.cut_both(0, 1);
    for k in 0..5 {
        net.submit(0, k);
    }
    assert_eq!(net.nodes[0].peers().get(&b).unwrap().queue.len(), 5);
    net.cut.clear();
    net.nodes[0].handle_connected(net.now, b, None);
    net.pump();
    assert_eq!(net.nodes[0].peers().get(&b).unwrap().queue.len(), 0);
    assert_eq!(net.root(0), net.root(1));
}

#[test]
fn votes_are_signed_once_per_checkpoint_after_they_are_recorded_and_finality_advances() {
    let mut net = Net::new(3);
    for k in 0..6 {
        net.submit(k as usize % 3, k);
    }
    let start = net.now;
    net.run_until(start + 3_000);
    for i in 0..3 {
        let fin = net.nodes[i].ledger().final_epoch();
        assert!(
            fin.is_some_and(|e| e * 200 >= start),
            "node {i} finalised nothing new: {fin:?}"
        );
        // Every vote transmission comes after the Voted event of the same step.
        let outs = &net.outputs[i];
        let voted = outs.iter().filter(|k| **k == "voted").count();
        let votes = outs.iter().filter(|k| **k == "vote").count();
        assert_eq!(voted, votes, "node {i}: one recorded vote per vote sent");
        for (p, k) in outs.iter().enumerate() {
            if *k == "vote" {
                assert!(
                    outs[..p].contains(&"voted"),
                    "node {i} sent a vote before recording it"
                );
            }
        }
        let steps: Vec<_> = net.durable[i]
            .iter()
            .filter_map(|e| match e {
                Event::Voted(v) => Some((v.at, v.kind)),
                _ => None,
            })
            .collect();
        let distinct: BTreeSet<_> = steps.iter().collect();
        assert_eq!(
            distinct.len(),
            steps.len(),
            "node {i} voted twice in one round"
        );
    }
}

#[test]
fn a_replica_restarted_with_its_last_vote_does_not_vote_again_in_that_round() {
    let g = genesis();
    let mut a = Author::from_seed(&g, 9);
    let reg = a.register(&g, "solo", T0);
    let mut l = Ledger::new(g.clone());
    l.handle_batch(T0, vec![reg]);
    while l.poll_output().is_some() {}
    let now = T0 + 10_000;
    let settled = {
        let probe = Replica::new(
            Config {
                keypair: a.keypair.clone(),
                heartbeat_ms: HEARTBEAT_MS,
                bootstrap: vec![],
                last_vote: None,
                has_tpm: false,
                rate_thoughts: true,
            },
            Ledger::new(g.clone()),
            now,
        );
        let e = probe.settled_checkpoint(now);
        let _ = e;
        web4fed_core::finality::LastVote {
            at: web4fed_core::finality::At::default(),
            kind: web4fed_core::finality::VoteKind::Precommit,
            value: Some([5; 32]),
        }
    };
    let mut r = Replica::new(
        Config {
            keypair: a.keypair.clone(),
            heartbeat_ms: HEARTBEAT_MS,
            bootstrap: vec![],
            last_vote: Some(settled),
            has_tpm: false,
            rate_thoughts: true,
        },
        l,
        now,
    );
    let mut events = Vec::new();
    for t in (0..10).map(|k| now + k * 500) {
        r.handle_timeout(t);
        events.extend(std::iter::from_fn(|| r.poll_event()));
    }
    let mut voted = 0;
    for e in events {
        if let Event::Voted(v) = e {
            voted += 1;
            assert!(v.at.round >= 1, "voted again in round 0: {v:?}");
            // Locked on what it precommitted before the restart: no prevote for another.
            if v.kind == web4fed_core::finality::VoteKind::Prevote {
                assert!(v.value.is_none_or(|id| id == [5; 32]), "{v:?}");
            }
        }
    }
    assert!(voted > 0, "the replica votes again, in a later round");
}

#[test]
fn answers_to_requests_never_made_or_from_another_peer_are_ignored() {
    let mut net = Net::new(3);
    let before = net.nodes[0].ledger().len();
    let g = genesis();
    let mut stranger = Author::from_seed(&g, 77);
    let ev = stranger.register(&g, "stranger", net.now);
    let forged = Response::Events {
        events: vec![ev.bytes().to_vec().into()],
    };
    let from = net.ids[1];
    net.nodes[0].handle_message(
        net.now,
        from,
        Message::Response {
            id: RequestId(999_999),
            body: forged.clone(),
        },
    );
    net.run_until(net.now + SYNC_BUFFER_MAX_AGE_MS + 1);
    assert_eq!(net.nodes[0].ledger().len(), before);
    assert!(net.nodes[0].counters().rejected["unsolicited_response"] >= 1);
}

#[test]
fn a_request_never_answered_expires_and_sync_starts_again() {
    let mut net = Net::new(2);
    net.cut_both(0, 1);
    net.submit(1, 1);
    let b = net.ids[1];
    net.now += 1_000;
    // A reconnection starts a sync round; its answers are lost.
    net.nodes[0].handle_disconnected(net.now, b);
    net.nodes[0].handle_connected(net.now, b, None);
    net.pump();
    assert!(net.nodes[0].peers().get(&b).unwrap().reconcile_in_flight);
    net.run_until(net.now + REQUEST_TIMEOUT_MS + HEARTBEAT_MS);
    // Expired: the slot is free, and the next round goes out.
    net.cut.clear();
    net.run_until(net.now + 11_000);
    assert_eq!(net.root(0), net.root(1));
}

/// The key pair of the net's second node (made from the testkit's seed 2), for tests that
/// sign what it would send.
fn second_node_key() -> Keypair {
    Keypair::from_secret({
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&2u64.to_be_bytes());
        s[31] = 0x5a;
        s
    })
}

#[test]
fn heartbeats_count_once_and_only_from_their_sender() {
    let mut net = Net::new(2);
    let kp = second_node_key();
    assert_eq!(kp.id(), net.ids[1]);
    let hb = Heartbeat::sign(
        &kp,
        net.nodes[0].network(),
        net.now,
        0,
        [0; 32],
        [1; 32],
        1,
        None,
        0,
    );
    let msg = || Message::Gossip(Gossip::Heartbeat(hb.clone()));
    let from = net.ids[1];
    // Heard (it counts, and records the peer's root) but not relayed: heartbeats are for
    // the peers they were sent to.
    let before = net.nodes[0].counters().heartbeats;
    assert_eq!(
        net.nodes[0].handle_message(net.now, from, msg()),
        Acceptance::Ignore
    );
    assert_eq!(net.nodes[0].counters().heartbeats, before + 1);
    assert!(net.nodes[0].peers().get(&from).unwrap().heartbeat.is_some());
    // A replay tells nothing new.
    assert_eq!(
        net.nodes[0].handle_message(net.now, from, msg()),
        Acceptance::Ignore
    );
    assert_eq!(net.nodes[0].counters().heartbeats, before + 1);
    // Relayed by anyone but its sender (here a stranger's connection), even unchanged, it
    // is not taken: a heartbeat speaks for the link it came over, which the transport
    // authenticated, so its signature is not what is checked.
    let relay = web4fed_core::identity::MemberId([0x77; 32]);
    let mut later = hb.clone();
    later.sent_ms += 1_000;
    assert_eq!(
        net.nodes[0].handle_message(net.now, relay, Message::Gossip(Gossip::Heartbeat(later))),
        Acceptance::Ignore
    );
    assert_eq!(net.nodes[0].counters().heartbeats, before + 1);
    assert_eq!(
        net.nodes[0]
            .counters()
            .rejected
            .get("heartbeat_not_from_sender"),
        Some(&1)
    );
}

#[test]
fn a_differing_heartbeat_asks_for_certificates_and_evidence_only_when_its_sender_holds_more() {
    let mut net = Net::new(2);
    let kp = second_node_key();
    assert_eq!(kp.id(), net.ids[1]);
    let from = net.ids[1];
    // Past the start (registrations delivered, so node 1 is not "delivering").
    net.run_until(net.now + 3 * HEARTBEAT_MS);
    let asked = |net: &Net, kind: &str| {
        let c = net.nodes[0].counters();
        (
            c.requests.get(kind).copied().unwrap_or(0),
            c.sync_rounds.get("heartbeat_differs").copied().unwrap_or(0),
        )
    };
    // Newer than any heartbeat node 1 sends during the test, and naming feeds nobody has.
    let heartbeat = |sent_ms: u64, final_epoch: Option<u64>, evidence: u64| {
        let hb = Heartbeat::sign(
            &kp,
            net.nodes[0].network(),
            sent_ms,
            0,
            [0; 32],
            [9; 32],
            1,
            final_epoch,
            evidence,
        );
        Message::Gossip(Gossip::Heartbeat(hb))
    };
    let far = net.now + 1_000_000;
    let ours = net.nodes[0].ledger().final_epoch();
    let before = [asked(&net, "certificates"), asked(&net, "evidence")];
    let (m1, m2) = (
        heartbeat(far, ours, 0),
        heartbeat(far + 1, Some(u64::MAX / 2), 3),
    );
    // The same certified epoch and no evidence: the feed heads only.
    // Past the least interval between two rounds with one peer (the replica takes the
    // time as an argument; the net's other messages wait).
    let gap = web4fed_replica::limits::SYNC_MIN_INTERVAL_MS;
    assert!(!net.nodes[0].peers().get(&from).unwrap().reconcile_in_flight);
    net.nodes[0].handle_message(net.now + gap, from, m1);
    let after = [asked(&net, "certificates"), asked(&net, "evidence")];
    assert_eq!(after[0].1, before[0].1 + 1, "a round started");
    assert_eq!(after[0].0, before[0].0, "no certificates asked");
    assert_eq!(after[1].0, before[1].0, "no evidence asked");
    // Once that round is answered: a later certificate and more evidence, so both are asked.
    net.pump();
    net.run_until(net.now + 2 * gap);
    let before = [asked(&net, "certificates"), asked(&net, "evidence")];
    assert!(!net.nodes[0].peers().get(&from).unwrap().reconcile_in_flight);
    net.nodes[0].handle_message(net.now + gap, from, m2);
    let after = [asked(&net, "certificates"), asked(&net, "evidence")];
    assert_eq!(after[0].1, before[0].1 + 1, "a second round started");
    assert_eq!(after[0].0, before[0].0 + 1, "certificates asked");
    assert_eq!(after[1].0, before[1].0 + 1, "evidence asked");
}

#[test]
fn peer_exchange_answers_cannot_grow_the_peer_book_without_bound() {
    let mut net = Net::new(2);
    let a = &mut net.nodes[0];
    // Node 0 asks node 1 whom it knows; "node 1" answers with thousands of made-up peers.
    a.handle_timeout(T0 + 3_100);
    let mut id = None;
    while let Some(t) = a.poll_transmit() {
        if let Message::Request {
            id: rid,
            body: Request::Peers,
        } = t.message
        {
            id = Some(rid);
        }
    }
    let id = id.expect("a peer exchange request");
    let fake: Vec<_> = (0..10_000u32)
        .map(|k| {
            let mut m = [0u8; 32];
            m[..4].copy_from_slice(&k.to_be_bytes());
            (m.to_vec().into(), vec![format!("/ip4/127.0.0.1/tcp/{k}")])
        })
        .collect();
    let from = net.ids[1];
    net.nodes[0].handle_message(
        T0 + 3_100,
        from,
        Message::Response {
            id,
            body: Response::Peers { peers: fake },
        },
    );
    assert!(net.nodes[0].peers().iter().count() <= MAX_KNOWN_PEERS);
}

#[test]
fn a_range_the_ledger_let_go_of_is_read_from_the_archive() {
    let mut net = Net::new(3);
    let author = net.ids[0];
    // Post and let finality run until node 0 prunes part of author 0's feed.
    let mut k = 0;
    while net.nodes[0].ledger().pruned() == 0 {
        net.submit(k as usize % 3, k);
        k += 1;
        net.run_until(net.now + 100);
        assert!(k < 2_000, "no pruning");
    }
    let len = net.nodes[0].ledger().feed_len(&author);
    assert!(
        (0..len).any(|s| net.nodes[0].ledger().feed_event(&author, s).is_none()),
        "author 0's feed still whole in memory"
    );
    let from = net.ids[1];
    net.nodes[0].handle_message(
        net.now,
        from,
        Message::Request {
            id: RequestId(4_242),
            body: Request::Range {
                author: author.0.to_vec().into(),
                from_seq: 0,
                max: 10_000,
            },
        },
    );
    // The replica asks the driver to read the log, then answers with the whole range.
    let mut asked = false;
    while let Some(e) = net.nodes[0].poll_event() {
        if matches!(e, Event::ReadArchive { from_seq: 0, .. }) {
            asked = true;
        }
        net.on_event(0, e);
    }
    assert!(asked, "no archive read for a pruned range");
    let mut got = None;
    while let Some(t) = net.nodes[0].poll_transmit() {
        if let Message::Response {
            id: RequestId(4_242),
            body: Response::Events { events },
        } = t.message
        {
            got = Some(events.len() as u64);
        }
    }
    assert_eq!(got, Some(len.min(512)));
}

#[test]
fn an_ejected_members_messages_are_refused() {
    let mut net = Net::new(3);
    // Node 2 equivocates: two events at one seq reach node 0.
    net.run_until(net.now + 1_000);
    let g = genesis();
    let mut evil = Author::from_seed(&g, 3);
    let _ = evil.register(&g, "n2", T0);
    let a = evil.next(net.now, Body::Thought(sentence(1)));
    let b = evil.sign_at(
        a.seq(),
        a.header.prev,
        net.now + 1,
        Body::Thought(sentence(2)),
    );
    let evil_id = net.ids[2];
    let Reply::Ingested(r) = net.nodes[0]
        .handle_command(
            net.now,
            Command::Ingest {
                events: [a, b]
                    .map(|e| VerifiedEvent::check(e, &genesis().network_id()).unwrap())
                    .to_vec(),
            },
        )
        .unwrap()
    else {
        panic!("not ingested");
    };
    net.pump();
    assert_eq!((r.admitted, r.rejected), (1, 1), "{r:?}");
    let st = net.nodes[0]
        .ledger()
        .state()
        .account(&evil_id)
        .unwrap()
        .status;
    assert_eq!(st, web4fed_core::state::Status::Ejected);
    assert!(net.nodes[0].peers().blocked.contains(&evil_id));
    let hb = Heartbeat::sign(
        &evil.keypair,
        net.nodes[0].network(),
        net.now + 5,
        0,
        [0; 32],
        [2; 32],
        9,
        None,
        0,
    );
    let verdict =
        net.nodes[0].handle_message(net.now, evil_id, Message::Gossip(Gossip::Heartbeat(hb)));
    assert_eq!(verdict, Acceptance::Reject);
    let _ = net.index(&evil_id);
}

#[test]
fn strangers_heartbeats_and_votes_are_dropped_before_they_cost_anything() {
    let mut net = Net::new(2);
    let g = genesis();
    let stranger = Author::from_seed(&g, 999);
    let from = net.ids[1];
    let hb = Heartbeat::sign(
        &stranger.keypair,
        net.nodes[0].network(),
        net.now,
        0,
        [0; 32],
        [3; 32],
        1,
        None,
        0,
    );
    let v = net.nodes[0].handle_message(net.now, from, Message::Gossip(Gossip::Heartbeat(hb)));
    assert_eq!(v, Acceptance::Ignore);
    assert!(
        net.nodes[0].peers().get(&stranger.id()).is_none(),
        "a peer entry for a stranger"
    );
    let vote = web4fed_core::finality::Vote::sign(
        &stranger.keypair,
        net.nodes[0].network(),
        web4fed_core::finality::At::default(),
        web4fed_core::finality::VoteKind::Prevote,
        None,
    );
    let v = net.nodes[0].handle_message(net.now, from, Message::Gossip(Gossip::Vote(vote)));
    assert_eq!(v, Acceptance::Ignore);
    assert!(net.nodes[0].counters().rejected["vote_not_member"] >= 1);
}

#[test]
fn implausible_certificates_are_refused_without_touching_the_ledger() {
    let mut net = Net::new(2);
    net.run_until(net.now + 1_000);
    let from = net.ids[1];
    let far = web4fed_core::finality::Certificate {
        at: web4fed_core::finality::At {
            height: 5,
            gen: 0,
            round: 0,
        },
        body: web4fed_core::finality::VoteBody {
            epoch: net.now / 200 + 1_000,
            prev: None,
            root: [0; 32],
            frontier: [0; 32],
        },
        frontier: Default::default(),
        signatures: vec![(net.ids[0], [0; 64])],
    };
    let v = net.nodes[0].handle_message(
        net.now,
        from,
        Message::Gossip(Gossip::Certificate(far.clone())),
    );
    assert_eq!(v, Acceptance::Reject);
    let mut unsigned = far;
    unsigned.body.epoch = net.now / 200 - 1;
    unsigned.signatures.clear();
    let v = net.nodes[0].handle_message(
        net.now,
        from,
        Message::Gossip(Gossip::Certificate(unsigned)),
    );
    assert_eq!(v, Acceptance::Reject);
    assert_eq!(
        net.nodes[0].counters().rejected["implausible_certificate"],
        2
    );
}

/// A summary request from `from` to node 0, numbered `k`.
fn ask_summary(net: &mut Net, from: MemberId, k: u64) {
    let msg = Message::Request {
        id: RequestId(k),
        body: Request::Summary,
    };
    net.nodes[0].handle_message(net.now, from, msg);
}

#[test]
fn a_stranger_gets_the_newcomer_budget_and_then_errors() {
    let mut net = Net::new(1);
    let g = genesis();
    let stranger = Author::from_seed(&g, 4_321).id();
    let mut answered = 0;
    let mut refused = 0;
    let burst = web4fed_replica::limits::NEWCOMER_REQUESTS_PER_SEC * 10;
    // Short of the strikes that would have it shunned (tested below).
    let sent = burst + web4fed_replica::limits::STRIKES_TO_SHUN - 1;
    for k in 0..sent {
        ask_summary(&mut net, stranger, k);
        while let Some(t) = net.nodes[0].poll_transmit() {
            match t.message {
                Message::Response {
                    body: Response::Summary { .. },
                    ..
                } => answered += 1,
                Message::Response {
                    body: Response::Error { .. },
                    ..
                } => refused += 1,
                _ => {}
            }
        }
    }
    assert_eq!(answered, burst);
    assert_eq!(refused, sent - burst);
    // A second later it may ask again, at the newcomer's rate.
    let later = net.now + 1_000;
    net.nodes[0].handle_message(
        later,
        stranger,
        Message::Request {
            id: RequestId(5_000),
            body: Request::Summary,
        },
    );
    let t = net.nodes[0].poll_transmit().unwrap();
    assert!(matches!(
        t.message,
        Message::Response {
            body: Response::Summary { .. },
            ..
        }
    ));
}

#[test]
fn a_stranger_that_keeps_going_over_budget_is_disconnected_and_shunned() {
    use web4fed_replica::limits::{SHUN_MS, STRIKES_TO_SHUN};
    let mut net = Net::new(2);
    let stranger = Keypair::from_secret([0x77; 32]).id();
    net.nodes[0].handle_connected(net.now, stranger, None);
    let mut disconnects = 0;
    let burst = web4fed_replica::limits::NEWCOMER_REQUESTS_PER_SEC * 10;
    for k in 0..(burst + STRIKES_TO_SHUN + 10) {
        ask_summary(&mut net, stranger, k);
        while let Some(e) = net.nodes[0].poll_event() {
            if matches!(e, Event::Disconnect { peer, .. } if peer == stranger) {
                disconnects += 1;
            }
        }
        while net.nodes[0].poll_transmit().is_some() {}
    }
    assert_eq!(disconnects, 1, "shunned once, when the strikes ran out");
    assert!(net.nodes[0].peers().get(&stranger).is_none(), "forgotten");
    // A new connection during the shun is closed at once; after it, the stranger is heard.
    net.nodes[0].handle_connected(net.now + 1, stranger, None);
    assert!(matches!(
        net.nodes[0].poll_event(),
        Some(Event::Disconnect { peer, .. }) if peer == stranger
    ));
    let later = net.now + SHUN_MS + 1;
    net.nodes[0].handle_connected(later, stranger, None);
    assert!(net.nodes[0].poll_event().is_none());
    assert!(net.nodes[0].peers().get(&stranger).is_some());
}

/// Evidence is served in pages with a cursor, and a client pages through all of it: a
/// node holding more proofs than fit one answer still hands every one on.
#[test]
fn evidence_is_served_in_pages_and_a_client_takes_every_page() {
    use web4fed_replica::limits::MAX_EVIDENCE_ITEMS;
    let g = genesis();
    let n = MAX_EVIDENCE_ITEMS + 100;
    let mut forkers: Vec<Author> = (0..n)
        .map(|i| Author::from_seed(&g, 10_000 + i as u64))
        .collect();
    let regs: Vec<_> = forkers
        .iter_mut()
        .enumerate()
        .map(|(i, a)| a.register(&g, &format!("f{i}"), T0))
        .collect();
    let mut server = Ledger::new(g.clone());
    let mut client = Ledger::new(g.clone());
    for l in [&mut server, &mut client] {
        l.handle_batch(T0, regs.clone());
        while l.poll_output().is_some() {}
    }
    for a in &mut forkers {
        let (one, other, _) = a.equivocate(T0 + 1, &sentence(1), &sentence(2));
        server.handle_batch(T0 + 1, vec![one, other]);
    }
    while server.poll_output().is_some() {}
    assert_eq!(server.proofs().count(), n);
    let keys: Vec<Keypair> = (0..2).map(|i| Keypair::from_secret([60 + i; 32])).collect();
    let cfg = |kp: &Keypair| Config {
        keypair: kp.clone(),
        heartbeat_ms: HEARTBEAT_MS,
        bootstrap: Vec::new(),
        last_vote: None,
        has_tpm: false,
        rate_thoughts: true,
    };
    let (s_id, c_id) = (keys[0].id(), keys[1].id());
    let mut s = Replica::new(cfg(&keys[0]), server, T0);
    let mut c = Replica::new(cfg(&keys[1]), client, T0);
    // The client connects (a sync round starts) and the two talk until quiet.
    c.handle_connected(T0 + 2, s_id, None);
    s.handle_connected(T0 + 2, c_id, None);
    let mut pages = 0;
    for _ in 0..200 {
        let mut quiet = true;
        while let Some(t) = c.poll_transmit() {
            quiet = false;
            if let Destination::Peer(_) = t.to {
                s.handle_message(T0 + 3, c_id, t.message);
            }
        }
        while let Some(t) = s.poll_transmit() {
            quiet = false;
            if let (Destination::Peer(_), Message::Response { body, .. }) = (&t.to, &t.message) {
                if let Response::Evidence { items, .. } = body {
                    assert!(items.len() <= MAX_EVIDENCE_ITEMS);
                    pages += 1;
                }
                c.handle_message(T0 + 3, s_id, t.message);
            }
        }
        while c.poll_event().is_some() {}
        while s.poll_event().is_some() {}
        if quiet {
            break;
        }
    }
    assert_eq!(pages, 2, "{n} proofs take two pages");
    assert_eq!(c.ledger().proofs().count(), n, "the client has every proof");
}

/// Node 3 of four, cut off while the others post until node 0 prunes, comes back as a
/// replica restored from node 0's snapshot (as `--state-sync` leaves it) and asked to
/// backfill. Returns the net and the plan (each covered feed's length and head).
fn joined_from_a_snapshot() -> (Net, Vec<web4fed_replica::Gap>) {
    let mut net = Net::new(4);
    for j in 0..3 {
        net.cut_both(3, j);
    }
    let mut k = 0;
    // Enough history that a feed spans several backfill pages.
    let page = web4fed_replica::limits::BACKFILL_PAGE_EVENTS;
    while !net.nodes[0]
        .ledger()
        .covered_lens()
        .iter()
        .any(|(_, n)| *n > 2 * page)
    {
        net.submit(k as usize % 3, k);
        k += 1;
        net.run_until(net.now + 100);
        assert!(k < 5_000, "no pruning");
    }
    let g = genesis();
    let file = net.nodes[0].ledger().snapshot().expect("a snapshot");
    let verifier = Box::new(web4fed_core::attest::GenesisVerifier::new(&g));
    let (ledger, _) = Ledger::from_snapshot(g.clone(), verifier, &file, None).unwrap();
    let plan: Vec<web4fed_replica::Gap> = ledger
        .covered_heads()
        .into_iter()
        .map(|(author, low, anchor)| web4fed_replica::Gap {
            author,
            low,
            anchor,
        })
        .collect();
    assert!(plan.iter().any(|g| g.low > 2 * page));
    let cfg = Config {
        keypair: Author::from_seed(&g, 4).keypair,
        heartbeat_ms: HEARTBEAT_MS,
        bootstrap: Vec::new(),
        last_vote: None,
        has_tpm: false,
        rate_thoughts: true,
    };
    net.nodes[3] = Replica::new(cfg, ledger, net.now);
    net.durable[3].clear();
    (net, plan)
}

/// Events node `i` was handed as backfilled pages, by author and seq.
fn backfilled(
    net: &Net,
    i: usize,
) -> std::collections::BTreeMap<(MemberId, u64), std::sync::Arc<web4fed_core::event::Event>> {
    let mut got = std::collections::BTreeMap::new();
    for e in &net.durable[i] {
        if let Event::Backfilled { events, .. } = e {
            for ev in events {
                assert!(
                    got.insert((ev.author(), ev.seq()), ev.clone()).is_none(),
                    "seq {} of {} backfilled twice",
                    ev.seq(),
                    ev.author()
                );
            }
        }
    }
    got
}

#[test]
fn a_node_restored_from_a_snapshot_backfills_the_history_before_it_verified_page_by_page() {
    let (mut net, plan) = joined_from_a_snapshot();
    net.nodes[3]
        .handle_command(net.now, Command::Backfill { gaps: plan.clone() })
        .unwrap();
    net.cut.clear();
    for j in 0..3 {
        let (a, b) = (net.ids[j], net.ids[3]);
        net.nodes[3].handle_connected(net.now, a, None);
        net.nodes[j].handle_connected(net.now, b, None);
    }
    net.pump();
    let total: u64 = plan.iter().map(|g| g.low).sum();
    let deadline = net.now + 120_000;
    while net.nodes[3].backfill_status().feeds_left > 0 {
        net.run_until(net.now + 500);
        assert!(
            net.now < deadline,
            "backfill stuck: {:?}",
            net.nodes[3].backfill_status()
        );
    }
    let s = net.nodes[3].backfill_status();
    assert_eq!((s.stored, s.refused, s.set_aside), (total, 0, 0), "{s:?}");
    // Every covered event, exactly the bytes node 0 admitted, newest page first.
    let got = backfilled(&net, 3);
    assert_eq!(got.len() as u64, total);
    for e in &net.durable[0] {
        if let Event::Admitted { event, .. } = e {
            let covered = plan
                .iter()
                .any(|g| g.author == event.author() && event.seq() < g.low);
            if covered {
                let ours = &got[&(event.author(), event.seq())];
                assert_eq!(ours.bytes(), event.bytes());
            }
        }
    }
    let first = net.durable[3].iter().find_map(|e| match e {
        Event::Backfilled { events, .. } => Some(events[0].seq()),
        _ => None,
    });
    assert!(
        first.unwrap() > 0,
        "the first page stored is not the newest"
    );
    // The state is the snapshot's plus the tail: backfill never touched the ledger.
    assert_eq!(net.root(3), net.root(0));
}

/// The answer a backfilling replica gets back for its next request, built by `forge` from
/// the honest events that request covers; returns whether a page was stored.
fn answer_backfill_with(
    net: &mut Net,
    forge: impl Fn(&[web4fed_core::event::Event]) -> Vec<Vec<u8>>,
) -> bool {
    // Let the replica send its next backfill request and catch it.
    let deadline = net.now + 10_000;
    loop {
        net.now += 50;
        net.nodes[3].handle_timeout(net.now);
        while net.nodes[3].poll_event().is_some() {}
        let mut caught = None;
        while let Some(t) = net.nodes[3].poll_transmit() {
            if let (
                Destination::Peer(to),
                Message::Request {
                    id,
                    body:
                        Request::Range {
                            author,
                            from_seq,
                            max,
                        },
                },
            ) = (&t.to, &t.message)
            {
                let a = MemberId(<[u8; 32]>::try_from(author.as_slice()).unwrap());
                let covered = net.nodes[3].ledger().feed_len(&a) > *from_seq;
                if covered {
                    caught = Some((*to, *id, a, *from_seq, *max));
                }
            }
        }
        if let Some((to, id, author, from_seq, max)) = caught {
            let j = net.index(&to);
            let honest: Vec<web4fed_core::event::Event> = net.durable[j]
                .iter()
                .filter_map(|e| match e {
                    Event::Admitted { event, .. }
                        if event.author() == author
                            && (from_seq..from_seq + u64::from(max)).contains(&event.seq()) =>
                    {
                        Some((**event).clone())
                    }
                    _ => None,
                })
                .collect();
            let events = forge(&honest).into_iter().map(Into::into).collect();
            let before = backfilled(net, 3).len();
            net.nodes[3].handle_message(
                net.now,
                to,
                Message::Response {
                    id,
                    body: Response::Events { events },
                },
            );
            while let Some(e) = net.nodes[3].poll_event() {
                net.durable[3].push(e);
            }
            while net.nodes[3].poll_transmit().is_some() {}
            return backfilled(net, 3).len() > before;
        }
        assert!(net.now < deadline, "no backfill request");
    }
}

#[test]
fn forged_backfill_answers_are_refused_and_nothing_of_them_is_stored() {
    let (mut net, plan) = joined_from_a_snapshot();
    let g = genesis();
    net.nodes[3]
        .handle_command(net.now, Command::Backfill { gaps: plan })
        .unwrap();
    for j in 0..3 {
        let a = net.ids[j];
        net.nodes[3].handle_connected(net.now, a, None);
    }
    while net.nodes[3].poll_event().is_some() {}
    while net.nodes[3].poll_transmit().is_some() {}
    let stranger = Author::from_seed(&g, 99);
    let refused = |net: &Net, why: &str| net.nodes[3].counters().rejected.get(why).copied();
    // A flipped signature byte.
    let flipped = |evs: &[web4fed_core::event::Event]| {
        evs.iter()
            .map(|e| {
                let mut b = e.bytes().to_vec();
                b[web4fed_core::event::HEADER_LEN] ^= 1;
                b
            })
            .collect()
    };
    assert!(!answer_backfill_with(&mut net, flipped));
    assert_eq!(refused(&net, "backfill_bad_signature"), Some(1));
    // Another member's events, validly signed, at the seqs asked for.
    let other = |evs: &[web4fed_core::event::Event]| {
        evs.iter()
            .map(|e| {
                let body = Body::Thought(format!("not yours {}", e.seq()));
                stranger
                    .sign_at(e.seq(), e.header.prev, e.timestamp_ms(), body)
                    .bytes()
                    .to_vec()
            })
            .collect()
    };
    assert!(!answer_backfill_with(&mut net, other));
    assert_eq!(refused(&net, "backfill_other_author"), Some(1));
    // The author's own signature on another branch: the page links up but does not end at
    // the head the snapshot certifies (re-signed by the genuine author's key).
    let forks = |evs: &[web4fed_core::event::Event]| {
        let author = (1..=3)
            .map(|s| Author::from_seed(&genesis(), s))
            .find(|a| a.id() == evs[0].author())
            .unwrap();
        let mut out = Vec::new();
        let mut prev = evs[0].header.prev;
        for e in evs {
            let body = Body::Thought(format!("another branch {}", e.seq()));
            let f = author.sign_at(e.seq(), prev, e.timestamp_ms(), body);
            prev = f.id();
            out.push(f.bytes().to_vec());
        }
        out
    };
    assert!(!answer_backfill_with(&mut net, forks));
    assert_eq!(refused(&net, "backfill_not_certified"), Some(1));
    // An event repeated (no honest log answers so).
    let repeated = |evs: &[web4fed_core::event::Event]| {
        let mut out: Vec<Vec<u8>> = evs.iter().map(|e| e.bytes().to_vec()).collect();
        out.insert(1, out[0].clone());
        out
    };
    assert!(!answer_backfill_with(&mut net, repeated));
    assert_eq!(refused(&net, "backfill_out_of_order"), Some(1));
    // A hole in an honest peer's log (its retention removed a row): the part before it is
    // kept, nothing is refused, and the rest of the page is asked for again.
    let holed = |evs: &[web4fed_core::event::Event]| {
        evs.iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, e)| e.bytes().to_vec())
            .collect()
    };
    let refusals = |net: &Net| -> u64 {
        net.nodes[3]
            .counters()
            .rejected
            .iter()
            .filter(|(k, _)| k.starts_with("backfill_"))
            .map(|(_, v)| *v)
            .sum()
    };
    let before = refusals(&net);
    assert!(!answer_backfill_with(&mut net, holed));
    assert_eq!(refusals(&net), before);
    // None of that was stored; the honest answer is.
    assert!(backfilled(&net, 3).is_empty());
    assert!(answer_backfill_with(&mut net, |evs| evs
        .iter()
        .map(|e| e.bytes().to_vec())
        .collect()));
}
