//! A deterministic simulator of a web4fed federation, in the manner of TigerBeetle's VOPR:
//! the real protocol core (`web4fed_core::ledger::Ledger`, every signature checked) on every
//! node, a seeded fake network and clock, adversaries, and invariants checked on every run.
//!
//! # What is modelled, and how faithfully
//! - **Nodes** run the same `Ledger` as the daemon: admission, the nine layers, the fold,
//!   evidence. An honest node previews its own event and never signs a violation; it persists
//!   (the storage model) before it acknowledges, exactly like the daemon.
//! - **Push** is the daemon's gossipsub publish: `FullMesh` sends a new event to every peer
//!   (gossipsub's flood publish on a small federation); `Gossip { fanout }` sends it to
//!   `fanout` random peers and every receiver forwards a newly admitted event to `fanout`
//!   random peers (a gossipsub mesh of degree `fanout`). Gossipsub's mesh maintenance, IHAVE
//!   gossip and peer scoring are not modelled; invalid pushes are simply not forwarded.
//! - **Anti-entropy** is the daemon's sync: every `sync_period_ms` each node sends every peer a
//!   heartbeat with the digest of its feed heads, and a node whose digest differs asks that
//!   sender for what it lacks (batches of at most 512 events, plus the certificates it lacks);
//!   each node also syncs with one random peer per period. The daemon does the same in two
//!   round trips (summary, then ranges); the simulator folds the summary into the request.
//! - **Network**: per-link latency (base plus uniform jitter, which also reorders), loss and
//!   duplication per message, partitions (any split, one-way too) and heal.
//! - **Storage**: a node's durable log is what it appended before acknowledging; a crash drops
//!   everything else, and a restart rebuilds the ledger from the durable log.
//! - **Clocks**: each node has a fixed skew; its own events carry its local time and the
//!   future-dating check uses it.
//!
//! A run has a faulty phase (faults and attacks) and then a healed phase (no loss, no
//! partition), after which every invariant must hold. The same seed gives the same report,
//! byte for byte.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod report;
pub mod rng;
pub mod scenario;

use rng::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use web4fed_core::envelope::Envelope;
use web4fed_core::event::{Body, Event, EventId, Register};
use web4fed_core::finality::{Certificate, Vote};
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::{Keypair, MemberId};
use web4fed_core::ledger::{Admission, InsertError, Ledger, Output, MAX_FUTURE, MAX_ORPHANS};
use web4fed_core::state::Status;
use web4fed_core::testkit::sentence;
use web4fed_core::verdict::{EjectCause, Verdict};

/// Events per anti-entropy response, as in the daemon.
pub const SYNC_BATCH_EVENTS: usize = 512;
/// Messages in flight on one directed link; beyond this new ones are dropped and counted.
pub const MAX_IN_FLIGHT_PER_LINK: usize = 10_000;
/// Certificates a node keeps waiting for the events they cover.
const PENDING_CERTS_MAX: usize = 16;
/// Peers a new vote is relayed to (gossipsub's mesh degree in the daemon).
const VOTE_RELAY_FANOUT: usize = 6;
/// Epochs after an epoch's end before a node signs its root (as the daemon does).
pub const VOTE_LAG_EPOCHS: u64 = 2;
/// Bytes of framing counted per message beside its payload.
const MESSAGE_OVERHEAD_BYTES: u64 = 64;

/// How new events spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dissemination {
    /// The author sends to every peer; receivers do not forward.
    FullMesh,
    /// The author sends to `fanout` random peers; receivers forward new events likewise.
    Gossip {
        /// Peers per hop.
        fanout: usize,
    },
}

/// A misbehaviour a member can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// Signs thoughts far above its rate limit.
    Spammer,
    /// Posts low-quality and near-duplicate content at its full rate (corpus poisoning).
    Garbage,
    /// Sends envelopes carrying events with forged signatures.
    Forger,
    /// Signs two different events at one seq and sends each to half its peers.
    Equivocator,
    /// Transfers more ATP than it holds, and transfers "from" another member.
    AtpForger,
    /// Future- and back-dated events, and bursts at the rate window's edges.
    Timing,
    /// Registers, then drops everything it should relay or answer.
    Silent,
    /// A Sybil: registers like any member (valid PoW), then stays silent.
    Sybil,
    /// A Sybil whose registration carries an invalid proof of work.
    SybilNoPow,
    /// Signs two different roots for each checkpoint, one to each half of its peers.
    DoubleVoter,
    /// Registers and relays, but never signs a root (withholds its weight from finality).
    Withholder,
}

impl Behaviour {
    /// True for members that follow the protocol.
    pub fn is_honest(self) -> bool {
        self == Self::Honest
    }
}

/// A partition of the network during part of the faulty phase.
#[derive(Debug, Clone)]
pub struct Partition {
    /// Start, ms of logical time.
    pub from_ms: u64,
    /// End (the heal), ms.
    pub until_ms: u64,
    /// Node groups: traffic between different groups is dropped.
    pub groups: Vec<Vec<usize>>,
    /// Only drop traffic from a lower group to a higher one (a one-way partition).
    pub one_way: bool,
}

/// A crash and restart of one node.
#[derive(Debug, Clone, Copy)]
pub struct Crash {
    /// The node.
    pub node: usize,
    /// When it dies.
    pub at_ms: u64,
    /// When it comes back.
    pub restart_ms: u64,
}

/// Everything a run needs besides its seed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Scenario name (for reports).
    pub name: String,
    /// Behaviour of each node; its length is the number of nodes.
    pub behaviours: Vec<Behaviour>,
    /// Base one-way latency of every link, ms.
    pub latency_ms: u64,
    /// Extra latency, uniform in `[0, jitter_ms]`: reorders messages.
    pub jitter_ms: u64,
    /// Per-message loss during the faulty phase, per million.
    pub loss_ppm: u64,
    /// Per-message duplication during the faulty phase, per million.
    pub dup_ppm: u64,
    /// How new events spread.
    pub dissemination: Dissemination,
    /// Length of the faulty phase, ms.
    pub fault_ms: u64,
    /// Length of the healed phase, ms.
    pub heal_ms: u64,
    /// Partitions in the faulty phase.
    pub partitions: Vec<Partition>,
    /// Crashes.
    pub crashes: Vec<Crash>,
    /// Largest clock skew of a node, ms (each gets a seeded skew in `[-max, max]`).
    pub max_skew_ms: u64,
    /// Thoughts each honest node posts per minute.
    pub honest_per_minute: u64,
    /// Anti-entropy period, ms.
    pub sync_period_ms: u64,
    /// The network's parameters.
    pub genesis: Genesis,
    /// Nodes that may be cut off entirely by design (an eclipse victim): their convergence is
    /// reported, not asserted.
    pub exempt_from_convergence: Vec<usize>,
    /// Links, if not a full mesh: `links[i]` are the peers of node `i`.
    pub links: Option<Vec<Vec<usize>>>,
    /// Whether finality must advance in the healed phase (an invariant when set).
    pub expect_finality: bool,
}

/// A message on the fake network.
#[derive(Debug, Clone)]
enum Msg {
    Push(Arc<Envelope>),
    SyncRequest(Arc<BTreeMap<MemberId, (u64, EventId)>>, Option<u64>),
    SyncResponse(Arc<Vec<Arc<Event>>>),
    Vote(Arc<Vote>),
    Cert(Arc<Certificate>),
    /// The sender's feed-heads digest, as in the daemon's heartbeat.
    Heartbeat([u8; 32]),
}

impl Msg {
    fn bytes(&self) -> u64 {
        MESSAGE_OVERHEAD_BYTES
            + match self {
                Msg::Push(e) => e.event.len() as u64 + 109,
                Msg::SyncRequest(vv, _) => vv.len() as u64 * 72 + 8,
                Msg::SyncResponse(evs) => evs.iter().map(|e| e.bytes().len() as u64).sum(),
                Msg::Vote(_) => 152,
                Msg::Heartbeat(_) => 185,
                Msg::Cert(c) => c.encode().len() as u64,
            }
    }
}

#[derive(Debug)]
enum Item {
    Deliver { from: usize, to: usize, msg: Msg },
    Post(usize),
    Sync(usize),
    Attack(usize),
    Crash(usize),
    Restart(usize),
}

struct Node {
    keypair: Keypair,
    behaviour: Behaviour,
    ledger: Ledger,
    durable: Vec<Arc<Event>>,
    up: bool,
    skew_ms: i64,
    posted: u64,
    attack_step: u64,
    last_vote: Option<u64>,
    pending_certs: Vec<Arc<Certificate>>,
}

/// Counters of a run, all deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages delivered.
    pub messages: u64,
    /// Bytes delivered.
    pub bytes: u64,
    /// Of the messages, pushes (the rest is anti-entropy).
    pub push_messages: u64,
    /// Messages lost to loss, partitions, crashes or full links.
    pub dropped: u64,
    /// Events acknowledged by honest nodes.
    pub acked: u64,
    /// Attack events the adversaries produced (signed or forged).
    pub attack_events: u64,
    /// Attack thoughts that ended accepted on the reference honest node.
    pub attack_accepted: u64,
    /// Logical ms from the first attack event to the attacker's ejection on every honest node.
    pub time_to_eject_ms: Option<u64>,
    /// Per honest event, ms from creation to admission on the last honest node.
    pub convergence_ms: Vec<u64>,
    /// Sybil registrations attempted / admitted on the reference honest node.
    pub sybils: (u64, u64),
    /// Events waiting as future-dated on the reference node at the end.
    pub future_held: u64,
    /// Honest nodes that converged (held the reference root) at the end.
    pub converged: u64,
    /// Honest nodes checked.
    pub honest_nodes: u64,
    /// Per certified epoch, ms from the epoch's end until every checked honest node held
    /// its certificate.
    pub finality_ms: Vec<u64>,
    /// Certified epochs on the reference node.
    pub finalized: Vec<u64>,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Scenario name.
    pub name: String,
    /// The seed.
    pub seed: u64,
    /// Counters.
    pub stats: Stats,
    /// Invariant violations (empty when the run passed).
    pub failures: Vec<String>,
    /// The reference honest node's final root.
    pub root: [u8; 32],
    /// Members ejected on the reference node, with why.
    pub ejected: Vec<(usize, EjectCause)>,
    /// Nodes in the run.
    pub nodes: usize,
}

impl Outcome {
    /// True when every invariant held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Logical start of every run (2026-01-01T00:00:00Z), so timestamps look like real ones.
pub const T0: u64 = 1_767_225_600_000;

struct Sim {
    cfg: Config,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Item>,
    nodes: Vec<Node>,
    in_flight: BTreeMap<(usize, usize), usize>,
    stats: Stats,
    created: BTreeMap<EventId, u64>,
    seen: BTreeMap<EventId, u64>,
    seen_count: BTreeMap<EventId, usize>,
    first_attack_ms: Option<u64>,
    links: Vec<Vec<usize>>,
    /// Per node, certified epoch → (root, when adopted).
    finalized: Vec<BTreeMap<u64, ([u8; 32], u64)>>,
}

impl Sim {
    fn schedule(&mut self, at: u64, item: Item) {
        self.seq += 1;
        self.queue.insert((at, self.seq), item);
    }

    fn local_now(&self, n: usize) -> u64 {
        (self.now as i64 + self.nodes[n].skew_ms).max(0) as u64
    }

    fn in_fault(&self) -> bool {
        self.now < T0 + self.cfg.fault_ms
    }

    fn blocked(&self, from: usize, to: usize) -> bool {
        self.cfg.partitions.iter().any(|p| {
            if self.now < T0 + p.from_ms || self.now >= T0 + p.until_ms {
                return false;
            }
            let g = |n: usize| p.groups.iter().position(|grp| grp.contains(&n));
            match (g(from), g(to)) {
                (Some(a), Some(b)) if a != b => !p.one_way || a < b,
                _ => false,
            }
        })
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        if from == to {
            return;
        }
        let fault = self.in_fault();
        if fault && self.rng.chance(self.cfg.loss_ppm) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if fault && self.rng.chance(self.cfg.dup_ppm) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let link = self.in_flight.entry((from, to)).or_insert(0);
            if *link >= MAX_IN_FLIGHT_PER_LINK {
                self.stats.dropped += 1;
                continue;
            }
            *link += 1;
            let delay = self.cfg.latency_ms + self.rng.range(0, self.cfg.jitter_ms);
            self.schedule(
                self.now + delay.max(1),
                Item::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn peers_of(&self, n: usize) -> Vec<usize> {
        self.links[n].clone()
    }

    fn pick(&mut self, from: &[usize], k: usize, except: Option<usize>) -> Vec<usize> {
        let mut pool: Vec<usize> = from
            .iter()
            .copied()
            .filter(|p| Some(*p) != except)
            .collect();
        let mut out = Vec::new();
        while !pool.is_empty() && out.len() < k {
            let i = self.rng.below(pool.len() as u64) as usize;
            out.push(pool.swap_remove(i));
        }
        out
    }

    /// Pushes event bytes from `n` (as its own envelope) per the dissemination mode.
    fn push(&mut self, n: usize, bytes: &[u8], except: Option<usize>, first_hop: bool) {
        let env = Arc::new(Envelope::seal(
            &self.nodes[n].keypair,
            self.nodes[n].ledger.network(),
            self.local_now(n),
            bytes,
        ));
        let peers = self.peers_of(n);
        let targets = match self.cfg.dissemination {
            Dissemination::FullMesh if first_hop => peers,
            Dissemination::FullMesh => Vec::new(),
            Dissemination::Gossip { fanout } => self.pick(&peers, fanout, except),
        };
        for t in targets {
            self.send(n, t, Msg::Push(env.clone()));
        }
    }

    /// Hands events to a node's ledger and persists what it admitted; publishes evidence.
    fn ingest(&mut self, n: usize, events: Vec<Event>) -> Vec<Result<Admission, InsertError>> {
        let now = self.local_now(n);
        let r = self.nodes[n].ledger.handle_batch(now, events);
        self.drain(n);
        r
    }

    fn drain(&mut self, n: usize) {
        let mut proofs = Vec::new();
        while let Some(o) = self.nodes[n].ledger.poll_output() {
            match o {
                Output::Admitted(e) => {
                    if self.nodes[n].behaviour.is_honest() {
                        self.seen.entry(e.id()).or_insert(self.now);
                        let c = self.seen_count.entry(e.id()).or_insert(0);
                        *c += 1;
                        if *c == self.honest_count() {
                            if let Some(t0) = self.created.get(&e.id()) {
                                self.stats.convergence_ms.push(self.now - t0);
                            }
                        }
                    }
                    self.nodes[n].durable.push(e);
                }
                Output::Proof(p) => proofs.push(*p),
                Output::Certificate(c) => {
                    self.finalized[n]
                        .entry(c.body.epoch)
                        .or_insert((c.body.root, self.now));
                    if self.nodes[n].behaviour.is_honest() {
                        let c = Arc::new(*c);
                        for p in self.peers_of(n) {
                            self.send(n, p, Msg::Cert(c.clone()));
                        }
                    }
                }
            }
        }
        if self.nodes[n].behaviour.is_honest() {
            for p in proofs {
                self.author(n, Body::Evidence(Box::new(p)), true);
            }
        }
    }

    fn honest_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|x| x.behaviour.is_honest())
            .count()
    }

    /// Signs the node's next event; honest nodes refuse to sign a violation. Returns the id.
    fn author(&mut self, n: usize, body: Body, check: bool) -> Option<EventId> {
        let now = self.local_now(n);
        let ev = self.nodes[n]
            .ledger
            .author_event(&self.nodes[n].keypair.clone(), now, body);
        if check && !self.nodes[n].ledger.preview(&ev).is_accepted() {
            return None;
        }
        let id = ev.id();
        let bytes = ev.bytes().to_vec();
        self.created.insert(id, self.now);
        let r = self.ingest(n, vec![ev]);
        if !matches!(r.first(), Some(Ok(Admission::Admitted))) {
            return None;
        }
        if self.nodes[n].behaviour.is_honest() {
            self.stats.acked += 1;
        }
        self.push(n, &bytes, None, true);
        Some(id)
    }

    fn deliver(&mut self, from: usize, to: usize, msg: Msg) {
        if let Some(c) = self.in_flight.get_mut(&(from, to)) {
            *c = c.saturating_sub(1);
        }
        if !self.nodes[to].up || !self.nodes[from].up || self.blocked(from, to) {
            self.stats.dropped += 1;
            return;
        }
        self.stats.messages += 1;
        self.stats.bytes += msg.bytes();
        if matches!(msg, Msg::Push(_)) {
            self.stats.push_messages += 1;
        }
        let silent = matches!(
            self.nodes[to].behaviour,
            Behaviour::Silent | Behaviour::Sybil
        );
        match msg {
            Msg::Push(env) => {
                if silent {
                    return;
                }
                if !env.verify(self.nodes[to].ledger.network()) {
                    return;
                }
                match Event::decode(&env.event) {
                    Ok(ev) if ev.verify(self.nodes[to].ledger.network()) => {
                        let bytes = env.event.clone();
                        let r = self.ingest(to, vec![ev]);
                        if matches!(r.first(), Some(Ok(Admission::Admitted))) {
                            self.push(to, &bytes, Some(from), false);
                        }
                    }
                    _ => {
                        let _ = self.nodes[to].ledger.handle_forged_envelope((*env).clone());
                        self.drain(to);
                    }
                }
            }
            Msg::SyncRequest(vv, their_final) => {
                if silent {
                    return;
                }
                let mut out = Vec::new();
                let l = &self.nodes[to].ledger;
                'feeds: for (m, (len, head)) in l.feed_heads() {
                    let (theirs, their_head) = vv.get(&m).copied().unwrap_or_default();
                    // Nothing past a proven fork: every honest node refuses it anyway.
                    let len = l.fork_seq(&m).map_or(len, |f| len.min(f + 1));
                    // Their head differs from our event at the same seq: a fork, or a branch
                    // they hold; send ours from there so the conflict becomes a proof.
                    let from_seq = match theirs {
                        0 => 0,
                        t if t <= len
                            && l.feed_event(&m, t - 1).map(|e| e.id()) != Some(their_head) =>
                        {
                            t - 1
                        }
                        t => t,
                    };
                    let _ = head;
                    for s in from_seq..len {
                        if out.len() >= SYNC_BATCH_EVENTS {
                            break 'feeds;
                        }
                        if let Some(e) = l.feed_event(&m, s) {
                            out.push(e.clone());
                        }
                    }
                }
                if !out.is_empty() {
                    self.send(to, from, Msg::SyncResponse(Arc::new(out)));
                }
                // Certificates the requester lacks, in chain order (it adopts them in order).
                let certs: Vec<Arc<Certificate>> = self.nodes[to]
                    .ledger
                    .certificates()
                    .filter(|c| their_final.is_none_or(|f| c.body.epoch > f))
                    .take(PENDING_CERTS_MAX)
                    .map(|c| Arc::new(c.clone()))
                    .collect();
                for c in certs {
                    self.send(to, from, Msg::Cert(c));
                }
            }
            Msg::SyncResponse(evs) => {
                let evs: Vec<Event> = evs.iter().map(|e| (**e).clone()).collect();
                self.ingest(to, evs);
                self.retry_certs(to);
            }
            Msg::Vote(v) => {
                if silent {
                    return;
                }
                let new = self.nodes[to].ledger.handle_vote((*v).clone());
                self.drain(to);
                // Relay new votes once, as gossipsub does in the daemon: this is how two
                // halves that got different votes from a double voter learn of both.
                if new == Ok(true) && self.nodes[to].behaviour.is_honest() {
                    let peers = self.peers_of(to);
                    for p in self.pick(&peers, VOTE_RELAY_FANOUT, Some(from)) {
                        self.send(to, p, Msg::Vote(v.clone()));
                    }
                }
            }
            Msg::Heartbeat(digest) => {
                // As in the daemon: a heartbeat whose digest differs from ours starts a sync
                // round with its sender.
                if silent {
                    return;
                }
                let mine = web4fed_core::envelope::vv_digest(&self.nodes[to].ledger.feed_heads());
                if digest != mine {
                    let vv = Arc::new(self.nodes[to].ledger.feed_heads());
                    let fin = self.nodes[to].ledger.final_epoch();
                    self.send(to, from, Msg::SyncRequest(vv, fin));
                }
            }
            Msg::Cert(c) => {
                if silent {
                    return;
                }
                self.nodes[to].pending_certs.push(c);
                self.retry_certs(to);
            }
        }
    }

    /// Tries the certificates a node could not yet check (it lacked events or the previous
    /// certificate), oldest first; keeps a bounded few.
    fn retry_certs(&mut self, n: usize) {
        let mut pending = std::mem::take(&mut self.nodes[n].pending_certs);
        pending.sort_by_key(|c| c.body.epoch);
        let mut keep = Vec::new();
        for c in pending {
            match self.nodes[n].ledger.handle_certificate((*c).clone()) {
                Ok(()) => {}
                Err(web4fed_core::finality::CertError::MissingEvents)
                | Err(web4fed_core::finality::CertError::Unverifiable(_)) => keep.push(c),
                Err(_) => {}
            }
        }
        keep.truncate(PENDING_CERTS_MAX);
        self.nodes[n].pending_certs = keep;
        self.drain(n);
    }

    /// Signs this node's root for the latest settled checkpoint it has not voted for.
    fn vote(&mut self, n: usize) {
        let b = self.nodes[n].behaviour;
        if !(b.is_honest() || b == Behaviour::DoubleVoter) {
            return;
        }
        let g = &self.cfg.genesis;
        let settled = (self.local_now(n) / g.epoch_ms).saturating_sub(1 + VOTE_LAG_EPOCHS);
        let e = settled - settled % g.finality_every_epochs;
        if self.nodes[n].last_vote.is_some_and(|v| v >= e) {
            return;
        }
        let Some(body) = self.nodes[n].ledger.vote_body(e) else {
            return;
        };
        self.nodes[n].last_vote = Some(e);
        let kp = self.nodes[n].keypair.clone();
        let net = *self.nodes[n].ledger.network();
        let v = Arc::new(Vote::sign(&kp, &net, body.clone()));
        let peers = self.peers_of(n);
        if b == Behaviour::DoubleVoter {
            let mut other = body;
            other.root[0] ^= 0xff;
            let v2 = Arc::new(Vote::sign(&kp, &net, other));
            self.mark_attack();
            let (left, right) = peers.split_at(peers.len() / 2);
            for (half, vote) in [(left.to_vec(), &v), (right.to_vec(), &v2)] {
                for p in half {
                    self.send(n, p, Msg::Vote(vote.clone()));
                }
            }
            return;
        }
        let _ = self.nodes[n].ledger.handle_vote((*v).clone());
        self.drain(n);
        for p in peers {
            self.send(n, p, Msg::Vote(v.clone()));
        }
    }

    fn on_sync(&mut self, n: usize) {
        self.schedule(self.now + self.cfg.sync_period_ms, Item::Sync(n));
        if !self.nodes[n].up
            || matches!(
                self.nodes[n].behaviour,
                Behaviour::Silent | Behaviour::Sybil
            )
        {
            return;
        }
        let peers = self.peers_of(n);
        let digest = web4fed_core::envelope::vv_digest(&self.nodes[n].ledger.feed_heads());
        for &p in &peers {
            self.send(n, p, Msg::Heartbeat(digest));
        }
        if let Some(&p) = self.pick(&peers, 1, None).first() {
            let vv = Arc::new(self.nodes[n].ledger.feed_heads());
            let fin = self.nodes[n].ledger.final_epoch();
            self.send(n, p, Msg::SyncRequest(vv, fin));
        }
        let t = self.local_now(n);
        self.nodes[n].ledger.handle_tick(t);
        self.drain(n);
        self.vote(n);
        self.retry_certs(n);
    }

    fn on_post(&mut self, n: usize) {
        let period = 60_000 / self.cfg.honest_per_minute.max(1);
        let until = T0 + self.cfg.fault_ms + self.cfg.heal_ms / 3;
        let next = self.now + period / 2 + self.rng.below(period);
        if next < until {
            self.schedule(next, Item::Post(n));
        }
        if !self.nodes[n].up {
            return;
        }
        let k = self.nodes[n].posted;
        self.nodes[n].posted += 1;
        let text = sentence((n as u64) << 32 | k);
        self.author(n, Body::Thought(text), true);
    }

    fn mark_attack(&mut self) {
        self.stats.attack_events += 1;
        self.first_attack_ms.get_or_insert(self.now);
    }

    fn on_attack(&mut self, n: usize) {
        if !self.nodes[n].up || !self.in_fault() {
            return;
        }
        let step = self.nodes[n].attack_step;
        self.nodes[n].attack_step += 1;
        let b = self.nodes[n].behaviour;
        let again = |ms: u64| ms;
        let next = match b {
            Behaviour::Spammer => {
                let text = sentence(0xdead_0000 + step);
                self.mark_attack();
                self.author(n, Body::Thought(text), false);
                again(200)
            }
            Behaviour::Garbage => {
                let text = match step % 3 {
                    0 => "buy buy buy buy buy buy buy buy".to_string(),
                    1 => format!("zzzzxq qwrtp {}", "x".repeat((step % 7) as usize + 3)),
                    _ => sentence(7), // the same content again: a near-duplicate flood
                };
                // Paced at its full rate so the rate layer is not what stops it.
                self.mark_attack();
                self.author(n, Body::Thought(text), false);
                again(6_000)
            }
            Behaviour::Forger => {
                let now = self.local_now(n);
                let ev = self.nodes[n].ledger.author_event(
                    &self.nodes[n].keypair.clone(),
                    now,
                    Body::Thought(sentence(0xf0f0 + step)),
                );
                let mut bytes = ev.bytes().to_vec();
                bytes[web4fed_core::event::HEADER_LEN] ^= 1;
                self.mark_attack();
                self.push(n, &bytes, None, true);
                again(2_000)
            }
            Behaviour::Equivocator => {
                let now = self.local_now(n);
                let kp = self.nodes[n].keypair.clone();
                let a = self.nodes[n].ledger.author_event(
                    &kp,
                    now,
                    Body::Thought(sentence(0xe0 + 2 * step)),
                );
                let b2 = Event::sign(
                    &kp,
                    self.nodes[n].ledger.network(),
                    a.seq(),
                    a.header.prev,
                    now + 1,
                    Body::Thought(sentence(0xe1 + 2 * step)),
                );
                self.mark_attack();
                let peers = self.peers_of(n);
                let (left, right) = peers.split_at(peers.len() / 2);
                let net = *self.nodes[n].ledger.network();
                for (half, ev) in [(left.to_vec(), &a), (right.to_vec(), &b2)] {
                    let env = Arc::new(Envelope::seal(&kp, &net, now, ev.bytes()));
                    for t in half {
                        self.send(n, t, Msg::Push(env.clone()));
                    }
                }
                // Keep its own log on branch a so later attacks build on it.
                self.ingest(n, vec![a]);
                again(5_000)
            }
            Behaviour::AtpForger => {
                let victim = (0..self.nodes.len())
                    .find(|i| self.nodes[*i].behaviour.is_honest())
                    .unwrap_or(0);
                let victim_id = self.nodes[victim].keypair.id();
                self.mark_attack();
                if step.is_multiple_of(2) {
                    // More than it holds.
                    self.author(
                        n,
                        Body::Transfer {
                            to: victim_id,
                            amount_milli: 5_000_000,
                        },
                        false,
                    );
                } else {
                    // "From" the victim: the victim's seq and prev, signed with the attacker's key.
                    let now = self.local_now(n);
                    let len = self.nodes[n].ledger.feed_len(&victim_id);
                    let prev = self.nodes[n]
                        .ledger
                        .feed_event(&victim_id, len.saturating_sub(1))
                        .map(|e| e.id())
                        .unwrap_or_default();
                    let forged = web4fed_core::event::Header {
                        author: victim_id,
                        seq: len,
                        prev,
                        timestamp_ms: now,
                        kind: web4fed_core::event::Kind::Transfer,
                        body_len: 0,
                        body_hash: [0; 32],
                    };
                    let body = Body::Transfer {
                        to: self.nodes[n].keypair.id(),
                        amount_milli: 50_000,
                    };
                    let bb = body.encode();
                    let mut h = forged;
                    h.body_len = bb.len() as u32;
                    use sha2::Digest;
                    h.body_hash = sha2::Sha256::digest(&bb).into();
                    let sig = self.nodes[n]
                        .keypair
                        .sign(&h.signing_bytes(self.nodes[n].ledger.network()));
                    let mut bytes = h.encode().to_vec();
                    bytes.extend_from_slice(&sig);
                    bytes.extend_from_slice(&bb);
                    self.push(n, &bytes, None, true);
                }
                again(3_000)
            }
            Behaviour::Timing => {
                let now = self.local_now(n);
                self.mark_attack();
                match step % 3 {
                    0 => {
                        // An hour ahead: waits in every future pool, never folds in this run.
                        let kp = self.nodes[n].keypair.clone();
                        let ev = self.nodes[n].ledger.author_event(
                            &kp,
                            now + 3_600_000,
                            Body::Thought(sentence(0x71 + step)),
                        );
                        let bytes = ev.bytes().to_vec();
                        self.push(n, &bytes, None, true);
                    }
                    1 => {
                        // Back-dated before its previous event: refused at admission.
                        let kp = self.nodes[n].keypair.clone();
                        let len = self.nodes[n].ledger.feed_len(&kp.id());
                        let prev = self.nodes[n]
                            .ledger
                            .feed_event(&kp.id(), len.saturating_sub(1))
                            .map(|e| (e.id(), e.timestamp_ms()))
                            .unwrap_or_default();
                        let ev = Event::sign(
                            &kp,
                            self.nodes[n].ledger.network(),
                            len,
                            prev.0,
                            prev.1.saturating_sub(60_000),
                            Body::Thought(sentence(0x72 + step)),
                        );
                        let bytes = ev.bytes().to_vec();
                        self.push(n, &bytes, None, true);
                    }
                    _ => {
                        // A burst at the window's edge: as many as the limit allows and more.
                        for k in 0..15 {
                            if k > 0 {
                                self.mark_attack();
                            }
                            self.author(n, Body::Thought(sentence(0x7300 + step * 100 + k)), false);
                        }
                    }
                }
                again(20_000)
            }
            Behaviour::Honest
            | Behaviour::Silent
            | Behaviour::Sybil
            | Behaviour::SybilNoPow
            | Behaviour::DoubleVoter
            | Behaviour::Withholder => return,
        };
        self.schedule(self.now + next, Item::Attack(n));
    }

    fn crash(&mut self, n: usize) {
        self.nodes[n].up = false;
    }

    fn restart(&mut self, n: usize) {
        let mut l = Ledger::new(self.cfg.genesis.clone());
        let durable: Vec<Event> = self.nodes[n]
            .durable
            .iter()
            .map(|e| (**e).clone())
            .collect();
        l.handle_batch(self.local_now(n), durable);
        // Certificates are durable too (the daemon stores them with the events).
        let certs: Vec<Certificate> = self.nodes[n].ledger.certificates().cloned().collect();
        for c in certs {
            l.restore_certificate(c);
        }
        while l.poll_output().is_some() {}
        self.nodes[n].ledger = l;
        self.nodes[n].up = true;
    }
}

/// Runs one seeded simulation of `cfg`.
pub fn run(cfg: &Config, seed: u64) -> Outcome {
    let mut rng = Rng::new(seed);
    let n = cfg.behaviours.len();
    let genesis = cfg.genesis.clone();
    let network = genesis.network_id();
    let mut setup_rng = rng.fork();
    let nodes: Vec<Node> = cfg
        .behaviours
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut secret = [0u8; 32];
            secret[..8].copy_from_slice(&seed.to_be_bytes());
            secret[8..16].copy_from_slice(&(i as u64).to_be_bytes());
            secret[16] = 0x77;
            let skew = if cfg.max_skew_ms == 0 {
                0
            } else {
                setup_rng.range(0, 2 * cfg.max_skew_ms) as i64 - cfg.max_skew_ms as i64
            };
            Node {
                keypair: Keypair::from_secret(secret),
                behaviour: *b,
                ledger: Ledger::new(genesis.clone()),
                durable: Vec::new(),
                up: true,
                skew_ms: skew,
                posted: 0,
                attack_step: 0,
                last_vote: None,
                pending_certs: Vec::new(),
            }
        })
        .collect();
    let links = cfg.links.clone().unwrap_or_else(|| {
        (0..n)
            .map(|i| (0..n).filter(|j| *j != i).collect())
            .collect()
    });
    let mut sim = Sim {
        cfg: cfg.clone(),
        rng,
        now: T0,
        seq: 0,
        queue: BTreeMap::new(),
        nodes,
        in_flight: BTreeMap::new(),
        stats: Stats::default(),
        created: BTreeMap::new(),
        seen: BTreeMap::new(),
        seen_count: BTreeMap::new(),
        first_attack_ms: None,
        links,
        finalized: vec![BTreeMap::new(); n],
    };
    // Registrations: every member mines its PoW (Sybils without PoW claim one they lack).
    for i in 0..n {
        let kp = sim.nodes[i].keypair.clone();
        let pow = match sim.nodes[i].behaviour {
            Behaviour::SybilNoPow => web4fed_core::pow::Pow {
                bits: genesis.pow_bits,
                nonce: 0,
            },
            _ => web4fed_core::pow::mine(&network, &kp.id(), genesis.pow_bits),
        };
        if matches!(
            sim.nodes[i].behaviour,
            Behaviour::Sybil | Behaviour::SybilNoPow
        ) {
            sim.stats.sybils.0 += 1;
        }
        let body = Body::Register(Register {
            name: format!("n{i}"),
            entity_type: "ai".into(),
            pow,
            claimed_level: web4fed_core::event::Level::L4,
            attestation: web4fed_core::event::Attestation {
                kind: web4fed_core::event::AttestationKind::None,
                evidence: Vec::new(),
            },
        });
        let t = sim.local_now(i);
        let ev = sim.nodes[i].ledger.author_event(&kp, t, body);
        let bytes = ev.bytes().to_vec();
        sim.created.insert(ev.id(), sim.now);
        let _ = sim.ingest(i, vec![ev]);
        sim.push(i, &bytes, None, true);
    }
    let mut jitter = sim.rng.fork();
    for i in 0..n {
        let start = T0 + 1_000 + jitter.below(cfg.sync_period_ms.max(1));
        sim.schedule(start, Item::Sync(i));
        match cfg.behaviours[i] {
            Behaviour::Honest => {
                let first = T0 + 2_000 + jitter.below(60_000 / cfg.honest_per_minute.max(1));
                sim.schedule(first, Item::Post(i));
            }
            Behaviour::Silent
            | Behaviour::Sybil
            | Behaviour::SybilNoPow
            | Behaviour::DoubleVoter
            | Behaviour::Withholder => {}
            _ => sim.schedule(T0 + 5_000 + jitter.below(1_000), Item::Attack(i)),
        }
    }
    for c in &cfg.crashes {
        sim.schedule(T0 + c.at_ms, Item::Crash(c.node));
        sim.schedule(T0 + c.restart_ms, Item::Restart(c.node));
    }
    let end = T0 + cfg.fault_ms + cfg.heal_ms;
    let mut eject_seen: BTreeMap<usize, u64> = BTreeMap::new();
    while let Some(((t, _), item)) = sim.queue.pop_first() {
        if t > end {
            break;
        }
        sim.now = t;
        match item {
            Item::Deliver { from, to, msg } => sim.deliver(from, to, msg),
            Item::Post(i) => sim.on_post(i),
            Item::Sync(i) => sim.on_sync(i),
            Item::Attack(i) => sim.on_attack(i),
            Item::Crash(i) => sim.crash(i),
            Item::Restart(i) => sim.restart(i),
        }
        // Time to eject: the first moment every honest node holds the attacker ejected.
        if sim.first_attack_ms.is_some() {
            for a in 0..n {
                if sim.nodes[a].behaviour.is_honest() || eject_seen.contains_key(&a) {
                    continue;
                }
                let id = sim.nodes[a].keypair.id();
                let all = sim
                    .nodes
                    .iter()
                    .filter(|x| x.behaviour.is_honest())
                    .all(|x| {
                        x.ledger
                            .state()
                            .account(&id)
                            .is_some_and(|acc| acc.status == Status::Ejected)
                    });
                if all {
                    eject_seen.insert(a, sim.now);
                }
            }
        }
    }
    sim.now = end;
    if let (Some(first), Some(last)) = (sim.first_attack_ms, eject_seen.values().max()) {
        sim.stats.time_to_eject_ms = Some(last.saturating_sub(first));
    }
    check(sim, seed)
}

/// Checks every invariant at the end of the healed phase and builds the outcome.
fn check(mut sim: Sim, seed: u64) -> Outcome {
    let mut failures = Vec::new();
    let n = sim.nodes.len();
    let honest: Vec<usize> = (0..n)
        .filter(|i| sim.nodes[*i].behaviour.is_honest())
        .collect();
    let checked: Vec<usize> = honest
        .iter()
        .copied()
        .filter(|i| !sim.cfg.exempt_from_convergence.contains(i))
        .collect();
    let Some(&reference) = checked.first() else {
        return Outcome {
            name: sim.cfg.name.clone(),
            seed,
            stats: sim.stats,
            failures: vec!["no honest node to check".into()],
            root: [0; 32],
            ejected: Vec::new(),
            nodes: n,
        };
    };
    for &i in &honest {
        if !sim.nodes[i].up {
            sim.restart(i);
        }
    }
    let root = sim.nodes[reference].ledger.state_root();
    // Feeds of proven equivocators are garbage past the fork and may legitimately differ.
    let comparable = |l: &Ledger| -> BTreeMap<MemberId, u64> {
        l.version_vector()
            .into_iter()
            .filter(|(m, _)| l.fork_seq(m).is_none())
            .collect()
    };
    let vv = comparable(&sim.nodes[reference].ledger);
    // 1. Convergence in the healed phase.
    sim.stats.honest_nodes = honest.len() as u64;
    for &i in &honest {
        let same =
            sim.nodes[i].ledger.state_root() == root && comparable(&sim.nodes[i].ledger) == vv;
        if same {
            sim.stats.converged += 1;
        } else if checked.contains(&i) {
            failures.push(format!(
                "node {i} did not converge to the reference root after the heal"
            ));
        }
    }
    // 6. No two honest nodes certify different roots for one epoch.
    let mut certified: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    for &i in &honest {
        for (e, (r, _)) in &sim.finalized[i] {
            match certified.get(e) {
                Some(other) if other != r => {
                    failures.push(format!("two different roots certified for epoch {e}"))
                }
                _ => {
                    certified.insert(*e, *r);
                }
            }
        }
    }
    // 7. Finality advances in the healed phase.
    let g = &sim.cfg.genesis;
    let heal_mid = (T0 + sim.cfg.fault_ms + sim.cfg.heal_ms / 2) / g.epoch_ms;
    if sim.cfg.expect_finality {
        for &i in &checked {
            let fin = sim.nodes[i].ledger.final_epoch();
            if fin.is_none_or(|f| f < heal_mid - heal_mid % g.finality_every_epochs) {
                failures.push(format!(
                    "node {i}: finality stalled at {fin:?} in the healed phase"
                ));
            }
        }
    }
    // Finality latency: epoch end to the last checked node holding the certificate.
    let epochs: BTreeSet<u64> = checked
        .iter()
        .flat_map(|i| sim.finalized[*i].keys().copied())
        .collect();
    for e in epochs {
        let mut latest = 0u64;
        let mut all = true;
        for &i in &checked {
            match sim.finalized[i].get(&e) {
                Some((_, t)) => latest = latest.max(*t),
                None => all = false,
            }
        }
        if all {
            sim.stats
                .finality_ms
                .push(latest.saturating_sub((e + 1) * g.epoch_ms));
        }
    }
    sim.stats.finalized = sim.finalized[reference].keys().copied().collect();
    // 2. No acknowledged event lost; 3. honest members never penalised.
    let honest_ids: Vec<MemberId> = honest.iter().map(|i| sim.nodes[*i].keypair.id()).collect();
    for &i in &checked {
        let l = &sim.nodes[i].ledger;
        // An exempt (eclipsed) node's own events cannot reach anyone: reported, not asserted.
        for &h in checked.iter() {
            let durable: Vec<&Arc<Event>> = sim.nodes[h]
                .durable
                .iter()
                .filter(|e| e.author() == sim.nodes[h].keypair.id())
                .collect();
            for ev in durable {
                let id = ev.id();
                if !l.holds(ev) {
                    failures.push(format!(
                        "node {i} lacks acknowledged event {id} of node {h}"
                    ));
                    break;
                }
            }
        }
        for (k, m) in honest_ids.iter().enumerate() {
            if sim.cfg.exempt_from_convergence.contains(&honest[k])
                && l.state().account(m).is_none()
            {
                continue;
            }
            match l.state().account(m) {
                Some(a) if a.violations == 0 && a.status == Status::Active => {}
                Some(a) => failures.push(format!(
                    "honest member {m} penalised on node {i}: {} violations, {:?}",
                    a.violations, a.status
                )),
                None => failures.push(format!("honest member {m} unknown on node {i}")),
            }
        }
        // 4. No ejection without evidence every node can check.
        for (m, a) in l.state().accounts() {
            match &a.eject_cause {
                None => {}
                Some(EjectCause::Equivocation { .. }) if !l.proofs().any(|p| p.accused() == *m) => {
                    failures.push(format!(
                        "node {i} ejected {m} for equivocation without a proof"
                    ));
                }
                Some(EjectCause::Equivocation { .. }) => {}
                Some(EjectCause::DoubleVote { .. }) if !l.proofs().any(|p| p.accused() == *m) => {
                    failures.push(format!(
                        "node {i} ejected {m} for a double vote without the votes"
                    ));
                }
                Some(EjectCause::DoubleVote { .. }) => {}
                Some(EjectCause::Violations { count }) => {
                    let refused = (0..l.feed_len(m))
                        .filter_map(|s| l.feed_event(m, s))
                        .filter(|e| matches!(l.verdict(&e.id()), Some(Verdict::Refused(_))))
                        .count();
                    let forged = l.forgeries().filter(|e| e.sender == *m).count();
                    if ((refused + forged) as u32) < *count {
                        failures.push(format!(
                            "node {i} ejected {m} with {count} violations but holds evidence of {}",
                            refused + forged
                        ));
                    }
                }
            }
        }
        // 5. Every queue within its limit.
        let (orphans, future) = l.waiting();
        if orphans > MAX_ORPHANS || future > MAX_FUTURE {
            failures.push(format!(
                "node {i} pools over their limits: {orphans} orphans, {future} future"
            ));
        }
    }
    let l = &sim.nodes[reference].ledger;
    sim.stats.future_held = l.waiting().1 as u64;
    sim.stats.sybils.1 = (0..n)
        .filter(|i| {
            matches!(
                sim.nodes[*i].behaviour,
                Behaviour::Sybil | Behaviour::SybilNoPow
            )
        })
        .filter(|i| l.state().account(&sim.nodes[*i].keypair.id()).is_some())
        .count() as u64;
    let mut ejected = Vec::new();
    for i in 0..n {
        let id = sim.nodes[i].keypair.id();
        if let Some(a) = l.state().account(&id) {
            if let Some(c) = &a.eject_cause {
                ejected.push((i, c.clone()));
            }
            if !sim.nodes[i].behaviour.is_honest() {
                sim.stats.attack_accepted += (0..l.feed_len(&id))
                    .filter_map(|s| l.feed_event(&id, s))
                    .filter(|e| {
                        matches!(e.body, Body::Thought(_))
                            && matches!(l.verdict(&e.id()), Some(Verdict::Accepted))
                    })
                    .count() as u64;
            }
        }
    }
    Outcome {
        name: sim.cfg.name.clone(),
        seed,
        stats: sim.stats,
        failures,
        root,
        ejected,
        nodes: n,
    }
}
