//! Finality timing: when to sign a vote, which votes and certificates to take, and retrying
//! certificates this replica could not check yet.

use crate::io::Counters;
use crate::io::{Acceptance, Event, Source};
use crate::limits::{
    FUTURE_EPOCH_MARGIN, PENDING_CERTS_MAX, PENDING_CERT_TRIES, VOTE_EPOCH_WINDOW,
};
use crate::replica::Replica;
use crate::wire::Gossip;
use web4fed_core::finality::{CertError, Certificate, Vote};
use web4fed_core::identity::MemberId;

/// Errors that mean "not checkable yet": the certificate is kept and tried again after a
/// sync, rather than refused. `RootMismatch` is among them: a replica missing some of the
/// certified events computes another root until the sync brings them.
fn retry_later(e: &CertError) -> bool {
    matches!(
        e,
        CertError::MissingEvents | CertError::Unverifiable(_) | CertError::RootMismatch { .. }
    )
}

impl Replica {
    /// Only closed, recent epochs are voted on: a signed vote for a far-future or ancient
    /// epoch would otherwise cost a root computation and push real votes out of the book.
    pub(crate) fn vote_in_window(&self, now_ms: u64, epoch: u64) -> bool {
        let now_epoch = now_ms / self.genesis().epoch_ms;
        epoch < now_epoch && epoch >= now_epoch.saturating_sub(VOTE_EPOCH_WINDOW)
    }

    pub(crate) fn on_vote(&mut self, now_ms: u64, from: MemberId, v: Vote) -> Acceptance {
        if !self.vote_in_window(now_ms, v.body.epoch) {
            return Acceptance::Ignore;
        }
        // A vote from a key with no standing is dropped before its signature is checked; a
        // peer that is not a member has no business relaying one (a strike).
        if !self.is_member(&v.signer) {
            Counters::bump(&mut self.counters.rejected, "vote_not_member");
            self.strike(now_ms, from);
            return Acceptance::Ignore;
        }
        let r = self.ledger.handle_vote(v);
        // A certificate these votes complete is published (`Local`): peers missing a vote
        // learn of it that way.
        self.drain_ledger(now_ms, Source::Local);
        match r {
            Ok(true) => Acceptance::Accept,
            Ok(false) => Acceptance::Ignore,
            Err(_) => Acceptance::Reject,
        }
    }

    pub(crate) fn on_certificate(
        &mut self,
        now_ms: u64,
        from: MemberId,
        c: Certificate,
    ) -> Acceptance {
        if self.ledger.final_epoch() >= Some(c.body.epoch) {
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
                self.start_sync(now_ms, from);
                Acceptance::Ignore
            }
            Err(_) => Acceptance::Reject,
        }
    }

    /// The checks a certificate passes before the ledger spends a re-fold on it: an epoch not
    /// beyond now (plus a margin for clocks), at least one signer, signers in order without
    /// repeats, each a member here.
    pub(crate) fn plausible_certificate(&self, now_ms: u64, c: &Certificate) -> bool {
        let now_epoch = now_ms / self.genesis().epoch_ms;
        c.body.epoch <= now_epoch + FUTURE_EPOCH_MARGIN
            && !c.signatures.is_empty()
            && c.signatures.windows(2).all(|w| w[0].0 < w[1].0)
            && c.signatures.iter().all(|(m, _)| self.is_member(m))
    }

    /// Tries the certificates this replica could not check yet, oldest first; keeps a
    /// bounded few, each for a bounded number of tries.
    pub(crate) fn retry_certs(&mut self, now_ms: u64) {
        let mut pending = std::mem::take(&mut self.pending_certs);
        pending.sort_by_key(|(c, _)| c.body.epoch);
        let mut keep = Vec::new();
        let mut changed = false;
        for (c, tries) in pending {
            if self.ledger.final_epoch() >= Some(c.body.epoch) || tries >= PENDING_CERT_TRIES {
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

    /// Signs this replica's root for the latest settled checkpoint it has not voted for. The
    /// `Voted` event comes before the vote's transmission: the driver records it first.
    /// A replica given peers to join votes only once its log holds another active member:
    /// before that its view is its own registration alone, which in a genesis without
    /// founders is all the weight, and it would certify a chain of its own that the
    /// federation's certificates can never extend (found when a late-started member did
    /// exactly that). With another member held, its own vote is at most half the weight.
    /// A replica started with no peers founds the federation and votes at once.
    fn may_vote(&self) -> bool {
        self.peers.bootstrap.is_empty()
            || self
                .ledger
                .state()
                .accounts()
                .any(|(m, a)| *m != self.me && a.status == web4fed_core::state::Status::Active)
    }

    pub(crate) fn vote(&mut self, now_ms: u64) {
        if !self.may_vote() {
            return;
        }
        let e = self.settled_checkpoint(now_ms);
        if self.last_vote.is_some_and(|v| v >= e) {
            return;
        }
        let Some(body) = self.ledger.vote_body(e) else {
            return;
        };
        self.last_vote = Some(e);
        self.events.push_back(Event::Voted { epoch: e });
        let v = Vote::sign(&self.keypair, &self.network, body);
        let _ = self.ledger.handle_vote(v.clone());
        self.drain_ledger(now_ms, Source::Local);
        self.gossip(Gossip::Vote(v));
    }
}
