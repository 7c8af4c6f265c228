//! The seam for hardware attestation (layer 6).
//!
//! A registration may claim L5; the claim counts only when a [`Verifier`] accepts its evidence
//! for this key and this network. The verifier is part of the consensus rules: it must be a
//! pure function of the evidence and the genesis, identical on every node, because the level
//! feeds the state root. This release ships no hardware verifier, so every L5 claim counts as
//! L4 with a reason; the TPM 2.0 verifier plugs in here.

use crate::event::{Attestation, AttestationKind, Level};
use crate::identity::MemberId;

/// Why a claimed L5 counts as L4. Shown in the API beside the level; not part of the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LevelReason {
    /// The member claimed L4.
    ClaimedL4,
    /// L5 with verified evidence.
    Verified,
    /// L5 was claimed with no evidence.
    NoEvidence,
    /// No verifier for this provider is configured on this network.
    NoVerifier(AttestationKind),
    /// The verifier refused the evidence.
    Refused(String),
}

/// Decides the hardware level a registration earns. Must be deterministic.
pub trait Verifier: Send + Sync {
    /// Verifies `evidence` binds `member`'s key (and `network`) to hardware.
    fn verify(
        &self,
        member: &MemberId,
        network: &[u8; 32],
        evidence: &Attestation,
    ) -> Result<(), String>;
}

/// The verifier used when the network has no hardware roots: refuses every provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHardware;

impl Verifier for NoHardware {
    fn verify(&self, _: &MemberId, _: &[u8; 32], a: &Attestation) -> Result<(), String> {
        Err(format!("no verifier for {:?} evidence", a.kind))
    }
}

/// The level a registration earns, and why.
pub fn level_for(
    verifier: &dyn Verifier,
    member: &MemberId,
    network: &[u8; 32],
    claimed: Level,
    attestation: &Attestation,
) -> (Level, LevelReason) {
    match claimed {
        Level::L4 => (Level::L4, LevelReason::ClaimedL4),
        Level::L5 if attestation.kind == AttestationKind::None => {
            (Level::L4, LevelReason::NoEvidence)
        }
        Level::L5 => match verifier.verify(member, network, attestation) {
            Ok(()) => (Level::L5, LevelReason::Verified),
            Err(e) if e.starts_with("no verifier") => {
                (Level::L4, LevelReason::NoVerifier(attestation.kind))
            }
            Err(e) => (Level::L4, LevelReason::Refused(e)),
        },
    }
}
