//! The ledger: every member's feed, the canonical order over all of them, and the fold that
//! turns them into [`State`]. Sans-IO: time is an argument, effects come back from
//! [`Ledger::poll_output`].
//!
//! # Admission and the fold
//! An event enters the log once its signature verifies, its predecessor in the author's feed
//! is present and it links to it, and (at seq 0) its proof of work meets the network's
//! difficulty (layer 1). Events that arrive before their predecessor wait in a bounded orphan
//! pool; events dated beyond the allowed clock skew wait in a bounded future pool.
//!
//! The fold judges every admitted event against the state folded from all events before it
//! in the canonical order (timestamp, author, seq), so a verdict is a function of the event
//! set, never of arrival order. An event that lands behind the fold's head (a late arrival,
//! a healed partition) re-folds from the nearest snapshot before it.
//!
//! # Equivocation
//! Two validly signed, different events of one author at one seq are a proof. The proof
//! places an ejection point in the canonical order at `(min timestamp, author, seq)`; the
//! author's events at that seq or later are ignored everywhere. Because the point depends
//! only on the proof, nodes that hold different branches of the fork reach the same state once
//! they hold the proof.
//!
//! # Drain rule
//! After every `handle_*` call, drain [`Ledger::poll_output`] until it returns `None`: it
//! carries events to persist and proofs to publish.

use crate::attest::{claim_for, Claim, GenesisVerifier, LevelReason, Verifier};
use crate::envelope::Envelope;
use crate::event::{Body, Event, EventId, Evidence, OrderKey};
use crate::finality::VoteBody;
use crate::genesis::Genesis;
use crate::identity::{Keypair, MemberId};
use crate::pow::{self, PowError};
use crate::state::{check_evidence, State};
use crate::verdict::Verdict;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

mod image;

/// Most events waiting for their predecessor, over all authors: out-of-order delivery is
/// normal, but an unbounded pool would let any peer exhaust memory.
pub const MAX_ORPHANS: usize = 8_192;
/// Most orphans one author may have waiting (a sync batch is well below this).
pub const MAX_ORPHANS_PER_AUTHOR: usize = 1_024;
/// Most events waiting for the clock to reach their timestamp.
pub const MAX_FUTURE: usize = 4_096;
/// Most bytes of events in the orphan pool: 8,192 events of 100 KB would be 800 MB.
pub const MAX_ORPHAN_BYTES: usize = 64 * 1024 * 1024;
/// Most bytes of events in the future pool.
pub const MAX_FUTURE_BYTES: usize = 64 * 1024 * 1024;
/// Orphans of authors not registered here, at most (a quarter of the pool, in count and in
/// bytes): keys that never registered cannot crowd out members' out-of-order events.
pub const MAX_STRANGER_ORPHANS: usize = MAX_ORPHANS / 4;
/// Events of one author waiting for their time.
pub const MAX_FUTURE_PER_AUTHOR: usize = 256;
/// How far ahead of the local clock an event may be dated and still wait for its time;
/// beyond this it is refused (the author offers it again through sync once its time is near).
pub const MAX_FUTURE_AHEAD_MS: u64 = 2 * 3_600_000;
/// Folded items between in-memory snapshots: bounds the work of re-folding after a late
/// arrival (half this on average). A copy of the state shares with the live one everything
/// that has not changed since (see `state::Corpus`), so copies are cheap to take; what each
/// holds is the B-tree leaves changed after it, so fewer, not smaller, bound the memory.
pub const SNAPSHOT_EVERY: usize = 1_024;
/// In-memory snapshots kept; older ones are dropped (a re-fold behind them starts from the
/// pruning base, ten seconds or more back). 16,384 items: four seconds of a node taking 4,000
/// events a second, so an event that arrives a few seconds late under load re-folds only
/// what came after it.
pub const MAX_SNAPSHOTS: usize = 16;
/// Most forged envelopes remembered: three eject a sender, so more than a few per member is
/// never needed; the bound keeps a flood of evidence from growing memory.
pub const MAX_FORGERIES: usize = 16_384;
/// Forged envelopes kept per sender: three eject it (at the default threshold), the rest
/// are spare in case a genesis sets it higher; more prove nothing new.
pub const MAX_FORGERIES_PER_SENDER: usize = 8;
/// Evidence against keys that have not registered here, kept until they do: a fork found
/// between two orphans of a newcomer must not be lost, but proofs about keys that never
/// register must not pile up either.
pub const MAX_PENDING_PROOFS: usize = 1_024;
/// Recent epoch roots kept: enough to compare with peers a minute behind at 1 s epochs.
pub const EPOCH_ROOTS_KEPT: usize = 64;
/// Certificates kept in memory (all are in the store).
pub const CERTS_KEPT: usize = 256;
/// How many of the newest certificates the fold's base stays behind. A decided checkpoint is
/// never replaced (the agreement locks), so nothing before the latest certificate is ever
/// re-folded; the base follows the chain closely. Ten to fifteen seconds at the defaults
/// (the base is the newest candidate before the third newest certificate): what recent
/// history the fold keeps in memory for the checks that read it (violation evidence, the
/// verdicts the API shows). A matter of memory, not of safety: a node taking 4,000 events a
/// second held 250,000-400,000 events with a minute's window.
pub const REORG_WINDOW_CERTS: usize = 2;
/// Ms before a stalled height's next generation begins at which its weights are read: every
/// live member's events up to then have reached every node (presence and gossip take well
/// under this on a LAN and across regions).
pub const GENERATION_SETTLE_MS: u64 = 2_000;
/// Checkpoints after the latest certificate kept beyond the recent ones (see
/// `Ledger::uncertified_from`): half an hour at the defaults (5 s checkpoints), each a few
/// maps over the members. A node further behind than this cannot check the certificates it
/// missed against its own fold and should start again from a snapshot (state sync).
pub const MAX_UNCERTIFIED_CHECKPOINTS: usize = 360;
/// Checkpoint epochs between the fold snapshots kept as candidate bases for pruning: every
/// checkpoint, so the base can follow the chain closely. A copy of the state shares its
/// corpus with the live one (see `state::Corpus`), so a candidate costs what changed since.
pub const BASE_SNAPSHOT_EVERY_CHECKPOINTS: u64 = 1;
/// Candidate bases kept (the newest): while finality stalls nothing is pruned, and without a
/// bound each checkpoint would add another copy of the state. 48 span four minutes of event
/// time; when finality resumes, pruning waits for candidates older than the new floor.
pub const MAX_BASE_CANDIDATES: usize = 48;
/// Checkpoints between durable snapshots: a certified candidate base is offered for writing
/// to disk at every second checkpoint (10 s at the defaults), so a restart re-reads at most
/// that much of the log (plus what finality lags), at the cost of a snapshot file written
/// every 10 s (tens of MB for a large corpus; newest few kept).
pub const SNAPSHOT_FILE_EVERY_CHECKPOINTS: u64 = 2;
/// Most events one call admits: a longer batch has the rest refused with
/// [`InsertError::BatchTooLarge`] (drivers cut their input into batches of this size and
/// drain between them). Together with the pools' bounds this bounds the outputs one call can
/// queue: each event admitted (from the batch, the orphan pool or the future pool) gives one
/// output, plus a proof or a certificate now and then.
pub const MAX_BATCH_EVENTS: usize = 16_384;
/// The most outputs one call can queue (see [`MAX_BATCH_EVENTS`]); the driver drains after
/// every call, so more waiting at once is a driver bug, which debug builds assert.
pub const MAX_OUTPUTS: usize = MAX_BATCH_EVENTS + MAX_ORPHANS + MAX_FUTURE + 1_024;

/// Why an event was not admitted. Network input produces these; none of them panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// The author's signature does not verify for this network.
    #[error("signature does not verify")]
    BadSignature,
    /// Layer 1: the registration's proof of work is not good enough.
    #[error("layer 1: {0}")]
    Pow(#[from] PowError),
    /// The event does not link to the author's previous event.
    #[error("broken hash chain at seq {seq}: prev does not match the author's event at seq {}", seq - 1)]
    BrokenChain {
        /// The event's seq.
        seq: u64,
    },
    /// The event is dated before the author's previous event.
    #[error("timestamp {timestamp_ms} is before the author's previous event at {prev_ms}")]
    TimestampBeforePrev {
        /// The event's timestamp.
        timestamp_ms: u64,
        /// The previous event's timestamp.
        prev_ms: u64,
    },
    /// The event conflicts with one already held: the author equivocated.
    #[error("equivocation: author signed two events at seq {seq}")]
    Equivocation {
        /// The seq of the fork.
        seq: u64,
    },
    /// The author is proven to have equivocated at or before this seq.
    #[error("author equivocated at seq {fork_seq}; its events from there on are refused")]
    AuthorEquivocated {
        /// The seq at which it forked.
        fork_seq: u64,
    },
    /// The author was ejected (for violations or a double vote) and its feed closed at this
    /// seq: nothing it signs later is stored, folded or relayed.
    #[error("author was ejected; its feed is closed from seq {closed_at}")]
    FeedClosed {
        /// The first seq refused.
        closed_at: u64,
    },
    /// The event conflicts with final history this node has pruned from memory, or is at a
    /// seq so far back that its id is forgotten here (see [`PRUNED_IDS_KEPT`]): it can never
    /// be ordered (a certificate covers the seq), and the proof would need the pruned event,
    /// so it is refused without one.
    #[error("at seq {seq} of final history pruned from memory here, and not the event held")]
    BeyondHorizon {
        /// The event's seq.
        seq: u64,
    },
    /// A waiting pool is full.
    #[error("{pool} pool is full")]
    PoolFull {
        /// Which pool.
        pool: &'static str,
    },
    /// Dated further ahead of this node's clock than it holds events for.
    #[error("dated {ahead_ms} ms ahead of this node's clock: too far to hold")]
    TooFarAhead {
        /// How far ahead.
        ahead_ms: u64,
    },
    /// The batch holds more events than one call admits.
    #[error("batch longer than {max} events: the rest was not looked at")]
    BatchTooLarge {
        /// The most one call admits.
        max: usize,
    },
}

impl InsertError {
    /// The defence layer that refused the event, where one did.
    pub fn layer(&self) -> Option<u8> {
        match self {
            Self::Pow(_) => Some(1),
            _ => None,
        }
    }
}

/// What happened to an event handed to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Admitted to the log (and any orphans it unblocked, too).
    Admitted,
    /// Already held: a replay changes nothing.
    AlreadyKnown,
    /// Waiting for the author's earlier events (an unregistered author's events wait here).
    MissingPredecessor {
        /// The seq the ledger needs next from this author.
        need_seq: u64,
    },
    /// Dated more than the allowed skew ahead of `now`; waits until it is not.
    FutureDated {
        /// When it may be admitted.
        until_ms: u64,
    },
}

/// An event whose author signature has been checked for a network: the only way to hand the
/// ledger events without it checking them again ([`Ledger::handle_batch_verified`]).
#[derive(Debug, Clone)]
pub struct VerifiedEvent(Event);

impl VerifiedEvent {
    /// Checks the signature; gives the event back if it does not verify.
    pub fn check(ev: Event, network: &[u8; 32]) -> Result<Self, Box<Event>> {
        if ev.verify(network) {
            Ok(Self(ev))
        } else {
            Err(Box::new(ev))
        }
    }

    /// The checked event.
    pub fn event(&self) -> &Event {
        &self.0
    }
}

/// Work the ledger hands to its driver.
#[derive(Debug, Clone)]
pub enum Output {
    /// An event entered the log: persist it (before acknowledging it to anyone).
    Admitted(Arc<Event>),
    /// A new equivocation proof: persist it and publish it in an `Evidence` event.
    Proof(Box<Evidence>),
    /// A certificate adopted: persist it and pass it on.
    Certificate(Box<crate::finality::Certificate>),
    /// The fold's base moved to this certified checkpoint epoch: the driver may write
    /// [`Ledger::snapshot`] to disk (a restart then starts there).
    Snapshot {
        /// The certified epoch of the new base.
        epoch: u64,
    },
}

#[derive(Debug, Clone)]
struct Feed {
    /// Pruned events whose ids are forgotten: seqs `0..forgotten` (pruned events are a
    /// prefix of their feed: order keys grow with seq). They are final, so an event at one of
    /// these seqs is dropped whatever it is; only a count is kept, so memory does not grow
    /// with history.
    forgotten: u64,
    /// The first bytes of the ids of the most recently pruned events, seqs
    /// `forgotten..forgotten + old.len()`, at most [`PRUNED_IDS_KEPT`]. Enough to tell a late
    /// duplicate from a conflicting event at a just-pruned seq; both are dropped, so an 8-byte
    /// prefix that a forger matched by brute force would change only how the drop is counted.
    old: VecDeque<[u8; OLD_ID_BYTES]>,
    /// Ids of the events still in memory, seqs `pruned()..`.
    ids: Vec<EventId>,
    /// The last event's id (kept whole: the next event must link to it).
    head: EventId,
    /// Timestamp of the last event (its successor may not be dated before it).
    head_ms: u64,
    /// What the registration's hardware evidence establishes (checked once, at append).
    claim: Claim,
    /// The last pruned event's id and timestamp (the first event still held links to it):
    /// what a snapshot needs to let the tail append again.
    pruned_head: Option<(EventId, u64)>,
}

/// Bytes of an id kept for a pruned event (see `Feed::old`).
const OLD_ID_BYTES: usize = 8;

/// Id prefixes of pruned events kept per feed (8 KiB a member). Late duplicates of a just-pruned
/// event (gossip copies, a sync answer crossing a prune) are told from conflicts for as long
/// as a member takes to post this many events; past it a feed keeps only a count, which is what
/// keeps memory, snapshots and restarts independent of history (a prefix per event ever was
/// 19 of a 32 MB snapshot at 2.3M events).
pub const PRUNED_IDS_KEPT: usize = 1_024;

/// What a feed holds at one seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeldAt {
    /// An event still in memory.
    Id(EventId),
    /// A pruned event: the first bytes of its id.
    Pruned([u8; OLD_ID_BYTES]),
    /// A pruned event whose id is forgotten: final, and no longer told from a conflict.
    Forgotten,
}

impl HeldAt {
    fn is(&self, id: &EventId) -> bool {
        match self {
            Self::Id(held) => held == id,
            Self::Pruned(prefix) => id.0[..OLD_ID_BYTES] == prefix[..],
            Self::Forgotten => false,
        }
    }
}

impl Feed {
    fn len(&self) -> u64 {
        self.pruned() + self.ids.len() as u64
    }
    /// Events of the feed pruned from memory (seqs `0..pruned()`).
    fn pruned(&self) -> u64 {
        self.forgotten + self.old.len() as u64
    }
    fn at(&self, seq: u64) -> Option<HeldAt> {
        if seq < self.forgotten {
            return Some(HeldAt::Forgotten);
        }
        let i = usize::try_from(seq - self.forgotten).ok()?;
        match i.checked_sub(self.old.len()) {
            None => self.old.get(i).copied().map(HeldAt::Pruned),
            Some(i) => self.ids.get(i).copied().map(HeldAt::Id),
        }
    }
    /// Ids of the events in memory from `seq` on.
    fn ids_from(&self, seq: u64) -> impl Iterator<Item = &EventId> {
        let skip = usize::try_from(seq.saturating_sub(self.pruned())).unwrap_or(usize::MAX);
        self.ids.iter().skip(skip)
    }
    /// Moves the first `n` in-memory ids to the pruned prefix.
    fn compact(&mut self, n: usize) {
        let n = n.min(self.ids.len());
        self.old.extend(self.ids.drain(..n).map(|id| {
            let mut p = [0u8; OLD_ID_BYTES];
            p.copy_from_slice(&id.0[..OLD_ID_BYTES]);
            p
        }));
        self.forget_beyond_kept();
    }
    /// Forgets the oldest prefixes beyond [`PRUNED_IDS_KEPT`].
    fn forget_beyond_kept(&mut self) {
        let excess = self.old.len().saturating_sub(PRUNED_IDS_KEPT);
        self.old.drain(..excess);
        self.forgotten += excess as u64;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Event(EventId),
}

/// Projections from the head of the fold (see `Ledger::head_cache`), valid for one
/// generation of the fold and one latest certificate.
#[derive(Debug, Default)]
struct HeadCache {
    key: (u64, Option<u64>),
    roots: BTreeMap<u64, [u8; 32]>,
    checkpoints: BTreeMap<u64, Checkpoint>,
}

/// Head projections kept at once (each epoch end asked about is one): far more than the few
/// recent epochs heartbeats and votes name.
const HEAD_CACHE_MAX: usize = 16;

/// The fold's state after the item at `at`, with the number of items folded by then.
#[derive(Debug, Clone)]
struct Snapshot {
    at: (OrderKey, Item),
    state: State,
    count: usize,
}

/// What the ledger keeps of final history (see [`Ledger::prune`]).
#[derive(Debug, Default)]
struct History {
    /// Certificates the fold's base stays behind; `None` keeps everything in memory.
    window: Option<usize>,
    /// The fold at the pruning point: re-folds start here, never before.
    base: Option<Snapshot>,
    /// The oldest certificate a competing branch may still build on.
    floor: Option<u64>,
    /// Candidate bases: the fold at recent checkpoint boundaries, by epoch.
    candidates: BTreeMap<u64, Snapshot>,
    /// Registration events of pruned feeds (a member's hardware evidence is still asked for).
    registrations: HashMap<MemberId, Arc<Event>>,
    /// Refused events of pruned history with their verdicts, per author, the newest
    /// `eject_violations` of each: what an ejection for violations rests on, kept so that
    /// every node can still show (and anyone check, with the author's key) the evidence
    /// after the window has moved past it. Bounded by members × the genesis threshold.
    refused: HashMap<MemberId, VecDeque<(Arc<Event>, Verdict)>>,
    /// Events that have left memory.
    pruned: usize,
    /// The checkpoint epoch the base was taken at.
    base_epoch: Option<u64>,
    /// The newest epoch a snapshot was offered at.
    offered: Option<u64>,
    /// Set if pruning ever left a feed's ids whole (pruned events not a prefix of their
    /// feed): then no snapshot can describe the base by feed lengths, and none is offered.
    irregular: bool,
}

/// Where a page of evidence ends (see [`Ledger::evidence_after`]): a kind byte (0 proof,
/// 1 double vote, 2 forged envelope) and the item's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EvidenceCursor(pub [u8; 33]);

impl EvidenceCursor {
    fn new(kind: u8, key: [u8; 32]) -> Self {
        let mut c = [0u8; 33];
        c[0] = kind;
        c[1..].copy_from_slice(&key);
        Self(c)
    }

    fn key(&self) -> [u8; 32] {
        let mut k = [0u8; 32];
        k.copy_from_slice(&self.0[1..]);
        k
    }

    /// The cursor in these bytes, if they are one (33 bytes, a known kind).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let c: [u8; 33] = b.try_into().ok()?;
        (c[0] <= 2).then_some(Self(c))
    }
}

/// The log and its fold. See the module docs.
pub struct Ledger {
    /// Committee ratings (`Validate` events) in the log, pruned ones included: nodes write
    /// them by themselves, so operators and tests that count what they posted leave them out.
    ratings_held: u64,
    genesis: Genesis,
    /// The genesis's founders, parsed once (see [`State::weights_with`]).
    founders: BTreeSet<MemberId>,
    network: [u8; 32],
    verifier: Box<dyn Verifier>,
    events: HashMap<EventId, Arc<Event>>,
    feeds: HashMap<MemberId, Feed>,
    order: BTreeMap<(OrderKey, Item), ()>,
    /// The first equivocation proof known against each member (found here or carried).
    proofs: BTreeMap<MemberId, Evidence>,
    /// Lowest fork seq known per member: its later events are refused at admission.
    forks: HashMap<MemberId, u64>,
    /// Lowest fork seq per member proven by an `Evidence` event in the log: the fold ignores
    /// the member's uncertified events from there on, whichever branch this node holds.
    carried_forks: BTreeMap<MemberId, u64>,
    forgeries: BTreeMap<[u8; 32], Envelope>,
    /// Forged envelopes held per sender (see [`MAX_FORGERIES_PER_SENDER`]).
    forgers: HashMap<MemberId, usize>,
    /// Evidence against keys not registered (yet), with whether to announce it: taken up
    /// when the key registers (see [`MAX_PENDING_PROOFS`]).
    pending_proofs: VecDeque<(MemberId, Evidence, bool)>,
    double_votes: BTreeMap<MemberId, Evidence>,
    evidence_checks: HashMap<EventId, Result<(), String>>,
    orphans: BTreeMap<(MemberId, u64), Arc<Event>>,
    /// Bytes of the events in `orphans`.
    orphan_bytes: usize,
    /// Orphans whose author had no registration here when they came.
    stranger_orphans: usize,
    future: BTreeMap<(u64, EventId), Arc<Event>>,
    /// Bytes of the events in `future`.
    future_bytes: usize,
    /// Events in `future`, by author.
    future_per_author: HashMap<MemberId, usize>,
    state: State,
    verdicts: HashMap<EventId, Verdict>,
    folded_upto: Option<(OrderKey, Item)>,
    dirty_from: Option<(OrderKey, Item)>,
    snapshots: Vec<Snapshot>,
    history: History,
    /// Bumped whenever the fold changes the state; keys the root cache.
    generation: u64,
    /// The latest state root and the generation it was computed at: a root costs a Merkle
    /// pass over every account and live thought, and status readers ask for it often.
    root_cache: std::sync::Mutex<Option<(u64, [u8; 32])>>,
    /// Roots and checkpoints projected from the head of the fold to an epoch end it has not
    /// reached yet, for the generation (and the certificate chain) they were computed at: at
    /// idle the fold rarely passes an epoch's end before its votes and heartbeats arrive, and
    /// each of them asked for the same projection again (a root per vote and per heartbeat,
    /// measured at a hundred nodes).
    head_cache: std::sync::Mutex<HeadCache>,
    folded_count: usize,
    outputs: VecDeque<Output>,
    /// Roots of recent epochs, recorded as the fold crosses each epoch boundary.
    epoch_roots: BTreeMap<u64, [u8; 32]>,
    /// Figures of recent checkpoint epochs (root, frontier, weights).
    checkpoints: BTreeMap<u64, Checkpoint>,
    /// The certificate chain: epoch → the certified epoch it built on.
    chain: BTreeMap<u64, Option<u64>>,
    /// Recent certificates.
    certs: BTreeMap<u64, crate::finality::Certificate>,
    /// Per member, (events covered, certified epoch) each time a certificate covered more.
    steps: HashMap<MemberId, Vec<(u64, u64)>>,
    /// The validator set of the next height's first generation: the weights at the latest
    /// certified checkpoint, kept when it is adopted.
    next_weights: Option<BTreeMap<MemberId, u64>>,
    /// The validator set each held certificate was checked against (by epoch): what an
    /// outsider needs to verify it (`GET /v1/finality`, `web4fed verify-cert`).
    cert_sets: BTreeMap<u64, Arc<BTreeMap<MemberId, u64>>>,
    /// Logical time of the last folded item.
    fold_ms: u64,
}

/// What a node knows of a checkpoint epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The state root at the end of the epoch.
    pub root: [u8; 32],
    /// Events covered per feed.
    pub frontier: crate::finality::Frontier,
    /// Active members' voting weight (see `State::weights_at`; members with none are left
    /// out): the weights of votes.
    pub weights: BTreeMap<MemberId, u64>,
    /// Every active member's trust at the end of the epoch (final once it is certified).
    pub trust: BTreeMap<MemberId, u64>,
    /// Every member's ATP at the end of the epoch (final once the epoch is certified).
    pub atp: BTreeMap<MemberId, u64>,
    /// The certified epoch the fold built on.
    pub prev: Option<u64>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("events", &self.events.len())
            .field("members", &self.feeds.len())
            .finish()
    }
}

impl Ledger {
    /// A ledger for a network: TPM evidence is verified against the genesis roots.
    pub fn new(genesis: Genesis) -> Self {
        let verifier = GenesisVerifier::new(&genesis);
        Self::with_verifier(genesis, Box::new(verifier))
    }

    /// A ledger with another attestation verifier (layer 6). Every node of a network must
    /// use the same one: the level feeds the state root.
    pub fn with_verifier(genesis: Genesis, verifier: Box<dyn Verifier>) -> Self {
        let network = genesis.network_id();
        Self {
            founders: genesis.founder_ids(),
            genesis,
            network,
            verifier,
            events: HashMap::new(),
            feeds: HashMap::new(),
            order: BTreeMap::new(),
            proofs: BTreeMap::new(),
            forks: HashMap::new(),
            carried_forks: BTreeMap::new(),
            forgeries: BTreeMap::new(),
            forgers: HashMap::new(),
            pending_proofs: VecDeque::new(),
            double_votes: BTreeMap::new(),
            evidence_checks: HashMap::new(),
            orphans: BTreeMap::new(),
            orphan_bytes: 0,
            stranger_orphans: 0,
            future: BTreeMap::new(),
            future_bytes: 0,
            future_per_author: HashMap::new(),
            state: State::default(),
            ratings_held: 0,
            verdicts: HashMap::new(),
            folded_upto: None,
            dirty_from: None,
            snapshots: Vec::new(),
            history: History {
                window: Some(REORG_WINDOW_CERTS),
                ..History::default()
            },
            generation: 0,
            root_cache: std::sync::Mutex::new(None),
            head_cache: std::sync::Mutex::new(HeadCache::default()),
            folded_count: 0,
            outputs: VecDeque::new(),
            epoch_roots: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            chain: BTreeMap::new(),
            certs: BTreeMap::new(),
            steps: HashMap::new(),
            next_weights: None,
            cert_sets: BTreeMap::new(),
            fold_ms: 0,
        }
    }

    /// The network parameters.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }
    /// The network id (genesis hash).
    pub fn network(&self) -> &[u8; 32] {
        &self.network
    }

    fn push_output(&mut self, o: Output) {
        // Never dropped: an output lost is an event acknowledged but not persisted.
        debug_assert!(
            self.outputs.len() < MAX_OUTPUTS,
            "outputs not drained between calls"
        );
        self.outputs.push_back(o);
    }

    /// The next piece of work for the driver, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Hands the ledger one event received at local time `now_ms`, and folds.
    pub fn handle_event(&mut self, now_ms: u64, ev: Event) -> Result<Admission, InsertError> {
        let r = self.admit(now_ms, Arc::new(ev));
        self.settle();
        r
    }

    /// Hands the ledger many events and folds once at the end: the path for sync batches
    /// and partition heals. Returns each event's admission in order.
    pub fn handle_batch(
        &mut self,
        now_ms: u64,
        events: impl IntoIterator<Item = Event>,
    ) -> Vec<Result<Admission, InsertError>> {
        self.admit_all(now_ms, events.into_iter().map(|e| (e, false)))
    }

    /// Like [`Ledger::handle_batch`] for events whose signatures were already checked (made
    /// by [`VerifiedEvent::check`], e.g. on several threads while a node reloads its log);
    /// every other admission rule applies as usual.
    pub fn handle_batch_verified(
        &mut self,
        now_ms: u64,
        events: impl IntoIterator<Item = VerifiedEvent>,
    ) -> Vec<Result<Admission, InsertError>> {
        self.admit_all(now_ms, events.into_iter().map(|e| (e.0, true)))
    }

    /// Admits each event (with whether its signature is already checked), then folds once.
    fn admit_all(
        &mut self,
        now_ms: u64,
        events: impl Iterator<Item = (Event, bool)>,
    ) -> Vec<Result<Admission, InsertError>> {
        let out = events
            .enumerate()
            .map(|(i, (e, checked))| {
                if i >= MAX_BATCH_EVENTS {
                    return Err(InsertError::BatchTooLarge {
                        max: MAX_BATCH_EVENTS,
                    });
                }
                self.admit_checked(now_ms, Arc::new(e), checked)
            })
            .collect();
        self.settle();
        out
    }

    /// Advances local time: admits future-dated events whose time has come.
    pub fn handle_tick(&mut self, now_ms: u64) {
        let horizon = now_ms.saturating_add(self.genesis.max_future_skew_ms);
        while let Some(entry) = self.future.first_entry() {
            if entry.key().0 > horizon {
                break;
            }
            let ev = entry.remove();
            self.future_left(&ev);
            // A released event that fails now failed for a reason unrelated to time; the
            // error was already reported when it was first handed in, so it is dropped here.
            let _ = self.admit(now_ms, ev);
        }
        self.settle();
    }

    /// Records a proof found earlier (reloaded from the store on restart). Evidence takes
    /// effect on the state only through the `Evidence` event that publishes it.
    pub fn handle_proof(&mut self, e: Evidence) -> Result<(), String> {
        check_evidence(&self.network, &e)?;
        self.add_proof(e, false);
        Ok(())
    }

    /// Evidence that waited for `member` to register counts now.
    fn take_up_pending_proofs(&mut self, member: &MemberId) {
        if !self.pending_proofs.iter().any(|(m, _, _)| m == member) {
            return;
        }
        let (mine, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.pending_proofs)
            .into_iter()
            .partition(|(m, _, _)| m == member);
        self.pending_proofs = rest;
        for (_, e, announce) in mine {
            self.add_proof(e, announce);
        }
    }

    /// Remembers evidence (bounded), and with `announce` hands it to the driver to persist and
    /// publish in an `Evidence` event.
    fn add_proof(&mut self, e: Evidence, announce: bool) -> bool {
        // Evidence against a key that never registered here penalises nobody; keeping it
        // would let anyone fill memory and the store with proofs about fresh keys.
        let accused = match &e {
            Evidence::Equivocation { a, .. } => a.header.author,
            Evidence::ForgedEnvelope(env) => env.sender,
            Evidence::DoubleVote(a, _) => a.signer,
        };
        if !self.feeds.contains_key(&accused) {
            // Unless it registers later: a few are kept apart for that (the oldest go first).
            if self.pending_proofs.len() >= MAX_PENDING_PROOFS {
                self.pending_proofs.pop_front();
            }
            self.pending_proofs.push_back((accused, e, announce));
            return false;
        }
        let new = match &e {
            Evidence::Equivocation { a, .. } => {
                let m = a.header.author;
                let seq = a.header.seq;
                let f = self.forks.entry(m).or_insert(seq);
                *f = (*f).min(seq);
                match self.proofs.entry(m) {
                    std::collections::btree_map::Entry::Occupied(_) => false,
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(e.clone());
                        true
                    }
                }
            }
            Evidence::ForgedEnvelope(env) => {
                // Only a registered sender can be penalised, and a few forgeries eject it:
                // a stranger's forgeries, or more than a few of one member's, prove nothing
                // more and would only fill memory and the store.
                let hash = env.hash();
                let mine = self.forgers.get(&env.sender).copied().unwrap_or(0);
                if self.forgeries.contains_key(&hash)
                    || self.forgeries.len() >= MAX_FORGERIES
                    || mine >= MAX_FORGERIES_PER_SENDER
                {
                    false
                } else {
                    self.forgeries.insert(hash, env.clone());
                    *self.forgers.entry(env.sender).or_default() += 1;
                    true
                }
            }
            Evidence::DoubleVote(a, _) => match self.double_votes.entry(a.signer) {
                std::collections::btree_map::Entry::Occupied(_) => false,
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(e.clone());
                    true
                }
            },
        };
        if new && announce {
            self.push_output(Output::Proof(Box::new(e)));
        }
        new
    }

    /// Hands the ledger an envelope whose carried event failed to decode or verify. When the
    /// envelope's own signature holds, it is evidence against its sender, returned in
    /// [`Output::Proof`] for the node to persist and publish in an `Evidence` event.
    pub fn handle_forged_envelope(&mut self, env: Envelope) -> Result<(), String> {
        env.proves_forgery(&self.network)?;
        self.add_proof(Evidence::ForgedEnvelope(env), true);
        Ok(())
    }

    /// Hands the ledger two different votes of one member for one epoch (found by the
    /// driver's vote book): evidence, returned in [`Output::Proof`].
    pub fn handle_double_vote(
        &mut self,
        a: crate::finality::Vote,
        b: crate::finality::Vote,
    ) -> Result<(), String> {
        crate::finality::check_double_vote(&self.network, &a, &b)?;
        self.add_proof(Evidence::DoubleVote(a, b), true);
        Ok(())
    }

    /// Whether a double vote of `m` is already held (its proof need not be relayed again).
    pub fn double_vote_known(&self, m: &MemberId) -> bool {
        self.double_votes.contains_key(m)
    }

    /// A fork proven by an event in the log: the member's events from `seq` on fold as
    /// ignored, so re-fold from the first of them held.
    fn carry_fork(&mut self, member: MemberId, seq: u64) {
        let cur = self.carried_forks.get(&member).copied();
        if cur.is_some_and(|c| c <= seq) {
            return;
        }
        self.carried_forks.insert(member, seq);
        let first = self
            .feeds
            .get(&member)
            // Pruned events are certified, and certified events keep their verdicts: the
            // first that can change is the first still held.
            .and_then(|f| f.ids_from(seq).find_map(|id| self.events.get(id)))
            .map(|e| (self.order_key_of(e), Item::Event(e.id())));
        if let Some(k) = first {
            self.mark_dirty(k);
        }
    }

    fn mark_dirty(&mut self, k: (OrderKey, Item)) {
        if self.folded_upto.is_some_and(|f| k <= f) {
            self.dirty_from = Some(self.dirty_from.map_or(k, |d| d.min(k)));
        }
    }

    fn admit(&mut self, now_ms: u64, ev: Arc<Event>) -> Result<Admission, InsertError> {
        self.admit_checked(now_ms, ev, false)
    }

    fn admit_checked(
        &mut self,
        now_ms: u64,
        ev: Arc<Event>,
        signature_checked: bool,
    ) -> Result<Admission, InsertError> {
        let held = self.feeds.get(&ev.author()).and_then(|f| f.at(ev.seq()));
        if held.is_some_and(|h| h.is(&ev.id())) {
            return Ok(Admission::AlreadyKnown);
        }
        if !signature_checked && !ev.verify(&self.network) {
            return Err(InsertError::BadSignature);
        }
        let author = ev.author();
        let seq = ev.seq();
        if let Some(&fork_seq) = self.forks.get(&author) {
            if seq >= fork_seq {
                return Err(InsertError::AuthorEquivocated { fork_seq });
            }
        }
        self.check_open(&author, seq)?;
        // A conflict with an event already held is evidence, whatever the timestamps.
        if let Some(existing) = self.feed_event(&author, seq) {
            let e = Evidence::Equivocation {
                a: existing.signed_header(),
                b: ev.signed_header(),
            };
            self.add_proof(e, true);
            return Err(InsertError::Equivocation { seq });
        }
        if held.is_some() {
            return Err(InsertError::BeyondHorizon { seq });
        }
        let until = now_ms.saturating_add(self.genesis.max_future_skew_ms);
        if ev.timestamp_ms() > until {
            let ahead_ms = ev.timestamp_ms() - now_ms;
            if ahead_ms > MAX_FUTURE_AHEAD_MS {
                return Err(InsertError::TooFarAhead { ahead_ms });
            }
            if self.future.len() >= MAX_FUTURE
                || self.future_bytes + ev.bytes().len() > MAX_FUTURE_BYTES
            {
                return Err(InsertError::PoolFull { pool: "future" });
            }
            let mine = self.future_per_author.entry(author).or_default();
            if *mine >= MAX_FUTURE_PER_AUTHOR {
                return Err(InsertError::PoolFull {
                    pool: "per-author future",
                });
            }
            *mine += 1;
            self.future_bytes += ev.bytes().len();
            let until_ms = ev.timestamp_ms() - self.genesis.max_future_skew_ms;
            self.future.insert((ev.timestamp_ms(), ev.id()), ev);
            return Ok(Admission::FutureDated { until_ms });
        }
        let next = self.feeds.get(&author).map_or(0, Feed::len);
        if seq > next {
            return self.park_orphan(ev, next);
        }
        self.append(ev)?;
        // Admit any orphans this unblocked, in feed order.
        if seq == 0 {
            // Orphans that waited for this registration are a member's now.
            let lo = (author, 0);
            let hi = (author, u64::MAX);
            let n = self.orphans.range(lo..=hi).count();
            self.stranger_orphans = self.stranger_orphans.saturating_sub(n);
        }
        let mut seq = seq + 1;
        while let Some(o) = self.orphans.remove(&(author, seq)) {
            if o.timestamp_ms() > until {
                self.orphans.insert((author, seq), o);
                break;
            }
            self.orphan_bytes -= o.bytes().len();
            if self.append(o).is_err() {
                break;
            }
            seq += 1;
        }
        Ok(Admission::Admitted)
    }

    fn park_orphan(&mut self, ev: Arc<Event>, need_seq: u64) -> Result<Admission, InsertError> {
        let author = ev.author();
        if self.orphans.len() >= MAX_ORPHANS
            || self.orphan_bytes + ev.bytes().len() > MAX_ORPHAN_BYTES
        {
            return Err(InsertError::PoolFull { pool: "orphan" });
        }
        let stranger = !self.feeds.contains_key(&author);
        if stranger && self.stranger_orphans >= MAX_STRANGER_ORPHANS {
            return Err(InsertError::PoolFull {
                pool: "unregistered-author orphan",
            });
        }
        let lo = (author, 0);
        let hi = (author, u64::MAX);
        if self.orphans.range(lo..=hi).count() >= MAX_ORPHANS_PER_AUTHOR {
            return Err(InsertError::PoolFull {
                pool: "per-author orphan",
            });
        }
        if let Some(held) = self.orphans.get(&(author, ev.seq())) {
            if held.id() == ev.id() {
                return Ok(Admission::MissingPredecessor { need_seq });
            }
            // Two different signed events waiting at one seq are a fork as surely as two in
            // the log: keeping only one would lose the proof.
            let e = Evidence::Equivocation {
                a: held.signed_header(),
                b: ev.signed_header(),
            };
            let seq = ev.seq();
            self.add_proof(e, true);
            return Err(InsertError::Equivocation { seq });
        }
        self.orphan_bytes += ev.bytes().len();
        self.stranger_orphans += usize::from(stranger);
        self.orphans.insert((author, ev.seq()), ev);
        Ok(Admission::MissingPredecessor { need_seq })
    }

    /// Bookkeeping for an event leaving the future pool.
    fn future_left(&mut self, ev: &Event) {
        self.future_bytes -= ev.bytes().len();
        if let Some(n) = self.future_per_author.get_mut(&ev.author()) {
            *n -= 1;
            if *n == 0 {
                self.future_per_author.remove(&ev.author());
            }
        }
    }

    /// Refuses an event of a feed its author's ejection closed for good.
    fn check_open(&self, author: &MemberId, seq: u64) -> Result<(), InsertError> {
        match self.final_closure(author) {
            Some(closed_at) if seq >= closed_at => Err(InsertError::FeedClosed { closed_at }),
            _ => Ok(()),
        }
    }

    /// Where an ejected member's feed is closed (see [`State::eject`]), once no input can
    /// move it: the ejection is in certified history (the latest certificate's checkpoint
    /// holds the member, no longer active), and late events settle after certified history
    /// (see `order_key_of`). Before that a late event could move or undo the ejection, so
    /// the member's later events are still admitted (and ignored by the fold); refusing them
    /// then would make what a node holds depend on arrival order.
    fn final_closure(&self, member: &MemberId) -> Option<u64> {
        let closed_at = self.state.closed_at(member)?;
        let e = self.final_epoch()?;
        // A fold that has not passed the certified epoch's end folded certified events only.
        if self.fold_ms < self.epoch_end(e) {
            return Some(closed_at);
        }
        let cp = self.checkpoints.get(&e)?;
        (cp.atp.contains_key(member) && !cp.trust.contains_key(member)).then_some(closed_at)
    }

    /// Appends the next event of a feed after checking the chain (and PoW at seq 0).
    fn append(&mut self, ev: Arc<Event>) -> Result<(), InsertError> {
        let author = ev.author();
        let seq = ev.seq();
        // Orphans released behind their predecessor come here without passing `admit`.
        self.check_open(&author, seq)?;
        if seq == 0 {
            let Body::Register(r) = &ev.body else {
                // The decoder only yields a Register at seq 0.
                return Err(InsertError::BrokenChain { seq });
            };
            pow::verify(&self.network, &author, r.pow, self.genesis.pow_bits)?;
            let claim = claim_for(
                self.verifier.as_ref(),
                &author,
                &self.network,
                ev.timestamp_ms(),
                r.claimed_level,
                &r.attestation,
            );
            self.feeds.insert(
                author,
                Feed {
                    forgotten: 0,
                    old: VecDeque::new(),
                    ids: Vec::new(),
                    head: EventId::default(),
                    head_ms: 0,
                    claim,
                    pruned_head: None,
                },
            );
            self.take_up_pending_proofs(&author);
        } else {
            let feed = self.feeds.get(&author);
            let prev_id = feed.filter(|f| f.len() > 0).map(|f| f.head);
            if prev_id != Some(ev.header.prev) {
                return Err(InsertError::BrokenChain { seq });
            }
            let prev_ms = feed.map_or(0, |f| f.head_ms);
            if ev.timestamp_ms() < prev_ms {
                return Err(InsertError::TimestampBeforePrev {
                    timestamp_ms: ev.timestamp_ms(),
                    prev_ms,
                });
            }
        }
        if let Body::Evidence(e) = &ev.body {
            let check = check_evidence(&self.network, e.as_ref());
            if check.is_ok() {
                self.add_proof(e.as_ref().clone(), false);
                if let Evidence::Equivocation { a, .. } = e.as_ref() {
                    self.carry_fork(a.header.author, a.header.seq);
                }
            }
            self.evidence_checks.insert(ev.id(), check);
        }
        if let Some(f) = self.feeds.get_mut(&author) {
            f.ids.push(ev.id());
            f.head = ev.id();
            f.head_ms = ev.timestamp_ms();
        }
        let k = (self.order_key_of(&ev), Item::Event(ev.id()));
        self.order.insert(k, ());
        self.mark_dirty(k);
        if ev.header.kind == crate::event::Kind::Validate {
            self.ratings_held += 1;
        }
        self.events.insert(ev.id(), ev.clone());
        self.push_output(Output::Admitted(ev));
        Ok(())
    }

    /// Brings the fold up to date with the log.
    fn settle(&mut self) {
        if let Some(d) = self.dirty_from.take() {
            self.generation += 1;
            // Restore the newest snapshot strictly before the dirty point; the pruning base
            // is the oldest there can be (nothing before it can change, see `prune`).
            while self.snapshots.last().is_some_and(|s| s.at >= d) {
                self.snapshots.pop();
            }
            self.history.candidates.retain(|_, s| s.at < d);
            match self.snapshots.last().or(self.history.base.as_ref()) {
                Some(snap) => {
                    let k = snap.at;
                    self.state = snap.state.clone();
                    self.folded_upto = Some(k);
                    self.folded_count = snap.count;
                    self.fold_ms = k.0.timestamp_ms;
                    // Roots of boundaries after the snapshot may change; earlier ones cover
                    // only events before it. An epoch root covers the items before its
                    // boundary, so the roots of boundaries at or before the dirty item's time
                    // cannot change either: they are kept and not computed again as the fold
                    // passes them (a late event used to cost a root per epoch since the
                    // snapshot). Checkpoints are recomputed: they also name the chain held.
                    let last_kept = (k.0.timestamp_ms / self.genesis.epoch_ms).saturating_sub(1);
                    let unchanged = (d.0.timestamp_ms / self.genesis.epoch_ms)
                        .saturating_sub(1)
                        .max(last_kept);
                    self.epoch_roots.retain(|e, _| *e <= unchanged);
                    self.checkpoints.retain(|e, _| *e <= last_kept);
                }
                None => {
                    self.state = State::default();
                    self.folded_upto = None;
                    self.folded_count = 0;
                    self.fold_ms = 0;
                    self.epoch_roots.clear();
                    self.checkpoints.clear();
                }
            }
        }
        let start = match self.folded_upto {
            Some(k) => std::ops::Bound::Excluded(k),
            None => std::ops::Bound::Unbounded,
        };
        let pending: Vec<(OrderKey, Item)> = self
            .order
            .range((start, std::ops::Bound::Unbounded))
            .map(|(k, _)| *k)
            .collect();
        for k in pending {
            self.fold_one(k);
            self.folded_upto = Some(k);
            self.folded_count += 1;
            if self.folded_count.is_multiple_of(SNAPSHOT_EVERY) {
                if self.snapshots.len() >= MAX_SNAPSHOTS {
                    self.snapshots.remove(0);
                }
                self.snapshots.push(Snapshot {
                    at: k,
                    state: self.state.clone(),
                    count: self.folded_count,
                });
            }
        }
    }

    /// Records the roots of the epochs whose end this item's time crosses: recent ones, and
    /// the checkpoints after the latest certificate however old (see
    /// [`MAX_UNCERTIFIED_CHECKPOINTS`]).
    fn record_epoch_roots(&mut self, t: u64) {
        let epoch_ms = self.genesis.epoch_ms;
        let head = self.fold_ms;
        if t / epoch_ms <= head / epoch_ms {
            return;
        }
        // Epochs whose end B = (e + 1)·epoch_ms satisfies head < B <= t.
        let first = head / epoch_ms;
        let last = t / epoch_ms - 1;
        let newest = self
            .order
            .last_key_value()
            .map_or(last, |((k, _), _)| k.timestamp_ms / epoch_ms);
        let recent = newest.saturating_sub(EPOCH_ROOTS_KEPT as u64);
        let uncertified = self.uncertified_from(newest);
        let from = first.max(recent.min(uncertified));
        for e in from..=last {
            if e < recent && !self.is_checkpoint(e) {
                continue;
            }
            // Kept across a re-fold only while still valid (see `settle`).
            let root = match self.epoch_roots.get(&e) {
                Some(r) => *r,
                None => {
                    let r = self.state.root_at(&self.genesis, (e + 1) * epoch_ms);
                    self.epoch_roots.insert(e, r);
                    r
                }
            };
            if self.is_checkpoint(e) {
                let cp = self.checkpoint_with_root((e + 1) * epoch_ms, root);
                self.checkpoints.insert(e, cp);
                let every = self.genesis.finality_every_epochs * BASE_SNAPSHOT_EVERY_CHECKPOINTS;
                if let (Some(_), Some(at)) = (self.history.window, self.folded_upto) {
                    if e.is_multiple_of(every) {
                        self.history.candidates.insert(
                            e,
                            Snapshot {
                                at,
                                state: self.state.clone(),
                                count: self.folded_count,
                            },
                        );
                        while self.history.candidates.len() > MAX_BASE_CANDIDATES {
                            self.history.candidates.pop_first();
                        }
                        if self.certs.contains_key(&e) {
                            self.offer_snapshot(e);
                        }
                    }
                }
            }
        }
        while self.epoch_roots.len() > EPOCH_ROOTS_KEPT {
            self.epoch_roots.pop_first();
        }
        if self.checkpoints.len() > EPOCH_ROOTS_KEPT {
            self.checkpoints
                .retain(|e, _| *e >= recent || *e >= uncertified);
        }
    }

    /// The oldest epoch whose checkpoint is kept because no certificate covers it yet, or
    /// because it is the latest certified one: a node that fell behind (down for minutes, or
    /// folding a long sync) checks every certificate it fetches against its own checkpoint
    /// of that epoch (linked to the chain while it is checked, so the latest certified epoch
    /// counts), the next height's validators are the weights at the latest certified one,
    /// and a stalled height's later generations use the weights at uncertified ones. At
    /// most [`MAX_UNCERTIFIED_CHECKPOINTS`] back from `newest`.
    fn uncertified_from(&self, newest: u64) -> u64 {
        let cap = MAX_UNCERTIFIED_CHECKPOINTS as u64 * self.genesis.finality_every_epochs;
        self.final_epoch()
            .unwrap_or(0)
            .max(newest.saturating_sub(cap))
    }

    fn fold_one(&mut self, (key, item): (OrderKey, Item)) {
        self.generation += 1;
        self.record_epoch_roots(key.timestamp_ms);
        self.fold_ms = key.timestamp_ms;
        let g = &self.genesis;
        self.state.close_ratings_due(g, key.timestamp_ms);
        let Item::Event(id) = item;
        let Some(ev) = self.events.get(&id) else {
            return;
        };
        // Events a node admitted before the fold closed their feed are as if absent: they
        // change neither the frontier nor logical time, so nodes that hold them and nodes
        // that refused them fold to the same roots and vote the same frontier.
        if self
            .state
            .closed_at(&ev.author())
            .is_some_and(|c| ev.seq() >= c)
        {
            self.verdicts
                .insert(id, Verdict::Ignored(crate::verdict::Ignored::AuthorEjected));
            return;
        }
        self.state.note_folded(ev.author(), ev.seq());
        // Past a proven fork every uncertified event of the member is ignored, whichever
        // branch this node happens to hold.
        let forked = self
            .carried_forks
            .get(&ev.author())
            .is_some_and(|f| ev.seq() >= *f && ev.seq() >= self.certified_len(&ev.author()));
        let verdict = if forked {
            // Nor does it move logical time: nodes holding different branches would differ.
            Verdict::Ignored(crate::verdict::Ignored::AuthorEjected)
        } else if ev.seq() == 0 {
            let claim = self
                .feeds
                .get(&ev.author())
                .map_or(Claim::Software(LevelReason::ClaimedL4), |f| f.claim.clone());
            self.state.register(g, ev, claim)
        } else {
            let check = self.evidence_checks.get(&id).cloned().unwrap_or(Ok(()));
            let v = self.state.judge(g, ev, check);
            self.state.apply(g, ev, &v);
            v
        };
        self.verdicts.insert(id, verdict);
    }

    // ---- finality ----------------------------------------------------------------------

    /// End of epoch `e` in ms.
    fn epoch_end(&self, e: u64) -> u64 {
        e.saturating_add(1).saturating_mul(self.genesis.epoch_ms)
    }

    /// Events of `member` covered by the latest certificate.
    fn certified_len(&self, member: &MemberId) -> u64 {
        self.steps
            .get(member)
            .and_then(|st| st.last())
            .map_or(0, |(count, _)| *count)
    }

    /// An event's position in the canonical order: its timestamp, but never before the end
    /// of the certified epoch preceding the first certificate that covers it (or the latest
    /// certificate, if none covers it yet). So late events settle after final history.
    fn order_key_of(&self, ev: &Event) -> OrderKey {
        let mut k = ev.order_key();
        let Some((&latest, _)) = self.chain.last_key_value() else {
            return k;
        };
        let covering = self.steps.get(&ev.author()).and_then(|st| {
            let i = st.partition_point(|(count, _)| *count <= ev.seq());
            st.get(i).map(|(_, e)| *e)
        });
        let prev = match covering {
            Some(e) => self.chain.get(&e).copied().flatten(),
            None => Some(latest),
        };
        if let Some(p) = prev {
            k.timestamp_ms = k.timestamp_ms.max(self.epoch_end(p));
        }
        k
    }

    /// The order keys of every event beyond `covered` (events per feed).
    fn keys_after(&self, covered: &BTreeMap<MemberId, u64>) -> Vec<(EventId, OrderKey)> {
        let mut out = Vec::new();
        for (m, f) in &self.feeds {
            let from = covered.get(m).copied().unwrap_or(0) as usize;
            for id in f.ids_from(from as u64) {
                if let Some(ev) = self.events.get(id) {
                    out.push((*id, self.order_key_of(ev)));
                }
            }
        }
        out
    }

    /// The order keys of every event the latest certificate does not cover: the only events
    /// whose keys extending the chain can move.
    fn uncertified_keys(&self) -> Vec<(EventId, OrderKey)> {
        self.keys_after(&self.certified_frontier())
    }

    /// Moves the events whose keys were `old` to their keys under the current chain, marking
    /// the fold dirty from the earliest change.
    fn rekey(&mut self, old: Vec<(EventId, OrderKey)>) {
        for (id, old_key) in old {
            let Some(ev) = self.events.get(&id) else {
                continue;
            };
            let new_key = self.order_key_of(ev);
            if new_key != old_key && self.order.remove(&(old_key, Item::Event(id))).is_some() {
                self.order.insert((new_key, Item::Event(id)), ());
                self.mark_dirty((old_key.min(new_key), Item::Event(id)));
            }
        }
    }

    /// The checkpoint figures of epoch `e`, if recent enough to be held (or computable from
    /// the head of the fold).
    pub fn checkpoint(&self, e: u64) -> Option<Checkpoint> {
        let end = self.epoch_end(e);
        if self.fold_ms < end {
            let mut cache = self.head_cache();
            if let Some(c) = cache.checkpoints.get(&end) {
                return Some(c.clone());
            }
            let root = match cache.roots.get(&end) {
                Some(r) => *r,
                None => self.state.root_at(&self.genesis, end),
            };
            cache.roots.insert(end, root);
            let c = self.checkpoint_with_root(end, root);
            cache.checkpoints.insert(end, c.clone());
            return Some(c);
        }
        self.checkpoints.get(&e).cloned()
    }

    /// The head projections, emptied first if the fold or the chain moved since they were
    /// computed (and if they grew past a few epochs).
    fn head_cache(&self) -> std::sync::MutexGuard<'_, HeadCache> {
        let mut cache = self.head_cache.lock().unwrap_or_else(|e| e.into_inner());
        let key = (
            self.generation,
            self.chain.last_key_value().map(|(e, _)| *e),
        );
        if cache.key != key
            || cache.roots.len() > HEAD_CACHE_MAX
            || cache.checkpoints.len() > HEAD_CACHE_MAX
        {
            *cache = HeadCache {
                key,
                ..HeadCache::default()
            };
        }
        cache
    }

    /// The checkpoint at `end` whose state root the caller has just computed.
    fn checkpoint_with_root(&self, end: u64, root: [u8; 32]) -> Checkpoint {
        Checkpoint {
            root,
            frontier: self.state.frontier().clone(),
            weights: self.state.weights_with(&self.genesis, &self.founders, end),
            trust: self
                .state
                .accounts()
                .filter(|(_, a)| a.status == crate::state::Status::Active)
                .map(|(m, a)| (*m, a.trust_at(&self.genesis, end)))
                .collect(),
            atp: self
                .state
                .accounts()
                .map(|(m, a)| (*m, a.atp_at(&self.genesis, end)))
                .collect(),
            prev: self.chain.last_key_value().map(|(e, _)| *e),
        }
    }

    /// True for checkpoint epochs (where members vote).
    pub fn is_checkpoint(&self, e: u64) -> bool {
        e.is_multiple_of(self.genesis.finality_every_epochs)
    }

    /// The body this node would sign for checkpoint epoch `e`.
    pub fn vote_body(&self, e: u64) -> Option<VoteBody> {
        if !self.is_checkpoint(e) || self.chain.last_key_value().is_some_and(|(l, _)| *l >= e) {
            return None;
        }
        let c = self.checkpoint(e)?;
        // The chain as it is now: a checkpoint recorded before the latest certificate was
        // adopted names the certificate before it (its root is unchanged unless the order
        // moved, and then the fold re-recorded it).
        Some(VoteBody {
            epoch: e,
            prev: self.final_epoch(),
            root: c.root,
            frontier: crate::finality::frontier_digest(&c.frontier),
        })
    }

    /// The next height to decide: how many certificates are on the chain.
    pub fn next_height(&self) -> u64 {
        self.certs
            .values()
            .next_back()
            .map_or(0, |c| c.at.height + 1)
    }

    /// When generation `gen` of the next height begins (ms): the end of the latest certified
    /// epoch (the genesis time before any) plus `gen` stall periods of
    /// `inactivity_grace_ms`. A height that has not decided by then is tried again with the
    /// weights of a later checkpoint, in which silent members have leaked (docs/PROTOCOL.md,
    /// "Liveness when members go silent").
    pub fn generation_start_ms(&self, gen: u32) -> u64 {
        let base = self
            .final_epoch()
            .map_or(self.genesis.genesis_time_ms, |e| self.epoch_end(e));
        base.saturating_add(u64::from(gen).saturating_mul(self.genesis.inactivity_grace_ms))
    }

    /// The checkpoint epoch whose weights form generation `gen` (≥ 1) of the next height: the
    /// latest one ending at least [`GENERATION_SETTLE_MS`] before the generation begins, so
    /// that every live member's events up to it have reached every node.
    pub fn generation_epoch(&self, gen: u32) -> Option<u64> {
        let t = self
            .generation_start_ms(gen)
            .checked_sub(GENERATION_SETTLE_MS)?;
        let e = (t / self.genesis.epoch_ms).checked_sub(1)?;
        let e = e - e % self.genesis.finality_every_epochs;
        self.final_epoch().is_none_or(|l| e > l).then_some(e)
    }

    /// The validator set (member → voting weight) of the next height in generation `gen`,
    /// fixed before any value is proposed, as Tendermint requires. Generation 0: the weights
    /// at the latest certified checkpoint (agreed by everyone who holds its certificate); at
    /// height 0, the founders, each at the starting trust. A later generation: the weights
    /// at [`Ledger::generation_epoch`] in this node's fold. `None` at height 0 of a genesis
    /// without founders, where no set is agreed in advance (the caller uses its own view).
    pub fn validators(&self, gen: u32) -> Option<BTreeMap<MemberId, u64>> {
        if gen == 0 {
            if let Some(w) = &self.next_weights {
                return Some(w.clone());
            }
            if self.founders.is_empty() {
                return None;
            }
            let w = State::default().weights_with(
                &self.genesis,
                &self.founders,
                self.genesis.genesis_time_ms,
            );
            return Some(w);
        }
        let e = self.generation_epoch(gen)?;
        self.checkpoint(e).map(|c| c.weights)
    }

    /// Whether the next height has no validator set agreed in advance: height 0 of a genesis
    /// without founders.
    pub fn open_height(&self) -> bool {
        self.next_weights.is_none() && self.founders.is_empty()
    }

    /// Checks a proposed value against this node's own fold without adopting it: it must
    /// extend the chain held here, be a checkpoint epoch past the latest certified one, the
    /// node must hold every event it covers, and with it applied this node's root for the
    /// epoch must be the proposed one. A member prevotes only for a value that passes.
    pub fn check_value(
        &mut self,
        body: &VoteBody,
        frontier: &crate::finality::Frontier,
    ) -> Result<(), crate::finality::CertError> {
        self.precheck_value(body, frontier)?;
        // The common case costs no re-fold: the proposer saw what this node sees.
        if self.vote_body(body.epoch).as_ref() == Some(body)
            && self
                .checkpoint(body.epoch)
                .is_some_and(|c| c.frontier == *frontier)
        {
            return Ok(());
        }
        self.apply_value(body, frontier, false, |_| Ok(()))
            .map(|_| ())
    }

    fn precheck_value(
        &self,
        body: &VoteBody,
        frontier: &crate::finality::Frontier,
    ) -> Result<(), crate::finality::CertError> {
        use crate::finality::CertError;
        let e = body.epoch;
        let latest = self.final_epoch();
        if body.prev != latest {
            return Err(CertError::Conflicting(self.next_height()));
        }
        if !self.is_checkpoint(e) || latest.is_some_and(|l| e <= l) {
            return Err(CertError::Unverifiable(e));
        }
        if crate::finality::frontier_digest(frontier) != body.frontier {
            return Err(CertError::FrontierMismatch);
        }
        if frontier.iter().any(|(m, n)| self.feed_len(m) < *n) {
            return Err(CertError::MissingEvents);
        }
        Ok(())
    }

    /// Applies a value tentatively, compares roots and runs `check` on the resulting
    /// checkpoint; keeps it applied only when `keep` and everything passed, and undoes it
    /// otherwise.
    fn apply_value(
        &mut self,
        body: &VoteBody,
        frontier: &crate::finality::Frontier,
        keep: bool,
        check: impl FnOnce(&Checkpoint) -> Result<(), crate::finality::CertError>,
    ) -> Result<Checkpoint, crate::finality::CertError> {
        use crate::finality::CertError;
        let e = body.epoch;
        let old = self.uncertified_keys();
        self.link(e, body.prev, frontier);
        self.rekey(old.clone());
        self.settle();
        let result = match self.checkpoint(e) {
            None => Err(CertError::Unverifiable(e)),
            Some(cp) if cp.root != body.root || cp.frontier != *frontier => {
                Err(CertError::RootMismatch { epoch: e })
            }
            Some(cp) => check(&cp).map(|()| cp),
        };
        if result.is_err() || !keep {
            let moved: Vec<(EventId, OrderKey)> = old
                .iter()
                .filter_map(|(id, _)| self.events.get(id).map(|ev| (*id, self.order_key_of(ev))))
                .collect();
            self.unlink(e);
            self.rekey(moved);
            self.settle();
        }
        result
    }

    /// Checks a certificate (a commit certificate from the agreement, here or elsewhere)
    /// against this node's own fold and adopts it. It must decide the next height, extend
    /// the chain held here, carry precommits of more than two thirds of that height's
    /// validator set, and pass [`Ledger::check_value`].
    pub fn handle_certificate(
        &mut self,
        cert: crate::finality::Certificate,
    ) -> Result<(), crate::finality::CertError> {
        use crate::finality::CertError;
        let next = self.next_height();
        let h = cert.at.height;
        if h < next {
            return match self.certs.values().find(|c| c.at.height == h) {
                Some(c) if c.body == cert.body => Ok(()),
                Some(_) => Err(CertError::Conflicting(h)),
                None => Err(CertError::Unverifiable(cert.body.epoch)),
            };
        }
        if h > next {
            return Err(CertError::MissingHeights { height: h, next });
        }
        if crate::finality::frontier_digest(&cert.frontier) != cert.body.frontier {
            return Err(CertError::FrontierMismatch);
        }
        // Signatures first: they cost less than the re-fold that checks the root.
        let set = self.validators(cert.at.gen);
        match &set {
            Some(w) => {
                cert.verify(&self.network, w)?;
            }
            None if cert.at.gen == 0 && self.open_height() => {}
            None => return Err(CertError::Unverifiable(cert.body.epoch)),
        }
        self.precheck_value(&cert.body, &cert.frontier)?;
        let network = self.network;
        let cp = self.apply_value(&cert.body, &cert.frontier, true, |cp| match &set {
            Some(_) => Ok(()),
            // Height 0 of a genesis without founders: the weights at the epoch itself.
            None => cert.verify(&network, &cp.weights).map(|_| ()),
        })?;
        let set = set.unwrap_or_else(|| cp.weights.clone());
        self.next_weights = Some(cp.weights);
        let e = cert.body.epoch;
        self.keep_certificate(cert.clone(), set);
        self.push_output(Output::Certificate(Box::new(cert)));
        self.prune();
        self.offer_snapshot(e);
        Ok(())
    }

    fn keep_certificate(
        &mut self,
        cert: crate::finality::Certificate,
        set: BTreeMap<MemberId, u64>,
    ) {
        let e = cert.body.epoch;
        self.certs.insert(e, cert);
        self.cert_sets.insert(e, Arc::new(set));
        while self.certs.len() > CERTS_KEPT {
            self.certs.pop_first();
        }
        while self.cert_sets.len() > CERTS_KEPT {
            self.cert_sets.pop_first();
        }
    }

    /// The validator set a held certificate was checked against (member → voting weight).
    pub fn certificate_validators(&self, e: u64) -> Option<&BTreeMap<MemberId, u64>> {
        self.cert_sets.get(&e).map(|s| s.as_ref())
    }

    fn certified_frontier(&self) -> BTreeMap<MemberId, u64> {
        self.steps
            .iter()
            .filter_map(|(m, st)| st.last().map(|(n, _)| (*m, *n)))
            .collect()
    }

    fn link(&mut self, e: u64, prev: Option<u64>, frontier: &crate::finality::Frontier) {
        self.chain.insert(e, prev);
        for (m, n) in frontier {
            let st = self.steps.entry(*m).or_default();
            if st.last().is_none_or(|(c, _)| c < n) {
                st.push((*n, e));
            }
        }
    }

    fn unlink(&mut self, e: u64) {
        self.chain.remove(&e);
        for st in self.steps.values_mut() {
            if st.last().is_some_and(|(_, ce)| *ce == e) {
                st.pop();
            }
        }
    }

    /// Re-adopts a certificate this node adopted before (from the store on restart), without
    /// the root check (the events it covers are re-admitted from the same log).
    pub fn restore_certificate(&mut self, cert: crate::finality::Certificate) {
        let old = self.uncertified_keys();
        let e = cert.body.epoch;
        let set = self
            .validators(cert.at.gen)
            .unwrap_or_else(|| self.checkpoint(e).map(|c| c.weights).unwrap_or_default());
        self.link(e, cert.body.prev, &cert.frontier);
        self.keep_certificate(cert, set);
        self.rekey(old);
        self.settle();
        self.next_weights = self.checkpoint(e).map(|c| c.weights);
        self.prune();
        self.offer_snapshot(e);
    }

    /// The latest certified epoch.
    pub fn final_epoch(&self) -> Option<u64> {
        self.chain.last_key_value().map(|(e, _)| *e)
    }

    /// A recent certificate.
    pub fn certificate(&self, e: u64) -> Option<&crate::finality::Certificate> {
        self.certs.get(&e)
    }

    /// Recent certificates, oldest first.
    pub fn certificates(&self) -> impl Iterator<Item = &crate::finality::Certificate> {
        self.certs.values()
    }

    /// The folded state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The current verdict on an admitted event.
    pub fn verdict(&self, id: &EventId) -> Option<&Verdict> {
        self.verdicts.get(id)
    }

    /// An admitted event still in memory (pruned history is in the driver's store).
    pub fn event(&self, id: &EventId) -> Option<&Arc<Event>> {
        self.events.get(id)
    }

    /// Events of a member's feed pruned so long ago that their ids are forgotten here (seqs
    /// `0..` this): final history, held only as a count (see [`PRUNED_IDS_KEPT`]).
    pub fn forgotten(&self, member: &MemberId) -> u64 {
        self.feeds.get(member).map_or(0, |f| f.forgotten)
    }

    /// True when the log holds this event, in memory or pruned with its id still known (an
    /// event at a forgotten seq is not told apart: see [`Ledger::forgotten`]).
    pub fn holds(&self, ev: &Event) -> bool {
        self.feeds
            .get(&ev.author())
            .and_then(|f| f.at(ev.seq()))
            .is_some_and(|h| h.is(&ev.id()))
    }

    /// Committee ratings in the log, pruned ones included.
    pub fn ratings_held(&self) -> u64 {
        self.ratings_held
    }

    /// Events in the log, pruned ones included.
    pub fn len(&self) -> usize {
        self.events.len() + self.history.pruned
    }

    /// Events held past the closure of an ejected member's feed (admitted before the
    /// ejection was certified; never served or folded). Two nodes may hold different numbers
    /// of them for ever, so comparisons of logs leave them out (see [`Ledger::served_len`]).
    pub fn dead_events(&self) -> usize {
        self.state
            .closures()
            .map(|(m, c)| self.feed_len(m).saturating_sub(*c) as usize)
            .sum()
    }

    /// True when the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the feeds' id index takes: 32 per event in memory, 8 per pruned one still told
    /// apart (at most [`PRUNED_IDS_KEPT`] a feed).
    pub fn feed_index_bytes(&self) -> usize {
        self.feeds
            .values()
            .map(|f| f.ids.len() * 32 + f.old.len() * OLD_ID_BYTES)
            .sum()
    }

    /// Certificates of the chain held in memory: the newest, back to the oldest one an order
    /// key or the reorganisation window can still read (see `prune`), not one per
    /// certificate ever.
    pub fn chain_len(&self) -> usize {
        self.chain.len()
    }

    /// Events that have left memory (final history; see [`Ledger::prune`]).
    pub fn pruned(&self) -> usize {
        self.history.pruned
    }

    /// Sets how many certificates the fold's base stays behind (`None`: never prune, keep
    /// every event in memory). Tests compare the two; nodes use the default
    /// [`REORG_WINDOW_CERTS`]. Set it before handing the ledger any event.
    pub fn set_reorg_window(&mut self, certs: Option<usize>) {
        self.history.window = certs;
        if certs.is_none() {
            self.history.candidates.clear();
        }
    }

    /// Keeps a refused event leaving memory as evidence (see `History::refused`).
    fn keep_refused(&mut self, ev: &Arc<Event>, v: Verdict) {
        let keep = self.genesis.eject_violations as usize;
        if keep == 0 {
            return;
        }
        let list = self.history.refused.entry(ev.author()).or_default();
        if list.len() >= keep {
            list.pop_front();
        }
        list.push_back((ev.clone(), v));
    }

    /// A member's refused events this node can show: those still in memory with their
    /// verdicts, and the newest ones kept after pruning (see `History::refused`). The
    /// evidence behind an ejection for violations.
    pub fn refused_events(&self, member: &MemberId) -> Vec<(&Arc<Event>, &Verdict)> {
        let mut out: Vec<(&Arc<Event>, &Verdict)> = self
            .history
            .refused
            .get(member)
            .into_iter()
            .flatten()
            .map(|(e, v)| (e, v))
            .collect();
        if let Some(f) = self.feeds.get(member) {
            for id in &f.ids {
                if let (Some(e), Some(v @ Verdict::Refused(_))) =
                    (self.events.get(id), self.verdicts.get(id))
                {
                    out.push((e, v));
                }
            }
        }
        out
    }

    /// Drops from memory the events no future input can re-fold, keeping the fold's state at
    /// that point as the base every re-fold starts from.
    ///
    /// Why it is safe: an event the certificate of epoch `b` does not cover is ordered no
    /// earlier than the end of `b` (see `order_key_of`), so replacing the chain after `b`
    /// moves only events from there on; a late event is uncovered and lands after the latest
    /// certificate. So with competing branches limited to bases at or after the floor (the
    /// `window`-th newest certificate), nothing before the end of the floor's epoch is ever
    /// re-folded, and the newest checkpoint snapshot before it can serve as the base.
    /// Every event before the base is certified. Feeds keep their ids (replays and old forks
    /// are still recognised); registrations are kept (a member's hardware evidence is asked
    /// for later).
    fn prune(&mut self) {
        let Some(window) = self.history.window else {
            return;
        };
        let Some(&floor) = self.chain.keys().rev().nth(window) else {
            return;
        };
        // The newest candidate at or before the floor, preferring a certified one: a base at
        // a certified checkpoint can be written as a snapshot and checked on restart.
        let newest = self.history.candidates.range(..=floor).next_back();
        let certified = self
            .history
            .candidates
            .range(..=floor)
            .rev()
            .find(|(e, _)| self.certs.contains_key(e));
        let Some((&epoch, _)) = certified.or(newest) else {
            return;
        };
        let mut newer = self.history.candidates.split_off(&epoch);
        let Some(base) = newer.remove(&epoch) else {
            return;
        };
        self.history.candidates = newer;
        self.history.floor = Some(floor);
        self.snapshots.retain(|s| s.at > base.at);
        // Everything up to and including the base's last item leaves the order.
        let kept = self.order.split_off(&base.at);
        let mut gone = std::mem::replace(&mut self.order, kept);
        if self.order.remove(&base.at).is_some() {
            gone.insert(base.at, ());
        }
        let mut per_feed: HashMap<MemberId, Vec<u64>> = HashMap::new();
        let mut heads: HashMap<MemberId, (u64, EventId, u64)> = HashMap::new();
        for ((_, Item::Event(id)), ()) in gone {
            let verdict = self.verdicts.remove(&id);
            if let Some(ev) = self.events.remove(&id) {
                if let Some(v @ Verdict::Refused(_)) = verdict {
                    self.keep_refused(&ev, v);
                }
                per_feed.entry(ev.author()).or_default().push(ev.seq());
                let h = heads
                    .entry(ev.author())
                    .or_insert((ev.seq(), ev.id(), ev.timestamp_ms()));
                if ev.seq() >= h.0 {
                    *h = (ev.seq(), ev.id(), ev.timestamp_ms());
                }
                if ev.seq() == 0 {
                    self.history.registrations.insert(ev.author(), ev);
                }
                self.history.pruned += 1;
            }
            self.evidence_checks.remove(&id);
        }
        // Their ids shrink to a prefix. They are the first in-memory seqs of each feed
        // (order keys grow with seq); should that ever not hold, the ids stay whole.
        for (m, mut seqs) in per_feed {
            let Some(f) = self.feeds.get_mut(&m) else {
                continue;
            };
            seqs.sort_unstable();
            let first = f.pruned();
            if seqs.iter().enumerate().all(|(i, s)| *s == first + i as u64) {
                f.compact(seqs.len());
                if let Some((_, id, ms)) = heads.get(&m) {
                    f.pruned_head = Some((*id, *ms));
                }
            } else {
                self.history.irregular = true;
            }
        }
        // Coverage steps at or below what a feed has pruned are never read again: an event
        // ordered from now on is past the pruned prefix, so the first step covering it has a
        // larger count, and no certificate covering only pruned events can be unlinked (they
        // are at or before the base). Keep the newest of them (the feed's certified length
        // until the next step); without this the steps grew by one per member and
        // certificate forever (about 600 KB an hour with 53 members), in memory and in every
        // snapshot.
        let mut oldest_read: Option<u64> = None;
        for (m, st) in &mut self.steps {
            let pruned = self.feeds.get(m).map_or(0, Feed::pruned);
            let at_or_below = st.partition_point(|(count, _)| *count <= pruned);
            st.drain(..at_or_below.saturating_sub(1));
            let read = st
                .iter()
                .filter(|(count, _)| *count > pruned)
                .map(|(_, e)| *e);
            oldest_read = read.chain(oldest_read).min();
        }
        // Certificates on the chain that nothing reads again: order keys read the entries of
        // the steps above a pruned prefix (the one kept at or below it covers only pruned
        // events), and pruning counts `window` entries back from the newest. Older ones went
        // into memory and every snapshot at one per certificate forever (2.6 million a
        // month at one certificate a second).
        let keep_from = oldest_read.map_or(floor, |o| o.min(floor));
        self.chain = self.chain.split_off(&keep_from);
        self.history.base = Some(base);
        self.history.base_epoch = Some(epoch);
    }

    /// A snapshot at `e` is due (see [`Ledger::snapshot`]) once `e` is both a candidate base
    /// and certified, whichever came second (the certificate is often adopted before the
    /// fold crosses the epoch's end), at every [`SNAPSHOT_FILE_EVERY_CHECKPOINTS`]-th
    /// checkpoint; each epoch is offered once, newer ones only.
    fn offer_snapshot(&mut self, e: u64) {
        if self.history.offered.is_some_and(|o| o >= e)
            || !e.is_multiple_of(
                self.genesis.finality_every_epochs * SNAPSHOT_FILE_EVERY_CHECKPOINTS,
            )
        {
            return;
        }
        if self.history.candidates.contains_key(&e) && self.snapshot_epoch() == Some(e) {
            self.history.offered = Some(e);
            self.push_output(Output::Snapshot { epoch: e });
        }
    }

    /// Length of a member's feed as held here.
    pub fn feed_len(&self, member: &MemberId) -> u64 {
        self.feeds.get(member).map_or(0, Feed::len)
    }

    /// A member's event at `seq`, if held in memory (pruned history is in the driver's
    /// store; registrations are always held).
    pub fn feed_event(&self, member: &MemberId, seq: u64) -> Option<&Arc<Event>> {
        let held = self.feeds.get(member)?.at(seq)?;
        let in_memory = match held {
            HeldAt::Id(id) => self.events.get(&id),
            HeldAt::Pruned(_) | HeldAt::Forgotten => None,
        };
        in_memory.or_else(|| {
            (seq == 0)
                .then(|| self.history.registrations.get(member))
                .flatten()
        })
    }

    /// Every feed's length: the version vector that anti-entropy sync compares.
    pub fn version_vector(&self) -> BTreeMap<MemberId, u64> {
        self.feeds.iter().map(|(m, f)| (*m, f.len())).collect()
    }

    /// Every feed's length and head (the id of its last event held). Anti-entropy compares
    /// heads as well as lengths: two nodes holding different branches of a fork have equal
    /// lengths, and only the heads show it.
    ///
    /// A feed closed by its author's ejection counts only up to the closure, with a zero
    /// head: nodes that admitted some of its later events before they folded the ejection
    /// (or whose copy of the last open event is pruned) agree with those that refused them.
    pub fn feed_heads(&self) -> BTreeMap<MemberId, (u64, EventId)> {
        self.feeds
            .iter()
            .map(|(m, f)| match self.state.closed_at(m) {
                Some(c) => (*m, (c.min(f.len()), EventId::default())),
                None => (*m, (f.len(), f.head)),
            })
            .collect()
    }

    /// Events of a member's feed this node serves to others: all it holds, but never past
    /// the closure of an ejected member's feed.
    pub fn served_len(&self, member: &MemberId) -> u64 {
        let len = self.feed_len(member);
        self.state.closed_at(member).map_or(len, |c| c.min(len))
    }

    /// The seq at which a member is known to have forked, if it is.
    pub fn fork_seq(&self, member: &MemberId) -> Option<u64> {
        self.forks.get(member).copied()
    }

    /// Evidence known here: one equivocation proof per proven equivocator, and every double
    /// vote.
    pub fn proofs(&self) -> impl Iterator<Item = &Evidence> {
        self.proofs.values().chain(self.double_votes.values())
    }

    /// Forged envelopes held.
    pub fn forgeries(&self) -> impl Iterator<Item = &Envelope> {
        self.forgeries.values()
    }

    /// Items of evidence held (equivocation proofs, double votes, forged envelopes): what a
    /// heartbeat reports, so that a peer asks for evidence only when it may lack some.
    pub fn evidence_count(&self) -> u64 {
        (self.proofs.len() + self.double_votes.len() + self.forgeries.len()) as u64
    }

    /// Every item of evidence held, in a stable order, each with its cursor, starting after
    /// `after`: equivocation proofs by accused, then double votes by signer, then forged
    /// envelopes by hash. Anti-entropy pages through evidence with these cursors, so an
    /// answer stays bounded however much evidence there is.
    pub fn evidence_after(
        &self,
        after: Option<EvidenceCursor>,
    ) -> impl Iterator<Item = (EvidenceCursor, Evidence)> + '_ {
        use std::ops::Bound::{Excluded, Unbounded};
        let (kind, key) = after.map_or((0, None), |c| (c.0[0], Some(c.key())));
        // Kinds before the cursor's are done; the cursor's own resumes after its key.
        let room = |k: u8| if k < kind { 0 } else { usize::MAX };
        let start = |k: u8| match key {
            Some(key) if k == kind => Excluded(key),
            _ => Unbounded,
        };
        let member_start = |k: u8| match start(k) {
            Excluded(key) => Excluded(MemberId(key)),
            _ => Unbounded,
        };
        let proofs = self
            .proofs
            .range((member_start(0), Unbounded))
            .take(room(0))
            .map(|(m, e)| (EvidenceCursor::new(0, m.0), e.clone()));
        let votes = self
            .double_votes
            .range((member_start(1), Unbounded))
            .take(room(1))
            .map(|(m, e)| (EvidenceCursor::new(1, m.0), e.clone()));
        let forged = self.forgeries.range((start(2), Unbounded)).map(|(h, env)| {
            (
                EvidenceCursor::new(2, *h),
                Evidence::ForgedEnvelope(env.clone()),
            )
        });
        proofs.chain(votes).chain(forged)
    }

    /// The state root at the head's logical time.
    pub fn state_root(&self) -> [u8; 32] {
        let mut cache = self.root_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, root)) = *cache {
            if g == self.generation {
                return root;
            }
        }
        let root = self.state.root_at(&self.genesis, self.state.head_ms());
        *cache = Some((self.generation, root));
        root
    }

    /// The state root at the end of epoch `e`: the fold of every event dated before
    /// `(e + 1)·epoch_ms`, projected to that instant. `None` when the epoch is older than the
    /// recent epochs kept. Two nodes holding the same events dated before the end agree.
    pub fn epoch_root(&self, e: u64) -> Option<[u8; 32]> {
        let end = e.checked_add(1)?.checked_mul(self.genesis.epoch_ms)?;
        if self.fold_ms < end {
            let mut cache = self.head_cache();
            let root = match cache.roots.get(&end) {
                Some(r) => *r,
                None => self.state.root_at(&self.genesis, end),
            };
            cache.roots.insert(end, root);
            return Some(root);
        }
        self.epoch_roots.get(&e).copied()
    }

    /// Events waiting for a predecessor, and events waiting for their time.
    pub fn waiting(&self) -> (usize, usize) {
        (self.orphans.len(), self.future.len())
    }

    /// Builds and signs the author's next event: seq and prev follow the feed held here and the
    /// timestamp never goes backwards. The event is not yet admitted: preview it, persist it,
    /// then hand it to [`Ledger::handle_event`].
    pub fn author_event(&self, keypair: &Keypair, now_ms: u64, body: Body) -> Event {
        let author = keypair.id();
        let (seq, prev, prev_ms) = match self.feeds.get(&author) {
            Some(f) if f.len() > 0 => (f.len(), f.head, f.head_ms),
            _ => (0, EventId::default(), 0),
        };
        Event::sign(keypair, &self.network, seq, prev, now_ms.max(prev_ms), body)
    }

    /// The verdict an event of one's own would get at the head of the fold, without admitting
    /// it: an honest node refuses to sign what would be a violation.
    pub fn preview(&self, ev: &Event) -> Verdict {
        let check = match &ev.body {
            Body::Evidence(e) => check_evidence(&self.network, e),
            _ => Ok(()),
        };
        self.state.judge(&self.genesis, ev, check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{sentence, Author};

    /// Without finality nothing is pruned, and the candidate bases stay bounded: a stalled
    /// federation must not pile up copies of its state.
    #[test]
    fn candidate_bases_stay_bounded_while_finality_stalls() {
        let g = Genesis {
            rate_base_thoughts: 1_000,
            ..Genesis::with_pow_bits(4)
        };
        let t0 = 1_767_225_600_000u64;
        let mut a = Author::from_seed(&g, 5);
        let mut l = Ledger::new(g.clone());
        l.handle_event(t0, a.register(&g, "solo", t0)).unwrap();
        // Ten minutes of event time, a thought every two seconds: twenty candidate points.
        for i in 1..=300u64 {
            let t = t0 + i * 2_000;
            l.handle_event(t, a.thought(t, &sentence(i))).unwrap();
        }
        assert_eq!(l.final_epoch(), None);
        assert_eq!(l.pruned(), 0);
        assert_eq!(l.history.candidates.len(), MAX_BASE_CANDIDATES);
    }
}
