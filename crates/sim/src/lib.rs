//! A deterministic simulator of a web4fed federation, in the manner of TigerBeetle's VOPR:
//! the real replica (`web4fed_replica::Replica`, the same protocol driver the daemon runs,
//! with every signature checked) on every node, a seeded fake network and clock,
//! adversaries, and invariants checked on every run.
//!
//! # What is modelled, and how faithfully
//! - **Nodes** run the daemon's `Replica`: admission, the nine layers, the fold, evidence,
//!   pushes, anti-entropy sync (summary, ranges, evidence, certificates), heartbeats, peer
//!   exchange, vote timing and certificate retries. The simulator only carries its messages
//!   and persists its `Admitted`/`Certificate`/`Proof`/`Voted` events before sending what
//!   follows them, as the daemon does (the drain rule).
//! - **Gossip** stands for gossipsub: `FullMesh` sends a published message to every linked
//!   peer (gossipsub's flood publish) and `Gossip { fanout }` to `fanout` random peers; a
//!   receiver whose replica accepts the message relays it to [`MESH_DEGREE`] (or `fanout`)
//!   random peers, as a gossipsub mesh does (on a complete `FullMesh`, only votes and events:
//!   see `Sim::relays`). Mesh maintenance, IHAVE gossip and peer scoring are not modelled;
//!   messages the replica ignores or rejects are not relayed.
//! - **Requests** (sync, push, peer exchange) travel as messages on the same links; a lost
//!   one times out inside the replica.
//! - **Network**: per-link latency (base plus uniform jitter, which also reorders), loss and
//!   duplication per message, partitions (any split, one-way too) and heal. A crash closes
//!   the crashed node's connections; a restart reopens them.
//! - **Storage**: a node's durable log is what its replica asked to persist; a crash drops
//!   everything else, and a restart rebuilds the ledger from the durable log.
//! - **Clocks**: each node has a fixed skew; its replica is given its local time.
//!
//! Adversaries are honest replicas whose outputs are filtered or replaced (a silent member
//! drops everything, a withholder drops its votes, a double voter replaces its vote with two)
//! or who inject hand-made messages (forgeries, equivocations, future-dated events); they
//! never run a copy of the protocol.
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
use web4fed_core::event::{Body, Event, EventId, Evidence, Register};
use web4fed_core::finality::{Certificate, Vote};
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::{Keypair, MemberId};
use web4fed_core::ledger::{Ledger, MAX_FUTURE, MAX_ORPHANS};
use web4fed_core::state::Status;
use web4fed_core::testkit::sentence;
use web4fed_core::verdict::{EjectCause, Verdict};
use web4fed_replica::{
    Acceptance, Command, Destination, Event as ReplicaEvent, Gossip, Message, Replica, Reply,
    Request, Topic,
};

/// Messages in flight on one directed link; beyond this new ones are dropped and counted.
pub const MAX_IN_FLIGHT_PER_LINK: usize = 10_000;
/// Peers an accepted gossip message is relayed to in `FullMesh` mode (gossipsub's default
/// mesh degree, which the daemon uses).
pub const MESH_DEGREE: usize = 6;

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
    /// True for identities made to attack from outside (Sybils): they register after the
    /// genesis and are not among its founders.
    pub fn is_outsider(self) -> bool {
        matches!(self, Self::Sybil | Self::SybilNoPow)
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
    /// The restart must start from a snapshot (the crash comes after the node wrote one):
    /// a restart that found none fails the run.
    pub from_snapshot: bool,
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
    /// Heartbeat period of every replica, ms (heartbeats drive anti-entropy and votes).
    pub heartbeat_ms: u64,
    /// The network's parameters.
    pub genesis: Genesis,
    /// Nodes that may be cut off entirely by design (an eclipse victim): their convergence is
    /// reported, not asserted.
    pub exempt_from_convergence: Vec<usize>,
    /// Links, if not a full mesh: `links[i]` are the peers of node `i`.
    pub links: Option<Vec<Vec<usize>>>,
    /// Links as the daemon's replicas make them (overrides `links`): each node linked to the
    /// [`web4fed_replica::limits::TARGET_PEERS`] members it prefers
    /// ([`web4fed_replica::peers::preference`]), and to those that prefer it (without the
    /// daemon's ceiling of [`web4fed_replica::limits::MAX_PEERS`]: a popular node keeps
    /// every link here, up to 29 at 1,000 nodes).
    pub peer_set: bool,
    /// Whether finality must advance in the healed phase (an invariant when set).
    pub expect_finality: bool,
}

#[derive(Debug)]
enum Item {
    /// Boxed: a message is large beside the other items, and the queue holds many.
    Deliver {
        from: usize,
        to: usize,
        msg: Box<Message>,
    },
    Post(usize),
    Attack(usize),
    Wake(usize),
    Crash(usize),
    Restart(usize),
}

/// One simulated node: a replica, its durable storage and its behaviour.
struct Node {
    keypair: Keypair,
    behaviour: Behaviour,
    replica: Replica,
    /// Events persisted, in order.
    durable: Vec<Arc<Event>>,
    /// Certificates persisted.
    certs: Vec<Certificate>,
    /// Proofs persisted.
    proofs: Vec<Evidence>,
    /// The latest vote persisted.
    last_vote: Option<web4fed_core::finality::LastVote>,
    /// The newest snapshot written, as its file bytes, with how many events were durable
    /// when it was written (the daemon's rowid mark).
    snapshot: Option<(Vec<u8>, usize)>,
    up: bool,
    skew_ms: i64,
    posted: u64,
    attack_step: u64,
    /// The global time of the wake-up scheduled for it, if any.
    wake_at: Option<u64>,
    /// Whether it is subscribed to the agreement's topics (see
    /// `web4fed_replica::Event::AgreementTopics`): votes and proposals reach only those that
    /// are, as gossipsub delivers a topic only to its subscribers.
    hears_agreement: bool,
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
    /// Certificates a node adopted for a height it had already decided with another value
    /// (summed over nodes): must be 0, a decided checkpoint is never replaced.
    pub decided_twice: u64,
    /// Timeouts after which a replica still asked to be woken at once (its next deadline
    /// not after the time it was just given): must be 0, or a daemon would spin. Found
    /// after a decided height's stall deadline made every node wake every millisecond.
    pub spins: u64,
    /// Restarts that loaded a snapshot (and read only the log after it).
    pub snapshot_restarts: u64,
    /// Live thoughts on the reference node at the end, and of those, how many their
    /// committees (rated by the replicas themselves) had settled.
    pub thoughts_settled: (u64, u64),
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
    /// Simulated time the run covered (faulty and healed phases), ms.
    pub ran_ms: u64,
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
    index: BTreeMap<MemberId, usize>,
    in_flight: BTreeMap<(usize, usize), usize>,
    stats: Stats,
    created: BTreeMap<EventId, u64>,
    seen_count: BTreeMap<EventId, usize>,
    first_attack_ms: Option<u64>,
    links: Vec<Vec<usize>>,
    /// Per node, certified epoch → (root, when adopted).
    finalized: Vec<BTreeMap<u64, ([u8; 32], u64)>>,
    /// Per node, the value id decided at each height.
    decided: Vec<BTreeMap<u64, [u8; 32]>>,
    /// Whether outputs are filtered by behaviour (off while members register).
    filtering: bool,
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

    fn send(&mut self, from: usize, to: usize, msg: Message) {
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
                    msg: Box::new(msg.clone()),
                },
            );
        }
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

    /// Publishes a gossip message from `n` (or relays one it accepted from `relayed_from`).
    fn publish(&mut self, n: usize, msg: Message, relayed_from: Option<usize>) {
        let mut peers = self.links[n].clone();
        if is_agreement(&msg) {
            peers.retain(|p| self.nodes[*p].hears_agreement);
        }
        let targets = match (self.cfg.dissemination, relayed_from) {
            (Dissemination::FullMesh, None) => peers,
            (Dissemination::FullMesh, Some(f)) => self.pick(&peers, MESH_DEGREE, Some(f)),
            (Dissemination::Gossip { fanout }, f) => self.pick(&peers, fanout, f),
        };
        for t in targets {
            self.send(n, t, msg.clone());
        }
    }

    fn honest_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|x| x.behaviour.is_honest())
            .count()
    }

    /// Carries out what node `n`'s replica asked for (drain rule: events, which persist,
    /// then transmissions), then schedules its next wake-up.
    fn drive(&mut self, n: usize) {
        while let Some(ev) = self.nodes[n].replica.poll_event() {
            self.on_replica_event(n, ev);
        }
        while let Some(t) = self.nodes[n].replica.poll_transmit() {
            for (to, msg) in self.filter(n, t.to, t.message) {
                match to {
                    Destination::Gossip => self.publish(n, msg, None),
                    Destination::Peer(m) => {
                        if let Some(&i) = self.index.get(&m) {
                            self.send(n, i, msg);
                        }
                    }
                }
            }
        }
        let local = self.nodes[n].replica.poll_timeout();
        let at = (local as i64 - self.nodes[n].skew_ms).max(self.now as i64 + 1) as u64;
        if self.nodes[n].wake_at.is_none_or(|w| at < w) {
            self.nodes[n].wake_at = Some(at);
            self.schedule(at, Item::Wake(n));
        }
    }

    fn on_replica_event(&mut self, n: usize, ev: ReplicaEvent) {
        match ev {
            ReplicaEvent::Admitted { event, .. } => {
                if self.nodes[n].behaviour.is_honest() {
                    let c = self.seen_count.entry(event.id()).or_insert(0);
                    *c += 1;
                    if *c == self.honest_count() {
                        if let Some(t0) = self.created.get(&event.id()) {
                            self.stats.convergence_ms.push(self.now - t0);
                        }
                    }
                }
                self.nodes[n].durable.push(event);
            }
            ReplicaEvent::Certificate(c) => {
                // A decided height is never decided again with another value.
                let id = c.body.id();
                if *self.decided[n].entry(c.at.height).or_insert(id) != id {
                    self.stats.decided_twice += 1;
                }
                self.finalized[n]
                    .entry(c.body.epoch)
                    .or_insert((c.body.root, self.now));
                self.nodes[n].certs.push(c);
            }
            ReplicaEvent::Proof(p) => self.nodes[n].proofs.push(*p),
            ReplicaEvent::SnapshotDue { .. } => {
                // Written as the daemon writes it: the file's bytes and the log's length.
                let node = &mut self.nodes[n];
                if let Some(f) = node.replica.ledger().snapshot() {
                    node.snapshot = Some((f.encode(), node.durable.len()));
                }
            }
            ReplicaEvent::Voted(v) => self.nodes[n].last_vote = Some(v),
            ReplicaEvent::AgreementTopics { subscribed } => {
                self.nodes[n].hears_agreement = subscribed;
            }
            ReplicaEvent::ReadArchive {
                to,
                request,
                author,
                from_seq,
                max,
            } => {
                let rows: Vec<Vec<u8>> = self.nodes[n]
                    .durable
                    .iter()
                    .filter(|e| e.author() == author && e.seq() >= from_seq)
                    .take(max as usize)
                    .map(|e| e.bytes().to_vec())
                    .collect();
                let now = self.local_now(n);
                let _ = self.nodes[n].replica.handle_command(
                    now,
                    Command::ArchiveRead {
                        to,
                        request,
                        result: Ok(rows),
                    },
                );
            }
            ReplicaEvent::ReadSnapshot { to, request, .. } => {
                // Simulated replicas never state-sync (nothing asks); answer so no read stays
                // in flight.
                let now = self.local_now(n);
                let _ = self.nodes[n].replica.handle_command(
                    now,
                    Command::SnapshotRead {
                        to,
                        request,
                        result: Err("the simulator serves no snapshots".into()),
                    },
                );
            }
            ReplicaEvent::MakeChallenge { subject, .. } => {
                let now = self.local_now(n);
                let _ = self.nodes[n].replica.handle_command(
                    now,
                    Command::SendChallenge {
                        subject,
                        challenge: Err("no TPM in the simulator".into()),
                    },
                );
            }
            ReplicaEvent::AnswerChallenge { from, request, .. } => {
                let now = self.local_now(n);
                let _ = self.nodes[n].replica.handle_command(
                    now,
                    Command::ChallengeAnswered {
                        to: from,
                        request,
                        result: Err("no TPM in the simulator".into()),
                    },
                );
            }
            // Links are fixed; ejected members are refused by the replicas themselves.
            ReplicaEvent::Rejected { .. }
            | ReplicaEvent::Ejected { .. }
            | ReplicaEvent::Disconnect { .. }
            | ReplicaEvent::Dial { .. }
            | ReplicaEvent::Liveness { .. }
            | ReplicaEvent::Vouched { .. }
            | ReplicaEvent::Backfilled { .. } => {}
        }
    }

    /// What an adversary does with its replica's outputs: honest members send them as they
    /// are; the others drop or replace some.
    fn filter(&mut self, n: usize, to: Destination, msg: Message) -> Vec<(Destination, Message)> {
        if !self.filtering {
            return vec![(to, msg)];
        }
        match (self.nodes[n].behaviour, &msg) {
            (Behaviour::Silent | Behaviour::Sybil | Behaviour::SybilNoPow, _) => Vec::new(),
            (Behaviour::Withholder, Message::Gossip(Gossip::Vote(_))) => Vec::new(),
            (Behaviour::DoubleVoter, Message::Gossip(Gossip::Vote(v))) => {
                // Two different votes in one round, one to each half of its peers.
                let kp = self.nodes[n].keypair.clone();
                let net = *self.nodes[n].replica.network();
                let other = match v.value {
                    Some(mut id) => {
                        id[0] ^= 0xff;
                        Some(id)
                    }
                    None => Some([7; 32]),
                };
                let v2 = Vote::sign(&kp, &net, v.at(), v.kind, other);
                self.mark_attack();
                let peers = self.links[n].clone();
                let (left, right) = peers.split_at(peers.len() / 2);
                let mut out = Vec::new();
                for (half, vote) in [(left, v), (right, &v2)] {
                    for p in half {
                        let m = self.nodes[*p].keypair.id();
                        out.push((
                            Destination::Peer(m),
                            Message::Gossip(Gossip::Vote(vote.clone())),
                        ));
                    }
                }
                out
            }
            _ => vec![(to, msg)],
        }
    }

    fn deliver(&mut self, from: usize, to: usize, msg: Message) {
        if let Some(c) = self.in_flight.get_mut(&(from, to)) {
            *c = c.saturating_sub(1);
        }
        if !self.nodes[to].up || !self.nodes[from].up || self.blocked(from, to) {
            self.stats.dropped += 1;
            return;
        }
        // Gossipsub drops a message on a topic its node is not subscribed to (an adversary
        // may still send one).
        if is_agreement(&msg) && !self.nodes[to].hears_agreement {
            self.stats.dropped += 1;
            return;
        }
        self.stats.messages += 1;
        self.stats.bytes += msg.wire_len();
        if matches!(
            msg,
            Message::Gossip(Gossip::Event(_))
                | Message::Request {
                    body: Request::Push { .. },
                    ..
                }
        ) {
            self.stats.push_messages += 1;
        }
        let now = self.local_now(to);
        let sender = self.nodes[from].keypair.id();
        let relay = matches!(msg, Message::Gossip(_)).then(|| msg.clone());
        let verdict = self.nodes[to].replica.handle_message(now, sender, msg);
        self.drive(to);
        if let (Some(m), Acceptance::Accept) = (relay, verdict) {
            if !self.relays(&m) {
                return;
            }
            let silent = matches!(
                self.nodes[to].behaviour,
                Behaviour::Silent | Behaviour::Sybil | Behaviour::SybilNoPow
            );
            if !silent {
                self.publish(to, m, Some(from));
            }
        }
    }

    /// Whether an accepted gossip message is relayed. With `Gossip { fanout }` everything is
    /// (that is how it spreads). On a complete `FullMesh` every honest publisher already sent
    /// it to every peer, and gossipsub drops the relayed copies as duplicates before they reach
    /// the node; only votes and events are relayed there, since an adversary may have sent
    /// those to some peers only (a double vote, an equivocation) and honest relays are how the
    /// others learn of them. Heartbeats and certificates are not, which keeps large meshes
    /// cheap to simulate without changing what any node learns.
    fn relays(&self, m: &Message) -> bool {
        match self.cfg.dissemination {
            Dissemination::Gossip { .. } => true,
            Dissemination::FullMesh if self.cfg.links.is_some() => true,
            Dissemination::FullMesh => matches!(
                m,
                Message::Gossip(Gossip::Vote(_)) | Message::Gossip(Gossip::Event(_))
            ),
        }
    }

    fn on_wake(&mut self, n: usize) {
        if self.nodes[n].wake_at != Some(self.now) {
            return; // a stale wake-up: an earlier one replaced it
        }
        self.nodes[n].wake_at = None;
        if !self.nodes[n].up {
            return;
        }
        let now = self.local_now(n);
        self.nodes[n].replica.handle_timeout(now);
        if self.nodes[n].replica.poll_timeout() <= now {
            self.stats.spins += 1;
        }
        self.drive(n);
    }

    /// Runs a command on node `n`'s replica and carries out its outputs.
    fn command(&mut self, n: usize, cmd: Command) -> Option<Reply> {
        let now = self.local_now(n);
        let r = self.nodes[n].replica.handle_command(now, cmd).ok();
        self.drive(n);
        r
    }

    /// Signs an event of node `n`'s without checking it first (an adversary's).
    fn sign_own(&self, n: usize, ts: u64, body: Body) -> Event {
        self.nodes[n]
            .replica
            .ledger()
            .author_event(&self.nodes[n].keypair, ts, body)
    }

    /// Has node `n`'s replica admit and push an event it signed (checked or not).
    fn inject(&mut self, n: usize, ev: Event) {
        let net = *self.nodes[n].replica.network();
        // One the author signed badly is checked like any network input would be: refused.
        if let Ok(ev) = web4fed_core::ledger::VerifiedEvent::check(ev, &net) {
            self.command(n, Command::Ingest { events: vec![ev] });
        }
    }

    /// Sends hand-made event bytes from `n` in an envelope it signs, to every linked peer.
    fn send_raw_event(&mut self, n: usize, bytes: &[u8], to: &[usize]) {
        let env = Envelope::seal(
            &self.nodes[n].keypair,
            self.nodes[n].replica.network(),
            self.local_now(n),
            bytes,
        );
        for &t in to {
            self.send(n, t, Message::Gossip(Gossip::Event(env.clone())));
        }
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
        let content = sentence((n as u64) << 32 | k);
        if let Some(Reply::Submitted(ev)) = self.command(n, Command::Submit { content }) {
            self.created.insert(ev.id(), self.now);
            self.stats.acked += 1;
        }
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
        let now = self.local_now(n);
        let peers = self.links[n].clone();
        let next = match self.nodes[n].behaviour {
            Behaviour::Spammer => {
                self.mark_attack();
                let ev = self.sign_own(n, now, Body::Thought(sentence(0xdead_0000 + step)));
                self.inject(n, ev);
                200
            }
            Behaviour::Garbage => {
                let text = match step % 3 {
                    0 => "buy buy buy buy buy buy buy buy".to_string(),
                    1 => format!("zzzzxq qwrtp {}", "x".repeat((step % 7) as usize + 3)),
                    _ => sentence(7), // the same content again: a near-duplicate flood
                };
                // Paced at its full rate so the rate layer is not what stops it.
                self.mark_attack();
                let ev = self.sign_own(n, now, Body::Thought(text));
                self.inject(n, ev);
                6_000
            }
            Behaviour::Forger => {
                let ev = self.sign_own(n, now, Body::Thought(sentence(0xf0f0 + step)));
                let mut bytes = ev.bytes().to_vec();
                bytes[web4fed_core::event::HEADER_LEN] ^= 1;
                self.mark_attack();
                self.send_raw_event(n, &bytes, &peers);
                2_000
            }
            Behaviour::Equivocator => {
                let a = self.sign_own(n, now, Body::Thought(sentence(0xe0 + 2 * step)));
                let b = Event::sign(
                    &self.nodes[n].keypair,
                    self.nodes[n].replica.network(),
                    a.seq(),
                    a.header.prev,
                    now + 1,
                    Body::Thought(sentence(0xe1 + 2 * step)),
                );
                self.mark_attack();
                let (left, right) = peers.split_at(peers.len() / 2);
                self.send_raw_event(n, b.bytes(), right);
                self.send_raw_event(n, a.bytes(), left);
                // Its own log stays on branch a, so later attacks build on it.
                self.inject(n, a);
                5_000
            }
            Behaviour::AtpForger => {
                let victim = (0..self.nodes.len())
                    .find(|i| self.nodes[*i].behaviour.is_honest())
                    .unwrap_or(0);
                let victim_id = self.nodes[victim].keypair.id();
                self.mark_attack();
                if step.is_multiple_of(2) {
                    // More than it holds.
                    let ev = self.sign_own(
                        n,
                        now,
                        Body::Transfer {
                            to: victim_id,
                            amount_milli: 5_000_000,
                        },
                    );
                    self.inject(n, ev);
                } else {
                    let bytes = self.forge_transfer_from(n, victim_id, now);
                    self.send_raw_event(n, &bytes, &peers);
                }
                3_000
            }
            Behaviour::Timing => {
                self.mark_attack();
                match step % 3 {
                    0 => {
                        // An hour ahead: waits in every future pool, never folds in this run.
                        let ev =
                            self.sign_own(n, now + 3_600_000, Body::Thought(sentence(0x71 + step)));
                        self.send_raw_event(n, ev.bytes(), &peers);
                    }
                    1 => {
                        // Back-dated before its previous event: refused at admission.
                        let kp = self.nodes[n].keypair.clone();
                        let l = self.nodes[n].replica.ledger();
                        let len = l.feed_len(&kp.id());
                        let prev = l
                            .feed_event(&kp.id(), len.saturating_sub(1))
                            .map(|e| (e.id(), e.timestamp_ms()))
                            .unwrap_or_default();
                        let ev = Event::sign(
                            &kp,
                            l.network(),
                            len,
                            prev.0,
                            prev.1.saturating_sub(60_000),
                            Body::Thought(sentence(0x72 + step)),
                        );
                        self.send_raw_event(n, ev.bytes(), &peers);
                    }
                    _ => {
                        // A burst at the window's edge: as many as the limit allows and more.
                        for k in 0..15 {
                            if k > 0 {
                                self.mark_attack();
                            }
                            let text = sentence(0x7300 + step * 100 + k);
                            let ev = self.sign_own(n, now, Body::Thought(text));
                            self.inject(n, ev);
                        }
                    }
                }
                20_000
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

    /// A transfer "from" the victim: the victim's seq and prev, signed with the attacker's key.
    fn forge_transfer_from(&self, n: usize, victim: MemberId, now: u64) -> Vec<u8> {
        use sha2::Digest;
        let l = self.nodes[n].replica.ledger();
        let len = l.feed_len(&victim);
        let prev = l
            .feed_event(&victim, len.saturating_sub(1))
            .map(|e| e.id())
            .unwrap_or_default();
        let body = Body::Transfer {
            to: self.nodes[n].keypair.id(),
            amount_milli: 50_000,
        };
        let bb = body.encode();
        let h = web4fed_core::event::Header {
            author: victim,
            seq: len,
            prev,
            timestamp_ms: now,
            kind: web4fed_core::event::Kind::Transfer,
            body_len: bb.len() as u32,
            body_hash: sha2::Sha256::digest(&bb).into(),
        };
        let sig = self.nodes[n].keypair.sign(&h.signing_bytes(l.network()));
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(&sig);
        bytes.extend_from_slice(&bb);
        bytes
    }

    fn crash(&mut self, n: usize) {
        self.nodes[n].up = false;
        self.nodes[n].wake_at = None;
        for p in self.links[n].clone() {
            if self.nodes[p].up {
                let now = self.local_now(p);
                let m = self.nodes[n].keypair.id();
                self.nodes[p].replica.handle_disconnected(now, m);
                self.drive(p);
            }
        }
    }

    /// Node `n`'s ledger restored from its newest snapshot (with the events after it, in
    /// their canonical order, as the daemon reads them: each listed feed from its covered
    /// length, then what was stored after the snapshot), or with no snapshot an empty one
    /// and the whole log in admission order. A snapshot the node wrote itself that does
    /// not load is a bug, and fails the run.
    fn restored(&self, n: usize) -> (Ledger, Vec<Event>) {
        let node = &self.nodes[n];
        let g = &self.cfg.genesis;
        let Some((bytes, mark)) = node.snapshot.as_ref() else {
            let all = node.durable.iter().map(|e| (**e).clone()).collect();
            return (Ledger::new(g.clone()), all);
        };
        let file = web4fed_core::snapshot::SnapshotFile::decode(bytes, &g.network_id())
            .expect("a snapshot this node wrote decodes");
        let epoch = file.header.epoch;
        let certified = node
            .certs
            .iter()
            .find(|c| c.body.epoch == epoch)
            .map(|c| c.body.root);
        let verifier = Box::new(web4fed_core::attest::GenesisVerifier::new(g));
        let (l, known) = Ledger::from_snapshot(g.clone(), verifier, &file, certified)
            .expect("a snapshot this node wrote loads");
        let covered: BTreeMap<_, _> = known.iter().map(|m| (*m, l.feed_len(m))).collect();
        let mut tail: Vec<Event> = node
            .durable
            .iter()
            .enumerate()
            .filter(|(i, e)| match covered.get(&e.author()) {
                Some(len) => e.seq() >= *len,
                None => *i >= *mark,
            })
            .map(|(_, e)| (**e).clone())
            .collect();
        tail.sort_by_key(Event::order_key);
        (l, tail)
    }

    /// A replica rebuilt from node `n`'s durable storage, as the daemon rebuilds: events in
    /// batches, each certificate restored as soon as the events it covers are in.
    fn rebuilt(&self, n: usize) -> Replica {
        let now = self.local_now(n);
        let node = &self.nodes[n];
        let (mut l, events) = self.restored(n);
        let fin = l.final_epoch();
        let mut certs: std::collections::VecDeque<&Certificate> = node
            .certs
            .iter()
            .filter(|c| fin.is_none_or(|f| c.body.epoch > f))
            .collect();
        let restore_covered =
            |l: &mut Ledger, certs: &mut std::collections::VecDeque<&Certificate>| {
                while certs
                    .front()
                    .is_some_and(|c| c.frontier.iter().all(|(m, k)| l.feed_len(m) >= *k))
                {
                    if let Some(c) = certs.pop_front() {
                        l.restore_certificate(c.clone());
                    }
                }
            };
        for chunk in events.chunks(web4fed_core::ledger::MAX_BATCH_EVENTS) {
            l.handle_batch(now, chunk.to_vec());
            while l.poll_output().is_some() {}
            restore_covered(&mut l, &mut certs);
        }
        for c in certs {
            l.restore_certificate(c.clone());
        }
        for p in &node.proofs {
            let _ = l.handle_proof(p.clone());
        }
        while l.poll_output().is_some() {}
        let config = web4fed_replica::Config {
            keypair: node.keypair.clone(),
            heartbeat_ms: self.cfg.heartbeat_ms,
            bootstrap: Vec::new(),
            last_vote: node.last_vote,
            has_tpm: false,
            rate_thoughts: true,
        };
        Replica::new(config, l, now)
    }

    fn restart(&mut self, n: usize) {
        if self.nodes[n].snapshot.is_some() {
            self.stats.snapshot_restarts += 1;
        }
        self.nodes[n].replica = self.rebuilt(n);
        self.nodes[n].up = true;
        self.connect(n);
        self.drive(n);
    }

    /// Opens node `n`'s connections to its linked peers that are up.
    fn connect(&mut self, n: usize) {
        for p in self.links[n].clone() {
            if !self.nodes[p].up {
                continue;
            }
            let (mn, mp) = (self.nodes[n].keypair.id(), self.nodes[p].keypair.id());
            let (tn, tp) = (self.local_now(n), self.local_now(p));
            self.nodes[n].replica.handle_connected(tn, mp, None);
            self.nodes[p].replica.handle_connected(tp, mn, None);
            self.drive(p);
        }
    }
}

/// Whether a message travels on one of the agreement's topics (votes, proposals).
fn is_agreement(m: &Message) -> bool {
    matches!(m, Message::Gossip(g) if Topic::AGREEMENT.contains(&g.topic()))
}

/// The links a federation's replicas make when each knows every member: node `i` dials its
/// [`web4fed_replica::limits::TARGET_PEERS`] most preferred, a member of the validator
/// committee also its [`web4fed_replica::limits::COMMITTEE_PEERS`] most preferred committee
/// members (the committee each replica computes at the start), and a link serves both ends.
fn peer_set_links(nodes: &[Node]) -> Vec<Vec<usize>> {
    let n = nodes.len();
    let mut links = vec![BTreeSet::new(); n];
    let index: BTreeMap<MemberId, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, x)| (x.keypair.id(), i))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        let Some(committee) = node.replica.committee() else {
            continue;
        };
        if !committee.contains(&node.keypair.id()) {
            continue;
        }
        let near = web4fed_replica::peers::committee_neighbours(
            &node.keypair.id(),
            committee,
            web4fed_replica::limits::COMMITTEE_PEERS,
        );
        for m in near {
            if let Some(&j) = index.get(&m) {
                links[i].insert(j);
                links[j].insert(i);
            }
        }
    }
    for i in 0..n {
        let me = nodes[i].keypair.id();
        let mut order: Vec<(u64, usize)> = (0..n)
            .filter(|j| *j != i)
            .map(|j| {
                (
                    web4fed_replica::peers::preference(&me, &nodes[j].keypair.id()),
                    j,
                )
            })
            .collect();
        order.sort_unstable();
        for (_, j) in order
            .into_iter()
            .take(web4fed_replica::limits::TARGET_PEERS)
        {
            links[i].insert(j);
            links[j].insert(i);
        }
    }
    links.into_iter().map(|l| l.into_iter().collect()).collect()
}

/// Runs one seeded simulation of `cfg`.
pub fn run(cfg: &Config, seed: u64) -> Outcome {
    // Every simulated replica checks the same signatures: one real check each, shared.
    web4fed_core::identity::share_signature_checks(true);
    let mut rng = Rng::new(seed);
    let n = cfg.behaviours.len();
    let key_of = |i: usize| {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&seed.to_be_bytes());
        secret[8..16].copy_from_slice(&(i as u64).to_be_bytes());
        secret[16] = 0x77;
        Keypair::from_secret(secret)
    };
    // The members present at genesis (honest or not) are its founders; Sybils join later,
    // as outsiders do (unless the scenario's genesis names founders itself).
    let mut genesis = cfg.genesis.clone();
    if genesis.founders.is_empty() {
        genesis.founders = (0..n)
            .filter(|i| !cfg.behaviours[*i].is_outsider())
            .map(|i| hex::encode(key_of(i).id().0))
            .collect();
        genesis.genesis_time_ms = T0;
    }
    let network = genesis.network_id();
    let mut setup_rng = rng.fork();
    let nodes: Vec<Node> = cfg
        .behaviours
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let skew = if cfg.max_skew_ms == 0 {
                0
            } else {
                setup_rng.range(0, 2 * cfg.max_skew_ms) as i64 - cfg.max_skew_ms as i64
            };
            let keypair = key_of(i);
            let now = (T0 as i64 + skew).max(0) as u64;
            let config = web4fed_replica::Config {
                keypair: keypair.clone(),
                heartbeat_ms: cfg.heartbeat_ms,
                bootstrap: Vec::new(),
                last_vote: None,
                has_tpm: false,
                rate_thoughts: true,
            };
            Node {
                replica: Replica::new(config, Ledger::new(genesis.clone()), now),
                keypair,
                behaviour: *b,
                durable: Vec::new(),
                snapshot: None,
                certs: Vec::new(),
                proofs: Vec::new(),
                last_vote: None,
                up: true,
                skew_ms: skew,
                posted: 0,
                attack_step: 0,
                wake_at: None,
                hears_agreement: true,
            }
        })
        .collect();
    let links = if cfg.peer_set {
        Some(peer_set_links(&nodes))
    } else {
        cfg.links.clone()
    };
    let links = links.unwrap_or_else(|| {
        (0..n)
            .map(|i| (0..n).filter(|j| *j != i).collect())
            .collect()
    });
    let index = nodes
        .iter()
        .enumerate()
        .map(|(i, x)| (x.keypair.id(), i))
        .collect();
    let mut sim = Sim {
        cfg: Config {
            genesis: genesis.clone(),
            ..cfg.clone()
        },
        rng,
        now: T0,
        seq: 0,
        queue: BTreeMap::new(),
        nodes,
        index,
        in_flight: BTreeMap::new(),
        stats: Stats::default(),
        created: BTreeMap::new(),
        seen_count: BTreeMap::new(),
        first_attack_ms: None,
        links,
        finalized: vec![BTreeMap::new(); n],
        decided: vec![BTreeMap::new(); n],
        filtering: false,
    };
    // Connections first (each pair once), then registrations: every member mines its PoW
    // (Sybils without PoW claim one they lack) and pushes its registration to its peers.
    for i in 0..n {
        for p in sim.links[i].clone() {
            if p > i || !sim.links[p].contains(&i) {
                let (mi, mp) = (sim.nodes[i].keypair.id(), sim.nodes[p].keypair.id());
                let (ti, tp) = (sim.local_now(i), sim.local_now(p));
                sim.nodes[i].replica.handle_connected(ti, mp, None);
                sim.nodes[p].replica.handle_connected(tp, mi, None);
            }
        }
    }
    for i in 0..n {
        let kp = sim.nodes[i].keypair.clone();
        let behaviour = sim.nodes[i].behaviour;
        let pow = match behaviour {
            Behaviour::SybilNoPow => web4fed_core::pow::Pow {
                bits: genesis.pow_bits,
                nonce: 0,
            },
            _ => web4fed_core::pow::mine(&network, &kp.id(), genesis.pow_bits),
        };
        if matches!(behaviour, Behaviour::Sybil | Behaviour::SybilNoPow) {
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
        let ev = sim.sign_own(i, sim.local_now(i), body);
        sim.created.insert(ev.id(), sim.now);
        if behaviour == Behaviour::SybilNoPow {
            // Its own ledger refuses it: it sends it by hand.
            let peers = sim.links[i].clone();
            sim.send_raw_event(i, ev.bytes(), &peers);
        } else {
            sim.inject(i, ev);
        }
    }
    for i in 0..n {
        sim.drive(i);
    }
    sim.filtering = true;
    let mut jitter = sim.rng.fork();
    for i in 0..n {
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
            Item::Deliver { from, to, msg } => sim.deliver(from, to, *msg),
            Item::Post(i) => sim.on_post(i),
            Item::Wake(i) => sim.on_wake(i),
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
                        x.replica
                            .ledger()
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
            ran_ms: sim.cfg.fault_ms + sim.cfg.heal_ms,
        };
    };
    for &i in &honest {
        if !sim.nodes[i].up {
            sim.nodes[i].replica = sim.rebuilt(i);
            sim.nodes[i].up = true;
        }
    }
    let root = sim.nodes[reference].replica.ledger().state_root();
    // Feeds of proven equivocators are garbage past the fork and may legitimately differ.
    let comparable = |l: &Ledger| -> BTreeMap<MemberId, u64> {
        l.version_vector()
            .into_iter()
            .filter(|(m, _)| l.fork_seq(m).is_none())
            .collect()
    };
    let vv = comparable(sim.nodes[reference].replica.ledger());
    // 1. Convergence in the healed phase.
    sim.stats.honest_nodes = honest.len() as u64;
    for &i in &honest {
        let same = sim.nodes[i].replica.ledger().state_root() == root
            && comparable(sim.nodes[i].replica.ledger()) == vv;
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
            let fin = sim.nodes[i].replica.ledger().final_epoch();
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
    {
        let st = sim.nodes[reference].replica.ledger().state();
        let live = st.corpus_len() as u64;
        let settled = st.corpus().filter(|(_, e)| e.settled).count() as u64;
        sim.stats.thoughts_settled = (live, settled);
    }
    let expected = sim.cfg.crashes.iter().filter(|c| c.from_snapshot).count() as u64;
    if sim.stats.snapshot_restarts < expected {
        failures.push(format!(
            "{} restarts loaded a snapshot, {expected} were meant to",
            sim.stats.snapshot_restarts
        ));
    }
    if sim.stats.spins > 0 {
        failures.push(format!(
            "{} timeouts left a deadline in the past (a daemon would spin)",
            sim.stats.spins
        ));
    }
    if sim.stats.decided_twice > 0 {
        failures.push(format!(
            "{} certificates decided an already decided height again",
            sim.stats.decided_twice
        ));
    }
    // One value per height across nodes.
    let mut by_height: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    for &i in &honest {
        for (h, id) in &sim.decided[i] {
            if *by_height.entry(*h).or_insert(*id) != *id {
                failures.push(format!("height {h} decided with two values"));
            }
        }
    }
    // 2. No acknowledged event lost; 3. honest members never penalised.
    let honest_ids: Vec<MemberId> = honest.iter().map(|i| sim.nodes[*i].keypair.id()).collect();
    for &i in &checked {
        let l = &sim.nodes[i].replica.ledger();
        // An exempt (eclipsed) node's own events cannot reach anyone: reported, not asserted.
        for &h in checked.iter() {
            let durable: Vec<&Arc<Event>> = sim.nodes[h]
                .durable
                .iter()
                .filter(|e| e.author() == sim.nodes[h].keypair.id())
                .collect();
            for ev in durable {
                let id = ev.id();
                // Seqs pruned so long ago that their ids are forgotten are final here: the
                // roots and certificates compared below cover them.
                if !l.holds(ev) && ev.seq() >= l.forgotten(&ev.author()) {
                    failures.push(format!(
                        "node {i} lacks acknowledged event {id} of node {h} ({:?}, written {} ms before the end)",
                        ev.body.kind(),
                        (T0 + sim.cfg.fault_ms + sim.cfg.heal_ms).saturating_sub(ev.timestamp_ms())
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
                    let refused = l.refused_events(m).len();
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
    let l = &sim.nodes[reference].replica.ledger();
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
        ran_ms: sim.cfg.fault_ms + sim.cfg.heal_ms,
    }
}
