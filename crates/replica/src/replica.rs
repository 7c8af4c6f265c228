//! The replica: the ledger plus the replication and agreement policy around it. Inputs are
//! `handle_*` calls with the current time; outputs are drained with `poll_*`.

use crate::io::{
    Acceptance, Command, CommandError, Counters, Destination, DisconnectReason, Event,
    IngestReport, Reply, Source, Transmit, VotesReport,
};
use crate::limits::{
    BULK_QUEUE_MAX, EVICT_GRACE_MS, FINALITY_LAG_CHECKPOINTS, HEARTBEAT_EPOCH_LAG, MAX_PEERS,
    MAX_REQUESTS_IN_FLIGHT, MAX_SHUNNED, REDIAL_BACKOFF_MIN_MS, REQUEST_TIMEOUT_MS, SHUN_MS,
    STRIKES_TO_SHUN, SYNC_BUFFER_MAX_AGE_MS, TARGET_PEERS, TICK_MS,
};
use crate::peers::{Bootstrap, PeerBook};
use crate::wire::{Gossip, Message, Request, RequestId, Response};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use web4fed_core::envelope::Envelope;
use web4fed_core::event::{Body, Event as SignedEvent, EventId, Evidence, Validate};
use web4fed_core::finality::Certificate;
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::{Keypair, MemberId};
use web4fed_core::ledger::{
    Admission, InsertError, Ledger, Output, VerifiedEvent, MAX_BATCH_EVENTS,
};
use web4fed_core::state::Status;
use web4fed_core::verdict::{Ignored, Verdict};

/// How a replica is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// This member's key: signs its events, envelopes, heartbeats and votes.
    pub keypair: Keypair,
    /// Heartbeat period (also the vote and certificate-retry period).
    pub heartbeat_ms: u64,
    /// Addresses to keep dialling until a peer answers there.
    pub bootstrap: Vec<String>,
    /// The latest agreement vote this member signed (from the durable store): it never signs
    /// a second vote in one round, and keeps what it precommitted as a lock.
    pub last_vote: Option<web4fed_core::finality::LastVote>,
    /// Whether this member has a TPM to answer credential-activation challenges with.
    pub has_tpm: bool,
    /// Whether the node rates, with its scorer, the thoughts its member is drawn to rate
    /// (off: the operator rates by hand, and seats left unrated hold their thoughts'
    /// settlement back).
    pub rate_thoughts: bool,
}

/// A request of ours awaiting its answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outstanding {
    pub peer: MemberId,
    pub kind: &'static str,
    pub deadline_ms: u64,
}

/// The sans-IO replica. See the crate docs for the drain rule.
pub struct Replica {
    pub(crate) keypair: Keypair,
    pub(crate) me: MemberId,
    pub(crate) network: [u8; 32],
    pub(crate) heartbeat_ms: u64,
    pub(crate) has_tpm: bool,
    pub(crate) ledger: Ledger,
    pub(crate) peers: PeerBook,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) counters: Counters,
    pub(crate) next_request: u64,
    pub(crate) requests: BTreeMap<RequestId, Outstanding>,
    /// History before the snapshot being fetched, when the driver asked for it.
    pub(crate) backfill: crate::backfill::Backfill,
    pub(crate) next_heartbeat_ms: u64,
    pub(crate) next_tick_ms: u64,
    pub(crate) last_periodic_sync_ms: u64,
    pub(crate) last_peer_exchange_ms: u64,
    /// Agreement on checkpoints (Tendermint, see `agreement`).
    pub(crate) agreement: crate::agreement::Agreement,
    /// Certificates not checkable yet, with how many heartbeats they have waited.
    pub(crate) pending_certs: Vec<(Certificate, u32)>,
    /// Synced events waiting to be folded together (see `SYNC_BUFFER_MAX_BYTES`).
    pub(crate) sync_buffer: Vec<SignedEvent>,
    /// Strangers shunned, with when their shun ends (see [`Replica::strike`]).
    shunned: BTreeMap<MemberId, u64>,
    pub(crate) sync_buffer_bytes: usize,
    pub(crate) sync_buffer_since_ms: Option<u64>,
    /// Outstanding challenges: the credential we expect back (empty until the driver made
    /// the challenge, or when it could not), and when we asked.
    pub(crate) challenges: BTreeMap<MemberId, (Vec<u8>, u64)>,
    pub(crate) answering: usize,
    /// Snapshot reads handed to the driver and not answered yet.
    pub(crate) snapshot_reads: usize,
    /// Snapshot bytes all peers together may still fetch (see
    /// [`crate::limits::SNAPSHOT_BYTES_PER_SEC_TOTAL`]).
    pub(crate) snapshot_budget: crate::budget::Bucket,
    /// Whose turn it is to be asked while finality lags.
    pub(crate) catch_up_turn: usize,
    /// Members already reported ejected.
    pub(crate) ejected: BTreeSet<MemberId>,
    /// When this replica last published an event of its own member (presence is written
    /// only after a silence of `presence_every_ms`).
    pub(crate) last_own_event_ms: u64,
    /// When the next checkpoint becomes votable (see [`Replica::settled_checkpoint`]).
    pub(crate) next_vote_due: u64,
    /// See [`Config::rate_thoughts`].
    pub(crate) rate_thoughts: bool,
    /// Committee seats waiting for our rating.
    pub(crate) seats: crate::rating::Seats,
    /// The validator committee of the next height (see [`Replica::committee`]).
    pub(crate) committee: Option<BTreeSet<MemberId>>,
    /// Whether the driver is subscribed to the agreement's topics (see
    /// [`Event::AgreementTopics`]); drivers start subscribed.
    pub(crate) agreement_topics: bool,
    /// Since when this member has been outside the committee (while it is).
    pub(crate) out_of_committee_since: Option<u64>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("me", &self.me)
            .field("events", &self.ledger.len())
            .field("peers", &self.peers.iter().count())
            .finish()
    }
}

impl Replica {
    /// A replica over a ledger already rebuilt from the durable log.
    pub fn new(config: Config, ledger: Ledger, now_ms: u64) -> Self {
        let network = *ledger.network();
        let mut peers = PeerBook::default();
        peers.bootstrap = config
            .bootstrap
            .into_iter()
            .map(|addr| Bootstrap {
                addr,
                next_dial_ms: now_ms,
                backoff_ms: REDIAL_BACKOFF_MIN_MS,
            })
            .collect();
        let mut r = Self {
            me: config.keypair.id(),
            keypair: config.keypair,
            network,
            heartbeat_ms: config.heartbeat_ms.max(1),
            has_tpm: config.has_tpm,
            ledger,
            peers,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            next_request: 0,
            requests: BTreeMap::new(),
            backfill: crate::backfill::Backfill::default(),
            next_heartbeat_ms: now_ms,
            next_tick_ms: now_ms,
            last_periodic_sync_ms: now_ms,
            last_peer_exchange_ms: now_ms,
            agreement: crate::agreement::Agreement::new(config.last_vote),
            pending_certs: Vec::new(),
            sync_buffer: Vec::new(),
            shunned: BTreeMap::new(),
            sync_buffer_bytes: 0,
            sync_buffer_since_ms: None,
            challenges: BTreeMap::new(),
            answering: 0,
            snapshot_reads: 0,
            snapshot_budget: crate::budget::Bucket::new(
                crate::limits::SNAPSHOT_BYTES_PER_SEC_TOTAL * 10,
                crate::limits::SNAPSHOT_BYTES_PER_SEC_TOTAL,
                now_ms,
            ),
            catch_up_turn: 0,
            ejected: BTreeSet::new(),
            last_own_event_ms: 0,
            next_vote_due: now_ms,
            rate_thoughts: config.rate_thoughts,
            seats: Default::default(),
            committee: None,
            agreement_topics: true,
            out_of_committee_since: None,
        };
        r.update_committee(now_ms);
        r.note_ejections();
        r.queue_unrated_seats();
        r
    }

    // ---- read access -------------------------------------------------------------------

    /// The ledger (read only: every change goes through the replica).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The peer book.
    pub fn peers(&self) -> &PeerBook {
        &self.peers
    }

    /// This member.
    pub fn me(&self) -> MemberId {
        self.me
    }

    /// The network id.
    pub fn network(&self) -> &[u8; 32] {
        &self.network
    }

    /// The genesis parameters.
    pub fn genesis(&self) -> &Genesis {
        self.ledger.genesis()
    }

    /// Running totals, for metrics.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether a member is registered here and not ejected: only members may spend more
    /// than the newcomer budget, send heartbeats and votes, or be dialled from peer records.
    pub fn is_member(&self, m: &MemberId) -> bool {
        self.ledger
            .state()
            .account(m)
            .is_some_and(|a| a.status == Status::Active)
    }

    /// Charges a peer for `requests` requests and `bytes` bytes of events; false when that is
    /// over its budget (the input is then refused, and counted).
    pub(crate) fn charge(
        &mut self,
        now_ms: u64,
        peer: MemberId,
        requests: u64,
        bytes: u64,
    ) -> bool {
        if self.is_shunned(now_ms, &peer) {
            return false;
        }
        let member = self.is_member(&peer);
        let p = self.peers.entry(peer, now_ms);
        let b = match &mut p.budget {
            Some(b) if b.member == member => b,
            slot => slot.insert(crate::budget::PeerBudget::new(member, now_ms)),
        };
        let ok = (requests == 0 || b.requests.take(requests, now_ms))
            && (bytes == 0 || b.bytes.take(bytes, now_ms));
        if !ok {
            p.over_budget += 1;
            Counters::bump(&mut self.counters.rejected, "over_budget");
            self.strike(now_ms, peer);
        }
        ok
    }

    /// Counts a strike against a peer; a stranger that reaches [`STRIKES_TO_SHUN`] is
    /// disconnected and shunned for [`SHUN_MS`] (members answer to evidence and ejection).
    pub(crate) fn strike(&mut self, now_ms: u64, peer: MemberId) {
        if self.is_member(&peer) {
            return;
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.strikes += 1;
        if p.strikes < STRIKES_TO_SHUN {
            return;
        }
        if self.shunned.len() >= MAX_SHUNNED {
            let soonest = self
                .shunned
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(m, _)| *m);
            if let Some(m) = soonest {
                self.shunned.remove(&m);
            }
        }
        self.shunned.insert(peer, now_ms + SHUN_MS);
        self.peers.remove(&peer);
        Counters::bump(&mut self.counters.rejected, "shunned");
        self.events.push_back(Event::Disconnect {
            peer,
            why: DisconnectReason::Shunned,
        });
    }

    /// Whether a peer is shunned now (expired shuns are forgotten here).
    fn is_shunned(&mut self, now_ms: u64, peer: &MemberId) -> bool {
        match self.shunned.get(peer) {
            Some(until) if *until > now_ms => true,
            Some(_) => {
                self.shunned.remove(peer);
                false
            }
            None => false,
        }
    }

    /// The heartbeat period.
    pub fn heartbeat_ms(&self) -> u64 {
        self.heartbeat_ms
    }

    /// The epoch heartbeats report and votes are signed for: the current epoch less the
    /// lag that lets events in flight land everywhere, less the epoch still open.
    pub fn settled_epoch(&self, now_ms: u64) -> u64 {
        (now_ms / self.genesis().epoch_ms).saturating_sub(1 + HEARTBEAT_EPOCH_LAG)
    }

    /// Whether this replica's finality lags: no certificate for the last
    /// [`FINALITY_LAG_CHECKPOINTS`] settled checkpoints (it missed votes and certificates, or
    /// its fold differed until a sync).
    pub fn finality_lags(&self, now_ms: u64) -> bool {
        let g = self.genesis();
        let lag = FINALITY_LAG_CHECKPOINTS * g.finality_every_epochs;
        let behind = self.settled_checkpoint(now_ms).saturating_sub(lag);
        self.ledger.final_epoch().is_none_or(|f| f < behind)
    }

    /// The latest checkpoint settled enough to vote on: its epoch ended at least the
    /// genesis's `vote_delay_ms` ago.
    pub fn settled_checkpoint(&self, now_ms: u64) -> u64 {
        let g = self.genesis();
        let ended = (now_ms.saturating_sub(g.vote_delay_ms) / g.epoch_ms).saturating_sub(1);
        ended - ended % g.finality_every_epochs
    }

    /// When the checkpoint after `settled_checkpoint(now_ms)` becomes votable.
    fn next_vote_ms(&self, now_ms: u64) -> u64 {
        let g = self.genesis();
        let next = self.settled_checkpoint(now_ms) + g.finality_every_epochs;
        (next + 1) * g.epoch_ms + g.vote_delay_ms
    }

    // ---- outputs -----------------------------------------------------------------------

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing for the driver to do or report.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Replica::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> u64 {
        let mut t = self.next_heartbeat_ms.min(self.next_tick_ms);
        // A height starts when its checkpoint settles, not at the next heartbeat; the
        // agreement's own timeouts fire on time.
        t = t.min(self.next_vote_due);
        if let Some(a) = self.agreement_deadline() {
            t = t.min(a);
        }
        if let Some(since) = self.sync_buffer_since_ms {
            t = t.min(since + SYNC_BUFFER_MAX_AGE_MS);
        }
        if let Some(due) = self.backfill_due() {
            t = t.min(due);
        }
        t
    }

    // ---- inputs ------------------------------------------------------------------------

    /// Time passed: folds aged sync buffers, admits future-dated events whose time came,
    /// redials, exchanges peers, runs periodic sync, reports liveness, challenges TPM
    /// claimants, expires requests, and at each heartbeat votes, retries certificates and
    /// sends a heartbeat.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self
            .sync_buffer_since_ms
            .is_some_and(|t| now_ms >= t + SYNC_BUFFER_MAX_AGE_MS)
        {
            self.flush_sync_buffer(now_ms);
        }
        if now_ms >= self.next_tick_ms {
            self.next_tick_ms = now_ms + TICK_MS;
            self.tick(now_ms);
        }
        if now_ms >= self.next_vote_due {
            self.next_vote_due = self.next_vote_ms(now_ms);
        }
        self.drive_agreement(now_ms);
        if self.backfill_due().is_some_and(|t| now_ms >= t) {
            self.drive_backfill(now_ms);
        }
        if now_ms >= self.next_heartbeat_ms {
            self.next_heartbeat_ms = now_ms + self.heartbeat_ms;
            self.retry_certs(now_ms);
            self.catch_up_finality(now_ms);
            self.send_heartbeat(now_ms);
        }
    }

    fn tick(&mut self, now_ms: u64) {
        let before = self.ledger.len();
        self.ledger.handle_tick(now_ms);
        if self.ledger.len() != before {
            self.drain_ledger(now_ms, Source::Local);
        }
        self.expire_requests(now_ms);
        self.update_committee(now_ms);
        self.redial(now_ms);
        self.drop_surplus_peers(now_ms);
        self.exchange_peers(now_ms);
        self.periodic_sync(now_ms);
        self.report_liveness(now_ms);
        self.challenge_claimants(now_ms);
        self.announce_presence(now_ms);
        self.rate_seats(now_ms);
        self.drive_backfill(now_ms);
    }

    /// Writes a presence event when our member's feed has been silent for the genesis's
    /// `presence_every_ms`, so that a running node's voting weight does not leak.
    fn announce_presence(&mut self, now_ms: u64) {
        let every = self.ledger.genesis().presence_every_ms;
        let Some(seen) = self
            .ledger
            .state()
            .account(&self.me)
            .map(|a| a.last_seen_ms)
        else {
            return; // not registered (yet), or ejected and forgotten
        };
        if now_ms < seen.max(self.last_own_event_ms).saturating_add(every) {
            return;
        }
        // Whatever the outcome, wait a full period before trying again.
        self.last_own_event_ms = now_ms;
        // Refused only when our member is ejected or its feed is not live here: nothing to do.
        let _ = self.publish_own(now_ms, Body::Presence);
    }

    /// A message from a peer. For gossip the answer is the validation verdict the transport
    /// relays on; for requests and responses it is always `Accept`.
    pub fn handle_message(&mut self, now_ms: u64, from: MemberId, msg: Message) -> Acceptance {
        if self.peers.blocked.contains(&from) {
            return Acceptance::Reject;
        }
        match msg {
            Message::Gossip(Gossip::Event(env)) => self.on_envelope(now_ms, from, env),
            Message::Gossip(Gossip::Heartbeat(hb)) => self.on_heartbeat(now_ms, from, hb),
            Message::Gossip(Gossip::Vote(v)) => self.on_vote(now_ms, from, v),
            Message::Gossip(Gossip::Proposal(p)) => self.on_proposal(now_ms, from, *p),
            Message::Gossip(Gossip::Certificate(c)) => self.on_certificate(now_ms, from, c),
            Message::Request { id, body } => {
                self.on_request(now_ms, from, id, body);
                Acceptance::Accept
            }
            Message::Response { id, body } => {
                self.on_response(now_ms, from, id, body);
                Acceptance::Accept
            }
        }
    }

    /// A request of ours failed at the transport (timeout, connection lost).
    pub fn handle_request_failed(&mut self, now_ms: u64, id: RequestId) {
        if let Some(o) = self.requests.remove(&id) {
            self.request_done(now_ms, o, true);
        }
    }

    /// The transport connected to a peer (`dialed`: the address we dialled, if we did).
    pub fn handle_connected(&mut self, now_ms: u64, peer: MemberId, dialed: Option<String>) {
        if self.peers.blocked.contains(&peer) || peer == self.me {
            return;
        }
        if self.is_shunned(now_ms, &peer) {
            self.events.push_back(Event::Disconnect {
                peer,
                why: DisconnectReason::Shunned,
            });
            return;
        }
        if let Some(addr) = &dialed {
            for b in &mut self.peers.bootstrap {
                if &b.addr == addr {
                    b.backoff_ms = REDIAL_BACKOFF_MIN_MS;
                }
            }
        }
        let p = self.peers.entry(peer, now_ms);
        let was = p.connected;
        p.connected = true;
        p.kept = true;
        if !was {
            p.connected_since_ms = Some(now_ms);
        }
        p.backoff_ms = REDIAL_BACKOFF_MIN_MS;
        if let Some(addr) = dialed {
            p.add_addr(addr);
        }
        if !was {
            self.send_request(now_ms, peer, Request::Peers);
            self.start_sync(now_ms, peer, "connected");
            self.flush_queue(now_ms, peer);
        }
    }

    /// The transport lost its last connection to a peer.
    pub fn handle_disconnected(&mut self, now_ms: u64, peer: MemberId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.connected = false;
        p.connected_since_ms = None;
        p.reconcile_in_flight = false;
        p.ranges_in_flight = 0;
        p.push_in_flight = false;
        p.back_off(now_ms);
        // Its requests can no longer be answered.
        let gone: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, o)| o.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.requests.remove(&id);
        }
        // A stranger is forgotten; an ejected member stays listed (blocked) for operators.
        if !self.is_member(&peer) && !self.peers.blocked.contains(&peer) {
            self.peers.remove(&peer);
        }
    }

    /// The transport learnt addresses a peer listens on.
    pub fn handle_addresses(&mut self, now_ms: u64, peer: MemberId, addrs: Vec<String>) {
        if peer == self.me {
            return;
        }
        let p = self.peers.entry(peer, now_ms);
        for a in addrs {
            p.add_addr(a);
        }
    }

    /// A command from the driver (the operator API, the TPM, the durable log).
    pub fn handle_command(&mut self, now_ms: u64, cmd: Command) -> Result<Reply, CommandError> {
        match cmd {
            Command::Submit { content } => self
                .publish_own(now_ms, Body::Thought(content))
                .map(Reply::Submitted),
            Command::Transfer { to, amount_milli } => self
                .publish_own(now_ms, Body::Transfer { to, amount_milli })
                .map(Reply::Submitted),
            Command::Rate {
                thought,
                score_micro,
            } => self
                .publish_own(
                    now_ms,
                    Body::Validate(Validate {
                        thought,
                        score_micro,
                        scorer: crate::rating::BY_HAND.into(),
                    }),
                )
                .map(Reply::Submitted),
            Command::Ingest { events } => Ok(Reply::Ingested(self.ingest_batch(now_ms, events))),
            Command::Votes { votes } => Ok(Reply::Votes(self.votes_batch(now_ms, votes))),
            Command::Dial { addr } => {
                self.events.push_back(Event::Dial {
                    peer: None,
                    addrs: vec![addr.clone()],
                });
                if !self.peers.bootstrap.iter().any(|b| b.addr == addr) {
                    self.peers.bootstrap.push(Bootstrap {
                        addr,
                        next_dial_ms: now_ms + REDIAL_BACKOFF_MIN_MS,
                        backoff_ms: REDIAL_BACKOFF_MIN_MS,
                    });
                }
                Ok(Reply::Done)
            }
            Command::SendChallenge { subject, challenge } => {
                self.send_challenge(now_ms, subject, challenge);
                Ok(Reply::Done)
            }
            Command::ChallengeAnswered {
                to,
                request,
                result,
            } => {
                self.answering = self.answering.saturating_sub(1);
                let body = match result {
                    Ok(credential) => Response::Activated {
                        credential: credential.into(),
                    },
                    Err(message) => Response::Error {
                        message: format!("activation failed: {message}"),
                    },
                };
                self.respond(to, request, body);
                Ok(Reply::Done)
            }
            Command::Backfill { gaps } => {
                self.set_backfill(now_ms, gaps);
                Ok(Reply::Done)
            }
            Command::ArchiveRead {
                to,
                request,
                result,
            } => {
                self.archive_read(to, request, result);
                Ok(Reply::Done)
            }
            Command::SnapshotRead {
                to,
                request,
                result,
            } => {
                self.snapshot_read(to, request, result);
                Ok(Reply::Done)
            }
        }
    }

    // ---- events in -------------------------------------------------------------------

    /// Hands events to the ledger and reports what it admitted (to persist) and refused.
    /// Returns each event's admission.
    pub(crate) fn ingest(
        &mut self,
        now_ms: u64,
        events: Vec<SignedEvent>,
        source: Source,
    ) -> Vec<Result<Admission, InsertError>> {
        self.ingest_with(now_ms, events, source, |e| e, Ledger::handle_batch)
    }

    /// Like [`Replica::ingest`] for events whose signatures were checked already.
    pub(crate) fn ingest_verified(
        &mut self,
        now_ms: u64,
        events: Vec<VerifiedEvent>,
        source: Source,
    ) -> Vec<Result<Admission, InsertError>> {
        self.ingest_with(
            now_ms,
            events,
            source,
            VerifiedEvent::event,
            Ledger::handle_batch_verified,
        )
    }

    fn ingest_with<T>(
        &mut self,
        now_ms: u64,
        events: Vec<T>,
        source: Source,
        event: impl Fn(&T) -> &SignedEvent,
        admit: impl Fn(&mut Ledger, u64, Vec<T>) -> Vec<Result<Admission, InsertError>>,
    ) -> Vec<Result<Admission, InsertError>> {
        let mut results = Vec::with_capacity(events.len());
        let mut events = events.into_iter().peekable();
        // In batches the ledger takes whole, drained between: its outputs stay bounded.
        while events.peek().is_some() {
            let chunk: Vec<T> = events.by_ref().take(MAX_BATCH_EVENTS).collect();
            let stamps: Vec<(MemberId, web4fed_core::event::Kind)> = chunk
                .iter()
                .map(|e| (event(e).author(), event(e).header.kind))
                .collect();
            let rs = admit(&mut self.ledger, now_ms, chunk);
            for ((author, kind), r) in stamps.into_iter().zip(&rs) {
                if let Err(e) = r {
                    self.events.push_back(Event::Rejected {
                        author,
                        kind,
                        error: e.clone(),
                        source,
                    });
                }
            }
            self.drain_ledger(now_ms, source);
            results.extend(rs);
        }
        results
    }

    /// Turns the ledger's outputs into events for the driver, gossips adopted certificates
    /// (unless they came by gossip), publishes new evidence and reports new ejections.
    pub(crate) fn drain_ledger(&mut self, now_ms: u64, source: Source) {
        let mut proofs = Vec::new();
        while let Some(o) = self.ledger.poll_output() {
            match o {
                Output::Admitted(event) => {
                    let verdict = self.ledger.verdict(&event.id()).cloned();
                    self.note_seat(&event, verdict.as_ref());
                    self.events.push_back(Event::Admitted {
                        event,
                        source,
                        verdict,
                    });
                }
                Output::Proof(p) => {
                    self.events.push_back(Event::Proof(p.clone()));
                    proofs.push(*p);
                }
                Output::Snapshot { epoch } => self.events.push_back(Event::SnapshotDue { epoch }),
                Output::Certificate(c) => {
                    self.events.push_back(Event::Certificate((*c).clone()));
                    if self.publishes_certificate(source, &c) {
                        self.gossip(Gossip::Certificate(*c));
                    }
                }
            }
        }
        for p in proofs {
            let kind = match &p {
                Evidence::Equivocation { .. } => "equivocation",
                Evidence::ForgedEnvelope(_) => "forged_envelope",
                Evidence::DoubleVote(..) => "double_vote",
            };
            Counters::bump(&mut self.counters.evidence_found, kind);
            // Already applied (another node published it first): nothing to publish.
            let _ = self.publish_own(now_ms, Body::Evidence(Box::new(p)));
        }
        self.note_ejections();
    }

    /// Whether a certificate just adopted goes out by gossip. One that came by gossip is
    /// relayed by the transport already; one fetched by a sync (a heal) is news to the
    /// peers that missed it too. One decided here is published by the deciding round's
    /// proposer only: every node that saw the precommits decides by itself, so one copy
    /// per height serves those that missed some (each node's own copy, with its own subset
    /// of signatures, was a distinct message to every node: n a height).
    fn publishes_certificate(
        &self,
        source: Source,
        c: &web4fed_core::finality::Certificate,
    ) -> bool {
        match source {
            Source::Gossip => false,
            Source::Local => self.proposed_round(c.at),
            _ => true,
        }
    }

    /// Reports members the log has ejected since the last look, and stops talking to them.
    fn note_ejections(&mut self) {
        let fresh: Vec<MemberId> = self
            .ledger
            .state()
            .accounts()
            .filter(|(m, a)| {
                a.status == Status::Ejected && **m != self.me && !self.ejected.contains(m)
            })
            .map(|(m, _)| *m)
            .collect();
        for m in fresh {
            self.ejected.insert(m);
            self.peers.blocked.insert(m);
            if let Some(p) = self.peers.get_mut(&m) {
                p.queue.clear();
            }
            self.events.push_back(Event::Ejected { member: m });
        }
    }

    /// Signs, previews, admits and publishes an event of ours. Refuses to sign one the
    /// defence layers would refuse.
    pub(crate) fn publish_own(
        &mut self,
        now_ms: u64,
        body: Body,
    ) -> Result<Arc<SignedEvent>, CommandError> {
        self.last_own_event_ms = self.last_own_event_ms.max(now_ms);
        let ev = self.ledger.author_event(&self.keypair, now_ms, body);
        match self.ledger.preview(&ev) {
            Verdict::Accepted => {}
            Verdict::Refused(rule) => return Err(CommandError::Refused(rule)),
            Verdict::Ignored(why) => return Err(CommandError::Ignored(why)),
        }
        let id = ev.id();
        let r = self.ingest(now_ms, vec![ev], Source::Local);
        if !matches!(r.first(), Some(Ok(Admission::Admitted))) {
            return Err(CommandError::NotAdmitted(format!("{r:?}")));
        }
        let Some(ev) = self.ledger.event(&id).cloned() else {
            return Err(CommandError::Ignored(Ignored::AuthorEjected));
        };
        self.broadcast(now_ms, &ev);
        Ok(ev)
    }

    /// Gossips an event in an envelope we sign, and queues it for known peers that are not
    /// connected (pushed when they come back).
    pub(crate) fn broadcast(&mut self, now_ms: u64, ev: &Arc<SignedEvent>) {
        let env = Envelope::seal(&self.keypair, &self.network, now_ms, ev.bytes());
        self.gossip(Gossip::Event(env));
        let dropped = self.peers.queue_for_absent(ev);
        self.counters.queue_dropped += dropped;
    }

    /// `Command::Ingest`: admits pre-signed events like any peer's and pushes the admitted
    /// ones to connected peers in batches over the request channel (one authenticated
    /// message per batch instead of one signed envelope per event). Peers not connected get
    /// them through anti-entropy sync.
    fn ingest_batch(&mut self, now_ms: u64, events: Vec<VerifiedEvent>) -> IngestReport {
        let ids: Vec<EventId> = events.iter().map(|e| e.event().id()).collect();
        let results = self.ingest_verified(now_ms, events, Source::Api);
        let mut report = IngestReport::default();
        let mut fresh = Vec::new();
        for (id, r) in ids.iter().zip(&results) {
            match r {
                Ok(Admission::Admitted) => {
                    report.admitted += 1;
                    fresh.extend(self.ledger.event(id).cloned());
                }
                Ok(Admission::AlreadyKnown) => report.known += 1,
                Ok(_) => report.waiting += 1,
                Err(e) => {
                    report.rejected += 1;
                    report.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        let mut dropped = 0;
        for pid in self.peers.connected() {
            if let Some(p) = self.peers.get_mut(&pid) {
                p.queue.extend(fresh.iter().cloned());
                while p.queue.len() > BULK_QUEUE_MAX {
                    p.queue.pop_front();
                    p.dropped += 1;
                    dropped += 1;
                }
            }
            self.flush_queue(now_ms, pid);
        }
        self.counters.queue_dropped += dropped;
        report
    }

    /// `Command::Votes`: each vote is checked and counted like a gossiped one, and the new
    /// ones are gossiped on.
    fn votes_batch(
        &mut self,
        now_ms: u64,
        votes: Vec<web4fed_core::finality::Vote>,
    ) -> VotesReport {
        let mut report = VotesReport::default();
        for v in votes {
            if !self.is_member(&v.signer) {
                report.rejected += 1;
                report
                    .first_error
                    .get_or_insert_with(|| format!("signer {} is not a member", v.signer));
                continue;
            }
            if !v.verify(&self.network) {
                report.rejected += 1;
                report
                    .first_error
                    .get_or_insert_with(|| "vote signature does not verify".into());
                continue;
            }
            let me = self.me;
            match self.on_vote(now_ms, me, v) {
                Acceptance::Accept => report.accepted += 1,
                Acceptance::Ignore => report.known += 1,
                Acceptance::Reject => {
                    report.rejected += 1;
                    report
                        .first_error
                        .get_or_insert_with(|| "vote refused".into());
                }
            }
        }
        self.drain_ledger(now_ms, Source::Local);
        report
    }

    // ---- plumbing ----------------------------------------------------------------------

    pub(crate) fn gossip(&mut self, g: Gossip) {
        self.transmits.push_back(Transmit {
            to: Destination::Gossip,
            message: Message::Gossip(g),
        });
    }

    /// Sends a request and remembers it until it is answered, fails or expires.
    pub(crate) fn send_request(&mut self, now_ms: u64, peer: MemberId, body: Request) -> bool {
        let kind = body.kind();
        self.send_request_as(now_ms, peer, body, kind).is_some()
    }

    /// Sends a request counted and tracked as `kind` (a purpose of its own, such as a
    /// backfill range, whose answer goes elsewhere than the usual one's). Returns its id.
    pub(crate) fn send_request_as(
        &mut self,
        now_ms: u64,
        peer: MemberId,
        body: Request,
        kind: &'static str,
    ) -> Option<RequestId> {
        if self.requests.len() >= MAX_REQUESTS_IN_FLIGHT {
            return None;
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        Counters::bump(&mut self.counters.requests, kind);
        self.requests.insert(
            id,
            Outstanding {
                peer,
                kind,
                deadline_ms: now_ms + REQUEST_TIMEOUT_MS,
            },
        );
        self.transmits.push_back(Transmit {
            to: Destination::Peer(peer),
            message: Message::Request { id, body },
        });
        Some(id)
    }

    pub(crate) fn respond(&mut self, to: MemberId, id: RequestId, body: Response) {
        self.transmits.push_back(Transmit {
            to: Destination::Peer(to),
            message: Message::Response { id, body },
        });
    }

    fn expire_requests(&mut self, now_ms: u64) {
        let expired: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, o)| o.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(o) = self.requests.remove(&id) {
                self.request_done(now_ms, o, true);
            }
        }
    }

    /// Frees the in-flight slot a request held (after its answer, or its failure).
    pub(crate) fn request_done(&mut self, now_ms: u64, o: Outstanding, failed: bool) {
        let Some(p) = self.peers.get_mut(&o.peer) else {
            return;
        };
        match o.kind {
            "reconcile" => p.reconcile_in_flight = false,
            "range" => {
                p.ranges_in_flight = p.ranges_in_flight.saturating_sub(1);
                if failed && self.ranges_in_flight() == 0 {
                    self.flush_sync_buffer(now_ms);
                }
            }
            // A lost push is repaired by anti-entropy; do not stall the queue on it.
            "push" => p.push_in_flight = false,
            _ => {}
        }
    }

    pub(crate) fn ranges_in_flight(&self) -> u32 {
        self.peers.iter().map(|(_, p)| p.ranges_in_flight).sum()
    }

    /// Member peers connected now.
    pub(crate) fn connected_members(&self) -> usize {
        self.peers
            .iter()
            .filter(|(m, p)| p.connected && self.is_member(m))
            .count()
    }

    /// Dials towards [`TARGET_PEERS`] member neighbours: the most preferred (see
    /// [`crate::peers::preference`]) of the members known with an address whose redial is
    /// due, and the bootstrap addresses while short of the target. At the target nothing is
    /// dialled: the rest of the federation is reached through the neighbours.
    fn redial(&mut self, now_ms: u64) {
        let mut dials = Vec::new();
        let want = TARGET_PEERS.saturating_sub(self.connected_members());
        let me = self.me;
        let dialable = |m: &MemberId, p: &crate::peers::Peer| {
            !p.connected
                && !p.addrs.is_empty()
                && now_ms >= p.next_dial_ms
                && !self.peers.blocked.contains(m)
                && self.is_member(m)
        };
        // A committee member's committee neighbours are dialled whatever the peer count:
        // the agreement's gossip travels among the committee only.
        let keep = self.committee_neighbours();
        let mut chosen: Vec<MemberId> = keep
            .iter()
            .filter(|m| self.peers.get(m).is_some_and(|p| dialable(m, p)))
            .copied()
            .collect();
        let mut candidates: Vec<(u64, MemberId)> = self
            .peers
            .iter()
            .filter(|(m, p)| dialable(m, p) && !keep.contains(m))
            .map(|(m, _)| (crate::peers::preference(&me, m), *m))
            .collect();
        candidates.sort_unstable();
        chosen.extend(candidates.into_iter().take(want).map(|(_, m)| m));
        for m in chosen {
            if let Some(p) = self.peers.get_mut(&m) {
                dials.push((Some(m), p.addrs.iter().cloned().collect()));
                p.back_off(now_ms);
            }
        }
        let connected_addrs: BTreeSet<String> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected)
            .flat_map(|(_, p)| p.addrs.iter().cloned())
            .collect();
        for b in &mut self.peers.bootstrap {
            if want > 0 && !connected_addrs.contains(&b.addr) && now_ms >= b.next_dial_ms {
                dials.push((None, vec![b.addr.clone()]));
                b.next_dial_ms = now_ms + b.backoff_ms;
                b.backoff_ms = (b.backoff_ms * 2).min(crate::limits::REDIAL_BACKOFF_MAX_MS);
            }
        }
        for (peer, addrs) in dials {
            self.events.push_back(Event::Dial { peer, addrs });
        }
    }

    /// Above [`MAX_PEERS`] connected members, drops the least preferred connections older
    /// than [`EVICT_GRACE_MS`] (they are not redialled for the longest backoff, nor queued
    /// for): the peer set stays bounded however many dial in.
    fn drop_surplus_peers(&mut self, now_ms: u64) {
        let connected = self.connected_members();
        if connected <= MAX_PEERS {
            return;
        }
        let me = self.me;
        let keep = self.committee_neighbours();
        let mut old: Vec<(u64, MemberId)> = self
            .peers
            .iter()
            .filter(|(m, p)| {
                p.connected
                    && !keep.contains(m)
                    && self.is_member(m)
                    && p.connected_since_ms
                        .is_some_and(|t| now_ms >= t.saturating_add(EVICT_GRACE_MS))
            })
            .map(|(m, _)| (crate::peers::preference(&me, m), *m))
            .collect();
        old.sort_unstable_by(|a, b| b.cmp(a));
        for (_, m) in old.into_iter().take(connected - MAX_PEERS) {
            if let Some(p) = self.peers.get_mut(&m) {
                p.kept = false;
                p.queue.clear();
                p.next_dial_ms = now_ms + crate::limits::REDIAL_BACKOFF_MAX_MS;
            }
            self.counters.peers_dropped += 1;
            self.events.push_back(Event::Disconnect {
                peer: m,
                why: DisconnectReason::Surplus,
            });
        }
    }
}
