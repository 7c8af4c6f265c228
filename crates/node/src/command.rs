//! What the operator API asks of the node task, and the typed answers it gets back. The
//! API turns these into HTTP statuses and JSON; the node task knows nothing of HTTP.

use serde_json::Value;
use tokio::sync::oneshot;
use web4fed_core::event::EventId;
use web4fed_core::finality::Vote;
use web4fed_core::verdict::Verdict;
use web4fed_replica::{CommandError, IngestReport, VotesReport};

/// Commands waiting for the node task; a full queue answers 503 rather than growing.
pub const COMMAND_QUEUE: usize = 256;

/// A read the API asks of the node. Answers are JSON views (see `views`).
#[derive(Debug)]
pub enum Query {
    /// Identity, counts, root, peers summary.
    Status,
    /// Accounts and roots.
    State,
    /// The most recent thoughts.
    Thoughts {
        /// How many.
        limit: usize,
    },
    /// Peers and their agreement.
    Peers,
    /// Recent finality certificates.
    Finality {
        /// How many.
        limit: usize,
    },
    /// Where the agreement stands and the current proposal, for members without a node.
    Checkpoint,
    /// The dashboard's chart figures of the last minutes, one point a second.
    History,
}

/// A thought or transfer signed, persisted and published.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// Its id.
    pub id: EventId,
    /// Its seq in our feed.
    pub seq: u64,
    /// Its timestamp.
    pub timestamp_ms: u64,
    /// Its verdict here (an adversary may publish a refused one).
    pub verdict: Option<Verdict>,
    /// The attack behaviour that made it, if any.
    pub adversary: Option<&'static str>,
}

/// What the API asks of the node task.
#[derive(Debug)]
pub enum Command {
    /// Sign, persist and publish a thought.
    Submit {
        /// The thought's content.
        content: String,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Submitted, CommandError>>,
    },
    /// Sign, persist and publish a transfer of this member's ATP.
    Transfer {
        /// The recipient.
        to: web4fed_core::identity::MemberId,
        /// The amount in thousandths of an ATP.
        amount_milli: u64,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Submitted, CommandError>>,
    },
    /// Sign, persist and publish this member's rating of a thought it is on the committee of.
    Rate {
        /// The thought.
        thought: web4fed_core::event::EventId,
        /// The rating, millionths.
        score_micro: u32,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Submitted, CommandError>>,
    },
    /// Admit pre-signed events (each fully validated like any other; the API checked their
    /// signatures on its own threads), persist them and push the admitted ones to connected
    /// peers.
    Ingest {
        /// Decoded events, signatures checked.
        events: Vec<web4fed_core::ledger::VerifiedEvent>,
        /// Where the answer goes.
        reply: oneshot::Sender<IngestReport>,
    },
    /// Take votes signed by members without a node of their own, and gossip the new ones.
    Votes {
        /// Decoded votes.
        votes: Vec<Vote>,
        /// Where the answer goes.
        reply: oneshot::Sender<VotesReport>,
    },
    /// Dial a peer now and keep redialling it.
    Dial {
        /// libp2p multiaddr.
        addr: libp2p::Multiaddr,
        /// Where the answer goes: whether the dial started.
        reply: oneshot::Sender<bool>,
    },
    /// A read.
    Query {
        /// What to read.
        query: Query,
        /// Where the answer goes.
        reply: oneshot::Sender<Value>,
    },
}
