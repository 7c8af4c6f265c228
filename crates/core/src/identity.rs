//! Member identities: Ed25519 keys and the LCT id derived from them.
//!
//! The core never generates randomness (it is sans-IO): callers hand it 32 secret bytes taken
//! from the operating system. The same key later becomes the libp2p PeerId, so transport
//! authentication and event signatures name the same member.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A member's public key: the member's identity everywhere in the protocol.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub [u8; 32]);

impl MemberId {
    /// The short hex used in LCT ids: the first 8 bytes of SHA-256 of the key.
    pub fn short_hash(&self) -> String {
        let digest = Sha256::digest(self.0);
        hex::encode(&digest[..8])
    }
    /// The LCT id `lct:web4:<entity_type>:<16 hex of sha256(pubkey)>`.
    pub fn lct(&self, entity_type: &str) -> String {
        format!("lct:web4:{entity_type}:{}", self.short_hash())
    }
    /// Hex of the full key, for logs and APIs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses the hex form produced by [`MemberId::to_hex`].
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = hex::decode(s).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
    /// Verifies `signature` over `message` with this key, using the strict check that refuses
    /// small-order keys and non-canonical signatures (so no signature is malleable).
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        if !memo::on() {
            return self.verify_now(message, signature);
        }
        let key = memo::key(&self.0, message, signature);
        if let Some(ok) = memo::get(&key) {
            return ok;
        }
        let ok = self.verify_now(message, signature);
        memo::put(key, ok);
        ok
    }

    fn verify_now(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(message, &sig).is_ok()
    }
}

/// Shares signature checks between the replicas of one process: the simulator runs
/// hundreds of them, and each checks every signature of the federation, so checking
/// dominated its cost (two thirds of a 30-node run) and made it quadratic in nodes. A check
/// is a pure function of (key, message, signature), so its outcome, found once by the real
/// check, is the outcome for every replica; the memo is keyed by a hash of all three, so
/// a forgery differing in any byte is checked afresh. Off unless
/// [`share_signature_checks`] switched it on: the daemon never does.
mod memo {
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, OnceLock};

    /// Outcomes kept before the memo starts over (32 bytes and a flag each: about 80 MB at
    /// most), far more than the distinct signatures of a simulated minute.
    const MEMO_MAX: usize = 1 << 20;

    static ON: AtomicBool = AtomicBool::new(false);
    static MEMO: OnceLock<Mutex<HashMap<[u8; 32], bool>>> = OnceLock::new();

    pub(super) fn on() -> bool {
        ON.load(Ordering::Relaxed)
    }

    pub(super) fn set(on: bool) {
        ON.store(on, Ordering::Relaxed);
    }

    pub(super) fn key(pk: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(pk);
        h.update(signature);
        h.update(message);
        h.finalize().into()
    }

    fn memo() -> std::sync::MutexGuard<'static, HashMap<[u8; 32], bool>> {
        MEMO.get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(key: &[u8; 32]) -> Option<bool> {
        memo().get(key).copied()
    }

    pub(super) fn put(key: [u8; 32], ok: bool) {
        let mut m = memo();
        if m.len() >= MEMO_MAX {
            m.clear();
        }
        m.insert(key, ok);
    }
}

/// Switches on the process-wide memo of signature checks (see `memo`): for the
/// simulator, whose replicas all check the same signatures. Never for a node.
pub fn share_signature_checks(on: bool) {
    memo::set(on);
}

impl serde::Serialize for MemberId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::codec::id32::serialize(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for MemberId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::codec::id32::deserialize(d).map(Self)
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex()[..16])
    }
}

/// A member's signing key. Kept out of `Debug` output so it never lands in a log.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// The key pair for a 32-byte secret seed (taken by the caller from the OS RNG).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&secret),
        }
    }
    /// The secret seed, for writing the key file.
    pub fn secret(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }
    /// The member id (public key).
    pub fn id(&self) -> MemberId {
        MemberId(self.signing.verifying_key().to_bytes())
    }
    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({:?})", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lct_format_and_signatures() {
        let kp = Keypair::from_secret([7; 32]);
        let lct = kp.id().lct("ai");
        assert!(lct.starts_with("lct:web4:ai:"));
        assert_eq!(lct.len(), "lct:web4:ai:".len() + 16);
        let sig = kp.sign(b"msg");
        assert!(kp.id().verify(b"msg", &sig));
        assert!(!kp.id().verify(b"msh", &sig));
        let mut bad = sig;
        bad[3] ^= 1;
        assert!(!kp.id().verify(b"msg", &bad));
        assert_eq!(MemberId::from_hex(&kp.id().to_hex()), Some(kp.id()));
    }
}
