//! Proof of work (layer 1, Sybil resistance): SHA-256 over a domain tag, the network id, the
//! public key, the difficulty and a nonce must have at least D leading zero bits.
//!
//! The difficulty is committed inside the hash (NIP-13's lesson), so a proof mined at a low
//! difficulty can never be passed off as a high one. "Bits" always means leading zero bits.
//! Verifying is one hash; mining is exposed in ranges so the caller can show progress.

use crate::identity::MemberId;
use sha2::{Digest, Sha256};

/// Domain separation tag: a PoW hash can never collide with any other hash in the protocol.
const POW_DOMAIN: &[u8] = b"web4fed/pow/v1";

/// Highest difficulty accepted; above this a proof is refused (256 bits cannot be met, and a
/// ceiling keeps a hostile genesis from asking for the impossible).
pub const POW_BITS_MAX: u8 = 64;

/// A proof of work: the difficulty it was mined for and the nonce that meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pow {
    /// Claimed difficulty in leading zero bits; committed inside the hash.
    pub bits: u8,
    /// The nonce found by mining.
    pub nonce: u64,
}

/// The PoW hash for one nonce.
pub fn pow_hash(network: &[u8; 32], member: &MemberId, bits: u8, nonce: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(POW_DOMAIN);
    h.update(network);
    h.update(member.0);
    h.update([bits]);
    h.update(nonce.to_be_bytes());
    h.finalize().into()
}

/// Leading zero bits of a hash.
pub fn leading_zero_bits(hash: &[u8; 32]) -> u32 {
    let mut n = 0;
    for b in hash {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// Why a proof of work was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// The proof claims fewer bits than the network requires.
    #[error("proof claims {claimed} bits, network requires {required}")]
    BelowDifficulty {
        /// Bits claimed by the proof.
        claimed: u8,
        /// Bits the genesis requires.
        required: u8,
    },
    /// The claimed difficulty is above [`POW_BITS_MAX`].
    #[error("proof claims {0} bits, above the ceiling of {POW_BITS_MAX}")]
    AboveCeiling(u8),
    /// The hash does not have the claimed number of leading zero bits.
    #[error("hash has {found} leading zero bits, proof claims {claimed}")]
    HashDoesNotMeetClaim {
        /// Leading zero bits actually found.
        found: u32,
        /// Bits claimed.
        claimed: u8,
    },
}

/// Verifies a proof against the network's required difficulty. One hash.
pub fn verify(
    network: &[u8; 32],
    member: &MemberId,
    pow: Pow,
    required: u8,
) -> Result<(), PowError> {
    if pow.bits > POW_BITS_MAX {
        return Err(PowError::AboveCeiling(pow.bits));
    }
    if pow.bits < required {
        return Err(PowError::BelowDifficulty {
            claimed: pow.bits,
            required,
        });
    }
    let found = leading_zero_bits(&pow_hash(network, member, pow.bits, pow.nonce));
    if found < u32::from(pow.bits) {
        return Err(PowError::HashDoesNotMeetClaim {
            found,
            claimed: pow.bits,
        });
    }
    Ok(())
}

/// Tries `count` nonces starting at `start`; returns the first that meets `bits`. The caller
/// loops over ranges, which lets it show a progress bar and stop when asked.
pub fn mine_range(
    network: &[u8; 32],
    member: &MemberId,
    bits: u8,
    start: u64,
    count: u64,
) -> Option<Pow> {
    // Hash the fixed prefix once; only the nonce changes per attempt.
    let mut prefix = Sha256::new();
    prefix.update(POW_DOMAIN);
    prefix.update(network);
    prefix.update(member.0);
    prefix.update([bits]);
    let end = start.saturating_add(count);
    (start..end).find_map(|nonce| {
        let mut h = prefix.clone();
        h.update(nonce.to_be_bytes());
        let hash: [u8; 32] = h.finalize().into();
        (leading_zero_bits(&hash) >= u32::from(bits)).then_some(Pow { bits, nonce })
    })
}

/// Mines to completion with no progress reporting (tests and the simulator).
pub fn mine(network: &[u8; 32], member: &MemberId, bits: u8) -> Pow {
    let mut start = 0u64;
    loop {
        if let Some(p) = mine_range(network, member, bits, start, 1 << 16) {
            return p;
        }
        start += 1 << 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mined_proof_verifies_and_difficulty_is_committed() {
        let net = [1u8; 32];
        let m = MemberId([2; 32]);
        let p = mine(&net, &m, 8);
        assert_eq!(verify(&net, &m, p, 8), Ok(()));
        assert!(matches!(
            verify(&net, &m, p, 9),
            Err(PowError::BelowDifficulty { .. })
        ));
        // Claiming a higher difficulty for the same nonce changes the hash: refused.
        let inflated = Pow { bits: 20, ..p };
        assert!(matches!(
            verify(&net, &m, inflated, 8),
            Err(PowError::HashDoesNotMeetClaim { .. })
        ));
        // The proof is bound to the key and the network.
        assert!(verify(&net, &MemberId([3; 32]), p, 8).is_err());
        assert!(verify(&[9; 32], &m, p, 8).is_err());
    }

    #[test]
    fn leading_zero_bits_counts() {
        let mut h = [0u8; 32];
        h[2] = 0x10;
        assert_eq!(leading_zero_bits(&h), 19);
        assert_eq!(leading_zero_bits(&[0; 32]), 256);
    }
}
