//! The TPM side of hardware attestation (layer 6).
//!
//! - [`Tpm::provision`] (at `web4fed init --attest tpm`): creates an attestation key in the
//!   TPM, persists it, reads the endorsement certificate and quotes the member's binding
//!   digest, giving the [`Evidence`] that goes into the registration.
//! - [`make_credential`] (on any node, no TPM needed): the verifier's half of credential
//!   activation, `TPM2_MakeCredential` computed in software against the EK public key from
//!   the evidence and the AK name.
//! - [`Tpm::activate`] (on the attesting node): `TPM2_ActivateCredential`, which the TPM only
//!   completes when it holds both the EK and the named AK.
//!
//! The TPM is driven through `tpm2-tools` (Debian's package; on a Jetson or workstation with a
//! TPM, the same package against `/dev/tpmrm0`). This keeps the binary free of C libraries,
//! so it still cross-builds for aarch64 without an aarch64 TSS; the cost is a process per TPM
//! command, about 10 ms each on swtpm.
#![forbid(unsafe_code)]

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use rsa::{Oaep, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use web4fed_core::identity::MemberId;
pub use web4fed_core::tpm::Evidence;
use web4fed_core::tpm::{binding_digest, trim_der, PcrPolicy};

/// Persistent handle of the attestation key by default (the TCG provisioning guide's range
/// for owner keys; the EK conventionally sits at 0x81010001).
pub const DEFAULT_AK_HANDLE: u32 = 0x8101_0002;
/// NV index of the RSA-2048 EK certificate (TCG EK Credential Profile).
pub const EK_CERT_NV_INDEX: u32 = 0x01c0_0002;
/// Default TCTI: the kernel's resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";
/// Longest one tpm2-tools command may take before it is killed (a hung TPM or socket).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of the credential a verifier asks the TPM to release (one SHA-256 digest).
pub const CREDENTIAL_BYTES: usize = 32;
/// Magic and version of tpm2-tools' credential file (`tpm2_makecredential -o`).
const CRED_FILE_MAGIC: u32 = 0xbadc_c0de;
const CRED_FILE_VERSION: u32 = 1;
/// Largest credential blob or encrypted secret accepted from the network.
pub const MAX_CHALLENGE_PART: usize = 1_024;

/// Why a TPM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// A tpm2-tools command failed; its stderr says why.
    #[error("{command} failed: {stderr}")]
    Command {
        /// The command.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// tpm2-tools is not installed.
    #[error("tpm2-tools is not installed ({0}): apt-get install tpm2-tools")]
    Missing(String),
    /// A command did not finish in time.
    #[error("{0} did not finish within {COMMAND_TIMEOUT:?}")]
    Timeout(String),
    /// Local I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Bad input (evidence, chain, challenge).
    #[error("{0}")]
    Invalid(String),
}

/// A TPM reached through a TCTI string (`device:/dev/tpmrm0`, `swtpm:host=H,port=P`, ...).
#[derive(Debug, Clone)]
pub struct Tpm {
    /// The TCTI tpm2-tools use.
    pub tcti: String,
    /// Where the attestation key is persisted.
    pub ak_handle: u32,
}

impl Tpm {
    /// A TPM at `tcti` with its AK at `ak_handle`.
    pub fn new(tcti: impl Into<String>, ak_handle: u32) -> Self {
        Self {
            tcti: tcti.into(),
            ak_handle,
        }
    }

    fn handle(&self) -> String {
        format!("0x{:08x}", self.ak_handle)
    }

    /// Runs one tpm2-tools command in `dir`, returning its stdout.
    fn run(&self, dir: &Path, tool: &str, args: &[&str]) -> Result<Vec<u8>, TpmError> {
        let mut child = Command::new(tool)
            .args(args)
            .current_dir(dir)
            .env("TPM2TOOLS_TCTI", &self.tcti)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TpmError::Missing(tool.into()),
                _ => TpmError::Io(e),
            })?;
        let start = Instant::now();
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if start.elapsed() > COMMAND_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TpmError::Timeout(tool.into()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(TpmError::Command {
                command: format!("{tool} {}", args.join(" ")),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// SHA-256 over the current values of the policy's PCRs, in order: what a quote made now
    /// would report, and what a genesis lists as an allowed boot state for this machine.
    pub fn pcr_digest(&self, pcrs: &PcrPolicy) -> Result<[u8; 32], TpmError> {
        let tmp = tempfile::tempdir()?;
        let d = tmp.path();
        self.run(
            d,
            "tpm2_pcrread",
            &[&pcrs.tools_selection(), "-o", "pcrs.bin"],
        )?;
        let values = std::fs::read(d.join("pcrs.bin"))?;
        if values.len() != 32 * pcrs.pcrs.len() {
            return Err(TpmError::Command {
                command: format!("tpm2_pcrread {}", pcrs.tools_selection()),
                stderr: format!(
                    "{} bytes of PCR values, expected {}",
                    values.len(),
                    32 * pcrs.pcrs.len()
                ),
            });
        }
        Ok(Sha256::digest(&values).into())
    }

    /// Flushes transient objects and sessions. Without a resource manager (swtpm reached
    /// directly) each tool leaves its objects loaded, and the TPM's few slots fill up.
    fn flush(&self, dir: &Path) {
        let _ = self.run(dir, "tpm2_flushcontext", &["-t"]);
        let _ = self.run(dir, "tpm2_flushcontext", &["-l"]);
    }

    /// Creates and persists an attestation key, and returns evidence binding `member` on
    /// `network` to this TPM. `chain_pem` holds the intermediates from the EK certificate's
    /// issuer up to (not including) a genesis root. Replaces any key at the AK handle.
    pub fn provision(
        &self,
        network: &[u8; 32],
        member: &MemberId,
        chain_pem: &str,
        pcrs: &PcrPolicy,
    ) -> Result<Evidence, TpmError> {
        let chain = pem_chain(chain_pem)?;
        let tmp = tempfile::tempdir()?;
        let d = tmp.path();
        let handle = self.handle();
        self.flush(d);
        // A key left at the handle by an earlier init; absence is not an error.
        let _ = self.run(d, "tpm2_evictcontrol", &["-C", "o", "-c", &handle]);
        self.run(
            d,
            "tpm2_createek",
            &["-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"],
        )?;
        self.flush(d);
        self.run(
            d,
            "tpm2_createak",
            &[
                "-C", "ek.ctx", "-c", "ak.ctx", "-G", "rsa", "-g", "sha256", "-s", "rsassa", "-u",
                "ak.pub", "-n", "ak.name", "-f", "tss",
            ],
        )?;
        self.flush(d);
        self.run(
            d,
            "tpm2_evictcontrol",
            &["-C", "o", "-c", "ak.ctx", &handle],
        )?;
        self.flush(d);
        let nv = format!("0x{EK_CERT_NV_INDEX:08x}");
        self.run(d, "tpm2_nvread", &[&nv, "-o", "ek.der"])?;
        let binding = hex::encode(binding_digest(network, member));
        self.run(
            d,
            "tpm2_quote",
            &[
                "-c",
                &handle,
                "-l",
                &pcrs.tools_selection(),
                "-q",
                &binding,
                "-m",
                "attest.bin",
                "-s",
                "sig.bin",
                "-g",
                "sha256",
            ],
        )?;
        self.flush(d);
        Ok(Evidence {
            ek_cert: trim_der(&std::fs::read(d.join("ek.der"))?),
            chain,
            ak_public: std::fs::read(d.join("ak.pub"))?,
            attest: std::fs::read(d.join("attest.bin"))?,
            signature: std::fs::read(d.join("sig.bin"))?,
        })
    }

    /// Answers a credential-activation challenge: the TPM releases the credential only if
    /// it holds the EK the challenge was encrypted to and the AK it names.
    pub fn activate(&self, challenge: &Challenge) -> Result<Vec<u8>, TpmError> {
        challenge.check_bounds()?;
        let tmp = tempfile::tempdir()?;
        let d = tmp.path();
        std::fs::write(d.join("cred.blob"), challenge.to_tools_file())?;
        let handle = self.handle();
        self.flush(d);
        self.run(d, "tpm2_createek", &["-c", "ek.ctx", "-G", "rsa"])?;
        self.flush(d);
        self.run(
            d,
            "tpm2_startauthsession",
            &["--policy-session", "-S", "s.ctx"],
        )?;
        let result = self
            .run(d, "tpm2_policysecret", &["-S", "s.ctx", "-c", "e"])
            .and_then(|_| {
                self.run(
                    d,
                    "tpm2_activatecredential",
                    &[
                        "-c",
                        &handle,
                        "-C",
                        "ek.ctx",
                        "-i",
                        "cred.blob",
                        "-o",
                        "secret.out",
                        "-P",
                        "session:s.ctx",
                    ],
                )
            });
        let _ = self.run(d, "tpm2_flushcontext", &["s.ctx"]);
        self.flush(d);
        result?;
        Ok(std::fs::read(d.join("secret.out"))?)
    }
}

/// Splits a PEM bundle into DER certificates.
fn pem_chain(pem: &str) -> Result<Vec<Vec<u8>>, TpmError> {
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end_marker = "-----END CERTIFICATE-----";
        let end = rest[start..]
            .find(end_marker)
            .ok_or_else(|| TpmError::Invalid("unterminated PEM certificate".into()))?
            + start
            + end_marker.len();
        let der = web4fed_core::tpm::pem_to_der(&rest[start..end]).map_err(TpmError::Invalid)?;
        out.push(der);
        rest = &rest[end..];
    }
    if out.len() > web4fed_core::tpm::MAX_CHAIN {
        return Err(TpmError::Invalid(format!(
            "{} intermediates; at most {}",
            out.len(),
            web4fed_core::tpm::MAX_CHAIN
        )));
    }
    Ok(out)
}

/// A credential-activation challenge: `TPM2B_ID_OBJECT` and `TPM2B_ENCRYPTED_SECRET`
/// contents, as `TPM2_MakeCredential` returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The credential blob (HMAC and encrypted credential).
    pub id_object: Vec<u8>,
    /// The seed, encrypted to the EK.
    pub secret: Vec<u8>,
}

impl Challenge {
    fn check_bounds(&self) -> Result<(), TpmError> {
        if self.id_object.len() > MAX_CHALLENGE_PART || self.secret.len() > MAX_CHALLENGE_PART {
            return Err(TpmError::Invalid("challenge parts too large".into()));
        }
        Ok(())
    }

    /// tpm2-tools' credential file: magic, version, then both parts as `TPM2B`s.
    pub fn to_tools_file(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(12 + self.id_object.len() + self.secret.len());
        f.extend_from_slice(&CRED_FILE_MAGIC.to_be_bytes());
        f.extend_from_slice(&CRED_FILE_VERSION.to_be_bytes());
        f.extend_from_slice(&(self.id_object.len() as u16).to_be_bytes());
        f.extend_from_slice(&self.id_object);
        f.extend_from_slice(&(self.secret.len() as u16).to_be_bytes());
        f.extend_from_slice(&self.secret);
        f
    }
}

/// The TPM's key derivation function (TPM 2.0 Part 1, KDFa: SP 800-108 counter mode with
/// HMAC-SHA-256); `label` is given without its terminating zero, which is added.
fn kdfa(key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(bytes + 32);
    let mut counter = 1u32;
    while out.len() < bytes {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(&counter.to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
        counter += 1;
    }
    out.truncate(bytes);
    out
}

/// `TPM2_MakeCredential` in software, for an RSA-2048 EK with the default EK template
/// (SHA-256 name algorithm, AES-128-CFB symmetric): only the TPM holding that EK, with the
/// AK named `ak_name` loaded, can recover `credential`.
pub fn make_credential(
    ek: &RsaPublicKey,
    ak_name: &[u8],
    credential: &[u8],
) -> Result<Challenge, TpmError> {
    if credential.len() > 32 {
        return Err(TpmError::Invalid("credential longer than a digest".into()));
    }
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let secret = ek
        .encrypt(
            &mut rand_core::OsRng,
            Oaep::new_with_label::<Sha256, _>("IDENTITY\0"),
            &seed,
        )
        .map_err(|e| TpmError::Invalid(format!("encrypting to the EK: {e}")))?;
    let sym_key = kdfa(&seed, "STORAGE", ak_name, &[], 128);
    let mut enc_identity = Vec::with_capacity(2 + credential.len());
    enc_identity.extend_from_slice(&(credential.len() as u16).to_be_bytes());
    enc_identity.extend_from_slice(credential);
    cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(&sym_key, &[0u8; 16])
        .map_err(|e| TpmError::Invalid(e.to_string()))?
        .encrypt(&mut enc_identity);
    let hmac_key = kdfa(&seed, "INTEGRITY", &[], &[], 256);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&hmac_key).expect("HMAC takes any key");
    mac.update(&enc_identity);
    mac.update(ak_name);
    let outer = mac.finalize().into_bytes();
    let mut id_object = Vec::with_capacity(2 + outer.len() + enc_identity.len());
    id_object.extend_from_slice(&(outer.len() as u16).to_be_bytes());
    id_object.extend_from_slice(&outer);
    id_object.extend_from_slice(&enc_identity);
    Ok(Challenge { id_object, secret })
}

/// A fresh random credential for a challenge.
pub fn fresh_credential() -> [u8; CREDENTIAL_BYTES] {
    let mut c = [0u8; CREDENTIAL_BYTES];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut c);
    c
}

/// Makes the challenge for a member's registration evidence: encrypted to the EK in its
/// certificate, bound to the AK in it.
pub fn challenge_for(evidence: &Evidence, credential: &[u8]) -> Result<Challenge, TpmError> {
    let ek = evidence.ek_public_key().map_err(TpmError::Invalid)?;
    let ak = evidence.ak().map_err(TpmError::Invalid)?;
    make_credential(&ek, &ak.name, credential)
}

/// Whether an answer equals the credential, in time independent of where they differ.
pub fn answer_matches(expected: &[u8], answer: &[u8]) -> bool {
    expected.len() == answer.len()
        && expected
            .iter()
            .zip(answer)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// SHA-256, for callers that fingerprint evidence.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_is_counter_mode_hmac_with_a_terminated_label() {
        // Independent computation of the first block.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"k").unwrap();
        mac.update(&1u32.to_be_bytes());
        mac.update(b"STORAGE\0");
        mac.update(b"u");
        mac.update(&128u32.to_be_bytes());
        let first = mac.finalize().into_bytes();
        assert_eq!(kdfa(b"k", "STORAGE", b"u", &[], 128), first[..16].to_vec());
        assert_eq!(kdfa(b"k", "INTEGRITY", &[], &[], 512).len(), 64);
    }

    #[test]
    fn tools_file_has_the_magic_and_both_parts() {
        let c = Challenge {
            id_object: vec![1, 2, 3],
            secret: vec![4, 5],
        };
        let f = c.to_tools_file();
        assert_eq!(&f[..8], &[0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1]);
        assert_eq!(&f[8..], &[0, 3, 1, 2, 3, 0, 2, 4, 5]);
        assert!(answer_matches(&[1, 2], &[1, 2]));
        assert!(!answer_matches(&[1, 2], &[1, 3]));
        assert!(!answer_matches(&[1, 2], &[1]));
    }
}

pub mod swtpm;
