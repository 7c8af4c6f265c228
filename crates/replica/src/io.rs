//! What goes into a replica besides messages (commands) and what comes out besides
//! transmissions (events for the driver to act on).

use crate::wire::{Message, RequestId};
use std::collections::BTreeMap;
use std::sync::Arc;
use web4fed_core::event::{Event as SignedEvent, EventId, Evidence, Kind};
use web4fed_core::finality::{Certificate, Vote};
use web4fed_core::identity::MemberId;
use web4fed_core::ledger::{InsertError, VerifiedEvent};
use web4fed_core::verdict::{Ignored, Rule, Verdict};

/// Where an event came from (for metrics and the live feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Authored by this replica.
    Local,
    /// A gossiped envelope.
    Gossip,
    /// An anti-entropy sync response.
    Sync,
    /// A peer's push request.
    Push,
    /// The driver's ingest command (the operator API, a bridge, a load generator).
    Api,
}

impl Source {
    /// A short name, for metrics and the live feed.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Gossip => "gossip",
            Self::Sync => "sync",
            Self::Push => "push",
            Self::Api => "api",
        }
    }
}

/// Where a transmission goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// One peer.
    Peer(MemberId),
    /// Every member, on the gossip topic of the message.
    Gossip,
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// To whom.
    pub to: Destination,
    /// What.
    pub message: Message,
}

/// Something the driver must do or may report. Events that change what is durable
/// (`Admitted`, `Proof`, `Certificate`, `Voted`) must be persisted before any transmission
/// queued after them is sent: see the crate docs for the drain rule.
#[derive(Debug, Clone)]
pub enum Event {
    /// An event entered the log: persist it.
    Admitted {
        /// The event.
        event: Arc<SignedEvent>,
        /// Where it came from.
        source: Source,
        /// Its verdict right after admission.
        verdict: Option<Verdict>,
    },
    /// An event was refused at admission (bad signature, broken chain, a full pool...).
    Rejected {
        /// Its claimed author.
        author: MemberId,
        /// Its kind.
        kind: Kind,
        /// Why.
        error: InsertError,
        /// Where it came from.
        source: Source,
    },
    /// New evidence found here: persist it (it is also published in an `Evidence` event).
    Proof(Box<Evidence>),
    /// A certificate adopted: persist it.
    Certificate(Certificate),
    /// The ledger's base moved to this certified epoch: the driver may write the ledger's
    /// snapshot (after persisting everything before it), so a restart starts there.
    SnapshotDue {
        /// The certified epoch.
        epoch: u64,
    },
    /// This replica is about to sign this agreement vote: persist it first, so a restarted
    /// node never signs a second vote in one round and keeps its lock.
    Voted(web4fed_core::finality::LastVote),
    /// The log ejected this member: refuse and disconnect it at the transport.
    Ejected {
        /// The member.
        member: MemberId,
    },
    /// Close every connection to this peer now.
    Disconnect {
        /// The peer.
        peer: MemberId,
        /// Why.
        why: DisconnectReason,
    },
    /// Dial these addresses (of this peer, when known).
    Dial {
        /// The peer, if known.
        peer: Option<MemberId>,
        /// Transport addresses, as text.
        addrs: Vec<String>,
    },
    /// A peer stopped sending heartbeats (a partition or a crash), or resumed.
    Liveness {
        /// The peer.
        peer: MemberId,
        /// True when it went down, false when it came back.
        down: bool,
    },
    /// Make a credential-activation challenge for this member's TPM evidence (it needs
    /// randomness and RSA, which the driver has) and hand it back with
    /// [`Command::SendChallenge`].
    MakeChallenge {
        /// The member claiming a TPM.
        subject: MemberId,
        /// Its registration's TPM evidence.
        evidence: Vec<u8>,
    },
    /// Answer this challenge with our TPM (slow: do it off the loop) and hand the result back
    /// with [`Command::ChallengeAnswered`].
    AnswerChallenge {
        /// Who asked.
        from: MemberId,
        /// The request to answer.
        request: RequestId,
        /// `TPM2B_ID_OBJECT` contents.
        id_object: Vec<u8>,
        /// `TPM2B_ENCRYPTED_SECRET` contents.
        secret: Vec<u8>,
    },
    /// A peer asked for part of this node's snapshot, within its budget: the driver reads
    /// it from disk and answers with [`Command::SnapshotRead`].
    ReadSnapshot {
        /// Who asked.
        to: MemberId,
        /// The request to answer.
        request: RequestId,
        /// What it asked for.
        part: SnapshotPart,
    },
    /// Read this feed range from the durable log (the ledger let go of it) and hand the wire
    /// bytes back with [`Command::ArchiveRead`].
    ReadArchive {
        /// Who asked.
        to: MemberId,
        /// The request to answer.
        request: RequestId,
        /// The feed.
        author: MemberId,
        /// First seq.
        from_seq: u64,
        /// Most events.
        max: u64,
    },
    /// A page of history from before the node's snapshot, fetched from a peer and verified
    /// back from the snapshot's feed head (see [`crate::backfill`]): store the events in
    /// the log (they are never folded: the snapshot holds their effect) and record `rest`
    /// as what is still missing, in one transaction.
    Backfilled {
        /// The events, in seq order, each signed by the feed's author and linked.
        events: Vec<Arc<SignedEvent>>,
        /// What of the feed is still missing below them (`low` 0: nothing).
        rest: crate::backfill::Gap,
    },
    /// A member's TPM answered our challenge correctly: we published a vouch.
    Vouched {
        /// The member.
        subject: MemberId,
    },
    /// Join (`true`) or leave the agreement's topics (votes and proposals). Only the
    /// validator committee needs them: every other node learns finality from certificates,
    /// so a node outside the committee stops receiving and relaying some dozen votes a
    /// second it has no use for. A driver starts subscribed to every topic.
    AgreementTopics {
        /// Whether to be subscribed.
        subscribed: bool,
    },
}

/// What the driver asks of the replica.
#[derive(Debug, Clone)]
pub enum Command {
    /// Sign, admit and publish a thought of ours, if the defence layers accept it.
    Submit {
        /// The text.
        content: String,
    },
    /// Sign, admit and publish a transfer of our ATP, if the defence layers accept it (a
    /// transfer above our balance is refused at layer 9; one to an unknown, ejected or
    /// self recipient would change nothing and is not signed).
    Transfer {
        /// The recipient.
        to: MemberId,
        /// The amount in thousandths of an ATP.
        amount_milli: u64,
    },
    /// Sign, admit and publish our member's rating of a thought whose committee holds it
    /// (a rating by hand; see [`Config::rate_thoughts`](crate::Config::rate_thoughts)).
    Rate {
        /// The thought.
        thought: EventId,
        /// The rating, millionths (at most 1,000,000).
        score_micro: u32,
    },
    /// Admit pre-signed events (each checked like any network input but for the signature,
    /// which the driver checked off its task) and push the admitted ones to connected peers.
    Ingest {
        /// The events, signatures checked.
        events: Vec<VerifiedEvent>,
    },
    /// Take votes signed elsewhere (members without a node), and gossip the new ones.
    Votes {
        /// The votes.
        votes: Vec<Vote>,
    },
    /// Dial this address now and keep redialling it.
    Dial {
        /// Transport address, as text.
        addr: String,
    },
    /// The challenge asked for by [`Event::MakeChallenge`], or why it could not be made.
    SendChallenge {
        /// The member challenged.
        subject: MemberId,
        /// The challenge and the credential a genuine TPM releases, or the error.
        challenge: Result<Challenge, String>,
    },
    /// Our TPM's answer to an [`Event::AnswerChallenge`].
    ChallengeAnswered {
        /// Who asked.
        to: MemberId,
        /// The request answered.
        request: RequestId,
        /// The released credential, or what went wrong.
        result: Result<Vec<u8>, String>,
    },
    /// Fetch the history before the snapshot from peers, lazily (see [`crate::backfill`]):
    /// these feeds' missing ranges, as the log last recorded them. Replaces any plan
    /// running; an empty one stops it.
    Backfill {
        /// The missing ranges.
        gaps: Vec<crate::backfill::Gap>,
    },
    /// The durable log's answer to an [`Event::ReadArchive`].
    ArchiveRead {
        /// Who asked.
        to: MemberId,
        /// The request answered.
        request: RequestId,
        /// Wire bytes in seq order, or what went wrong.
        result: Result<Vec<Vec<u8>>, String>,
    },
    /// The driver's answer to an [`Event::ReadSnapshot`]: a `SnapshotInfo` or
    /// `SnapshotChunk` response, or why it could not be read.
    SnapshotRead {
        /// Who asked.
        to: MemberId,
        /// The request answered.
        request: RequestId,
        /// The response, or what went wrong.
        result: Result<crate::wire::Response, String>,
    },
}

/// Which part of its newest snapshot a peer asked for (see [`Event::ReadSnapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotPart {
    /// The header and the chunk hashes.
    Info,
    /// One chunk of the file of this epoch.
    Chunk {
        /// The snapshot's epoch.
        epoch: u64,
        /// The chunk.
        index: u32,
    },
}

/// A credential-activation challenge, made by the driver.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// `TPM2B_ID_OBJECT` contents.
    pub id_object: Vec<u8>,
    /// `TPM2B_ENCRYPTED_SECRET` contents.
    pub secret: Vec<u8>,
    /// The credential a genuine TPM releases.
    pub credential: Vec<u8>,
}

/// The replica's answer to a command.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The thought (or transfer) was signed, persisted (once the driver drains) and
    /// published.
    Submitted(Arc<SignedEvent>),
    /// What an ingest did.
    Ingested(IngestReport),
    /// What a batch of votes did.
    Votes(VotesReport),
    /// Done; nothing to report.
    Done,
}

/// Why a command was not carried out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// A defence layer would refuse the thought: it was not signed.
    #[error("layer {} refused it: {}", .0.layer(), .0.name())]
    Refused(Rule),
    /// The thought would change nothing (e.g. this member is ejected).
    #[error("the event would change nothing: {0:?}")]
    Ignored(Ignored),
    /// Our own event was not admitted by our own ledger (a bug, or a full disk upstream).
    #[error("own event not admitted: {0}")]
    NotAdmitted(String),
}

/// Counts of an ingest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Admitted to the log.
    pub admitted: u64,
    /// Already held.
    pub known: u64,
    /// Waiting for a predecessor or for their time.
    pub waiting: u64,
    /// Refused.
    pub rejected: u64,
    /// The first refusal, in words.
    pub first_error: Option<String>,
}

/// Counts of a batch of votes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VotesReport {
    /// New and valid.
    pub accepted: u64,
    /// Already held.
    pub known: u64,
    /// Refused.
    pub rejected: u64,
    /// The first refusal, in words.
    pub first_error: Option<String>,
}

/// What the transport should do with a gossiped message after the replica saw it (the
/// gossipsub validation verdict: only accepted messages are relayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Valid and new: relay it.
    Accept,
    /// Not the sender's fault, but not to be relayed (known, early, not checkable yet).
    Ignore,
    /// Invalid: penalise the sender.
    Reject,
}

/// Running totals of what the replica did, for metrics (monotonic counters).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Network input refused before the ledger saw it, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Requests sent, by kind.
    pub requests: BTreeMap<&'static str, u64>,
    /// Sync rounds started, by what started them.
    pub sync_rounds: BTreeMap<&'static str, u64>,
    /// Evidence found here, by kind.
    pub evidence_found: BTreeMap<&'static str, u64>,
    /// Attestation outcomes, by kind.
    pub attestations: BTreeMap<&'static str, u64>,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Events received in sync responses.
    pub sync_events: u64,
    /// Bytes of events received in sync responses.
    pub sync_bytes: u64,
    /// Events dropped from full peer queues.
    pub queue_dropped: u64,
    /// Peers that went down (partitions or crashes seen).
    pub partitions_seen: u64,
    /// Committee ratings this node wrote for its member.
    pub ratings_written: u64,
    /// Member connections dropped to keep the peer set under its ceiling.
    pub peers_dropped: u64,
    /// Agreement steps (rounds entered, proposals made, decisions, stalls), by kind.
    pub agreement: BTreeMap<&'static str, u64>,
}

impl Counters {
    pub(crate) fn bump(map: &mut BTreeMap<&'static str, u64>, key: &'static str) {
        *map.entry(key).or_default() += 1;
    }
}

/// Why the replica asks the transport to close a peer's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// A stranger that kept going over its budget or sending bad signatures; its new
    /// connections are closed too until its shun ends.
    Shunned,
    /// A member neighbour dropped because more are connected than the peer set's ceiling
    /// ([`crate::limits::MAX_PEERS`]); it may connect again.
    Surplus,
}

/// The metric name of an admission error.
pub fn insert_error_name(e: &InsertError) -> &'static str {
    match e {
        InsertError::BadSignature => "bad_signature",
        InsertError::Pow(_) => "pow",
        InsertError::BrokenChain { .. } => "broken_chain",
        InsertError::TimestampBeforePrev { .. } => "timestamp_before_prev",
        InsertError::Equivocation { .. } => "equivocation",
        InsertError::AuthorEquivocated { .. } => "author_equivocated",
        InsertError::FeedClosed { .. } => "feed_closed",
        InsertError::PoolFull { .. } => "pool_full",
        InsertError::BeyondHorizon { .. } => "beyond_horizon",
        InsertError::BatchTooLarge { .. } => "batch_too_large",
        InsertError::TooFarAhead { .. } => "too_far_ahead",
    }
}
