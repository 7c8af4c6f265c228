//! Anti-entropy: the sync client (summary, then the missing ranges, folded as one batch),
//! the sync server, pushes one batch at a time, and peer exchange.

use crate::io::{Counters, Event, Source};
use crate::limits::{
    MAX_EVIDENCE_BYTES, MAX_EVIDENCE_ITEMS, MAX_EVIDENCE_PAGES_PER_ROUND, MAX_EXCHANGED_PEERS,
    MAX_PUSH_BATCH_BYTES, MAX_RANGES_IN_FLIGHT, MAX_RECONCILE_ROUNDS, MAX_SUMMARY_FEEDS,
    MAX_SYNC_BATCH_BYTES, MAX_SYNC_BATCH_EVENTS, MAX_SYNC_CERTIFICATES, PEER_EXCHANGE_FANOUT,
    PEER_EXCHANGE_IDLE_FANOUT, PEER_EXCHANGE_IDLE_PERIOD_MS, PEER_EXCHANGE_PERIOD_MS,
    PENDING_CERTS_MAX, SYNC_BUFFER_MAX_BYTES, SYNC_MIN_INTERVAL_MS, SYNC_PERIOD_MS, TARGET_PEERS,
};
use crate::replica::Replica;
use crate::wire::{Request, RequestId, Response};
use serde_bytes::ByteBuf;
use web4fed_core::event::{Body, Event as SignedEvent, Kind};
use web4fed_core::finality::Certificate;
use web4fed_core::identity::MemberId;
use web4fed_core::ledger::EvidenceCursor;

fn member(bytes: &[u8]) -> Option<MemberId> {
    <[u8; 32]>::try_from(bytes).ok().map(MemberId)
}

fn decode_all(items: &[ByteBuf]) -> Vec<SignedEvent> {
    items
        .iter()
        .filter_map(|b| SignedEvent::decode(b).ok())
        .collect()
}

impl Replica {
    /// Starts a sync round with a peer unless one is running or ran very recently: the feed
    /// heads, the evidence and the certificates after ours. `why` names the trigger in the
    /// counters (what starts rounds is what an idle federation pays for).
    pub(crate) fn start_sync(&mut self, now_ms: u64, peer: MemberId, why: &'static str) {
        if self.begin_round(now_ms, peer, why) {
            self.ask_evidence(now_ms, peer, true);
            self.ask_certificates(now_ms, peer);
        }
    }

    /// The round a heartbeat's differing feed digest starts: the feed heads, and evidence or
    /// certificates only if the heartbeat says the peer holds more of them. Most such rounds
    /// are an event in flight; asking for evidence and certificates every time tripled the
    /// requests of an idle hundred's rounds (about 1.2 rounds a second per node). The CPU
    /// this saves was below what the idle measurements could resolve (BENCHMARKS.md).
    pub(crate) fn start_heads_sync(
        &mut self,
        now_ms: u64,
        peer: MemberId,
        certificates: bool,
        evidence: bool,
    ) {
        if self.begin_round(now_ms, peer, "heartbeat_differs") {
            if evidence {
                self.ask_evidence(now_ms, peer, true);
            }
            if certificates {
                self.ask_certificates(now_ms, peer);
            }
        }
    }

    /// Opens a round (the first reconciliation message) unless the peer is not connected,
    /// a round with it is under way, or one started very recently.
    fn begin_round(&mut self, now_ms: u64, peer: MemberId, why: &'static str) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        if !p.connected || p.reconcile_in_flight {
            return false;
        }
        if p.last_sync_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < SYNC_MIN_INTERVAL_MS)
        {
            return false;
        }
        p.reconcile_rounds = 0;
        p.last_sync_ms = Some(now_ms);
        let Ok(msg) = crate::reconcile::initiate(&self.ledger.feed_heads()) else {
            return false;
        };
        if !self.send_reconcile(now_ms, peer, msg) {
            return false;
        }
        Counters::bump(&mut self.counters.sync_rounds, why);
        true
    }

    fn ask_certificates(&mut self, now_ms: u64, peer: MemberId) {
        let after = self.ledger.final_epoch();
        self.send_request(now_ms, peer, Request::Certificates { after });
    }

    /// Periodic anti-entropy with one connected peer, whatever heartbeats say.
    pub(crate) fn periodic_sync(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.last_periodic_sync_ms) < SYNC_PERIOD_MS {
            return;
        }
        self.last_periodic_sync_ms = now_ms;
        let connected = self.peers.connected();
        if !connected.is_empty() {
            let pick = (now_ms / SYNC_PERIOD_MS) as usize % connected.len();
            self.start_sync(now_ms, connected[pick], "periodic");
        }
    }

    /// While finality lags, a sync round (which asks for the certificates after ours) with the
    /// next live peer at every heartbeat, rotating so that one slow peer cannot hold it up; in
    /// the steady state this sends nothing.
    pub(crate) fn catch_up_finality(&mut self, now_ms: u64) {
        if !self.finality_lags(now_ms) {
            return;
        }
        // Only peers whose heartbeats arrive: a request to one that is down is lost and holds
        // its sync slot until it expires.
        let hb = self.heartbeat_ms;
        let live: Vec<MemberId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && !p.is_down(now_ms, hb))
            .map(|(m, _)| *m)
            .collect();
        if live.is_empty() {
            return;
        }
        self.catch_up_turn = self.catch_up_turn.wrapping_add(1);
        let pick = live[self.catch_up_turn % live.len()];
        self.start_sync(now_ms, pick, "finality_lags");
    }

    /// Asks a few connected peers whom they know (rotating through them).
    pub(crate) fn exchange_peers(&mut self, now_ms: u64) {
        // Short of neighbours: ask often and widely; with a full peer set only news of
        // members joining or moving is left to learn.
        let short = self.connected_members() < TARGET_PEERS;
        let (period, fanout) = if short {
            (PEER_EXCHANGE_PERIOD_MS, PEER_EXCHANGE_FANOUT)
        } else {
            (PEER_EXCHANGE_IDLE_PERIOD_MS, PEER_EXCHANGE_IDLE_FANOUT)
        };
        if now_ms.saturating_sub(self.last_peer_exchange_ms) < period {
            return;
        }
        self.last_peer_exchange_ms = now_ms;
        let connected = self.peers.connected();
        let offset = (now_ms / 1_000) as usize;
        let n = connected.len();
        for i in 0..n.min(fanout) {
            self.send_request(now_ms, connected[(offset + i) % n], Request::Peers);
        }
    }

    /// Sends the next push batch to a connected peer, one at a time: the next leaves when the
    /// peer acknowledges this one. Pushes handled concurrently could be folded out of order,
    /// and each out-of-order event costs the receiver a re-fold from a snapshot; waiting for
    /// the ack keeps them in order and lets batches grow while the peer is busy.
    pub(crate) fn flush_queue(&mut self, now_ms: u64, peer: MemberId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.connected || p.push_in_flight || p.queue.is_empty() {
            return;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(ev) = p.queue.front() {
            if bytes + ev.bytes().len() > MAX_PUSH_BATCH_BYTES && !batch.is_empty() {
                break;
            }
            bytes += ev.bytes().len();
            batch.push(ByteBuf::from(ev.bytes().to_vec()));
            p.queue.pop_front();
        }
        p.push_in_flight = true;
        if !self.send_request(now_ms, peer, Request::Push { events: batch }) {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.push_in_flight = false;
            }
        }
    }

    /// Holds events back to be folded with the rest of the buffer (at the latest
    /// [`SYNC_BUFFER_MAX_AGE_MS`] from now).
    pub(crate) fn buffer(&mut self, now_ms: u64, evs: Vec<SignedEvent>) {
        self.sync_buffer_bytes += evs.iter().map(|e| e.bytes().len()).sum::<usize>();
        self.sync_buffer.extend(evs);
        self.sync_buffer_since_ms.get_or_insert(now_ms);
    }

    /// Folds the buffered synced events as one batch.
    pub(crate) fn flush_sync_buffer(&mut self, now_ms: u64) {
        if self.sync_buffer.is_empty() {
            self.sync_buffer_since_ms = None;
            return;
        }
        let evs = std::mem::take(&mut self.sync_buffer);
        self.sync_buffer_bytes = 0;
        self.sync_buffer_since_ms = None;
        self.ingest(now_ms, evs, Source::Sync);
    }

    // ---- server ------------------------------------------------------------------------

    pub(crate) fn on_request(&mut self, now_ms: u64, from: MemberId, id: RequestId, req: Request) {
        let bytes = match &req {
            Request::Push { events } => events.iter().map(|e| e.len() as u64).sum(),
            Request::Agreement {
                votes,
                proposals,
                polkas,
            } => votes
                .iter()
                .chain(proposals)
                .chain(polkas.iter().flatten())
                .map(|e| e.len() as u64)
                .sum(),
            _ => 0,
        };
        if !self.charge(now_ms, from, 1, bytes) {
            let message = "over budget: slow down".to_string();
            self.respond(from, id, Response::Error { message });
            return;
        }
        let resp = match req {
            Request::Summary => Response::Summary {
                feeds: self
                    .ledger
                    .feed_heads()
                    .into_iter()
                    .take(MAX_SUMMARY_FEEDS)
                    .map(|(m, (n, head))| {
                        (
                            ByteBuf::from(m.0.to_vec()),
                            n,
                            ByteBuf::from(head.0.to_vec()),
                        )
                    })
                    .collect(),
            },
            Request::Reconcile { msg } => {
                match crate::reconcile::respond(&self.ledger.feed_heads(), &msg) {
                    Ok(m) => Response::Reconcile {
                        msg: ByteBuf::from(m),
                    },
                    Err(e) => Response::Error {
                        message: format!("reconcile: {e}"),
                    },
                }
            }
            Request::Range {
                author,
                from_seq,
                max,
            } => match self.feed_named(&author) {
                Some(author) => match self.serve_range(from, id, author, from_seq, max) {
                    Some(r) => r,
                    None => return, // answered by the durable log, via the driver
                },
                None => Response::Error {
                    message: "author must be a member id (32 bytes) or the 16-byte prefix of a feed held here".into(),
                },
            },
            Request::Evidence { after } => {
                match after.as_deref().map(|b| EvidenceCursor::from_bytes(b)) {
                    Some(None) => Response::Error {
                        message: "evidence cursor must be 33 bytes of a known kind".into(),
                    },
                    Some(Some(c)) => self.evidence_page(Some(c)),
                    None => self.evidence_page(None),
                }
            }
            Request::Peers => Response::Peers {
                peers: self
                    .peers
                    .iter()
                    .filter(|(m, p)| p.connected && !p.addrs.is_empty() && **m != from)
                    .take(MAX_EXCHANGED_PEERS)
                    .map(|(m, p)| {
                        (
                            ByteBuf::from(m.0.to_vec()),
                            p.addrs.iter().cloned().collect(),
                        )
                    })
                    .collect(),
            },
            Request::SnapshotInfo => {
                match self.serve_snapshot(now_ms, from, id, crate::io::SnapshotPart::Info) {
                    Some(r) => r,
                    None => return, // answered by the driver from disk
                }
            }
            Request::SnapshotChunk { epoch, index } => {
                let part = crate::io::SnapshotPart::Chunk { epoch, index };
                match self.serve_snapshot(now_ms, from, id, part) {
                    Some(r) => r,
                    None => return,
                }
            }
            Request::Certificates { after } => Response::Certificates {
                items: self
                    .ledger
                    .certificates()
                    .filter(|c| after.is_none_or(|a| c.body.epoch > a))
                    .take(MAX_SYNC_CERTIFICATES)
                    .map(|c| ByteBuf::from(c.encode()))
                    .collect(),
            },
            Request::Activate { id_object, secret } => {
                if !self.has_tpm {
                    Response::Error {
                        message: "this member has no TPM".into(),
                    }
                } else if self.answering >= crate::limits::ATTEST_ANSWERS_IN_FLIGHT {
                    Response::Error {
                        message: "busy: too many challenges in flight".into(),
                    }
                } else {
                    self.answering += 1;
                    self.events.push_back(Event::AnswerChallenge {
                        from,
                        request: id,
                        id_object: id_object.into_vec(),
                        secret: secret.into_vec(),
                    });
                    return;
                }
            }
            Request::Push { events } => {
                self.peers.entry(from, now_ms).last_delivery_ms = Some(now_ms);
                // One batch, one fold: however late its events, a push costs one re-fold.
                let evs = decode_all(&events);
                self.ingest(now_ms, evs, Source::Push);
                Response::Ack
            }
            Request::Agreement {
                votes,
                proposals,
                polkas,
            } => {
                self.take_agreement_resend(now_ms, from, votes, proposals, polkas);
                Response::Ack
            }
        };
        self.respond(from, id, resp);
    }

    /// A range from memory, or `None` when the ledger let go of part of it and the durable
    /// log must answer ([`Event::ReadArchive`]).
    fn serve_range(
        &mut self,
        to: MemberId,
        id: RequestId,
        author: MemberId,
        from_seq: u64,
        max: u32,
    ) -> Option<Response> {
        let max = u64::from(max.min(MAX_SYNC_BATCH_EVENTS));
        let end = from_seq
            .saturating_add(max)
            .min(self.ledger.served_len(&author));
        // Final history leaves memory (registrations may stay): any gap sends the whole
        // range to the durable log, which holds every admitted event.
        if (from_seq..end).any(|s| self.ledger.feed_event(&author, s).is_none()) {
            self.events.push_back(Event::ReadArchive {
                to,
                request: id,
                author,
                from_seq,
                max: end - from_seq,
            });
            return None;
        }
        let mut events = Vec::new();
        let mut bytes = 0;
        for seq in from_seq..end {
            let Some(ev) = self.ledger.feed_event(&author, seq) else {
                break;
            };
            bytes += ev.bytes().len();
            if bytes > MAX_SYNC_BATCH_BYTES && !events.is_empty() {
                break;
            }
            events.push(ByteBuf::from(ev.bytes().to_vec()));
        }
        Some(Response::Events { events })
    }

    /// The durable log's answer to a range the ledger no longer holds, cut to the limits.
    pub(crate) fn archive_read(
        &mut self,
        to: MemberId,
        request: RequestId,
        result: Result<Vec<Vec<u8>>, String>,
    ) {
        let body = match result {
            Ok(rows) => {
                let mut events = Vec::new();
                let mut bytes = 0;
                for row in rows.into_iter().take(MAX_SYNC_BATCH_EVENTS as usize) {
                    bytes += row.len();
                    if bytes > MAX_SYNC_BATCH_BYTES && !events.is_empty() {
                        break;
                    }
                    events.push(ByteBuf::from(row));
                }
                Response::Events { events }
            }
            Err(message) => Response::Error { message },
        };
        self.respond(to, request, body);
    }

    // ---- client ------------------------------------------------------------------------

    pub(crate) fn on_response(
        &mut self,
        now_ms: u64,
        from: MemberId,
        id: RequestId,
        resp: Response,
    ) {
        // Only answers to our own requests, from the peer asked, are read.
        let Some(o) = self.requests.get(&id).copied() else {
            Counters::bump(&mut self.counters.rejected, "unsolicited_response");
            return;
        };
        if o.peer != from {
            Counters::bump(&mut self.counters.rejected, "unsolicited_response");
            return;
        }
        self.requests.remove(&id);
        self.request_done(now_ms, o, false);
        if o.kind == "backfill" {
            return self.on_backfill_answer(now_ms, id, resp);
        }
        match resp {
            // Replicas reconcile rather than ask for every head; a summary is never asked for.
            Response::Summary { .. } => {
                Counters::bump(&mut self.counters.rejected, "unexpected_answer")
            }
            Response::Reconcile { msg } => self.on_reconcile(now_ms, from, &msg),
            Response::Events { events } => self.on_events(now_ms, from, events),
            Response::Evidence { items, next } => self.on_evidence(now_ms, from, items, next),
            Response::Peers { peers } => self.on_peers(now_ms, peers),
            Response::Certificates { items } => {
                for item in items.iter().take(MAX_SYNC_CERTIFICATES) {
                    if let Ok(c) = Certificate::decode(item) {
                        if self.plausible_certificate(now_ms, &c) {
                            self.hold_certificate(c);
                        }
                    }
                }
                self.retry_certs(now_ms);
            }
            Response::Ack => self.flush_queue(now_ms, from),
            // Replicas never ask for snapshots (the state-sync client does, before a node
            // starts).
            Response::SnapshotInfo { .. } | Response::SnapshotChunk { .. } => {
                Counters::bump(&mut self.counters.rejected, "unexpected_answer")
            }
            Response::Activated { credential } => self.on_activated(now_ms, from, &credential),
            Response::Error { .. } => {
                Counters::bump(&mut self.counters.rejected, "peer_refused_request")
            }
        }
    }

    /// The member a range request names: its whole id, or the prefix of a feed we hold.
    fn feed_named(&self, author: &[u8]) -> Option<MemberId> {
        if author.len() == crate::reconcile::FEED_PREFIX {
            return self
                .ledger
                .feed_heads()
                .into_keys()
                .find(|m| m.0[..crate::reconcile::FEED_PREFIX] == *author);
        }
        member(author)
    }

    /// One answer of a reconciliation we started: fetch the feeds found to differ, and send
    /// the next round while ranges are undecided (at most [`MAX_RECONCILE_ROUNDS`]).
    fn on_reconcile(&mut self, now_ms: u64, from: MemberId, msg: &[u8]) {
        let heads = self.ledger.feed_heads();
        let step = match crate::reconcile::step(&heads, msg) {
            Ok(s) => s,
            Err(_) => {
                Counters::bump(&mut self.counters.rejected, "bad_reconcile");
                self.strike(now_ms, from);
                return;
            }
        };
        for (feed, theirs) in step.differ {
            let (author, from_seq) = match feed {
                Ok(m) => {
                    let ours = heads.get(&m).map_or(0, |h| h.0);
                    if self.ledger.fork_seq(&m).is_some_and(|f| ours > f) {
                        continue; // nothing past a proven fork is ever admitted
                    }
                    // Shorter on their side: they fetch from us in their own rounds. Longer,
                    // or as long on another branch: from our last seq, so a branch that
                    // diverges there shows as a fork.
                    if theirs < ours || (theirs == ours && ours == 0) {
                        continue;
                    }
                    (m.0.to_vec(), ours.saturating_sub(1))
                }
                // A feed we do not hold at all, named by its prefix.
                Err(p) => (p.to_vec(), 0),
            };
            if !self.request_range(now_ms, from, author, from_seq) {
                break;
            }
        }
        let Some(next) = step.next else {
            return;
        };
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        if !p.connected || p.reconcile_rounds + 1 >= MAX_RECONCILE_ROUNDS {
            return;
        }
        p.reconcile_rounds += 1;
        self.send_reconcile(now_ms, from, next);
    }

    /// Sends one reconciliation message, marking a reconciliation in flight with the peer
    /// (cleared when the answer comes or the request fails).
    fn send_reconcile(&mut self, now_ms: u64, peer: MemberId, msg: Vec<u8>) -> bool {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.reconcile_in_flight = true;
        }
        let req = Request::Reconcile {
            msg: ByteBuf::from(msg),
        };
        let sent = self.send_request(now_ms, peer, req);
        if !sent {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.reconcile_in_flight = false;
            }
        }
        sent
    }

    /// Asks `peer` for a feed's events from `from_seq`; `author` is the member id, or the
    /// prefix a reconciliation named a feed we do not hold by.
    fn request_range(
        &mut self,
        now_ms: u64,
        peer: MemberId,
        author: Vec<u8>,
        from_seq: u64,
    ) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        if p.ranges_in_flight >= MAX_RANGES_IN_FLIGHT {
            return false;
        }
        p.ranges_in_flight += 1;
        let sent = self.send_request(
            now_ms,
            peer,
            Request::Range {
                author: ByteBuf::from(author),
                from_seq,
                max: MAX_SYNC_BATCH_EVENTS,
            },
        );
        if !sent {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.ranges_in_flight -= 1;
            }
        }
        sent
    }

    fn on_events(&mut self, now_ms: u64, from: MemberId, events: Vec<ByteBuf>) {
        let full = events.len() as u32 >= MAX_SYNC_BATCH_EVENTS;
        let bytes: usize = events.iter().map(|e| e.len()).sum();
        self.counters.sync_events += events.len() as u64;
        self.counters.sync_bytes += bytes as u64;
        let evs = decode_all(&events);
        let next = evs.last().map(|e| (e.author(), e.seq() + 1));
        self.buffer(now_ms, evs);
        if let Some((author, from_seq)) = next {
            if full || bytes > MAX_SYNC_BATCH_BYTES / 2 {
                self.request_range(now_ms, from, author.0.to_vec(), from_seq);
            }
        }
        if self.ranges_in_flight() == 0 || self.sync_buffer_bytes >= SYNC_BUFFER_MAX_BYTES {
            self.flush_sync_buffer(now_ms);
        }
    }

    /// One page of the evidence held, after `after` (see [`MAX_EVIDENCE_ITEMS`]).
    fn evidence_page(&self, after: Option<EvidenceCursor>) -> Response {
        let mut items = Vec::new();
        let mut bytes = 0;
        let mut last = None;
        let mut rest = self.ledger.evidence_after(after).peekable();
        while let Some((cursor, e)) = rest.next_if(|_| items.len() < MAX_EVIDENCE_ITEMS) {
            let item = Body::Evidence(Box::new(e)).encode();
            if !items.is_empty() && bytes + item.len() > MAX_EVIDENCE_BYTES {
                // This one starts the next page.
                let next = last.map(|c: EvidenceCursor| ByteBuf::from(c.0.to_vec()));
                return Response::Evidence { items, next };
            }
            bytes += item.len();
            items.push(ByteBuf::from(item));
            last = Some(cursor);
        }
        let next = match rest.peek() {
            Some(_) => last.map(|c| ByteBuf::from(c.0.to_vec())),
            None => None,
        };
        Response::Evidence { items, next }
    }

    /// Asks a peer for its next page of evidence: a new round resumes where the last one
    /// stopped, and a round asks at most [`MAX_EVIDENCE_PAGES_PER_ROUND`] pages.
    pub(crate) fn ask_evidence(&mut self, now_ms: u64, peer: MemberId, new_round: bool) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if new_round {
            p.evidence_pages = 0;
        }
        if p.evidence_pages >= MAX_EVIDENCE_PAGES_PER_ROUND {
            return;
        }
        p.evidence_pages += 1;
        let after = p.evidence_after.map(|c| ByteBuf::from(c.0.to_vec()));
        self.send_request(now_ms, peer, Request::Evidence { after });
    }

    fn on_evidence(
        &mut self,
        now_ms: u64,
        from: MemberId,
        items: Vec<ByteBuf>,
        next: Option<ByteBuf>,
    ) {
        let next = next.as_deref().and_then(|b| EvidenceCursor::from_bytes(b));
        let mut more = false;
        if let Some(p) = self.peers.get_mut(&from) {
            // A cursor must move forward, or a peer could keep us asking for one page.
            let forward = next.filter(|n| p.evidence_after.is_none_or(|a| *n > a));
            more = forward.is_some();
            p.evidence_after = forward;
        }
        if more {
            self.ask_evidence(now_ms, from, false);
        }
        let mut added = false;
        for item in items.iter().take(MAX_EVIDENCE_ITEMS) {
            if let Ok(Body::Evidence(e)) = Body::decode(Kind::Evidence, item) {
                if self.ledger.handle_proof((*e).clone()).is_ok() {
                    self.events.push_back(Event::Proof(e));
                    added = true;
                }
            }
        }
        if added {
            self.drain_ledger(now_ms, Source::Sync);
        }
    }

    fn on_peers(&mut self, now_ms: u64, peers: Vec<(ByteBuf, Vec<String>)>) {
        for (id, addrs) in peers.into_iter().take(MAX_EXCHANGED_PEERS) {
            let Some(m) = member(&id) else {
                continue;
            };
            // Only members' records are kept: a stranger's list of made-up peers costs nothing.
            if m == self.me || self.peers.blocked.contains(&m) || !self.is_member(&m) {
                continue;
            }
            let Some(p) = self.peers.heard_of(m, now_ms) else {
                break;
            };
            for a in addrs.into_iter().take(crate::limits::MAX_ADDRS_PER_PEER) {
                p.add_addr(a);
            }
        }
    }

    /// Keeps a certificate to try once this replica can check it.
    pub(crate) fn hold_certificate(&mut self, c: Certificate) {
        if self.pending_certs.len() < PENDING_CERTS_MAX
            && self.ledger.final_epoch() < Some(c.body.epoch)
            && !self
                .pending_certs
                .iter()
                .any(|(p, _)| p.body.epoch == c.body.epoch && p.body == c.body)
        {
            self.pending_certs.push((c, 0));
        }
    }
}
