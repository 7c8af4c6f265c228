//! Certificates from elsewhere: which to take, and retrying those this replica cannot
//! check yet (it lacks events they cover, or the heights before them).

use crate::io::Counters;
use crate::io::{Acceptance, Source};
use crate::limits::{FUTURE_EPOCH_MARGIN, PENDING_CERTS_MAX, PENDING_CERT_TRIES};
use crate::replica::Replica;
use web4fed_core::finality::{CertError, Certificate};
use web4fed_core::identity::MemberId;

/// Errors that mean "not checkable yet": the certificate is kept and tried again after a
/// sync, rather than refused. `RootMismatch` is among them: a replica missing some of the
/// certified events computes another root until the sync brings them.
fn retry_later(e: &CertError) -> bool {
    matches!(
        e,
        CertError::MissingEvents
            | CertError::MissingHeights { .. }
            | CertError::Unverifiable(_)
            | CertError::RootMismatch { .. }
    )
}

impl Replica {
    pub(crate) fn on_certificate(
        &mut self,
        now_ms: u64,
        from: MemberId,
        c: Certificate,
    ) -> Acceptance {
        if c.at.height < self.ledger.next_height() {
            return Acceptance::Ignore;
        }
        if !self.plausible_certificate(now_ms, &c) {
            Counters::bump(&mut self.counters.rejected, "implausible_certificate");
            self.strike(now_ms, from);
            return Acceptance::Reject;
        }
        match self.ledger.handle_certificate(c.clone()) {
            Ok(()) => {
                self.drain_ledger(now_ms, Source::Gossip);
                Acceptance::Accept
            }
            Err(e) if retry_later(&e) => {
                self.hold_certificate(c);
                self.start_sync(now_ms, from, "certificate_early");
                Acceptance::Ignore
            }
            Err(_) => Acceptance::Reject,
        }
    }

    /// The checks a certificate passes before the ledger checks its signatures against the
    /// height's validator set: an epoch not beyond now (plus a margin for clocks), at least
    /// one signer, signers in order without repeats. Not current membership: a member ejected
    /// since (a double voter) precommitted validly while it was a validator (found by
    /// `finality-byzantine` seed 12, where a node refused the certificate it lacked).
    pub(crate) fn plausible_certificate(&self, now_ms: u64, c: &Certificate) -> bool {
        let now_epoch = now_ms / self.genesis().epoch_ms;
        c.body.epoch <= now_epoch + FUTURE_EPOCH_MARGIN
            && !c.signatures.is_empty()
            && c.signatures.len() <= web4fed_core::finality::MAX_CERT_SIGNERS
            && c.signatures.windows(2).all(|w| w[0].0 < w[1].0)
    }

    /// Tries the certificates this replica could not check yet, oldest first; keeps a
    /// bounded few, each for a bounded number of tries.
    pub(crate) fn retry_certs(&mut self, now_ms: u64) {
        let mut pending = std::mem::take(&mut self.pending_certs);
        pending.sort_by_key(|(c, _)| c.at.height);
        let mut keep = Vec::new();
        let mut changed = false;
        for (c, tries) in pending {
            if c.at.height < self.ledger.next_height() || tries >= PENDING_CERT_TRIES {
                continue;
            }
            match self.ledger.handle_certificate(c.clone()) {
                Ok(()) => changed = true,
                Err(e) if retry_later(&e) => keep.push((c, tries + 1)),
                Err(_) => {}
            }
        }
        keep.truncate(PENDING_CERTS_MAX);
        self.pending_certs = keep;
        if changed {
            self.drain_ledger(now_ms, Source::Sync);
        }
    }
}
