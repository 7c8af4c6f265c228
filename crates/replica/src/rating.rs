//! Committee ratings written by the node itself: when the fold draws this member onto a
//! thought's committee, the replica rates the thought with its scorer and publishes the
//! rating, a few per tick. An operator who would rather rate by hand turns this off
//! (`rate_thoughts = false`) and uses `web4fed rate` / `POST /v1/ratings`.

use crate::replica::Replica;
use std::collections::VecDeque;
use web4fed_core::event::{Body, Event as SignedEvent, EventId, Validate};
use web4fed_core::quality::coherence_micro;
use web4fed_core::verdict::Verdict;

/// The scorer a node rates with, named in every rating it writes: the ledger's own
/// deterministic coherence scorer. A node with a better scorer (a model on its GPU) would
/// name that one instead; ratings from different scorers are compared only by their values.
pub const SCORER: &str = "coherence-v1";

/// The scorer named in a rating an operator gave by hand.
pub const BY_HAND: &str = "operator";

/// Most seats waiting to be rated. A member's seats come from other members' thoughts, which
/// their rate limits bound; more than this waiting means the node is far behind, and the
/// oldest seats are dropped (their thoughts settle without us, or never).
pub const MAX_PENDING_RATINGS: usize = 4_096;

/// How often the node rates the seats that came in: once a second, so its ratings go to disk
/// in one transaction a second rather than one per thought, and do not compete with the
/// replication of the thoughts they rate (ratings have the whole rating window).
pub const RATING_PERIOD_MS: u64 = 1_000;

/// Most ratings signed per period: far above the seats a federation within its rate limits
/// hands any member in a second, and a bound on the work one period does.
pub const RATINGS_PER_PERIOD: usize = 512;

/// The seats waiting for our rating, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Seats {
    pending: VecDeque<EventId>,
    next_due_ms: u64,
}

impl Seats {
    fn push(&mut self, id: EventId) {
        if self.pending.len() >= MAX_PENDING_RATINGS {
            self.pending.pop_front();
        }
        self.pending.push_back(id);
    }
}

impl Replica {
    /// Queues every live thought whose committee holds us and that we have not rated: at
    /// start, so seats drawn while the node was down are still served.
    pub(crate) fn queue_unrated_seats(&mut self) {
        if !self.rate_thoughts {
            return;
        }
        let me = self.me;
        let mut seats: Vec<(u64, EventId)> = self
            .ledger
            .state()
            .corpus()
            .filter(|(_, e)| e.committee.contains(&me) && !e.ratings.iter().any(|(r, _)| *r == me))
            .map(|(id, e)| (e.timestamp_ms, *id))
            .collect();
        seats.sort_unstable();
        for (_, id) in seats {
            self.seats.push(id);
        }
    }

    /// Notes an admitted event: queues an accepted thought whose committee holds us (only
    /// those, so a busy federation's other thoughts never push our seats out of the queue).
    pub(crate) fn note_seat(&mut self, event: &SignedEvent, verdict: Option<&Verdict>) {
        let me = self.me;
        if self.rate_thoughts
            && event.author() != me
            && matches!(event.body, Body::Thought(_))
            && verdict.is_some_and(Verdict::is_accepted)
            && self
                .ledger
                .state()
                .thought(&event.id())
                .is_some_and(|e| e.committee.contains(&me))
        {
            self.seats.push(event.id());
        }
    }

    /// Every [`RATING_PERIOD_MS`], rates up to [`RATINGS_PER_PERIOD`] waiting seats that are
    /// still ours and unrated.
    pub(crate) fn rate_seats(&mut self, now_ms: u64) {
        if now_ms < self.seats.next_due_ms || self.seats.pending.is_empty() {
            return;
        }
        self.seats.next_due_ms = now_ms + RATING_PERIOD_MS;
        let mut done = 0;
        while done < RATINGS_PER_PERIOD {
            let Some(id) = self.seats.pending.pop_front() else {
                return;
            };
            let me = self.me;
            let ours = self.ledger.state().thought(&id).is_some_and(|e| {
                e.committee.contains(&me) && !e.ratings.iter().any(|(r, _)| *r == me)
            });
            let content = match self.ledger.event(&id).map(|e| e.body.clone()) {
                Some(Body::Thought(c)) if ours => c,
                _ => continue,
            };
            let score = coherence_micro(&content).min(u64::from(u32::MAX)) as u32;
            let body = Body::Validate(Validate {
                thought: id,
                score_micro: score,
                scorer: SCORER.into(),
            });
            // An error means the thought left the corpus or our member is ejected: nothing
            // to rate (the driver sees our own event persisted like any admitted one).
            if self.publish_own(now_ms, body).is_ok() {
                self.counters.ratings_written += 1;
            }
            done += 1;
        }
    }
}
