//! Hardware attestation (layer 6): which level a registration earns, and why.
//!
//! A registration may claim L5. The claim is checked in two steps, both part of the consensus
//! rules (the level feeds the state root):
//!
//! 1. **Evidence** ([`Verifier`]): a pure function of the evidence bytes, the genesis and the
//!    registration, identical on every node and independent of arrival order. For TPM 2.0 it
//!    is [`crate::tpm::verify`]: endorsement certificate chained to a genesis root, a
//!    restricted attestation key, a quote bound to this key and network.
//! 2. **Vouches** (in `state`, in canonical fold order): credential activation, which proves
//!    the attestation key shares a TPM with the endorsement key, is interactive; members run
//!    it and publish `Vouch` events. L5 is granted once vouchers hold more than a third of the
//!    trust of the other active members, and a TPM backs at most one member.
//!
//! TrustZone has a seam here and nothing behind it: its evidence is never verified, so a
//! TrustZone claim counts as L4 with [`LevelReason::NoVerifier`]. No provider that is not a
//! real hardware check may ever return `Ok` from [`Verifier::verify`].

use crate::event::{Attestation, AttestationKind, Level};
use crate::genesis::Genesis;
use crate::identity::MemberId;
use crate::tpm;
use std::fmt;

/// Why a member holds its level. Shown in the API beside the level; the level itself (not
/// the reason) is part of the state root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LevelReason {
    /// The member claimed L4.
    ClaimedL4,
    /// L5 was claimed with no evidence.
    NoEvidence,
    /// No verifier for this provider exists (TrustZone), or the genesis lists no TPM roots.
    NoVerifier(AttestationKind),
    /// The evidence was checked and refused; the text says which check failed.
    Refused(String),
    /// The evidence is valid but its TPM already backs this other member.
    HardwareInUse(MemberId),
    /// Valid evidence; waiting for members to run credential activation and vouch.
    AwaitingVouches {
        /// Vouches so far.
        vouchers: u32,
    },
    /// L5: valid evidence and enough vouches.
    Attested {
        /// Vouches when L5 was granted.
        vouchers: u32,
    },
}

impl fmt::Display for LevelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClaimedL4 => write!(f, "software key (claimed L4)"),
            Self::NoEvidence => write!(f, "claimed L5 with no evidence"),
            Self::NoVerifier(AttestationKind::TrustZone) => {
                write!(f, "TrustZone evidence is not verified by this release")
            }
            Self::NoVerifier(k) => write!(f, "no verifier for {k:?} evidence on this network"),
            Self::Refused(why) => write!(f, "evidence refused: {why}"),
            Self::HardwareInUse(m) => write!(f, "this TPM already backs member {m}"),
            Self::AwaitingVouches { vouchers } => write!(
                f,
                "TPM evidence verified; awaiting credential-activation vouches ({vouchers} so far)"
            ),
            Self::Attested { vouchers } => {
                write!(f, "TPM 2.0 attested ({vouchers} vouches)")
            }
        }
    }
}

/// What the evidence of a registration establishes, before vouches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The member counts as L4, for this reason.
    Software(LevelReason),
    /// Valid hardware evidence: L5 once vouched, if the hardware backs no other member.
    Hardware(tpm::Verified),
}

/// Checks hardware evidence. Must be a pure function of its arguments.
pub trait Verifier: Send + Sync {
    /// Verifies that `evidence` binds `member`'s key (and `network`) to hardware, as of the
    /// registration time `at_ms`.
    fn verify(
        &self,
        member: &MemberId,
        network: &[u8; 32],
        at_ms: u64,
        evidence: &Attestation,
    ) -> Result<tpm::Verified, VerifyError>;
}

/// Why evidence did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Nothing can verify this provider here.
    NoVerifier,
    /// The evidence failed a check.
    Refused(String),
}

/// The verifier every node uses: TPM 2.0 against the genesis roots; nothing else.
#[derive(Debug, Clone, Default)]
pub struct GenesisVerifier {
    roots: Vec<Vec<u8>>,
    pcrs: tpm::PcrPolicy,
}

impl GenesisVerifier {
    /// The verifier for a network: its TPM roots come from the genesis.
    pub fn new(g: &Genesis) -> Self {
        Self {
            roots: g.attest_roots_der(),
            pcrs: g.pcr_policy(),
        }
    }
}

impl Verifier for GenesisVerifier {
    fn verify(
        &self,
        member: &MemberId,
        network: &[u8; 32],
        at_ms: u64,
        a: &Attestation,
    ) -> Result<tpm::Verified, VerifyError> {
        match a.kind {
            AttestationKind::Tpm2 if !self.roots.is_empty() => {
                tpm::verify(&self.roots, &self.pcrs, network, member, at_ms, &a.evidence)
                    .map_err(VerifyError::Refused)
            }
            _ => Err(VerifyError::NoVerifier),
        }
    }
}

/// A verifier that refuses every provider (tests, and networks that want no L5 at all).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHardware;

impl Verifier for NoHardware {
    fn verify(
        &self,
        _: &MemberId,
        _: &[u8; 32],
        _: u64,
        _: &Attestation,
    ) -> Result<tpm::Verified, VerifyError> {
        Err(VerifyError::NoVerifier)
    }
}

/// What a registration's evidence earns: deterministic and independent of arrival order.
pub fn claim_for(
    verifier: &dyn Verifier,
    member: &MemberId,
    network: &[u8; 32],
    at_ms: u64,
    claimed: Level,
    attestation: &Attestation,
) -> Claim {
    match claimed {
        Level::L4 => Claim::Software(LevelReason::ClaimedL4),
        Level::L5 if attestation.kind == AttestationKind::None => {
            Claim::Software(LevelReason::NoEvidence)
        }
        Level::L5 => match verifier.verify(member, network, at_ms, attestation) {
            Ok(v) => Claim::Hardware(v),
            Err(VerifyError::NoVerifier) => {
                Claim::Software(LevelReason::NoVerifier(attestation.kind))
            }
            Err(VerifyError::Refused(e)) => Claim::Software(LevelReason::Refused(e)),
        },
    }
}

/// Whether vouchers holding `vouch_weight` of trust are enough when the active members
/// other than the subject hold `others_weight`: strictly more than a third. With less than a
/// third of the trust Byzantine (the same assumption finality makes), any set of vouchers
/// over a third contains an honest member who really ran the challenge.
pub fn vouched_enough(vouch_weight: u64, others_weight: u64) -> bool {
    others_weight > 0 && u128::from(vouch_weight) * 3 > u128::from(others_weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_without_hardware_stay_software_with_a_reason() {
        let m = MemberId([1; 32]);
        let none = Attestation {
            kind: AttestationKind::None,
            evidence: vec![],
        };
        let tz = Attestation {
            kind: AttestationKind::TrustZone,
            evidence: vec![1, 2, 3],
        };
        let tpm = Attestation {
            kind: AttestationKind::Tpm2,
            evidence: vec![1, 2, 3],
        };
        let g = Genesis::default();
        let v = GenesisVerifier::new(&g);
        let net = g.network_id();
        assert_eq!(
            claim_for(&v, &m, &net, 0, Level::L5, &none),
            Claim::Software(LevelReason::NoEvidence)
        );
        // TrustZone is never verified: no L5, whatever the bytes.
        assert_eq!(
            claim_for(&v, &m, &net, 0, Level::L5, &tz),
            Claim::Software(LevelReason::NoVerifier(AttestationKind::TrustZone))
        );
        // A network without TPM roots verifies no TPM.
        assert_eq!(
            claim_for(&v, &m, &net, 0, Level::L5, &tpm),
            Claim::Software(LevelReason::NoVerifier(AttestationKind::Tpm2))
        );
        assert_eq!(
            claim_for(&v, &m, &net, 0, Level::L4, &tpm),
            Claim::Software(LevelReason::ClaimedL4)
        );
    }

    #[test]
    fn vouch_quorum_is_strictly_more_than_a_third() {
        assert!(!vouched_enough(0, 0));
        assert!(!vouched_enough(100, 300));
        assert!(vouched_enough(101, 300));
        assert!(vouched_enough(100_000, 200_000));
        assert!(!vouched_enough(u64::MAX / 3, u64::MAX));
    }
}
