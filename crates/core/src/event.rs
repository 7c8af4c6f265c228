//! Events: the signed entries of each member's append-only, hash-chained feed.
//!
//! Wire form: `header || signature || body`. The signature covers a domain tag, the network id
//! and the fixed-size header; the header commits to the body by its SHA-256, so evidence of
//! equivocation needs only two headers. The event id is SHA-256 of the header. Every size is
//! bounded by a named limit and checked before anything is allocated.

use crate::codec::{DecodeError, Reader, Writer};
pub use crate::evidence::Evidence;
use crate::identity::{Keypair, MemberId, SIGNATURE_LEN};
use crate::pow::Pow;
use sha2::{Digest, Sha256};
use std::fmt;

/// Version of the event encoding; the first byte of every header.
pub const EVENT_VERSION: u8 = 1;
/// Domain tag of event signatures: an event signature can never be replayed as anything else.
const EVENT_SIGNING_DOMAIN: &[u8] = b"web4fed/event/v1";
/// Encoded header size: version, author, seq, prev, timestamp, kind, body length, body hash.
pub const HEADER_LEN: usize = 1 + 32 + 8 + 32 + 8 + 1 + 4 + 32;
/// Most bytes in a member's display name.
pub const MAX_NAME_BYTES: usize = 64;
/// Most bytes in an entity type (the LCT's middle part).
pub const MAX_ENTITY_TYPE_BYTES: usize = 32;
/// Most characters in a thought, whatever the genesis says (it may only lower this).
pub const MAX_CONTENT_CHARS: usize = 10_000;
/// Most bytes of thought content: UTF-8 needs at most 4 bytes per character.
pub const MAX_CONTENT_BYTES: usize = 4 * MAX_CONTENT_CHARS;
/// Most bytes of hardware attestation evidence (a TPM quote plus an EK certificate chain).
pub const MAX_ATTESTATION_BYTES: usize = 16 * 1024;
/// Most bytes in a scorer tag of a `Validate` (e.g. `coherence-v1`, `minilm-l6@2`).
pub const MAX_SCORER_BYTES: usize = 32;
/// Most bytes in any event body: the largest is `Evidence` carrying a forged envelope, which
/// may carry the largest event.
pub const MAX_BODY_BYTES: usize = MAX_CONTENT_BYTES + 1_024;
/// Most bytes of an event carried inside forgery evidence.
pub const MAX_CARRIED_EVENT_BYTES: usize = MAX_CONTENT_BYTES + 512;
/// Most bytes in an encoded event. Anything longer is refused before it is parsed.
pub const MAX_EVENT_BYTES: usize = HEADER_LEN + SIGNATURE_LEN + MAX_BODY_BYTES;

/// The id of an event: SHA-256 of its header.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(pub [u8; 32]);

impl EventId {
    /// Hex form for APIs and logs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses the hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        Some(Self(hex::decode(s).ok()?.try_into().ok()?))
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::codec::id32::serialize(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::codec::id32::deserialize(d).map(Self)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex()[..16])
    }
}

/// What an event does; the tag in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Seq 0 of every feed: name, entity type, PoW and hardware claim.
    Register = 0,
    /// A content item.
    Thought = 1,
    /// A rating of another member's thought.
    Validate = 2,
    /// An ATP transfer from the author.
    Transfer = 3,
    /// Self-certifying proof against another member.
    Evidence = 4,
    /// The author ran TPM credential activation with a member claiming L5, and it passed.
    Vouch = 5,
    /// The author's node is running: a sign of life in the log when its feed is otherwise
    /// silent, which keeps the member's voting weight from leaking (see `state`).
    Presence = 6,
}

impl Kind {
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            0 => Self::Register,
            1 => Self::Thought,
            2 => Self::Validate,
            3 => Self::Transfer,
            4 => Self::Evidence,
            5 => Self::Vouch,
            6 => Self::Presence,
            _ => {
                return Err(DecodeError::Invalid {
                    field: "kind",
                    reason: "unknown event kind",
                })
            }
        })
    }
    /// A lower-case name for APIs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Thought => "thought",
            Self::Validate => "validate",
            Self::Transfer => "transfer",
            Self::Vouch => "vouch",
            Self::Presence => "presence",
            Self::Evidence => "evidence",
        }
    }
}

/// The signed, fixed-size part of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The author's public key.
    pub author: MemberId,
    /// Position in the author's feed; 0 is the `Register`.
    pub seq: u64,
    /// Id of the author's previous event; all zeros at seq 0.
    pub prev: EventId,
    /// The author's timestamp, ms since the Unix epoch: the event's logical time.
    pub timestamp_ms: u64,
    /// What the body holds.
    pub kind: Kind,
    /// Length of the body in bytes.
    pub body_len: u32,
    /// SHA-256 of the body.
    pub body_hash: [u8; 32],
}

impl Header {
    /// The canonical encoding.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut w = Writer::with_capacity(HEADER_LEN);
        w.u8(EVENT_VERSION);
        w.raw(&self.author.0);
        w.u64(self.seq);
        w.raw(&self.prev.0);
        w.u64(self.timestamp_ms);
        w.u8(self.kind as u8);
        w.u32(self.body_len);
        w.raw(&self.body_hash);
        let mut out = [0u8; HEADER_LEN];
        out.copy_from_slice(&w.finish());
        out
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8("version")?;
        if version != EVENT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "event",
                version,
            });
        }
        let author = MemberId(r.array("author")?);
        let seq = r.u64("seq")?;
        let prev = EventId(r.array("prev")?);
        let timestamp_ms = r.u64("timestamp")?;
        let kind = Kind::from_u8(r.u8("kind")?)?;
        let body_len = r.u32("body_len")?;
        if body_len as usize > MAX_BODY_BYTES {
            return Err(DecodeError::TooLong {
                field: "body",
                len: body_len as usize,
                max: MAX_BODY_BYTES,
            });
        }
        let body_hash = r.array("body_hash")?;
        Ok(Self {
            author,
            seq,
            prev,
            timestamp_ms,
            kind,
            body_len,
            body_hash,
        })
    }

    /// The event id.
    pub fn id(&self) -> EventId {
        EventId(Sha256::digest(self.encode()).into())
    }

    /// The bytes the author signs: domain tag, network id, header.
    pub fn signing_bytes(&self, network: &[u8; 32]) -> Vec<u8> {
        let mut m = Vec::with_capacity(EVENT_SIGNING_DOMAIN.len() + 32 + HEADER_LEN);
        m.extend_from_slice(EVENT_SIGNING_DOMAIN);
        m.extend_from_slice(network);
        m.extend_from_slice(&self.encode());
        m
    }
}

/// A header with its signature: enough to prove what an author signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeader {
    /// The header.
    pub header: Header,
    /// The author's signature over [`Header::signing_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedHeader {
    /// Checks the signature against the header's author.
    pub fn verify(&self, network: &[u8; 32]) -> bool {
        self.header
            .author
            .verify(&self.header.signing_bytes(network), &self.signature)
    }
    pub(crate) fn write(&self, w: &mut Writer) {
        w.raw(&self.header.encode());
        w.raw(&self.signature);
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            header: Header::read(r)?,
            signature: r.array("signature")?,
        })
    }
}

/// Hardware level claimed in a registration. A claim is only a claim: the fold grants L5
/// only when an attestation verifier accepts the evidence (see `attest`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Level {
    /// Software key.
    L4 = 4,
    /// Key bound to hardware with a verified attestation.
    L5 = 5,
}

/// The kind of hardware attestation evidence carried by a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AttestationKind {
    /// No evidence.
    None = 0,
    /// TPM 2.0 quote or certification plus endorsement certificate.
    Tpm2 = 1,
    /// Arm TrustZone evidence (not verified by this release).
    TrustZone = 2,
}

/// Hardware evidence as carried on the wire; verified by an `attest::Verifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    /// Which provider produced it.
    pub kind: AttestationKind,
    /// Provider-specific evidence bytes.
    pub evidence: Vec<u8>,
}

/// Body of a `Register` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// Human name.
    pub name: String,
    /// Entity type for the LCT id (`[a-z0-9_-]`, 1 to 32 bytes).
    pub entity_type: String,
    /// Proof of work for this key on this network.
    pub pow: Pow,
    /// Level the member claims.
    pub claimed_level: Level,
    /// Evidence for the claim.
    pub attestation: Attestation,
}

/// Body of a `Validate` event: a rating of a thought by the author's local scorer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validate {
    /// The rated thought.
    pub thought: EventId,
    /// The rating, millionths.
    pub score_micro: u32,
    /// Which scorer produced it.
    pub scorer: String,
}

/// The body of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Registration (seq 0).
    Register(Register),
    /// A thought; the string is its content.
    Thought(String),
    /// A rating.
    Validate(Validate),
    /// An ATP transfer.
    Transfer {
        /// Recipient.
        to: MemberId,
        /// Amount in thousandths of an ATP.
        amount_milli: u64,
    },
    /// Proof against another member (boxed: two signed headers are large).
    Evidence(Box<Evidence>),
    /// The author challenged `subject`'s TPM (credential activation) and it answered: a
    /// vote towards `subject`'s L5 (see `tpm` and `state`).
    Vouch {
        /// The member whose TPM answered.
        subject: MemberId,
    },
    /// A sign of life with no content: a running node writes one when its member's feed has
    /// been silent for `presence_every_ms`, so that only members whose nodes are down lose
    /// voting weight to the inactivity leak.
    Presence,
}

fn valid_entity_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ENTITY_TYPE_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Body {
    /// The header tag for this body.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Register(_) => Kind::Register,
            Self::Thought(_) => Kind::Thought,
            Self::Validate(_) => Kind::Validate,
            Self::Transfer { .. } => Kind::Transfer,
            Self::Vouch { .. } => Kind::Vouch,
            Self::Presence => Kind::Presence,
            Self::Evidence(_) => Kind::Evidence,
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        match self {
            Self::Register(r) => {
                w.bytes16(r.name.as_bytes());
                w.bytes16(r.entity_type.as_bytes());
                w.u8(r.pow.bits);
                w.u64(r.pow.nonce);
                w.u8(r.claimed_level as u8);
                w.u8(r.attestation.kind as u8);
                w.bytes16(&r.attestation.evidence);
            }
            Self::Thought(c) => w.bytes32(c.as_bytes()),
            Self::Validate(v) => {
                w.raw(&v.thought.0);
                w.u32(v.score_micro);
                w.bytes16(v.scorer.as_bytes());
            }
            Self::Transfer { to, amount_milli } => {
                w.raw(&to.0);
                w.u64(*amount_milli);
            }
            Self::Vouch { subject } => w.raw(&subject.0),
            Self::Presence => {}
            Self::Evidence(e) => e.write(&mut w),
        }
        w.finish()
    }

    /// Decodes a body of the given kind, refusing anything non-canonical or out of bounds.
    pub fn decode(kind: Kind, bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let body = match kind {
            Kind::Register => {
                let name = r.str16("name", MAX_NAME_BYTES)?;
                if name.is_empty() || name.chars().any(char::is_control) {
                    return Err(DecodeError::Invalid {
                        field: "name",
                        reason: "empty or contains control characters",
                    });
                }
                let entity_type = r.str16("entity_type", MAX_ENTITY_TYPE_BYTES)?;
                if !valid_entity_type(entity_type) {
                    return Err(DecodeError::Invalid {
                        field: "entity_type",
                        reason: "must be 1-32 bytes of [a-z0-9_-]",
                    });
                }
                let bits = r.u8("pow_bits")?;
                let nonce = r.u64("pow_nonce")?;
                let claimed_level = match r.u8("claimed_level")? {
                    4 => Level::L4,
                    5 => Level::L5,
                    _ => {
                        return Err(DecodeError::Invalid {
                            field: "claimed_level",
                            reason: "must be 4 or 5",
                        })
                    }
                };
                let kind = match r.u8("attestation_kind")? {
                    0 => AttestationKind::None,
                    1 => AttestationKind::Tpm2,
                    2 => AttestationKind::TrustZone,
                    _ => {
                        return Err(DecodeError::Invalid {
                            field: "attestation_kind",
                            reason: "unknown provider",
                        })
                    }
                };
                let evidence = r.bytes16("attestation", MAX_ATTESTATION_BYTES)?.to_vec();
                Self::Register(Register {
                    name: name.to_string(),
                    entity_type: entity_type.to_string(),
                    pow: Pow { bits, nonce },
                    claimed_level,
                    attestation: Attestation { kind, evidence },
                })
            }
            Kind::Thought => {
                let raw = r.bytes32("content", MAX_CONTENT_BYTES)?;
                let s = std::str::from_utf8(raw).map_err(|_| DecodeError::Invalid {
                    field: "content",
                    reason: "not UTF-8",
                })?;
                Self::Thought(s.to_string())
            }
            Kind::Validate => {
                let thought = EventId(r.array("thought")?);
                let score_micro = r.u32("score")?;
                if u64::from(score_micro) > crate::fixed::MICRO {
                    return Err(DecodeError::Invalid {
                        field: "score",
                        reason: "above 1.0",
                    });
                }
                let scorer = r.str16("scorer", MAX_SCORER_BYTES)?.to_string();
                Self::Validate(Validate {
                    thought,
                    score_micro,
                    scorer,
                })
            }
            Kind::Transfer => {
                let to = MemberId(r.array("to")?);
                let amount_milli = r.u64("amount")?;
                if amount_milli == 0 {
                    return Err(DecodeError::Invalid {
                        field: "amount",
                        reason: "must be positive",
                    });
                }
                Self::Transfer { to, amount_milli }
            }
            Kind::Vouch => {
                let subject = MemberId(r.array("subject")?);
                Self::Vouch { subject }
            }
            Kind::Presence => Self::Presence,
            Kind::Evidence => {
                Self::Evidence(Box::new(Evidence::read(&mut r, MAX_CARRIED_EVENT_BYTES)?))
            }
        };
        r.finish("body")?;
        Ok(body)
    }
}

/// A complete event as held in memory: the decoded parts plus the exact wire bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The signed header.
    pub header: Header,
    /// The author's signature.
    pub signature: [u8; SIGNATURE_LEN],
    /// The decoded body.
    pub body: Body,
    id: EventId,
    bytes: Vec<u8>,
}

impl Event {
    /// Builds and signs an event.
    pub fn sign(
        keypair: &Keypair,
        network: &[u8; 32],
        seq: u64,
        prev: EventId,
        timestamp_ms: u64,
        body: Body,
    ) -> Self {
        let body_bytes = body.encode();
        let header = Header {
            author: keypair.id(),
            seq,
            prev,
            timestamp_ms,
            kind: body.kind(),
            body_len: u32::try_from(body_bytes.len()).unwrap_or(u32::MAX),
            body_hash: Sha256::digest(&body_bytes).into(),
        };
        let signature = keypair.sign(&header.signing_bytes(network));
        Self::assemble(header, signature, body, &body_bytes)
    }

    fn assemble(
        header: Header,
        signature: [u8; SIGNATURE_LEN],
        body: Body,
        body_bytes: &[u8],
    ) -> Self {
        let header_bytes = header.encode();
        let mut bytes = Vec::with_capacity(HEADER_LEN + SIGNATURE_LEN + body_bytes.len());
        bytes.extend_from_slice(&header_bytes);
        bytes.extend_from_slice(&signature);
        bytes.extend_from_slice(body_bytes);
        let id = EventId(Sha256::digest(header_bytes).into());
        Self {
            header,
            signature,
            body,
            id,
            bytes,
        }
    }

    /// Decodes wire bytes. Checks structure, bounds and that the body matches the header's
    /// hash; does not check the signature (that needs the network id: see [`Event::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(DecodeError::TooLong {
                field: "event",
                len: bytes.len(),
                max: MAX_EVENT_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let header = Header::read(&mut r)?;
        let signature = r.array("signature")?;
        let body_bytes = r.take(header.body_len as usize, "body")?;
        r.finish("event")?;
        let hash: [u8; 32] = Sha256::digest(body_bytes).into();
        if hash != header.body_hash {
            return Err(DecodeError::Invalid {
                field: "body",
                reason: "does not match the header's body hash",
            });
        }
        let body = Body::decode(header.kind, body_bytes)?;
        if header.seq == 0 && header.prev != EventId::default() {
            return Err(DecodeError::Invalid {
                field: "prev",
                reason: "seq 0 must have an all-zero prev",
            });
        }
        if (header.seq == 0) != (header.kind == Kind::Register) {
            return Err(DecodeError::Invalid {
                field: "kind",
                reason: "a Register is exactly the event at seq 0",
            });
        }
        Ok(Self::assemble(header, signature, body, body_bytes))
    }

    /// Checks the author's signature for this network.
    pub fn verify(&self, network: &[u8; 32]) -> bool {
        self.header
            .author
            .verify(&self.header.signing_bytes(network), &self.signature)
    }

    /// The event id (SHA-256 of the header).
    pub fn id(&self) -> EventId {
        self.id
    }
    /// The author.
    pub fn author(&self) -> MemberId {
        self.header.author
    }
    /// Position in the author's feed.
    pub fn seq(&self) -> u64 {
        self.header.seq
    }
    /// Logical time.
    pub fn timestamp_ms(&self) -> u64 {
        self.header.timestamp_ms
    }
    /// The exact wire bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The header with its signature (what equivocation evidence carries).
    pub fn signed_header(&self) -> SignedHeader {
        SignedHeader {
            header: self.header.clone(),
            signature: self.signature,
        }
    }
    /// The position of this event in the canonical total order: timestamp, author, seq.
    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            timestamp_ms: self.header.timestamp_ms,
            author: self.header.author,
            seq: self.header.seq,
        }
    }
}

/// A position in the canonical total order of events (every node folds in it): timestamp,
/// then author, then seq. Within one feed timestamps never decrease, so this order agrees
/// with every feed's own order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct OrderKey {
    /// Logical time.
    pub timestamp_ms: u64,
    /// Author.
    pub author: MemberId,
    /// Feed position.
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp() -> Keypair {
        Keypair::from_secret([5; 32])
    }

    #[test]
    fn round_trip_every_kind() {
        let net = [3u8; 32];
        let bodies = vec![
            Body::Register(Register {
                name: "legion".into(),
                entity_type: "ai".into(),
                pow: Pow { bits: 8, nonce: 42 },
                claimed_level: Level::L5,
                attestation: Attestation {
                    kind: AttestationKind::Tpm2,
                    evidence: vec![1, 2, 3],
                },
            }),
            Body::Thought("hello federation".into()),
            Body::Validate(Validate {
                thought: EventId([9; 32]),
                score_micro: 750_000,
                scorer: "coherence-v1".into(),
            }),
            Body::Transfer {
                to: MemberId([8; 32]),
                amount_milli: 5_000,
            },
        ];
        for (seq, body) in bodies.into_iter().enumerate() {
            let prev = if seq == 0 {
                EventId::default()
            } else {
                EventId([1; 32])
            };
            let e = Event::sign(&kp(), &net, seq as u64, prev, 1000, body);
            let d = Event::decode(e.bytes()).unwrap();
            assert_eq!(d, e);
            assert!(d.verify(&net));
            assert!(!d.verify(&[4; 32]), "signature is bound to the network");
        }
    }

    #[test]
    fn decode_refuses_tampering_and_trailing_bytes() {
        let net = [3u8; 32];
        let e = Event::sign(
            &kp(),
            &net,
            1,
            EventId([1; 32]),
            5,
            Body::Thought("some thought".into()),
        );
        let mut b = e.bytes().to_vec();
        b.push(0);
        assert!(matches!(
            Event::decode(&b),
            Err(DecodeError::TrailingBytes { .. })
        ));
        let mut b = e.bytes().to_vec();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            Event::decode(&b),
            Err(DecodeError::Invalid { field: "body", .. })
        ));
    }
}
