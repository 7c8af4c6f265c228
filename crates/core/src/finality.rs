//! Finality: members sign their state root at checkpoint epochs; signatures on one root from
//! members holding at least two thirds of the active trust weight form a certificate that any
//! node, or an outsider with the member list, verifies on its own.
//!
//! # What a certificate fixes
//! A vote and a certificate name the epoch `e`, the previous certificate `prev` the signers
//! built on, the root, and the **frontier**: for each feed, how many of its events the root
//! covers. The fold places every event by its *effective time*: its own timestamp, but never
//! earlier than the end of the last certified epoch whose frontier leaves it out. So an event
//! that reaches a node after its epoch was certified (a minority partition healing) settles in
//! the first certificate that includes it, after everything already final, and can never
//! change a certified root. Two honest certificates for one epoch would need more than a third
//! of the weight to sign twice, and signing two different votes for one epoch is itself
//! evidence that ejects the signer.

use crate::codec::{DecodeError, Reader, Writer};
use crate::identity::{Keypair, MemberId, SIGNATURE_LEN};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const VOTE_DOMAIN: &[u8] = b"web4fed/root-vote/v1";
/// Most signatures in a certificate: one per member of a few-hundred-member federation.
pub const MAX_CERT_SIGNERS: usize = 4_096;
/// Most feeds in a frontier.
pub const MAX_FRONTIER_FEEDS: usize = 100_000;
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

/// What a member signs for a checkpoint epoch.
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

    fn signing_bytes(&self, network: &[u8; 32]) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        w.raw(VOTE_DOMAIN);
        w.raw(network);
        self.write(&mut w);
        w.finish()
    }
}

/// A signed vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// What was signed.
    pub body: VoteBody,
    /// Who signed.
    pub signer: MemberId,
    /// The signature.
    pub signature: [u8; SIGNATURE_LEN],
}

impl Vote {
    /// Signs a vote.
    pub fn sign(kp: &Keypair, network: &[u8; 32], body: VoteBody) -> Self {
        let signature = kp.sign(&body.signing_bytes(network));
        Self {
            body,
            signer: kp.id(),
            signature,
        }
    }
    /// Checks the signature.
    pub fn verify(&self, network: &[u8; 32]) -> bool {
        self.signer
            .verify(&self.body.signing_bytes(network), &self.signature)
    }
    pub(crate) fn write(&self, w: &mut Writer) {
        self.body.write(w);
        w.raw(&self.signer.0);
        w.raw(&self.signature);
    }
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            body: VoteBody::read(r)?,
            signer: MemberId(r.array("signer")?),
            signature: r.array("signature")?,
        })
    }
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(200);
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

/// A finality certificate: a vote body, its frontier, and the signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The certified vote body.
    pub body: VoteBody,
    /// The frontier whose digest the body carries.
    pub frontier: Frontier,
    /// (signer, signature) pairs, ordered by signer.
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
    /// The signers hold less than two thirds of the weight.
    #[error("signers hold {signed} of {total} trust weight, under two thirds")]
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
    /// Not a checkpoint epoch, or too old to check here.
    #[error("epoch {0} cannot be checked here")]
    Unverifiable(u64),
}

impl Certificate {
    /// Checks every signature and the frontier digest; then the weight against `weights`
    /// (member → trust in millionths, active members only). A signer must appear in `weights`.
    pub fn verify(
        &self,
        network: &[u8; 32],
        weights: &BTreeMap<MemberId, u64>,
    ) -> Result<(u64, u64), CertError> {
        if frontier_digest(&self.frontier) != self.body.frontier {
            return Err(CertError::FrontierMismatch);
        }
        let msg = self.body.signing_bytes(network);
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
        if total == 0 || 3 * u128::from(signed) < 2 * u128::from(total) {
            return Err(CertError::UnderWeight { signed, total });
        }
        Ok((signed, total))
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(256 + self.frontier.len() * 40 + self.signatures.len() * 96);
        w.u8(1);
        self.body.write(&mut w);
        w.u32(self.frontier.len() as u32);
        for (m, n) in &self.frontier {
            w.raw(&m.0);
            w.u64(*n);
        }
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
        if v != 1 {
            return Err(DecodeError::UnsupportedVersion {
                what: "certificate",
                version: v,
            });
        }
        let body = VoteBody::read(&mut r)?;
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
            // In ascending order, each once: the only order `encode` writes, so one
            // certificate has one encoding (and one gossip message id).
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
            body,
            frontier,
            signatures,
        })
    }
}

/// Collects votes and turns enough matching ones into a certificate; spots members that sign
/// two different votes for one epoch.
#[derive(Debug, Default)]
pub struct VoteBook {
    by_epoch: BTreeMap<u64, BTreeMap<MemberId, Vote>>,
}

/// Epochs of votes kept: older ones either certified or never will.
pub const VOTE_EPOCHS_KEPT: usize = 128;

/// What a new vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteOutcome {
    /// Recorded: a vote not held before.
    Recorded,
    /// Already held.
    Duplicate,
    /// The signer already voted differently for this epoch: the two votes are evidence.
    DoubleVote(Box<Vote>, Box<Vote>),
    /// The signature does not verify.
    BadSignature,
}

impl VoteBook {
    /// Records a vote.
    pub fn add(&mut self, network: &[u8; 32], v: Vote) -> VoteOutcome {
        // A vote already held costs no signature check: relays deliver each vote many times.
        if let Some(old) = self
            .by_epoch
            .get(&v.body.epoch)
            .and_then(|e| e.get(&v.signer))
        {
            if *old == v {
                return VoteOutcome::Duplicate;
            }
        }
        if !v.verify(network) {
            return VoteOutcome::BadSignature;
        }
        let epoch_votes = self.by_epoch.entry(v.body.epoch).or_default();
        if let Some(old) = epoch_votes.get(&v.signer) {
            if old.body != v.body {
                return VoteOutcome::DoubleVote(Box::new(old.clone()), Box::new(v));
            }
            return VoteOutcome::Duplicate;
        }
        epoch_votes.insert(v.signer, v);
        while self.by_epoch.len() > VOTE_EPOCHS_KEPT {
            self.by_epoch.pop_first();
        }
        VoteOutcome::Recorded
    }

    /// Votes held for `epoch` matching `body`, by signer.
    pub fn matching(&self, body: &VoteBody) -> Vec<(MemberId, [u8; SIGNATURE_LEN])> {
        self.by_epoch
            .get(&body.epoch)
            .into_iter()
            .flat_map(|vs| vs.values())
            .filter(|v| v.body == *body)
            .map(|v| (v.signer, v.signature))
            .collect()
    }

    /// Epochs with votes.
    pub fn epochs(&self) -> impl Iterator<Item = &u64> {
        self.by_epoch.keys()
    }
}

/// Checks a double-vote proof: two valid signatures of one member on different bodies for
/// one epoch.
pub fn check_double_vote(network: &[u8; 32], a: &Vote, b: &Vote) -> Result<(), String> {
    if a.signer != b.signer || a.body.epoch != b.body.epoch {
        return Err("votes of different signers or epochs".into());
    }
    if a.body == b.body {
        return Err("votes are identical".into());
    }
    if !a.verify(network) || !b.verify(network) {
        return Err("a vote's signature does not verify".into());
    }
    Ok(())
}
