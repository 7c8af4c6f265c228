//! Layer 6 policy: which members claiming a TPM to challenge and when, and vouching for
//! those whose TPM released our credential. Making a challenge needs randomness and RSA and
//! answering one needs a TPM: the driver does both and hands the results back.

use crate::io::{Challenge, Counters, Event};
use crate::limits::ATTEST_RETRY_MS;
use crate::replica::Replica;
use crate::wire::Request;
use web4fed_core::event::{Body, Level};
use web4fed_core::identity::MemberId;
use web4fed_core::state::Status;

/// Compares without an early exit, so timing does not tell how much of a guess was right.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Replica {
    /// Asks the driver for a challenge for every connected member whose TPM evidence
    /// verified and who awaits a vouch from us. Any active member may challenge: the
    /// verifier's half needs no TPM.
    pub(crate) fn challenge_claimants(&mut self, now_ms: u64) {
        let me_active = self
            .ledger
            .state()
            .account(&self.me)
            .is_some_and(|a| a.status == Status::Active);
        if !me_active {
            return;
        }
        let pending: Vec<MemberId> = self
            .ledger
            .state()
            .accounts()
            .filter(|(m, a)| {
                **m != self.me
                    && a.status == Status::Active
                    && a.level == Level::L4
                    && a.hardware
                        .as_ref()
                        .is_some_and(|h| !h.vouchers.contains(&self.me))
            })
            .map(|(m, _)| *m)
            .collect();
        for subject in pending {
            if self
                .challenges
                .get(&subject)
                .is_some_and(|(_, at)| now_ms.saturating_sub(*at) < ATTEST_RETRY_MS)
            {
                continue;
            }
            if !self.peers.is_connected(&subject) {
                continue;
            }
            let Some(Body::Register(r)) = self.ledger.feed_event(&subject, 0).map(|e| &e.body)
            else {
                continue;
            };
            let evidence = r.attestation.evidence.clone();
            self.challenges.insert(subject, (Vec::new(), now_ms));
            self.events
                .push_back(Event::MakeChallenge { subject, evidence });
        }
    }

    /// The driver made the challenge (or could not): send it.
    pub(crate) fn send_challenge(
        &mut self,
        now_ms: u64,
        subject: MemberId,
        challenge: Result<Challenge, String>,
    ) {
        match challenge {
            Ok(c) => {
                self.challenges.insert(subject, (c.credential, now_ms));
                self.send_request(
                    now_ms,
                    subject,
                    Request::Activate {
                        id_object: c.id_object.into(),
                        secret: c.secret.into(),
                    },
                );
            }
            Err(_) => {
                Counters::bump(&mut self.counters.attestations, "cannot_challenge");
                self.challenges.insert(subject, (Vec::new(), now_ms));
            }
        }
    }

    /// A member answered our challenge: vouch if its TPM released our credential.
    pub(crate) fn on_activated(&mut self, now_ms: u64, subject: MemberId, credential: &[u8]) {
        let Some((expected, _)) = self.challenges.get(&subject).cloned() else {
            return;
        };
        if expected.is_empty() || !same_bytes(&expected, credential) {
            Counters::bump(&mut self.counters.attestations, "wrong_answer");
            return;
        }
        // One vouch per challenge: forget it so a replayed answer vouches nothing.
        self.challenges.insert(subject, (Vec::new(), now_ms));
        Counters::bump(&mut self.counters.attestations, "vouched");
        if self.publish_own(now_ms, Body::Vouch { subject }).is_ok() {
            self.events.push_back(Event::Vouched { subject });
        }
    }
}
