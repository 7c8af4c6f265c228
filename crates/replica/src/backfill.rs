//! Lazy history backfill: a node that joined from a snapshot holds the state but none of the
//! events before it. When the operator asks for that history, this fetches it from peers in
//! the background, one page at a time, newest first, and hands each page to the driver to
//! store in the log (never to the ledger: the snapshot already folded it).
//!
//! Nothing is taken on a peer's word. A feed is a hash chain, and the snapshot names the id
//! of each feed's last covered event (its "anchor"). A page is the events just below the
//! anchor, each signed by the feed's author, each linking to the one before it, and the last
//! of them must be the anchor itself; only then is it stored, and the page's first event's
//! `prev` becomes the anchor for the next page down. So every stored event is one the
//! certified state already accounts for; a peer that serves another branch, another author's
//! events, a gap or a bad signature gets its answer discarded and the page is asked of the
//! next peer.
//!
//! Budget: one request in flight, a page of [`BACKFILL_PAGE_EVENTS`] at most, a pause of
//! [`BACKFILL_PERIOD_MS`] between pages (each page costs an Ed25519 check per event on the
//! node's task), and a feed that no connected peer can serve is set aside for this run.

use crate::limits::{
    BACKFILL_MISSES_PER_PAGE, BACKFILL_PAGE_EVENTS, BACKFILL_PERIOD_MS, MAX_SYNC_BATCH_EVENTS,
};
use crate::replica::Replica;
use crate::wire::{RequestId, Response};
use crate::{Counters, Event};
use serde_bytes::ByteBuf;
use std::collections::VecDeque;
use std::sync::Arc;
use web4fed_core::event::{Event as SignedEvent, EventId};
use web4fed_core::identity::MemberId;

/// A feed's history still missing below a verified point: events `0..low` are not held, and
/// the event at `low - 1` must have id `anchor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The feed.
    pub author: MemberId,
    /// Events below this seq are missing.
    pub low: u64,
    /// Id of the event at `low - 1` (what the next page down must end with).
    pub anchor: EventId,
}

/// How far the backfill has come, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillStatus {
    /// Feeds with history still to fetch.
    pub feeds_left: usize,
    /// Events still to fetch, over those feeds.
    pub events_left: u64,
    /// Events fetched, verified and handed over for storing in this run.
    pub stored: u64,
    /// Answers discarded because they failed a check (signature, chain, author, anchor).
    pub refused: u64,
    /// Feeds set aside because no peer served their next page.
    pub set_aside: usize,
}

/// The backfill's state (empty unless the driver started one).
#[derive(Debug, Default)]
pub(crate) struct Backfill {
    gaps: VecDeque<Gap>,
    /// The front gap's page being assembled: events from `low - page_len` on, verified
    /// among themselves, not yet linked to the anchor.
    page: Vec<SignedEvent>,
    in_flight: Option<RequestId>,
    next_ms: u64,
    /// Which connected peer to ask (moves on after a miss).
    turn: usize,
    /// Misses on the current page.
    misses: u32,
    /// No peer was connected at the last try: the tick tries again, not a timer of its own
    /// (a node left without peers would otherwise wake every pause for nothing).
    no_peers: bool,
    stored: u64,
    refused: u64,
    set_aside: Vec<MemberId>,
}

impl Backfill {
    fn page_from(gap: &Gap) -> u64 {
        gap.low.saturating_sub(BACKFILL_PAGE_EVENTS)
    }
}

/// Why an answer was not taken.
enum Miss {
    /// The peer lacks the range (an empty answer, or one that starts further on).
    Lacks,
    /// The answer failed a check (named as the rejection counter it bumps).
    Refused(&'static str),
}

impl Replica {
    /// Replaces the backfill plan (empty: stop).
    pub(crate) fn set_backfill(&mut self, now_ms: u64, gaps: Vec<Gap>) {
        self.backfill = Backfill {
            gaps: gaps.into_iter().filter(|g| g.low > 0).collect(),
            next_ms: now_ms,
            ..Backfill::default()
        };
    }

    /// How far the backfill has come.
    pub fn backfill_status(&self) -> BackfillStatus {
        let b = &self.backfill;
        BackfillStatus {
            feeds_left: b.gaps.len(),
            events_left: b.gaps.iter().map(|g| g.low).sum(),
            stored: b.stored,
            refused: b.refused,
            set_aside: b.set_aside.len(),
        }
    }

    /// When the next backfill request is due, if one is to be sent (none is out, a feed has
    /// history missing and a peer was there at the last try); lost requests and peers coming
    /// back are noticed at the next tick.
    pub(crate) fn backfill_due(&self) -> Option<u64> {
        let b = &self.backfill;
        (b.in_flight.is_none() && !b.gaps.is_empty() && !b.no_peers).then_some(b.next_ms)
    }

    /// Asks the next peer for the next part of the current page, unless a request is out or
    /// the pause since the last page is not over. Called every tick.
    pub(crate) fn drive_backfill(&mut self, now_ms: u64) {
        if let Some(id) = self.backfill.in_flight {
            if self.requests.contains_key(&id) {
                return;
            }
            // Expired, failed at the transport, or its peer went away.
            self.backfill.in_flight = None;
            self.backfill_miss(now_ms, Miss::Lacks);
        }
        let Some(gap) = self.backfill.gaps.front().cloned() else {
            return;
        };
        if now_ms < self.backfill.next_ms {
            return;
        }
        let connected = self.peers.connected();
        self.backfill.no_peers = connected.is_empty();
        if connected.is_empty() {
            return;
        }
        let want = Backfill::page_from(&gap) + self.backfill.page.len() as u64;
        let max = (gap.low - want).min(u64::from(MAX_SYNC_BATCH_EVENTS)) as u32;
        let peer = connected[self.backfill.turn % connected.len()];
        let body = crate::wire::Request::Range {
            author: ByteBuf::from(gap.author.0.to_vec()),
            from_seq: want,
            max,
        };
        self.backfill.in_flight = self.send_request_as(now_ms, peer, body, "backfill");
        if self.backfill.in_flight.is_none() {
            self.backfill.next_ms = now_ms + BACKFILL_PERIOD_MS;
        }
    }

    /// A peer's answer to a backfill request.
    pub(crate) fn on_backfill_answer(&mut self, now_ms: u64, id: RequestId, resp: Response) {
        if self.backfill.in_flight != Some(id) {
            return;
        }
        self.backfill.in_flight = None;
        let Some(gap) = self.backfill.gaps.front().cloned() else {
            return;
        };
        let Response::Events { events } = resp else {
            return self.backfill_miss(now_ms, Miss::Lacks);
        };
        match self.take_page_part(&gap, &events) {
            Ok(()) => {}
            Err(m) => return self.backfill_miss(now_ms, m),
        }
        let from = Backfill::page_from(&gap);
        if from + self.backfill.page.len() as u64 == gap.low {
            self.finish_page(now_ms, gap, from);
        }
        // Otherwise the answer was cut short (its byte limit): the rest of the page next.
    }

    /// Checks an answer's events and adds them to the page being assembled.
    fn take_page_part(&mut self, gap: &Gap, events: &[ByteBuf]) -> Result<(), Miss> {
        let want = Backfill::page_from(gap) + self.backfill.page.len() as u64;
        let room = (gap.low - want) as usize;
        if events.is_empty() {
            return Err(Miss::Lacks);
        }
        let mut part: Vec<SignedEvent> = Vec::with_capacity(events.len().min(room));
        for (i, bytes) in events.iter().take(room).enumerate() {
            let e =
                SignedEvent::decode(bytes).map_err(|_| Miss::Refused("backfill_undecodable"))?;
            if e.author() != gap.author {
                return Err(Miss::Refused("backfill_other_author"));
            }
            let expected = want + i as u64;
            if e.seq() > expected {
                // A hole in the peer's own log (retention removes rows in the order they
                // were stored, which is not always seq order): what came before it stands,
                // and the rest is asked again, of the next peer if this one lacks it.
                break;
            }
            if e.seq() < expected {
                // Repeated or going backwards: no honest log answers so.
                return Err(Miss::Refused("backfill_out_of_order"));
            }
            let prev = part
                .last()
                .or(self.backfill.page.last())
                .map(SignedEvent::id);
            if prev.is_some_and(|p| e.header.prev != p) {
                return Err(Miss::Refused("backfill_broken_chain"));
            }
            if !e.verify(&self.network) {
                return Err(Miss::Refused("backfill_bad_signature"));
            }
            part.push(e);
        }
        if part.is_empty() {
            return Err(Miss::Lacks);
        }
        self.backfill.page.extend(part);
        Ok(())
    }

    /// A whole page: stored if it ends at the anchor, then the next page down.
    fn finish_page(&mut self, now_ms: u64, gap: Gap, from: u64) {
        let page = std::mem::take(&mut self.backfill.page);
        if page.last().map(SignedEvent::id) != Some(gap.anchor) {
            // Signed and chained, but not the history the snapshot certifies (a fork, or a
            // forged chain ending elsewhere).
            return self.backfill_miss(now_ms, Miss::Refused("backfill_not_certified"));
        }
        let rest = Gap {
            author: gap.author,
            low: from,
            anchor: page[0].header.prev,
        };
        let b = &mut self.backfill;
        b.stored += page.len() as u64;
        b.misses = 0;
        b.next_ms = now_ms + BACKFILL_PERIOD_MS;
        if rest.low == 0 {
            b.gaps.pop_front();
        } else if let Some(front) = b.gaps.front_mut() {
            *front = rest.clone();
        }
        self.events.push_back(Event::Backfilled {
            events: page.into_iter().map(Arc::new).collect(),
            rest,
        });
    }

    /// An answer not taken: the page starts again with the next peer; a page no peer
    /// serves sets its feed aside for this run.
    fn backfill_miss(&mut self, now_ms: u64, why: Miss) {
        if let Miss::Refused(reason) = why {
            self.backfill.refused += 1;
            Counters::bump(&mut self.counters.rejected, reason);
        }
        let tries = BACKFILL_MISSES_PER_PAGE.max(self.peers.connected().len() as u32);
        let b = &mut self.backfill;
        b.page.clear();
        b.turn = b.turn.wrapping_add(1);
        b.misses += 1;
        b.next_ms = now_ms + BACKFILL_PERIOD_MS;
        if b.misses >= tries {
            b.misses = 0;
            if let Some(g) = b.gaps.pop_front() {
                b.set_aside.push(g.author);
            }
        }
    }
}
