//! Gossip in (envelopes and heartbeats), heartbeats out, and liveness: which peers are down.

use crate::io::{Acceptance, Counters, Event, Source};
use crate::replica::Replica;
use crate::wire::Gossip;
use web4fed_core::envelope::{vv_digest, Envelope, Heartbeat};
use web4fed_core::event::Event as SignedEvent;
use web4fed_core::identity::MemberId;
use web4fed_core::ledger::{Admission, InsertError, VerifiedEvent};

impl Replica {
    // ---- gossip in ---------------------------------------------------------------------

    pub(crate) fn on_envelope(&mut self, now_ms: u64, from: MemberId, env: Envelope) -> Acceptance {
        if !self.charge(now_ms, from, 0, env.event.len() as u64) {
            return Acceptance::Ignore;
        }
        self.peers.entry(from, now_ms).last_delivery_ms = Some(now_ms);
        if !env.verify(&self.network) {
            Counters::bump(&mut self.counters.rejected, "bad_envelope_signature");
            self.strike(now_ms, from);
            return Acceptance::Reject;
        }
        let checked = SignedEvent::decode(&env.event)
            .ok()
            .and_then(|ev| VerifiedEvent::check(ev, &self.network).ok());
        let event = match checked {
            Some(ev) => ev,
            None => {
                // A validly signed envelope carrying a forgery: evidence against its sender.
                let _ = self.ledger.handle_forged_envelope(env);
                Counters::bump(&mut self.counters.rejected, "forged_inner_event");
                self.strike(now_ms, from);
                self.drain_ledger(now_ms, Source::Gossip);
                return Acceptance::Reject;
            }
        };
        let results = self.ingest_verified(now_ms, vec![event], Source::Gossip);
        match results.into_iter().next() {
            Some(Ok(Admission::Admitted)) => Acceptance::Accept,
            Some(Ok(Admission::MissingPredecessor { .. })) => {
                self.start_sync(now_ms, from, "missing_predecessor");
                Acceptance::Ignore
            }
            Some(Ok(_)) => Acceptance::Ignore,
            Some(Err(
                InsertError::Equivocation { .. }
                | InsertError::AuthorEquivocated { .. }
                | InsertError::FeedClosed { .. },
            )) => Acceptance::Ignore,
            // Not the relay's fault: the author's conflict with history pruned here.
            Some(Err(
                InsertError::PoolFull { .. }
                | InsertError::BeyondHorizon { .. }
                | InsertError::TooFarAhead { .. },
            ))
            | None => Acceptance::Ignore,
            Some(Err(_)) => Acceptance::Reject,
        }
    }

    pub(crate) fn on_heartbeat(
        &mut self,
        now_ms: u64,
        from: MemberId,
        hb: Heartbeat,
    ) -> Acceptance {
        if hb.sender == self.me {
            return Acceptance::Ignore;
        }
        let sender = hb.sender;
        // Heartbeats travel one hop and are never relayed: one that did not come from its
        // sender (a relay, or a replay of someone else's) tells nothing about the link it
        // came over. One that did is authenticated by the connection it came on (the
        // transport's handshake proved the peer holds the sender's key), so its signature
        // is not checked again: one signature check per message where one suffices.
        if sender != from {
            Counters::bump(&mut self.counters.rejected, "heartbeat_not_from_sender");
            self.strike(now_ms, from);
            return Acceptance::Ignore;
        }
        // Only members' heartbeats count (and make peer entries); one from a key we do not
        // know as a member tells nothing, and may be a newcomer's we will know after a sync.
        if !self.is_member(&sender) {
            Counters::bump(&mut self.counters.rejected, "heartbeat_not_member");
            self.strike(now_ms, from);
            return Acceptance::Ignore;
        }
        // A replayed or reordered heartbeat tells nothing new (and must not be relayed).
        if self
            .peers
            .get(&sender)
            .and_then(|p| p.heartbeat.as_ref())
            .is_some_and(|h| h.sent_ms >= hb.sent_ms)
        {
            return Acceptance::Ignore;
        }
        self.counters.heartbeats += 1;
        let matches = self.ledger.epoch_root(hb.epoch).map(|r| r == hb.root);
        // Any difference of version vectors starts a sync round (unless the peer is
        // delivering). Narrower rules (a settled epoch's roots only; only a peer holding at
        // least as many events; a difference seen at two heartbeats in a row, or still
        // there 200 ms later) left the simulator's `scale-100-idle` with a node short of an
        // event written 1.2-2.5 s before its end: a relay that cannot admit an event yet
        // does not pass it on, and the nodes behind it learn it from a round, so whatever
        // delays the round delays them. What a round asks for is narrowed instead:
        // certificates only if the peer holds a later one, evidence only if it holds more.
        let differs = hb.vv_digest != vv_digest(&self.ledger.feed_heads());
        let certificates = hb.final_epoch > self.ledger.final_epoch();
        let evidence = hb.evidence > self.ledger.evidence_count();
        let p = self.peers.entry(sender, now_ms);
        p.last_heartbeat_ms = Some(now_ms);
        p.root_matches = matches;
        p.heartbeat = Some(hb);
        let delivering = p.last_delivery_ms.is_some_and(|t| {
            now_ms.saturating_sub(t) < crate::limits::SYNC_QUIET_AFTER_DELIVERY_MS
        });
        if differs && !delivering {
            self.start_heads_sync(now_ms, sender, certificates, evidence);
        }
        // Heartbeats are for the peers they were sent to and are never relayed: a node hears
        // its connections' heartbeats only, O(degree) a second rather than O(members), and
        // differences travel hop by hop through the syncs they start.
        Acceptance::Ignore
    }

    pub(crate) fn send_heartbeat(&mut self, now_ms: u64) {
        let epoch = self.settled_epoch(now_ms);
        let root = self.ledger.epoch_root(epoch).unwrap_or([0; 32]);
        let hb = Heartbeat::sign(
            &self.keypair,
            &self.network,
            now_ms,
            epoch,
            root,
            vv_digest(&self.ledger.feed_heads()),
            self.ledger.len() as u64,
            self.ledger.final_epoch(),
            self.ledger.evidence_count(),
        );
        self.gossip(Gossip::Heartbeat(hb));
    }

    /// A peer whose heartbeats stop is a partition (or a crash: the two look alike from
    /// here); heartbeats resuming is a heal. Each change is reported once.
    pub(crate) fn report_liveness(&mut self, now_ms: u64) {
        let hb = self.heartbeat_ms;
        let mut changes = Vec::new();
        for (m, p) in self.peers.iter_mut() {
            if p.last_heartbeat_ms.is_none() {
                continue;
            }
            let down = p.is_down(now_ms, hb);
            if down != p.reported_down {
                p.reported_down = down;
                changes.push((*m, down));
            }
        }
        for (peer, down) in changes {
            if down {
                self.counters.partitions_seen += 1;
            }
            self.events.push_back(Event::Liveness { peer, down });
        }
    }
}
