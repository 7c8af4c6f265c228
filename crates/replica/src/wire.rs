//! The typed messages replicas exchange. Gossip travels on one topic per kind (so no tag
//! bytes are needed: the topic says what the bytes are); requests and responses travel on a
//! request-response channel and are serialised by the transport (CBOR in the daemon).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use web4fed_core::codec::DecodeError;
use web4fed_core::envelope::{Envelope, Heartbeat};
use web4fed_core::finality::{Certificate, Proposal, Vote};

/// A gossip topic: the transport names it per network, the replica only tells which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// Signed events in sender-signed envelopes.
    Events,
    /// Liveness and agreement signals.
    Heartbeats,
    /// Agreement votes (prevotes and precommits).
    Votes,
    /// Agreement proposals.
    Proposals,
    /// Finality certificates.
    Certificates,
}

impl Topic {
    /// The agreement's topics: only the validator committee subscribes to them (see
    /// [`crate::Event::AgreementTopics`]).
    pub const AGREEMENT: [Topic; 2] = [Topic::Votes, Topic::Proposals];

    /// Every topic, for subscribing.
    pub const ALL: [Topic; 5] = [
        Topic::Events,
        Topic::Heartbeats,
        Topic::Votes,
        Topic::Proposals,
        Topic::Certificates,
    ];

    /// A short name, used in topic strings and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Events => "events",
            Topic::Heartbeats => "heartbeat",
            Topic::Votes => "votes",
            Topic::Proposals => "proposals",
            Topic::Certificates => "certificates",
        }
    }
}

/// A message published to every member (relayed by the transport when the replica accepts
/// it).
#[derive(Debug, Clone)]
pub enum Gossip {
    /// An event, in an envelope signed by the member that sent it on.
    Event(Envelope),
    /// A heartbeat.
    Heartbeat(Heartbeat),
    /// An agreement vote.
    Vote(Vote),
    /// An agreement proposal.
    Proposal(Box<Proposal>),
    /// A finality certificate.
    Certificate(Certificate),
}

impl Gossip {
    /// The topic it travels on.
    pub fn topic(&self) -> Topic {
        match self {
            Gossip::Event(_) => Topic::Events,
            Gossip::Heartbeat(_) => Topic::Heartbeats,
            Gossip::Vote(_) => Topic::Votes,
            Gossip::Proposal(_) => Topic::Proposals,
            Gossip::Certificate(_) => Topic::Certificates,
        }
    }

    /// The bytes published on the topic.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Gossip::Event(e) => e.encode(),
            Gossip::Heartbeat(h) => h.encode(),
            Gossip::Vote(v) => v.encode(),
            Gossip::Proposal(p) => p.encode(),
            Gossip::Certificate(c) => c.encode(),
        }
    }

    /// Decodes bytes received on `topic`.
    pub fn decode(topic: Topic, bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(match topic {
            Topic::Events => Gossip::Event(Envelope::decode(bytes)?),
            Topic::Heartbeats => Gossip::Heartbeat(Heartbeat::decode(bytes)?),
            Topic::Votes => Gossip::Vote(Vote::decode(bytes)?),
            Topic::Proposals => Gossip::Proposal(Box::new(Proposal::decode(bytes)?)),
            Topic::Certificates => Gossip::Certificate(Certificate::decode(bytes)?),
        })
    }
}

/// Requests one replica sends another.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Request {
    /// "What feeds do you hold, and how long?" (every head at once: served for tools and
    /// older peers; replicas reconcile instead).
    Summary,
    /// One round of range-based set reconciliation (negentropy) over the feed heads: the
    /// initiator's message; the answer narrows the ranges that differ.
    Reconcile {
        /// A negentropy message, at most [`crate::limits::MAX_RECONCILE_BYTES`].
        msg: ByteBuf,
    },
    /// "Send me `author`'s events from `from_seq` on, at most `max`."
    Range {
        /// The feed's member id (32 bytes).
        author: ByteBuf,
        /// First seq wanted.
        from_seq: u64,
        /// Most events wanted.
        max: u32,
    },
    /// "Send me the evidence you hold" (equivocation proofs, double votes and forged
    /// envelopes), one page starting after a cursor from an earlier answer.
    Evidence {
        /// Where the previous page ended (33 bytes), or none for the first page.
        after: Option<ByteBuf>,
    },
    /// "Which peers do you know, and where?"
    Peers,
    /// "Send me the certificates after this epoch" (in chain order).
    Certificates {
        /// The requester's latest certified epoch.
        after: Option<u64>,
    },
    /// Events for the receiver: new ones, or ones queued while it was unreachable.
    Push {
        /// Event wire bytes.
        events: Vec<ByteBuf>,
    },
    /// Agreement messages of the current round, sent again point to point when a round
    /// stalls (gossip delivers each message once; one lost to a partition or a restart is
    /// never sent again by it). Taken like gossip; answered with `Ack`.
    Agreement {
        /// Encoded votes (at most [`crate::limits::MAX_AGREEMENT_RESEND`]).
        votes: Vec<ByteBuf>,
        /// Encoded proposals.
        proposals: Vec<ByteBuf>,
        /// Proofs of lock: each the encoded prevotes of more than two thirds of the weight
        /// for one value in one round. A member locked on a value proposes it again in later
        /// rounds, and the others prevote it only once they see such a proof; gossip alone may
        /// never show it to them (an equivocator's two votes reach different halves).
        #[serde(default)]
        polkas: Vec<Vec<ByteBuf>>,
    },
    /// A credential-activation challenge to the TPM behind the receiving member (layer 6).
    Activate {
        /// `TPM2B_ID_OBJECT` contents.
        id_object: ByteBuf,
        /// `TPM2B_ENCRYPTED_SECRET` contents.
        secret: ByteBuf,
    },
    /// "Describe your newest snapshot" (state sync: a newcomer starts from one).
    SnapshotInfo,
    /// "Send me this chunk of your snapshot of `epoch`" (chunks of
    /// [`crate::limits::SNAPSHOT_CHUNK_BYTES`]).
    SnapshotChunk {
        /// The snapshot's epoch (from [`Response::SnapshotInfo`]).
        epoch: u64,
        /// Which chunk, from 0.
        index: u32,
    },
}

impl Request {
    /// A short name, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Summary => "summary",
            Request::Reconcile { .. } => "reconcile",
            Request::Range { .. } => "range",
            Request::Evidence { .. } => "evidence",
            Request::Peers => "peers",
            Request::Certificates { .. } => "certificates",
            Request::Push { .. } => "push",
            Request::Agreement { .. } => "agreement",
            Request::Activate { .. } => "activate",
            Request::SnapshotInfo => "snapshot_info",
            Request::SnapshotChunk { .. } => "snapshot_chunk",
        }
    }
}

/// Answers to [`Request`]s.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Response {
    /// The responder's negentropy message for a [`Request::Reconcile`].
    Reconcile {
        /// A negentropy message, at most [`crate::limits::MAX_RECONCILE_BYTES`].
        msg: ByteBuf,
    },
    /// Feed lengths and heads by member.
    Summary {
        /// (member id, feed length, id of the last event).
        feeds: Vec<(ByteBuf, u64, ByteBuf)>,
    },
    /// Events in feed order.
    Events {
        /// Event wire bytes.
        events: Vec<ByteBuf>,
    },
    /// One page of evidence bodies (encoded `Evidence` event bodies).
    Evidence {
        /// Encoded evidence.
        items: Vec<ByteBuf>,
        /// The cursor to ask for the next page with, if there is more.
        next: Option<ByteBuf>,
    },
    /// Known peers.
    Peers {
        /// (member id, addresses).
        peers: Vec<(ByteBuf, Vec<String>)>,
    },
    /// Certificates in chain order.
    Certificates {
        /// Encoded certificates.
        items: Vec<ByteBuf>,
    },
    /// Push received.
    Ack,
    /// The credential the TPM released for an `Activate` challenge.
    Activated {
        /// The credential.
        credential: ByteBuf,
    },
    /// The responder's newest snapshot: its header (the file's first
    /// `web4fed_core::snapshot::HEADER_LEN` bytes) and the SHA-256 of each chunk of the file,
    /// so every chunk is checked as it arrives.
    SnapshotInfo {
        /// The file's header.
        header: ByteBuf,
        /// SHA-256 of each chunk, in order (at most [`crate::limits::MAX_SNAPSHOT_CHUNKS`]).
        chunks: Vec<ByteBuf>,
    },
    /// One chunk of a snapshot file.
    SnapshotChunk {
        /// The chunk's bytes (at most [`crate::limits::SNAPSHOT_CHUNK_BYTES`]).
        bytes: ByteBuf,
    },
    /// The request could not be served.
    Error {
        /// Why.
        message: String,
    },
}

/// Pairs a response with the request it answers. Outbound requests are numbered by the
/// replica; inbound ones by the driver (which keeps whatever it needs to answer them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Anything a replica sends or receives.
#[derive(Debug, Clone)]
pub enum Message {
    /// Published to everyone.
    Gossip(Gossip),
    /// A request to one peer.
    Request {
        /// Its number.
        id: RequestId,
        /// What is asked.
        body: Request,
    },
    /// An answer to one peer's request.
    Response {
        /// The request it answers.
        id: RequestId,
        /// The answer.
        body: Response,
    },
}

impl Message {
    /// Approximate bytes on the wire (payload plus a fixed framing allowance), for traffic
    /// accounting in the simulator.
    pub fn wire_len(&self) -> u64 {
        const FRAME: u64 = 64;
        let bufs = |v: &[ByteBuf]| v.iter().map(|b| b.len() as u64 + 2).sum::<u64>();
        FRAME
            + match self {
                Message::Gossip(g) => g.encode().len() as u64,
                Message::Request { body, .. } => match body {
                    Request::Push { events } => bufs(events),
                    Request::Activate { id_object, secret } => {
                        (id_object.len() + secret.len()) as u64
                    }
                    Request::Range { .. } => 48,
                    Request::Reconcile { msg } => msg.len() as u64,
                    Request::Evidence { .. } => 42,
                    Request::SnapshotChunk { .. } => 20,
                    _ => 8,
                },
                Message::Response { body, .. } => match body {
                    Response::Summary { feeds } => feeds.len() as u64 * 76,
                    Response::Reconcile { msg } => msg.len() as u64,
                    Response::Events { events } => bufs(events),
                    Response::Evidence { items, .. } => bufs(items) + 36,
                    Response::Certificates { items } => bufs(items),
                    Response::Peers { peers } => peers
                        .iter()
                        .map(|(_, a)| 34 + a.iter().map(|s| s.len() as u64).sum::<u64>())
                        .sum(),
                    Response::Activated { credential } => credential.len() as u64,
                    Response::SnapshotInfo { header, chunks } => header.len() as u64 + bufs(chunks),
                    Response::SnapshotChunk { bytes } => bytes.len() as u64,
                    Response::Error { message } => message.len() as u64,
                    Response::Ack => 1,
                },
            }
    }
}
