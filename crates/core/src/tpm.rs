//! TPM 2.0 attestation evidence: its wire format and the deterministic half of its
//! verification (layer 6).
//!
//! A member whose key lives beside a TPM registers with [`Evidence`]: the TPM's endorsement
//! key (EK) certificate and the intermediates up to a root listed in the genesis, the public
//! area of an attestation key (AK) the TPM created, and a `TPM2_Quote` signed by that AK
//! whose `extraData` is [`binding_digest`] of the network and the member's Ed25519 key.
//!
//! Every node checks the same things, from the bytes alone (no clock, no TPM): the chain, the
//! AK's attributes (a restricted signing key that never leaves its TPM), the quote's magic,
//! type and binding, and the AK's signature. What this cannot show is that the AK lives in the
//! *same* TPM as the EK: that takes credential activation, which is interactive. The ledger
//! therefore grants L5 only after members holding more than a third of the other members'
//! trust have run the challenge and published a `Vouch` (see `docs/PROTOCOL.md`).

use crate::codec::{DecodeError, Reader, Writer};
use crate::identity::MemberId;
use der::{Decode, Encode};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;

/// Version byte of the evidence encoding.
pub const EVIDENCE_VERSION: u8 = 1;
/// Largest certificate accepted (EK certificates are about 1 KB; vendor ones up to 2 KB).
pub const MAX_CERT_BYTES: usize = 4_096;
/// Most intermediates between an EK certificate and a root (vendors use one or two).
pub const MAX_CHAIN: usize = 4;
/// Largest TPM structure accepted (an RSA-4096 public area is under 700 bytes).
pub const MAX_TPM_STRUCT_BYTES: usize = 1_024;
/// Smallest RSA modulus accepted for roots, intermediates, EKs and AKs.
pub const MIN_RSA_BITS: usize = 2_048;
/// Largest RSA modulus accepted (bounds verification cost per registration).
pub const MAX_RSA_BITS: usize = 4_096;
/// Most roots a genesis may list.
pub const MAX_ROOTS: usize = 64;
/// Highest PCR number (TPM 2.0 PC client platforms have 24).
pub const MAX_PCR: u8 = 23;
/// Most allowed boot-state digests a genesis may list (one per known-good machine image).
pub const MAX_PCR_DIGESTS: usize = 256;

/// The boot state a member's TPM must report: which PCRs of the SHA-256 bank its quote
/// covers, and, when any are listed, the digests of those PCRs' values it may have. A quote
/// proves the values at the moment it was made, i.e. at registration; later reboots into
/// another state are not seen (see `docs/PROTOCOL.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrPolicy {
    /// PCR numbers, sorted and distinct (PCR 0 when the genesis names none).
    pub pcrs: Vec<u8>,
    /// Allowed SHA-256 digests of the selected PCR values; empty allows any.
    pub digests: Vec<[u8; 32]>,
}

impl PcrPolicy {
    /// A policy over `pcrs` (PCR 0 when empty) allowing `digests` (any when empty).
    pub fn new(pcrs: &[u8], digests: Vec<[u8; 32]>) -> Self {
        let mut pcrs = pcrs.to_vec();
        if pcrs.is_empty() {
            pcrs.push(0);
        }
        pcrs.sort_unstable();
        pcrs.dedup();
        Self { pcrs, digests }
    }

    /// The selection in tpm2-tools' syntax, e.g. `sha256:0,1,2`.
    pub fn tools_selection(&self) -> String {
        let list: Vec<String> = self.pcrs.iter().map(u8::to_string).collect();
        format!("sha256:{}", list.join(","))
    }
}

impl Default for PcrPolicy {
    fn default() -> Self {
        Self::new(&[], Vec::new())
    }
}

/// `TPM_GENERATED_VALUE`: a restricted key signs only structures that begin with it and that
/// the TPM built itself.
const TPM_GENERATED: u32 = 0xff54_4347;
const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_SHA256: u16 = 0x000b;
const TPM_ALG_NULL: u16 = 0x0010;
const TPM_ALG_RSASSA: u16 = 0x0014;
/// Object attributes the AK must have: fixedTPM, fixedParent, sensitiveDataOrigin,
/// restricted, sign.
const AK_REQUIRED: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 18);
/// Object attribute the AK must not have: decrypt.
const AK_FORBIDDEN: u32 = 1 << 17;

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";

/// The `extraData` a member's quote must carry: it binds the quote to one Ed25519 key on one
/// network, so a quote cannot be replayed for another key or on another network.
pub fn binding_digest(network: &[u8; 32], member: &MemberId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"web4fed/tpm-bind/v1");
    h.update(network);
    h.update(member.0);
    h.finalize().into()
}

/// TPM 2.0 evidence as carried in a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The endorsement key certificate (DER), as read from the TPM's NV index.
    pub ek_cert: Vec<u8>,
    /// Intermediate certificates (DER), the EK certificate's issuer first.
    pub chain: Vec<Vec<u8>>,
    /// The AK's `TPM2B_PUBLIC`, as the TPM marshals it.
    pub ak_public: Vec<u8>,
    /// The quote's `TPMS_ATTEST`, as the TPM marshals it.
    pub attest: Vec<u8>,
    /// The AK's `TPMT_SIGNATURE` over `attest`.
    pub signature: Vec<u8>,
}

impl Evidence {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(4_096);
        w.u8(EVIDENCE_VERSION);
        w.bytes16(&self.ek_cert);
        w.u8(self.chain.len() as u8);
        for c in &self.chain {
            w.bytes16(c);
        }
        w.bytes16(&self.ak_public);
        w.bytes16(&self.attest);
        w.bytes16(&self.signature);
        w.finish()
    }

    /// Decodes evidence, bounding every part.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.u8("tpm_version")? != EVIDENCE_VERSION {
            return Err(DecodeError::Invalid {
                field: "tpm_version",
                reason: "unknown evidence version",
            });
        }
        let ek_cert = r.bytes16("ek_cert", MAX_CERT_BYTES)?.to_vec();
        let n = r.u8("chain_len")? as usize;
        if n > MAX_CHAIN {
            return Err(DecodeError::Invalid {
                field: "chain_len",
                reason: "too many intermediates",
            });
        }
        let chain = (0..n)
            .map(|_| r.bytes16("chain", MAX_CERT_BYTES).map(<[u8]>::to_vec))
            .collect::<Result<_, _>>()?;
        let ev = Self {
            ek_cert,
            chain,
            ak_public: r.bytes16("ak_public", MAX_TPM_STRUCT_BYTES)?.to_vec(),
            attest: r.bytes16("attest", MAX_TPM_STRUCT_BYTES)?.to_vec(),
            signature: r.bytes16("signature", MAX_TPM_STRUCT_BYTES)?.to_vec(),
        };
        r.finish("tpm evidence")?;
        Ok(ev)
    }

    /// The AK's public area parsed, and its TPM name (`nameAlg || SHA-256(TPMT_PUBLIC)`),
    /// which credential activation binds to.
    pub fn ak(&self) -> Result<AkPublic, String> {
        AkPublic::parse(&self.ak_public)
    }

    /// The EK's RSA public key, from the EK certificate.
    pub fn ek_public_key(&self) -> Result<RsaPublicKey, String> {
        let cert = parse_cert(&self.ek_cert, "EK certificate")?;
        rsa_key(&cert, "EK certificate")
    }
}

/// An attestation key's public area.
#[derive(Debug, Clone)]
pub struct AkPublic {
    /// The RSA public key.
    pub key: RsaPublicKey,
    /// The TPM name: `0x000b || SHA-256(TPMT_PUBLIC)`.
    pub name: Vec<u8>,
}

impl AkPublic {
    /// Parses a `TPM2B_PUBLIC` of an RSA signing key and checks the attributes of an AK.
    pub fn parse(tpm2b: &[u8]) -> Result<Self, String> {
        let mut r = Be::new(tpm2b);
        let size = r.u16()? as usize;
        let body = r.take(size)?;
        r.end("AK public")?;
        let mut p = Be::new(body);
        let alg = p.u16()?;
        if alg != TPM_ALG_RSA {
            return Err(format!("AK type 0x{alg:04x} is not RSA"));
        }
        if p.u16()? != TPM_ALG_SHA256 {
            return Err("AK name algorithm is not SHA-256".into());
        }
        let attrs = p.u32()?;
        if attrs & AK_REQUIRED != AK_REQUIRED || attrs & AK_FORBIDDEN != 0 {
            return Err(format!(
                "AK attributes 0x{attrs:08x} are not those of a restricted signing key that never leaves its TPM"
            ));
        }
        let _auth_policy = p.tpm2b()?;
        if p.u16()? != TPM_ALG_NULL {
            return Err("AK has a symmetric algorithm (a storage key, not an AK)".into());
        }
        match p.u16()? {
            TPM_ALG_RSASSA => {
                if p.u16()? != TPM_ALG_SHA256 {
                    return Err("AK scheme hash is not SHA-256".into());
                }
            }
            TPM_ALG_NULL => {}
            s => return Err(format!("AK scheme 0x{s:04x} is not RSASSA")),
        }
        let bits = p.u16()? as usize;
        let exponent = match p.u32()? {
            0 => 65_537,
            e => e,
        };
        let modulus = p.tpm2b()?;
        p.end("AK public area")?;
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) || modulus.len() * 8 != bits {
            return Err(format!("AK modulus of {bits} bits is out of bounds"));
        }
        let key = RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(modulus),
            rsa::BigUint::from(exponent),
        )
        .map_err(|e| format!("AK key: {e}"))?;
        let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(&Sha256::digest(body));
        Ok(Self { key, name })
    }
}

/// What verified evidence establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// SHA-256 of the EK's SubjectPublicKeyInfo: one TPM, whichever AK it made. A TPM backs
    /// at most one member of a network.
    pub hardware_id: [u8; 32],
    /// SHA-256 of the quoted PCR values: the boot state the TPM reported at registration.
    pub pcr_digest: [u8; 32],
}

/// Checks evidence against the genesis roots for `member` on `network`, deterministically.
/// `at_ms` is the registration's timestamp: certificates must be valid then.
pub fn verify(
    roots: &[Vec<u8>],
    policy: &PcrPolicy,
    network: &[u8; 32],
    member: &MemberId,
    at_ms: u64,
    evidence: &[u8],
) -> Result<Verified, String> {
    if roots.is_empty() {
        return Err("no TPM roots in the genesis".into());
    }
    let ev = Evidence::decode(evidence).map_err(|e| format!("malformed evidence: {e}"))?;
    // 1. The endorsement certificate chains to a genesis root.
    let ek = parse_cert(&ev.ek_cert, "EK certificate")?;
    let chain: Vec<Certificate> = ev
        .chain
        .iter()
        .map(|c| parse_cert(c, "intermediate certificate"))
        .collect::<Result<_, _>>()?;
    let roots: Vec<Certificate> = roots
        .iter()
        .map(|c| parse_cert(c, "genesis root"))
        .collect::<Result<_, _>>()?;
    let at_s = at_ms / 1_000;
    within_validity(&ek, at_s, "EK certificate")?;
    let mut child = &ek;
    for (i, parent) in chain.iter().enumerate() {
        within_validity(parent, at_s, "intermediate certificate")?;
        check_issued(child, parent, &format!("intermediate {i}"))?;
        child = parent;
    }
    let root = roots
        .iter()
        .find(|r| name_der(&r.tbs_certificate.subject) == name_der(&child.tbs_certificate.issuer))
        .ok_or("the certificate chain does not end at a root listed in the genesis")?;
    check_issued(child, root, "genesis root")?;
    // Credential activation encrypts to this key, so it must be an RSA key we accept.
    rsa_key(&ek, "EK certificate")?;
    // 2. The AK is a restricted signing key.
    let ak = ev.ak()?;
    // 3. The quote was made by the TPM with this AK, for this key on this network.
    let mut a = Be::new(&ev.attest);
    if a.u32()? != TPM_GENERATED {
        return Err("quote lacks TPM_GENERATED_VALUE".into());
    }
    if a.u16()? != TPM_ST_ATTEST_QUOTE {
        return Err("attestation is not a quote".into());
    }
    let _qualified_signer = a.tpm2b()?;
    let extra = a.tpm2b()?;
    if extra != binding_digest(network, member) {
        return Err("the quote is bound to another key or network (replayed quote)".into());
    }
    let pcr_digest = quoted_boot_state(&mut a, policy)?;
    let mut s = Be::new(&ev.signature);
    if s.u16()? != TPM_ALG_RSASSA || s.u16()? != TPM_ALG_SHA256 {
        return Err("quote signature is not RSASSA with SHA-256".into());
    }
    let sig = s.tpm2b()?;
    s.end("quote signature")?;
    let sig = Signature::try_from(sig).map_err(|e| format!("quote signature: {e}"))?;
    VerifyingKey::<Sha256>::new(ak.key.clone())
        .verify(&ev.attest, &sig)
        .map_err(|_| "the quote's signature does not verify under the AK".to_string())?;
    let spki = ek
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("EK key: {e}"))?;
    Ok(Verified {
        hardware_id: Sha256::digest(&spki).into(),
        pcr_digest,
    })
}

/// Reads the rest of a quote (`clockInfo`, `firmwareVersion`, `TPMS_QUOTE_INFO`) and checks
/// the PCRs it covers and their digest against the policy. Returns the digest.
fn quoted_boot_state(a: &mut Be<'_>, policy: &PcrPolicy) -> Result<[u8; 32], String> {
    a.take(17)?; // clockInfo: clock, resetCount, restartCount, safe
    a.take(8)?; // firmwareVersion
    if a.u32()? != 1 {
        return Err("the quote must cover exactly one PCR bank (SHA-256)".into());
    }
    if a.u16()? != TPM_ALG_SHA256 {
        return Err("the quote covers a PCR bank other than SHA-256".into());
    }
    let n = a.take(1)?[0] as usize;
    let bitmap = a.take(n)?;
    let covered: Vec<u8> = (0..bitmap.len() * 8)
        .filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
        .map(|i| i as u8)
        .collect();
    if covered != policy.pcrs {
        return Err(format!(
            "the quote covers PCRs {covered:?}; the genesis asks for {:?}",
            policy.pcrs
        ));
    }
    let digest: [u8; 32] = a
        .tpm2b()?
        .try_into()
        .map_err(|_| "the quote's PCR digest is not SHA-256".to_string())?;
    a.end("quote")?;
    if !policy.digests.is_empty() && !policy.digests.contains(&digest) {
        return Err(format!(
            "boot state not allowed by the genesis (PCR digest {})",
            hex::encode(digest)
        ));
    }
    Ok(digest)
}

/// Decodes a PEM certificate (as written in a genesis file) to DER, checking it parses.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let (label, der) = der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| e.to_string())?;
    if label != "CERTIFICATE" {
        return Err(format!("PEM label {label}, expected CERTIFICATE"));
    }
    parse_cert(&der, "root")?;
    Ok(der)
}

/// Trims bytes after a DER value's end (TPM NV indices may be larger than the certificate).
pub fn trim_der(bytes: &[u8]) -> Vec<u8> {
    let len = (|| {
        let mut r = der::SliceReader::new(bytes).ok()?;
        let header = der::Header::decode(&mut r).ok()?;
        let hl: usize = header.encoded_len().ok()?.try_into().ok()?;
        let vl: usize = header.length.try_into().ok()?;
        Some((hl + vl).min(bytes.len()))
    })();
    bytes[..len.unwrap_or(bytes.len())].to_vec()
}

fn parse_cert(der: &[u8], what: &str) -> Result<Certificate, String> {
    Certificate::from_der(der).map_err(|e| format!("{what} is not a DER certificate: {e}"))
}

fn name_der(n: &x509_cert::name::Name) -> Vec<u8> {
    n.to_der().unwrap_or_default()
}

fn within_validity(c: &Certificate, at_s: u64, what: &str) -> Result<(), String> {
    let v = &c.tbs_certificate.validity;
    let from = v.not_before.to_unix_duration().as_secs();
    let until = v.not_after.to_unix_duration().as_secs();
    if at_s < from || at_s > until {
        return Err(format!(
            "{what} is not valid at the registration time ({at_s} s; valid {from}..{until})"
        ));
    }
    Ok(())
}

fn rsa_key(c: &Certificate, what: &str) -> Result<RsaPublicKey, String> {
    let spki = &c.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid.to_string() != OID_RSA {
        return Err(format!(
            "{what}: key algorithm {} is not RSA (only RSA is verified here)",
            spki.algorithm.oid
        ));
    }
    let key = RsaPublicKey::from_pkcs1_der(spki.subject_public_key.raw_bytes())
        .map_err(|e| format!("{what}: RSA key: {e}"))?;
    let bits = key.size() * 8;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(format!("{what}: RSA key of {bits} bits is out of bounds"));
    }
    Ok(key)
}

/// Checks that `parent` issued `child`: names match, the parent is a CA, and its signature
/// over the child's to-be-signed part verifies.
fn check_issued(child: &Certificate, parent: &Certificate, what: &str) -> Result<(), String> {
    if name_der(&child.tbs_certificate.issuer) != name_der(&parent.tbs_certificate.subject) {
        return Err(format!("{what}: issuer and subject names differ"));
    }
    let is_ca = parent
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_BASIC_CONSTRAINTS)
        .and_then(|e| {
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()).ok()
        })
        .is_some_and(|b| b.ca);
    if !is_ca {
        return Err(format!("{what}: the issuer is not a CA"));
    }
    let key = rsa_key(parent, what)?;
    let tbs = child
        .tbs_certificate
        .to_der()
        .map_err(|e| format!("{what}: {e}"))?;
    let sig = child
        .signature
        .as_bytes()
        .ok_or_else(|| format!("{what}: signature has unused bits"))?;
    let sig = Signature::try_from(sig).map_err(|e| format!("{what}: {e}"))?;
    let alg = child.signature_algorithm.oid.to_string();
    let ok = match alg.as_str() {
        OID_RSA_SHA256 => VerifyingKey::<Sha256>::new(key).verify(&tbs, &sig).is_ok(),
        OID_RSA_SHA384 => VerifyingKey::<Sha384>::new(key).verify(&tbs, &sig).is_ok(),
        OID_RSA_SHA512 => VerifyingKey::<Sha512>::new(key).verify(&tbs, &sig).is_ok(),
        other => {
            return Err(format!(
                "{what}: signature algorithm {other} is not supported"
            ))
        }
    };
    if !ok {
        return Err(format!("{what}: the certificate signature does not verify"));
    }
    Ok(())
}

/// A big-endian reader for TPM structures, failing with a message instead of panicking.
struct Be<'a> {
    buf: &'a [u8],
}

impl<'a> Be<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("TPM structure truncated".into());
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().unwrap_or([0; 2]),
        ))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn tpm2b(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    fn end(&self, what: &str) -> Result<(), String> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!("{what}: trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_evidence_is_an_error_never_a_panic() {
        let net = [7; 32];
        let m = MemberId([1; 32]);
        let roots = vec![vec![0x30, 0x00]];
        assert!(verify(&roots, &PcrPolicy::default(), &net, &m, 0, &[]).is_err());
        assert!(verify(&[], &PcrPolicy::default(), &net, &m, 0, &[1])
            .unwrap_err()
            .contains("no TPM roots"));
        let ev = Evidence {
            ek_cert: vec![0x30, 0x82, 0xff, 0xff],
            chain: vec![vec![1, 2, 3]],
            ak_public: vec![0, 200],
            attest: vec![],
            signature: vec![0xff; 3],
        };
        let bytes = ev.encode();
        assert_eq!(Evidence::decode(&bytes).unwrap(), ev);
        for cut in 0..bytes.len() {
            let _ = verify(&roots, &PcrPolicy::default(), &net, &m, 0, &bytes[..cut]);
        }
        assert!(AkPublic::parse(&[0, 4, 0, 1, 0, 11]).is_err());
    }
}
