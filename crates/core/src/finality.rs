//! Finality: the members agree on one checkpoint per height with the Tendermint algorithm
//! (run by the replica with Malachite's driver); the precommits of members holding more than
//! two thirds of the height's voting weight form a certificate that any node, or an outsider
//! with the member list, verifies on its own. This module holds what is signed and checked:
//! values, proposals, votes, certificates and double-vote proofs.
//!
//! # What a certificate fixes
//! A value names the epoch `e`, the previous certified epoch `prev` it extends, the root,
//! and the **frontier**: for each feed, how many of its events the root covers. The fold
//! places every event by its *effective time*: its own timestamp, but never earlier than the
//! end of the last certified epoch whose frontier leaves it out. So an event that reaches a
//! node after its epoch was certified (a minority partition healing) settles in the first
//! certificate that includes it, after everything already final, and can never change a
//! certified root. Two certificates for one height would need more than a third of the weight
//! to precommit twice in one round or to break Tendermint's lock, and two different votes of
//! one kind in one round are themselves evidence that ejects the signer.

use crate::codec::{DecodeError, Reader, Writer};
use crate::identity::{Keypair, MemberId, SIGNATURE_LEN};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const VOTE_DOMAIN: &[u8] = b"web4fed/checkpoint-vote/v2";
const PROPOSAL_DOMAIN: &[u8] = b"web4fed/checkpoint-proposal/v1";
const VALUE_DOMAIN: &[u8] = b"web4fed/checkpoint-value/v1";
/// Most signatures in a certificate: one per member of a few-hundred-member federation.
pub const MAX_CERT_SIGNERS: usize = 4_096;
/// Most feeds in a frontier.
pub const MAX_FRONTIER_FEEDS: usize = 100_000;
/// The certificate encoding's version: 2 since certificates are Tendermint commit
/// certificates (height, round, precommits).
const CERT_VERSION: u8 = 2;
/// Encodes "no previous certificate" on the wire.
const NO_PREV: u64 = u64::MAX;

/// How many events of each feed a root covers.
pub type Frontier = BTreeMap<MemberId, u64>;

/// SHA-256 over a frontier in member order.
pub fn frontier_digest(f: &Frontier) -> [u8; 32] {
    let mut h = Sha256::new();
    for (m, n) in f {
        h.update(m.0);
        h.update(n.to_be_bytes());
    }
    h.finalize().into()
}

/// The value agreed on at one height: a checkpoint epoch, the certified epoch it extends, the
/// state root at the epoch's end and the digest of the frontier that root covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VoteBody {
    /// The epoch.
    pub epoch: u64,
    /// The certified epoch the signer built on, if any.
    pub prev: Option<u64>,
    /// The state root at the end of the epoch.
    pub root: [u8; 32],
    /// Digest of the frontier the root covers.
    pub frontier: [u8; 32],
}

impl VoteBody {
    /// The canonical encoding: what a member without a node of its own fetches from one
    /// (`GET /v1/checkpoint`), checks and signs.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(88);
        self.write(&mut w);
        w.finish()
    }
    /// Decodes a vote body.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let v = Self::read(&mut r)?;
        r.finish("vote body")?;
        Ok(v)
    }

    fn write(&self, w: &mut Writer) {
        w.u64(self.epoch);
        w.u64(self.prev.unwrap_or(NO_PREV));
        w.raw(&self.root);
        w.raw(&self.frontier);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let epoch = r.u64("epoch")?;
        let prev = r.u64("prev")?;
        Ok(Self {
            epoch,
            prev: (prev != NO_PREV).then_some(prev),
            root: r.array("root")?,
            frontier: r.array("frontier")?,
        })
    }

    /// The value's id: what votes name and precommits sign (SHA-256 over a domain and the
    /// canonical encoding).
    pub fn id(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(VALUE_DOMAIN);
        h.update(self.encode());
        h.finalize().into()
    }
}

/// Which of Tendermint's two voting steps a vote belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VoteKind {
    /// First step: "this proposal is valid in my view" (or nil).
    Prevote,
    /// Second step: "I saw two thirds prevote it, and lock on it" (or nil).
    Precommit,
}

impl VoteKind {
    fn tag(self) -> u8 {
        match self {
            Self::Prevote => 1,
            Self::Precommit => 2,
        }
    }
    fn from_tag(t: u8) -> Result<Self, DecodeError> {
        match t {
            1 => Ok(Self::Prevote),
            2 => Ok(Self::Precommit),
            _ => Err(DecodeError::Invalid {
                field: "vote kind",
                reason: "neither prevote (1) nor precommit (2)",
            }),
        }
    }
}

/// Encodes "nil" (no value) in a vote on the wire.
const NIL_TAG: u8 = 0;
/// Encodes "a value id follows".
const VAL_TAG: u8 = 1;
/// Writes a vote's value: nil, or a tag and the value id.
fn write_value_id(w: &mut Writer, value: Option<&[u8; 32]>) {
    match value {
        None => w.u8(NIL_TAG),
        Some(id) => {
            w.u8(VAL_TAG);
            w.raw(id);
        }
    }
}

/// Reads what [`write_value_id`] wrote.
fn read_value_id(r: &mut Reader<'_>) -> Result<Option<[u8; 32]>, DecodeError> {
    match r.u8("vote value tag")? {
        NIL_TAG => Ok(None),
        VAL_TAG => Ok(Some(r.array("value id")?)),
        _ => Err(DecodeError::Invalid {
            field: "vote value tag",
            reason: "neither nil (0) nor value (1)",
        }),
    }
}

/// Encodes "no proof-of-lock round" in a proposal.
const NO_POL_ROUND: u32 = u32::MAX;

/// A position in the agreement: height, validator-set generation, round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct At {
    /// How many checkpoints were decided before this one.
    pub height: u64,
    /// The validator-set generation (0 until the height stalls).
    pub gen: u32,
    /// The Tendermint round.
    pub round: u32,
}

impl At {
    fn write(&self, w: &mut Writer) {
        w.u64(self.height);
        w.u32(self.gen);
        w.u32(self.round);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            height: r.u64("height")?,
            gen: r.u32("gen")?,
            round: r.u32("round")?,
        })
    }
}

/// A signed Tendermint vote of one member at one height and round: for a checkpoint value
/// (by its id) or for nil. Two different votes of one kind at one height and round are
/// evidence that ejects the signer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vote {
    /// The height: how many checkpoints were decided before this one.
    pub height: u64,
    /// The validator-set generation within the height (0 until the height stalls; see
    /// `Ledger::validators`).
    pub gen: u32,
    /// The round within the height and generation.
    pub round: u32,
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// The id of the value voted for ([`VoteBody::id`]), or `None` for nil.
    pub value: Option<[u8; 32]>,
    /// Who signed.
    pub signer: MemberId,
    /// The signature.
    pub signature: [u8; SIGNATURE_LEN],
}

impl Vote {
    fn signing_bytes(
        network: &[u8; 32],
        at: At,
        kind: VoteKind,
        value: Option<&[u8; 32]>,
    ) -> Vec<u8> {
        let mut w = Writer::with_capacity(96);
        w.raw(VOTE_DOMAIN);
        w.raw(network);
        at.write(&mut w);
        w.u8(kind.tag());
        write_value_id(&mut w, value);
        w.finish()
    }

    /// Signs a vote.
    pub fn sign(
        kp: &Keypair,
        network: &[u8; 32],
        at: At,
        kind: VoteKind,
        value: Option<[u8; 32]>,
    ) -> Self {
        let signature = kp.sign(&Self::signing_bytes(network, at, kind, value.as_ref()));
        Self {
            height: at.height,
            gen: at.gen,
            round: at.round,
            kind,
            value,
            signer: kp.id(),
            signature,
        }
    }
    /// Checks the signature.
    pub fn verify(&self, network: &[u8; 32]) -> bool {
        self.signer.verify(
            &Self::signing_bytes(network, self.at(), self.kind, self.value.as_ref()),
            &self.signature,
        )
    }
    /// Where in the protocol the vote was cast.
    pub fn at(&self) -> At {
        At {
            height: self.height,
            gen: self.gen,
            round: self.round,
        }
    }
    pub(crate) fn write(&self, w: &mut Writer) {
        self.at().write(w);
        w.u8(self.kind.tag());
        write_value_id(w, self.value.as_ref());
        w.raw(&self.signer.0);
        w.raw(&self.signature);
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = At::read(r)?;
        let kind = VoteKind::from_tag(r.u8("vote kind")?)?;
        let value = read_value_id(r)?;
        Ok(Self {
            height: at.height,
            gen: at.gen,
            round: at.round,
            kind,
            value,
            signer: MemberId(r.array("signer")?),
            signature: r.array("signature")?,
        })
    }
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(160);
        self.write(&mut w);
        w.finish()
    }
    /// Decodes a vote.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let v = Self::read(&mut r)?;
        r.finish("vote")?;
        Ok(v)
    }
}

/// A signed proposal: the value the round's proposer puts forward for a height, with the
/// frontier its digest stands for (a member must hold those events and compute the same
/// root before it prevotes for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Height, generation and round.
    pub at: At,
    /// The round in which the value gathered two thirds of prevotes before, if any
    /// (Tendermint's proof-of-lock round: lets members locked on it prevote again).
    pub pol_round: Option<u32>,
    /// The proposed checkpoint value.
    pub body: VoteBody,
    /// The frontier whose digest the body carries.
    pub frontier: Frontier,
    /// The proposer.
    pub proposer: MemberId,
    /// The proposer's signature over height, round, proof-of-lock round and value id.
    pub signature: [u8; SIGNATURE_LEN],
}

impl Proposal {
    fn signing_bytes(network: &[u8; 32], at: At, pol_round: Option<u32>, id: &[u8; 32]) -> Vec<u8> {
        let mut w = Writer::with_capacity(96);
        w.raw(PROPOSAL_DOMAIN);
        w.raw(network);
        at.write(&mut w);
        w.u32(pol_round.unwrap_or(NO_POL_ROUND));
        w.raw(id);
        w.finish()
    }

    /// Signs a proposal.
    pub fn sign(
        kp: &Keypair,
        network: &[u8; 32],
        at: At,
        pol_round: Option<u32>,
        body: VoteBody,
        frontier: Frontier,
    ) -> Self {
        let signature = kp.sign(&Self::signing_bytes(network, at, pol_round, &body.id()));
        Self {
            at,
            pol_round,
            body,
            frontier,
            proposer: kp.id(),
            signature,
        }
    }

    /// Checks the signature and that the frontier matches the body's digest.
    pub fn verify(&self, network: &[u8; 32]) -> bool {
        frontier_digest(&self.frontier) == self.body.frontier
            && self.proposer.verify(
                &Self::signing_bytes(network, self.at, self.pol_round, &self.body.id()),
                &self.signature,
            )
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256 + self.frontier.len() * 40);
        self.at.write(&mut w);
        w.u32(self.pol_round.unwrap_or(NO_POL_ROUND));
        self.body.write(&mut w);
        write_frontier(&mut w, &self.frontier);
        w.raw(&self.proposer.0);
        w.raw(&self.signature);
        w.finish()
    }

    /// Decodes a proposal, bounded.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let at = At::read(&mut r)?;
        let pol = r.u32("pol round")?;
        let body = VoteBody::read(&mut r)?;
        let frontier = read_frontier(&mut r)?;
        let p = Self {
            at,
            pol_round: (pol != NO_POL_ROUND).then_some(pol),
            body,
            frontier,
            proposer: MemberId(r.array("proposer")?),
            signature: r.array("signature")?,
        };
        r.finish("proposal")?;
        Ok(p)
    }
}

fn write_frontier(w: &mut Writer, f: &Frontier) {
    w.u32(f.len() as u32);
    for (m, n) in f {
        w.raw(&m.0);
        w.u64(*n);
    }
}

fn read_frontier(r: &mut Reader<'_>) -> Result<Frontier, DecodeError> {
    let nf = r.u32("frontier length")? as usize;
    if nf > MAX_FRONTIER_FEEDS {
        return Err(DecodeError::TooLong {
            field: "frontier",
            len: nf,
            max: MAX_FRONTIER_FEEDS,
        });
    }
    let mut frontier = Frontier::new();
    for _ in 0..nf {
        let m = MemberId(r.array("frontier member")?);
        // In ascending order, each once: the only order `encode` writes, so one value has
        // one encoding (and one gossip message id).
        if frontier
            .last_key_value()
            .is_some_and(|(last, _)| *last >= m)
        {
            return Err(DecodeError::Invalid {
                field: "frontier",
                reason: "members not in strictly ascending order",
            });
        }
        frontier.insert(m, r.u64("frontier count")?);
    }
    Ok(frontier)
}

/// A finality certificate: Tendermint's commit certificate for one height. The decided
/// value, its frontier, the round it was decided in, and the precommits for it of members
/// holding more than two thirds of that height's voting weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The height decided, and the generation and round it was decided in.
    pub at: At,
    /// The decided value.
    pub body: VoteBody,
    /// The frontier whose digest the body carries.
    pub frontier: Frontier,
    /// (signer, precommit signature) pairs, ordered by signer.
    pub signatures: Vec<(MemberId, [u8; SIGNATURE_LEN])>,
}

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// A signature does not verify.
    #[error("signature of {0} does not verify")]
    BadSignature(MemberId),
    /// A signer appears twice.
    #[error("signer {0} appears twice")]
    DuplicateSigner(MemberId),
    /// A signer is not an active member with weight.
    #[error("signer {0} is not an active member")]
    NotAMember(MemberId),
    /// The frontier does not match the digest that was signed.
    #[error("frontier does not match the signed digest")]
    FrontierMismatch,
    /// The signers hold two thirds of the weight or less.
    #[error("signers hold {signed} of {total} voting weight, not more than two thirds")]
    UnderWeight {
        /// Weight of the signers.
        signed: u64,
        /// Total active weight.
        total: u64,
    },
    /// This node's fold gives another root for that epoch.
    #[error("this node's root for epoch {epoch} differs from the certified one")]
    RootMismatch {
        /// The epoch.
        epoch: u64,
    },
    /// This node lacks events the certificate covers.
    #[error("this node lacks events the certificate covers (it must sync first)")]
    MissingEvents,
    /// The certificate is for a later height than the next one here: the ones between are
    /// missing.
    #[error("height {height} is ahead of this node's next height {next}")]
    MissingHeights {
        /// The certificate's height.
        height: u64,
        /// The next height this node would accept.
        next: u64,
    },
    /// It decides a height already decided here, differently, or does not extend the
    /// decided chain: impossible unless more than a third of the weight signed twice.
    #[error("height {0} conflicts with the decided chain held here")]
    Conflicting(u64),
    /// Not a checkpoint epoch, or too old to check here.
    #[error("epoch {0} cannot be checked here")]
    Unverifiable(u64),
}

/// True when `signed` is more than two thirds of `total` (Tendermint's quorum).
pub fn is_quorum(signed: u64, total: u64) -> bool {
    total > 0 && 3 * u128::from(signed) > 2 * u128::from(total)
}

impl Certificate {
    /// Checks every precommit signature and the frontier digest; then the weight against
    /// `weights` (member → voting weight in millionths: the validator set of this height).
    /// A signer must appear in `weights`.
    pub fn verify(
        &self,
        network: &[u8; 32],
        weights: &BTreeMap<MemberId, u64>,
    ) -> Result<(u64, u64), CertError> {
        if frontier_digest(&self.frontier) != self.body.frontier {
            return Err(CertError::FrontierMismatch);
        }
        let msg = Vote::signing_bytes(network, self.at, VoteKind::Precommit, Some(&self.body.id()));
        let mut signed = 0u64;
        let mut last: Option<MemberId> = None;
        for (m, sig) in &self.signatures {
            if last.is_some_and(|l| l >= *m) {
                return Err(CertError::DuplicateSigner(*m));
            }
            last = Some(*m);
            let Some(w) = weights.get(m) else {
                return Err(CertError::NotAMember(*m));
            };
            if !m.verify(&msg, sig) {
                return Err(CertError::BadSignature(*m));
            }
            signed += w;
        }
        let total: u64 = weights.values().sum();
        if !is_quorum(signed, total) {
            return Err(CertError::UnderWeight { signed, total });
        }
        Ok((signed, total))
    }

    /// Builds a certificate from precommits signed by `signers` (tests, tools and the
    /// simulator's oracle; the replica collects real precommits).
    pub fn sign_by<'a>(
        network: &[u8; 32],
        at: At,
        body: VoteBody,
        frontier: Frontier,
        signers: impl IntoIterator<Item = &'a Keypair>,
    ) -> Self {
        let id = body.id();
        let mut signatures: Vec<_> = signers
            .into_iter()
            .map(|kp| {
                let v = Vote::sign(kp, network, at, VoteKind::Precommit, Some(id));
                (v.signer, v.signature)
            })
            .collect();
        signatures.sort_by_key(|(m, _)| *m);
        signatures.dedup_by_key(|(m, _)| *m);
        Self {
            at,
            body,
            frontier,
            signatures,
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(256 + self.frontier.len() * 40 + self.signatures.len() * 96);
        w.u8(CERT_VERSION);
        self.at.write(&mut w);
        self.body.write(&mut w);
        write_frontier(&mut w, &self.frontier);
        w.u32(self.signatures.len() as u32);
        for (m, s) in &self.signatures {
            w.raw(&m.0);
            w.raw(s);
        }
        w.finish()
    }

    /// Decodes a certificate, bounded.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let v = r.u8("certificate version")?;
        if v != CERT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "certificate",
                version: v,
            });
        }
        let at = At::read(&mut r)?;
        let body = VoteBody::read(&mut r)?;
        let frontier = read_frontier(&mut r)?;
        let ns = r.u32("signatures length")? as usize;
        if ns > MAX_CERT_SIGNERS {
            return Err(DecodeError::TooLong {
                field: "signatures",
                len: ns,
                max: MAX_CERT_SIGNERS,
            });
        }
        let mut signatures = Vec::with_capacity(ns);
        for _ in 0..ns {
            signatures.push((MemberId(r.array("signer")?), r.array("signature")?));
        }
        r.finish("certificate")?;
        Ok(Self {
            at,
            body,
            frontier,
            signatures,
        })
    }
}

/// Checks a double-vote proof: two valid signatures of one member on different votes of
/// one kind at one height and round (Tendermint's equivocation; voting again in a later
/// round is allowed).
pub fn check_double_vote(network: &[u8; 32], a: &Vote, b: &Vote) -> Result<(), String> {
    if a.signer != b.signer || a.at() != b.at() || a.kind != b.kind {
        return Err("votes of different signers, heights, rounds or kinds".into());
    }
    if a.value == b.value {
        return Err("votes are for the same value".into());
    }
    if !a.verify(network) || !b.verify(network) {
        return Err("a vote's signature does not verify".into());
    }
    Ok(())
}

/// The latest vote a member signed: recorded durably before the vote is sent, so that a
/// restarted node never signs a second, different vote in the same round, and keeps the
/// value it precommitted as a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastVote {
    /// Where it was cast.
    pub at: At,
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// The value voted for, or nil.
    pub value: Option<[u8; 32]>,
}

impl LastVote {
    /// The canonical encoding (what the store keeps).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(56);
        self.at.write(&mut w);
        w.u8(self.kind.tag());
        write_value_id(&mut w, self.value.as_ref());
        w.finish()
    }
    /// Decodes what [`LastVote::encode`] wrote.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let at = At::read(&mut r)?;
        let kind = VoteKind::from_tag(r.u8("vote kind")?)?;
        let value = read_value_id(&mut r)?;
        r.finish("last vote")?;
        Ok(Self { at, kind, value })
    }
}
