//! Durable snapshots of the fold at a certified checkpoint: what lets a node restart (or a
//! newcomer start) in time proportional to the state, not to the whole history.
//!
//! A snapshot file is a fixed header, then a body:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `W4FSNAP\0` |
//! | 4 | format version ([`SNAPSHOT_FORMAT`]), big-endian |
//! | 32 | network id (genesis hash) |
//! | 8 | the certified checkpoint epoch it was taken at |
//! | 32 | the certified state root of that epoch: what the body must hash to |
//! | 8 | body length |
//! | 32 | SHA-256 of the body |
//! | n | body: the ledger image, in postcard |
//!
//! The body is encoded with [postcard](https://docs.rs/postcard) (serde, compact, a stable
//! documented wire format): the state is thousands of accounts and thoughts with many
//! fields, and a hand-written codec for it would be the kind of code that drifts from the
//! structs. What must never drift is checked instead: after decoding, every derived hash is
//! recomputed and the state's root must equal the header's root, which must equal the root
//! the node's own certificate of that epoch names; its frontier must equal the certificate's.
//! Events, evidence and certificates inside the body stay in their canonical signed
//! encoding and are checked again when loaded.

use crate::event::EventId;
use crate::event::OrderKey;
use crate::genesis::Genesis;
use crate::identity::MemberId;
use crate::state::State;
use sha2::{Digest, Sha256};
use std::io::{Seek, SeekFrom, Write};

/// Format version of the file; a file of another version is refused, not guessed at.
pub const SNAPSHOT_FORMAT: u32 = 3;
/// The file's first bytes.
pub const MAGIC: [u8; 8] = *b"W4FSNAP\0";
/// Bytes of the header before the body.
pub const HEADER_LEN: usize = 8 + 4 + 32 + 8 + 32 + 8 + 32;
/// Largest body accepted (4 GiB): far above any state the corpus limits allow (layer 7
/// bounds the live corpus), and a bound on what a damaged length field can make a reader
/// allocate.
pub const MAX_BODY_BYTES: u64 = 4 << 30;

/// Why a snapshot was refused. Every check names what failed; none of them panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not start with the magic.
    #[error("not a web4fed snapshot (the file does not start with the snapshot magic)")]
    NotASnapshot,
    /// Another format version.
    #[error("snapshot format {0}, this build reads format {SNAPSHOT_FORMAT}")]
    Format(u32),
    /// The file ended before the header or body did, or has bytes after the body.
    #[error(
        "snapshot is {found} bytes, its header says {expected}: the file is truncated or padded"
    )]
    Length {
        /// Bytes found.
        found: u64,
        /// Bytes the header declares.
        expected: u64,
    },
    /// Another network's snapshot.
    #[error("snapshot is of network {found}, this node is on {expected}")]
    WrongNetwork {
        /// Network in the file.
        found: String,
        /// Network of this node.
        expected: String,
    },
    /// The body's SHA-256 differs from the header's: damaged on disk or in transit.
    #[error("snapshot checksum mismatch: the body hashes to {found}, the header says {expected}")]
    Checksum {
        /// Hash of the body as read.
        found: String,
        /// Hash in the header.
        expected: String,
    },
    /// The body does not decode.
    #[error("snapshot body does not decode: {0}")]
    Decode(String),
    /// The decoded state does not hash to the header's root.
    #[error("snapshot state of epoch {epoch} hashes to {found}, the snapshot claims {claimed}")]
    RootMismatch {
        /// The epoch.
        epoch: u64,
        /// Root recomputed from the decoded state.
        found: String,
        /// Root in the header.
        claimed: String,
    },
    /// The root is not the one the certificate of its epoch names.
    #[error("snapshot root {found} of epoch {epoch} is not the certified root {certified}")]
    NotCertified {
        /// The epoch.
        epoch: u64,
        /// The snapshot's root.
        found: String,
        /// The certificate's root.
        certified: String,
    },
    /// No certificate of the snapshot's epoch is known to check it against.
    #[error("no certificate of epoch {0} to check the snapshot against")]
    NoCertificate(u64),
    /// The parts of the body contradict each other.
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(String),
}

/// What a snapshot's header says, readable without the body (for listings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Network id.
    pub network: [u8; 32],
    /// The certified checkpoint epoch.
    pub epoch: u64,
    /// The certified root of that epoch.
    pub root: [u8; 32],
    /// Bytes of the body.
    pub body_len: u64,
    /// SHA-256 of the body.
    pub checksum: [u8; 32],
}

impl Header {
    /// Reads the header from the first [`HEADER_LEN`] bytes of a file.
    pub fn read(bytes: &[u8]) -> Result<Self, SnapshotError> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        if bytes.len() < HEADER_LEN {
            return Err(SnapshotError::Length {
                found: bytes.len() as u64,
                expected: HEADER_LEN as u64,
            });
        }
        let mut r = crate::codec::Reader::new(&bytes[MAGIC.len()..HEADER_LEN]);
        let bad = |e: crate::codec::DecodeError| SnapshotError::Decode(e.to_string());
        let format = r.u32("format").map_err(bad)?;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format(format));
        }
        Ok(Self {
            network: r.array("network").map_err(bad)?,
            epoch: r.u64("epoch").map_err(bad)?,
            root: r.array("root").map_err(bad)?,
            body_len: r.u64("body length").map_err(bad)?,
            checksum: r.array("checksum").map_err(bad)?,
        })
    }

    fn write(&self) -> Vec<u8> {
        let mut w = crate::codec::Writer::with_capacity(HEADER_LEN);
        w.raw(&MAGIC);
        w.u32(SNAPSHOT_FORMAT);
        w.raw(&self.network);
        w.u64(self.epoch);
        w.raw(&self.root);
        w.u64(self.body_len);
        w.raw(&self.checksum);
        w.finish()
    }
}

/// A snapshot whose framing and checksum have been checked; its body is decoded (and its
/// root checked) only by [`crate::ledger::Ledger::from_snapshot`].
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    /// The header.
    pub header: Header,
    body: Vec<u8>,
}

impl SnapshotFile {
    /// Checks a whole file's framing, network and checksum.
    pub fn decode(bytes: &[u8], network: &[u8; 32]) -> Result<Self, SnapshotError> {
        let header = Header::read(bytes)?;
        if &header.network != network {
            return Err(SnapshotError::WrongNetwork {
                found: hex::encode(header.network),
                expected: hex::encode(network),
            });
        }
        let expected = (HEADER_LEN as u64).saturating_add(header.body_len.min(MAX_BODY_BYTES));
        if header.body_len > MAX_BODY_BYTES || bytes.len() as u64 != expected {
            return Err(SnapshotError::Length {
                found: bytes.len() as u64,
                expected,
            });
        }
        let body = &bytes[HEADER_LEN..];
        let found: [u8; 32] = Sha256::digest(body).into();
        if found != header.checksum {
            return Err(SnapshotError::Checksum {
                found: hex::encode(found),
                expected: hex::encode(header.checksum),
            });
        }
        Ok(Self {
            header,
            body: body.to_vec(),
        })
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header.write();
        out.extend_from_slice(&self.body);
        out
    }

    pub(crate) fn image(&self) -> Result<Image, SnapshotError> {
        postcard::from_bytes(&self.body).map_err(|e| SnapshotError::Decode(e.to_string()))
    }
}

/// A snapshot taken but not yet encoded ([`crate::ledger::Ledger::snapshot_draft`]): taking
/// it is cheap (the state is a persistent copy), so a node takes it on its own task and leaves
/// checking, encoding and writing, which cost time and memory in proportion to the state, to
/// another thread. Encoding streams into the file: no buffer of the whole body is held.
pub struct SnapshotDraft {
    network: [u8; 32],
    epoch: u64,
    root: [u8; 32],
    /// The genesis and the epoch's end: what the state's root is recomputed with before a
    /// byte is written.
    genesis: Genesis,
    epoch_end_ms: u64,
    image: Image,
}

impl SnapshotDraft {
    pub(crate) fn new(
        genesis: &Genesis,
        epoch: u64,
        epoch_end_ms: u64,
        root: [u8; 32],
        image: Image,
    ) -> Self {
        Self {
            network: genesis.network_id(),
            epoch,
            root,
            genesis: genesis.clone(),
            epoch_end_ms,
            image,
        }
    }

    /// The certified checkpoint epoch it is taken at.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Checks that the state hashes to the certified root, then writes the file to `w`:
    /// a placeholder header, the body streamed through SHA-256, then the header with the
    /// body's length and checksum. Returns the file's length. A state that does not hash to
    /// its certified root is a bug and is refused (`InvalidData`), never written.
    pub fn write_to<W: Write + Seek>(&self, mut w: W) -> std::io::Result<u64> {
        if self.image.state.root_at(&self.genesis, self.epoch_end_ms) != self.root {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the fold at certified epoch {} differs from its root",
                    self.epoch
                ),
            ));
        }
        let start = w.stream_position()?;
        w.write_all(&[0u8; HEADER_LEN])?;
        let (len, checksum) = {
            let mut body = HashingWriter {
                inner: std::io::BufWriter::new(w.by_ref()),
                hash: Sha256::new(),
                len: 0,
            };
            postcard::to_io(&self.image, &mut body)
                .map_err(|e| std::io::Error::other(format!("snapshot body: {e}")))?;
            body.inner.flush()?;
            (body.len, body.hash.finalize().into())
        };
        let header = Header {
            network: self.network,
            epoch: self.epoch,
            root: self.root,
            body_len: len,
            checksum,
        };
        w.seek(SeekFrom::Start(start))?;
        w.write_all(&header.write())?;
        w.seek(SeekFrom::End(0))?;
        Ok(HEADER_LEN as u64 + len)
    }

    /// The snapshot in memory (tests, and callers that hand it on whole): the same bytes
    /// [`SnapshotDraft::write_to`] writes, split at the header (nothing hashed twice).
    pub fn into_file(self) -> Option<SnapshotFile> {
        let mut out = std::io::Cursor::new(Vec::new());
        self.write_to(&mut out).ok()?;
        let mut bytes = out.into_inner();
        let body = bytes.split_off(HEADER_LEN);
        let header = Header::read(&bytes).ok()?;
        Some(SnapshotFile { header, body })
    }
}

/// A writer that counts and hashes what passes through it.
struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Voting weights by member, as pairs.
pub(crate) type Weights = Vec<(MemberId, u64)>;

/// One feed's covered part: its pruned ids and the last covered event (the next one links
/// to it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct FeedImage {
    pub author: MemberId,
    /// Covered events whose ids are forgotten (seqs `0..forgotten`).
    pub forgotten: u64,
    /// Id prefixes of the covered events after those (the newest kept; see
    /// `ledger::PRUNED_IDS_KEPT`).
    pub old: Vec<[u8; 8]>,
    pub head: EventId,
    pub head_ms: u64,
}

/// The ledger at a certified base: the fold's state there, what the ledger keeps of the
/// history before it, and the certificate chain as it stood when written.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Image {
    /// The last folded item.
    pub at: (OrderKey, EventId),
    /// Items folded up to it.
    pub count: u64,
    pub state: State,
    /// Feeds with covered events.
    pub feeds: Vec<FeedImage>,
    /// Every feed held when written, covered or not: where a restart looks for the tail.
    pub known: Vec<MemberId>,
    /// Registration events of covered feeds, in their signed encoding.
    pub registrations: Vec<Vec<u8>>,
    pub ratings_held: u64,
    pub pruned: u64,
    /// Evidence held (proofs, forgeries, double votes, pending), each with whether it is
    /// still to be announced, as `Evidence` bodies.
    pub evidence: Vec<(Vec<u8>, bool)>,
    pub forks: Vec<(MemberId, u64)>,
    pub carried_forks: Vec<(MemberId, u64)>,
    pub chain: Vec<(u64, Option<u64>)>,
    pub steps: Vec<(MemberId, Vec<(u64, u64)>)>,
    /// Recent certificates in their signed encoding, with the validator set each was
    /// checked against.
    pub certs: Vec<(Vec<u8>, Weights)>,
    pub next_weights: Option<Weights>,
    pub floor: Option<u64>,
    /// Refused events covered by the snapshot and kept as evidence (the newest
    /// `eject_violations` per author; see the ledger's `History::refused`): each event in its
    /// signed encoding and the rule it broke as JSON (the rule's serde form is internally
    /// tagged, which postcard cannot read back).
    pub refused: Vec<(Vec<u8>, String)>,
}

/// Postcard is not self-describing, so an internally tagged enum (as the API's JSON wants
/// [`crate::verdict::EjectCause`]) cannot be read back by it: accounts carry their
/// ejection cause as a plain (tag, number) pair instead.
pub(crate) mod eject_cause {
    use crate::verdict::EjectCause;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<EjectCause>, s: S) -> Result<S::Ok, S::Error> {
        let pair: Option<(u8, u64)> = v.as_ref().map(|c| match c {
            EjectCause::Violations { count } => (0, u64::from(*count)),
            EjectCause::Equivocation { seq } => (1, *seq),
            EjectCause::DoubleVote { height } => (2, *height),
        });
        pair.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EjectCause>, D::Error> {
        let pair = Option::<(u8, u64)>::deserialize(d)?;
        pair.map(|(tag, n)| match tag {
            0 => u32::try_from(n)
                .map(|count| EjectCause::Violations { count })
                .map_err(|_| serde::de::Error::custom("violation count over u32")),
            1 => Ok(EjectCause::Equivocation { seq: n }),
            2 => Ok(EjectCause::DoubleVote { height: n }),
            t => Err(serde::de::Error::custom(format!(
                "unknown ejection cause {t}"
            ))),
        })
        .transpose()
    }
}
