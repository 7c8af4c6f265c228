//! The types Malachite's Tendermint driver is instantiated with: heights, checkpoint values,
//! members as validators with their voting weight, votes and proposals. Signing happens
//! outside the driver (the replica signs with `web4fed_core::finality` and checks every
//! signature before an input reaches the driver), so the scheme's private key is empty.

use malachitebft_core_types as mc;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use web4fed_core::finality::{Frontier, VoteBody};
use web4fed_core::identity::{MemberId, SIGNATURE_LEN};

/// The context: stateless, every method is a pure function of its arguments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctx;

/// A height of the driver: our height and the validator-set generation within it (the
/// driver takes one set per height, so a stalled height's new generation is a new driver
/// height).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height {
    /// How many checkpoints were decided before.
    pub height: u64,
    /// The generation.
    pub gen: u32,
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.height, self.gen)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height { height: 0, gen: 0 };
    const INITIAL: Self = Height { height: 0, gen: 0 };
    fn increment_by(&self, n: u64) -> Self {
        Height {
            height: self.height.saturating_add(n),
            gen: 0,
        }
    }
    fn decrement_by(&self, n: u64) -> Option<Self> {
        Some(Height {
            height: self.height.checked_sub(n)?,
            gen: 0,
        })
    }
    fn as_u64(&self) -> u64 {
        self.height
    }
}

/// A member as the driver names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub MemberId);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mc::Address for Address {}

/// A checkpoint value with the frontier its digest stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Value {
    /// The value signed.
    pub body: VoteBody,
    /// The events it covers per feed.
    pub frontier: Arc<Frontier>,
}

/// A value's id ([`VoteBody::id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueId(pub [u8; 32]);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl mc::Value for Value {
    type Id = ValueId;
    fn id(&self) -> ValueId {
        ValueId(self.body.id())
    }
}

/// A member with voting weight at this height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    address: Address,
    power: u64,
}

impl mc::Validator<Ctx> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &MemberId {
        &self.address.0
    }
    fn voting_power(&self) -> u64 {
        self.power
    }
}

/// The members with voting weight at one height, in member order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    /// From member → weight (members of weight 0 are left out).
    pub fn new(weights: &std::collections::BTreeMap<MemberId, u64>) -> Self {
        Self {
            validators: weights
                .iter()
                .filter(|(_, w)| **w > 0)
                .map(|(m, w)| Validator {
                    address: Address(*m),
                    power: *w,
                })
                .collect(),
        }
    }
    /// The weight of `m`, if it is in the set.
    pub fn weight(&self, m: &MemberId) -> Option<u64> {
        mc::ValidatorSet::<Ctx>::get_by_address(self, &Address(*m)).map(|v| v.power)
    }
    /// Member → weight.
    pub fn weights(&self) -> std::collections::BTreeMap<MemberId, u64> {
        self.validators
            .iter()
            .map(|v| (v.address.0, v.power))
            .collect()
    }
}

impl mc::ValidatorSet<Ctx> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> u64 {
        self.validators.iter().map(|v| v.power).sum()
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators
            .binary_search_by(|v| v.address.cmp(address))
            .ok()
            .map(|i| &self.validators[i])
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// An unsigned proposal as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Height and generation.
    pub height: Height,
    /// Round.
    pub round: mc::Round,
    /// The value.
    pub value: Value,
    /// The proof-of-lock round.
    pub pol_round: mc::Round,
    /// The proposer.
    pub proposer: Address,
}

impl mc::Proposal<Ctx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> mc::Round {
        self.round
    }
    fn value(&self) -> &Value {
        &self.value
    }
    fn take_value(self) -> Value {
        self.value
    }
    fn pol_round(&self) -> mc::Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// An unsigned vote as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vote {
    /// Height and generation.
    pub height: Height,
    /// Round.
    pub round: mc::Round,
    /// The value voted for, or nil.
    pub value: mc::NilOrVal<ValueId>,
    /// Prevote or precommit.
    pub kind: mc::VoteType,
    /// The voter.
    pub voter: Address,
}

impl mc::Vote<Ctx> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> mc::Round {
        self.round
    }
    fn value(&self) -> &mc::NilOrVal<ValueId> {
        &self.value
    }
    fn take_value(self) -> mc::NilOrVal<ValueId> {
        self.value
    }
    fn vote_type(&self) -> mc::VoteType {
        self.kind
    }
    fn validator_address(&self) -> &Address {
        &self.voter
    }
    fn extension(&self) -> Option<&mc::SignedExtension<Ctx>> {
        None
    }
    fn take_extension(&mut self) -> Option<mc::SignedExtension<Ctx>> {
        None
    }
    fn extend(self, _extension: mc::SignedExtension<Ctx>) -> Self {
        self
    }
}

/// Values travel whole in one proposal: no parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoParts;

impl mc::ProposalPart<Ctx> for NoParts {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

/// Votes carry no extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoExtension;

impl mc::Extension for NoExtension {
    fn size_bytes(&self) -> usize {
        0
    }
}

/// An Ed25519 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

/// Ed25519 over `web4fed_core::finality`'s signing bytes; checked before the driver sees a
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ed25519;

impl mc::SigningScheme for Ed25519 {
    type DecodingError = String;
    type Signature = Signature;
    type PublicKey = MemberId;
    type PrivateKey = ();
    fn decode_signature(bytes: &[u8]) -> Result<Signature, String> {
        bytes
            .try_into()
            .map(Signature)
            .map_err(|_| format!("a signature is {SIGNATURE_LEN} bytes"))
    }
    fn encode_signature(signature: &Signature) -> Vec<u8> {
        signature.0.to_vec()
    }
}

impl mc::Context for Ctx {
    type Address = Address;
    type Height = Height;
    type ProposalPart = NoParts;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Value = Value;
    type Vote = Vote;
    type Extension = NoExtension;
    type SigningScheme = Ed25519;

    /// Weighted by voting power: a pseudo-random point in the total weight, from the height,
    /// generation and round, picks the validator whose stretch holds it. Every node computes
    /// the same proposer; no member is favoured beyond its weight.
    fn select_proposer<'a>(
        &self,
        set: &'a ValidatorSet,
        height: Height,
        round: mc::Round,
    ) -> &'a Validator {
        let total: u64 = set.validators.iter().map(|v| v.power).sum();
        let mut h = Sha256::new();
        h.update(b"web4fed/proposer/v1");
        h.update(height.height.to_be_bytes());
        h.update(height.gen.to_be_bytes());
        h.update(round.as_i64().to_be_bytes());
        let d: [u8; 32] = h.finalize().into();
        let mut x = u64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8])) % total.max(1);
        for v in &set.validators {
            if x < v.power {
                return v;
            }
            x -= v.power;
        }
        // Only reached for an empty set, which the replica never starts a height with.
        &set.validators[0]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: mc::Round,
        value: Value,
        pol_round: mc::Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: mc::Round,
        value_id: mc::NilOrVal<ValueId>,
        address: Address,
    ) -> Vote {
        Vote {
            height,
            round,
            value: value_id,
            kind: mc::VoteType::Prevote,
            voter: address,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: mc::Round,
        value_id: mc::NilOrVal<ValueId>,
        address: Address,
    ) -> Vote {
        Vote {
            height,
            round,
            value: value_id,
            kind: mc::VoteType::Precommit,
            voter: address,
        }
    }
}
