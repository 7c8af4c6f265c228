//! Layer 6 I/O: making credential-activation challenges (randomness and RSA) and answering
//! them with this member's TPM, off the node task (tpm2-tools takes ~0.1 s an answer).

use crate::metrics::{self, Metrics};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use web4fed_core::identity::MemberId;
use web4fed_replica::{Challenge, RequestId};
use web4fed_store::node_dir::TpmConfig;

/// An answer computed off the node task: to whom, for which request, and the credential or
/// what went wrong.
pub type Answer = (MemberId, RequestId, Result<Vec<u8>, String>);

/// Answers challenges with our TPM, one at a time (tpm2-tools flush transient objects
/// between commands, so concurrent use would break); the replica bounds how many wait.
pub struct TpmWorker {
    tpm: Option<Arc<web4fed_tpm::Tpm>>,
    lock: Arc<std::sync::Mutex<()>>,
    answers: mpsc::Sender<Answer>,
}

impl TpmWorker {
    /// A worker for this member's TPM (if it has one), and where its answers arrive.
    pub fn new(config: Option<&TpmConfig>) -> (Self, mpsc::Receiver<Answer>) {
        let (tx, rx) = mpsc::channel(web4fed_replica::limits::ATTEST_ANSWERS_IN_FLIGHT);
        let worker = Self {
            tpm: config.map(|t| Arc::new(web4fed_tpm::Tpm::new(&t.tcti, t.ak_handle))),
            lock: Arc::new(std::sync::Mutex::new(())),
            answers: tx,
        };
        (worker, rx)
    }

    /// Whether this member has a TPM.
    pub fn has_tpm(&self) -> bool {
        self.tpm.is_some()
    }

    /// A fresh challenge for a member's registration evidence, with the credential a
    /// genuine TPM releases.
    pub fn make_challenge(evidence: &[u8]) -> Result<Challenge, String> {
        let ev = web4fed_core::tpm::Evidence::decode(evidence).map_err(|e| e.to_string())?;
        let credential = web4fed_tpm::fresh_credential().to_vec();
        let c = web4fed_tpm::challenge_for(&ev, &credential).map_err(|e| e.to_string())?;
        Ok(Challenge {
            id_object: c.id_object,
            secret: c.secret,
            credential,
        })
    }

    /// Answers a challenge on a blocking thread; the answer arrives on the receiver.
    pub fn answer(
        &self,
        from: MemberId,
        request: RequestId,
        id_object: Vec<u8>,
        secret: Vec<u8>,
        metrics: Arc<Metrics>,
    ) {
        let Some(tpm) = self.tpm.clone() else {
            let _ = self
                .answers
                .try_send((from, request, Err("this member has no TPM".into())));
            return;
        };
        let (lock, tx) = (self.lock.clone(), self.answers.clone());
        tokio::task::spawn_blocking(move || {
            let challenge = web4fed_tpm::Challenge { id_object, secret };
            let started = Instant::now();
            let result = {
                let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                tpm.activate(&challenge)
            };
            let kind = if result.is_ok() {
                "answered"
            } else {
                "answer_failed"
            };
            metrics
                .attestations
                .get_or_create(&metrics::kind(kind))
                .inc();
            match &result {
                Ok(_) => {
                    tracing::info!(%from, ms = started.elapsed().as_millis() as u64, "answered a TPM challenge")
                }
                Err(e) => tracing::warn!(%from, error = %e, "TPM could not answer a challenge"),
            }
            let _ = tx.blocking_send((from, request, result.map_err(|e| e.to_string())));
        });
    }
}
