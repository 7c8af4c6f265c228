//! Agreement on checkpoints by Tendermint, with Malachite's driver
//! (`informalsystems-malachitebft-core-driver`): one height decides one checkpoint (epoch,
//! frontier digest, state root); a member prevotes only for a value whose events it holds
//! and whose root it computes itself; the precommits of more than two thirds of the height's
//! voting weight are the finality certificate. The driver is synchronous and sans-IO like
//! the rest of the replica: this module feeds it checked, signed messages and timeouts, and
//! turns its outputs into signed gossip, durable `Voted` records and certificates.
//!
//! Why a library: Tendermint's locking rules are what make a decided checkpoint final, and
//! they are easy to get subtly wrong; Malachite's core is the maintained, formally specified
//! and model-checked implementation of them, with no I/O of its own (docs/PROTOCOL.md,
//! "Agreement").
//!
//! Validator sets: generation 0 of a height uses the weights at the latest certified
//! checkpoint (`Ledger::validators`); a height that has not decided for a stall period moves
//! to the next generation, whose weights come from a later checkpoint in which silent
//! members have leaked. A member carries the value it precommitted into the next generation
//! (and across a restart) as a lock: it prevotes for nothing else until it sees two thirds
//! prevote another value.

mod certificates;
pub mod context;

use crate::io::{Acceptance, Counters, Event};
use crate::limits::{
    AGREEMENT_LEAVE_AFTER_MS, HELD_PROPOSALS_MAX, PROPOSE_TIMEOUT_MS, ROUND_TIMEOUT_STEP_MS,
    ROUND_WINDOW, STALLED_STEP_MS, VOTE_TIMEOUT_MS,
};
use crate::replica::Replica;
use crate::wire::Gossip;
use context::{Address, Ctx, Height, Signature, ValidatorSet, Value, ValueId};
use malachitebft_core_driver::{Driver, Input, Output, ThresholdParams};
use malachitebft_core_types::{
    self as mc, Context as _, NilOrVal, Round, SignedMessage, Timeout, TimeoutKind, Validity,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use web4fed_core::finality::{At, CertError, Certificate, LastVote, Proposal, Vote, VoteKind};
use web4fed_core::identity::MemberId;

/// The agreement's state inside a replica.
#[derive(Default)]
pub(crate) struct Agreement {
    /// The driver of the current height and generation (none until a value can be proposed).
    driver: Option<Driver<Ctx>>,
    /// Its height and generation.
    height: Height,
    /// Its validator set.
    set: Option<ValidatorSet>,
    /// Timeouts the driver asked for, with their deadlines.
    timers: Vec<(u64, Timeout)>,
    /// The round the driver asked us to propose a value for, while we have none yet.
    want_value: Option<Round>,
    /// Proposals this replica cannot judge yet (see [`HELD_PROPOSALS_MAX`]).
    held: Vec<Proposal>,
    /// Votes taken at the current height, by signer, position and kind: duplicates cost
    /// nothing, and a second, different one is a double vote.
    seen: BTreeMap<(MemberId, At, VoteKind), Vote>,
    /// Proposals taken, by round (one per round; the proposer's others are ignored).
    proposals_taken: BTreeMap<u32, Proposal>,
    /// A value precommitted in an earlier generation of this height, or before a restart:
    /// prevoted for alone until two thirds prevote another.
    lock: Option<(u64, [u8; 32], Option<Value>)>,
    /// The latest vote this member signed (durable: see [`Event::Voted`]).
    pub(crate) last: Option<LastVote>,
    /// Values of this height this replica found valid: Tendermint proposes a value again in
    /// later rounds once two thirds prevoted it, after its checkpoint may have left the
    /// fold's recent figures; it stays valid (events are only ever added).
    valid: std::collections::BTreeSet<[u8; 32]>,
    /// Proposals and votes for the next height that came before this replica entered it (its
    /// checkpoint had not settled here yet): taken, with every check, once it has. Bounded
    /// (see [`EARLY_MAX`]).
    early: Vec<(MemberId, Early)>,
    /// Whether the current step's messages were resent since it last moved.
    resent: bool,
    /// The driver's round and step when they last changed, and when.
    progress: (Option<Round>, u8, u64),
}

/// A message for the next height that came before this replica entered it.
enum Early {
    Proposal(Box<Proposal>),
    Vote(Vote),
}

/// Most early messages held: a round's worth for a federation of a few hundred members;
/// more are dropped (the stalled-round resend brings them again).
const EARLY_MAX: usize = 1_024;

/// The step a decided height stays in until the next height starts (after propose 0,
/// prevote 1, precommit 2): it cannot stall, so it has no stall deadline.
const STEP_DECIDED: u8 = 3;

impl Agreement {
    /// A fresh agreement that remembers the latest vote signed before a restart.
    pub(crate) fn new(last: Option<LastVote>) -> Self {
        Self {
            last,
            ..Self::default()
        }
    }
}

fn at_of(h: Height, round: Round) -> At {
    At {
        height: h.height,
        gen: h.gen,
        round: round.as_u32().unwrap_or(0),
    }
}

fn nil_or(v: Option<[u8; 32]>) -> NilOrVal<ValueId> {
    match v {
        None => NilOrVal::Nil,
        Some(id) => NilOrVal::Val(ValueId(id)),
    }
}

fn kind_of(t: mc::VoteType) -> VoteKind {
    match t {
        mc::VoteType::Prevote => VoteKind::Prevote,
        mc::VoteType::Precommit => VoteKind::Precommit,
    }
}

fn timeout_ms(t: &Timeout) -> u64 {
    let r = u64::from(t.round.as_u32().unwrap_or(0));
    let base = match t.kind {
        TimeoutKind::Propose | TimeoutKind::Rebroadcast => PROPOSE_TIMEOUT_MS,
        TimeoutKind::Prevote | TimeoutKind::Precommit => VOTE_TIMEOUT_MS,
    };
    base + r.saturating_mul(ROUND_TIMEOUT_STEP_MS)
}

impl Replica {
    /// The earliest agreement timeout (for `poll_timeout`).
    pub(crate) fn agreement_deadline(&self) -> Option<u64> {
        let timers = self.agreement.timers.iter().map(|(t, _)| *t).min();
        // Only a step that can stall has a stall deadline: once the height is decided
        // (step 3) the driver waits for the next height, and a deadline left in the past
        // would wake the node at once, again and again, until then (found by the idle
        // bench: a node spun every millisecond for seconds after each decision).
        let stall = self
            .agreement
            .driver
            .as_ref()
            .filter(|_| self.agreement.progress.1 < STEP_DECIDED)
            .map(|_| self.agreement.progress.2 + self.stall_ms());
        match (timers, stall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How long a round may sit in one step before this replica times the step out itself:
    /// Tendermint schedules the prevote and precommit timeouts only once two thirds of the
    /// weight voted, so a round whose votes were lost (a partition, a restart) would wait
    /// for ever. Timing a step out is always safe; it only moves us on.
    fn stall_ms(&self) -> u64 {
        let r = u64::from(
            self.agreement
                .progress
                .0
                .and_then(|r| r.as_u32())
                .unwrap_or(0),
        );
        STALLED_STEP_MS + r.saturating_mul(ROUND_TIMEOUT_STEP_MS)
    }

    /// Notes the driver's round and step, and times out a step that has not moved.
    fn watch_progress(&mut self, now_ms: u64) {
        let Some(d) = self.agreement.driver.as_ref() else {
            return;
        };
        let step = if d.step_is_propose() {
            0
        } else if d.step_is_prevote() {
            1
        } else if d.step_is_precommit() {
            2
        } else {
            STEP_DECIDED
        };
        let (round, _, _) = self.agreement.progress;
        if (Some(d.round()), step) != (round, self.agreement.progress.1) {
            self.agreement.progress = (Some(d.round()), step, now_ms);
            self.agreement.resent = false;
            return;
        }
        if now_ms < self.agreement.progress.2 + self.stall_ms() {
            return;
        }
        let kind = match step {
            0 => TimeoutKind::Propose,
            1 => TimeoutKind::Prevote,
            2 => TimeoutKind::Precommit,
            _ => return,
        };
        let round = d.round();
        self.agreement.progress.2 = now_ms;
        // First the round's messages go out again (what was lost usually completes the
        // step); only if that does not move it either is the step timed out.
        if !self.agreement.resent {
            self.agreement.resent = true;
            Counters::bump(&mut self.counters.agreement, "stalled_rounds_resent");
            self.resend_round(now_ms);
            return;
        }
        self.agreement.resent = false;
        Counters::bump(&mut self.counters.agreement, "stalled_steps_timed_out");
        self.process(now_ms, Input::TimeoutElapsed(Timeout::new(round, kind)));
    }

    /// The generation the next height is in at `now_ms`: 0 until it has been undecided for a
    /// stall period, then one more per period.
    fn generation_at(&self, now_ms: u64) -> u32 {
        // A genesis without a genesis time gives height 0 no clock to stall against.
        if self.ledger.final_epoch().is_none() && self.genesis().genesis_time_ms == 0 {
            return 0;
        }
        let start = self.ledger.generation_start_ms(1);
        if now_ms < start {
            return 0;
        }
        let period = self.genesis().inactivity_grace_ms.max(1);
        u32::try_from(1 + (now_ms - start) / period).unwrap_or(u32::MAX)
    }

    /// The members whose votes the next height counts: generation 0's committee and that of
    /// the generation now due; `None` when a set is not agreed in advance here (a genesis
    /// without founders, or a later generation's checkpoint not in this fold).
    fn committee_now(&self, now_ms: u64) -> Option<BTreeSet<MemberId>> {
        let mut committee = BTreeSet::new();
        let gen = self.generation_at(now_ms);
        for g in std::iter::once(0).chain((gen > 0).then_some(gen)) {
            let weights = self.ledger.validators(g)?;
            committee.extend(weights.into_iter().filter(|(_, w)| *w > 0).map(|(m, _)| m));
        }
        Some(committee)
    }

    /// Keeps [`Replica::committee`] current and asks the driver to join the agreement's
    /// topics as soon as this member is in the committee, and to leave them once it has been
    /// out of it for [`AGREEMENT_LEAVE_AFTER_MS`]. Not knowing the committee counts as being
    /// in it: a node never leaves on a guess.
    pub(crate) fn update_committee(&mut self, now_ms: u64) {
        self.committee = self.committee_now(now_ms);
        let inside = self.committee.as_ref().is_none_or(|c| c.contains(&self.me));
        let wanted = if inside {
            self.out_of_committee_since = None;
            true
        } else {
            let since = *self.out_of_committee_since.get_or_insert(now_ms);
            self.agreement_topics && now_ms.saturating_sub(since) < AGREEMENT_LEAVE_AFTER_MS
        };
        if wanted != self.agreement_topics {
            self.agreement_topics = wanted;
            self.events
                .push_back(Event::AgreementTopics { subscribed: wanted });
        }
    }

    /// The validator committee of the next height, as of the last tick (`None`: not agreed
    /// in advance here).
    pub fn committee(&self) -> Option<&BTreeSet<MemberId>> {
        self.committee.as_ref()
    }

    /// Whether this node takes part in the agreement's gossip (it is in the committee, or
    /// does not know the committee).
    pub fn hears_agreement(&self) -> bool {
        self.agreement_topics
    }

    /// The committee members this one keeps as neighbours (none when it is not in the
    /// committee): see [`crate::limits::COMMITTEE_PEERS`].
    pub(crate) fn committee_neighbours(&self) -> Vec<MemberId> {
        match &self.committee {
            Some(c) if c.contains(&self.me) => {
                crate::peers::committee_neighbours(&self.me, c, crate::limits::COMMITTEE_PEERS)
            }
            _ => Vec::new(),
        }
    }

    /// Runs the agreement forward: enters a new height or generation when one is due,
    /// fires elapsed timeouts, judges held proposals and proposes when asked to.
    pub(crate) fn drive_agreement(&mut self, now_ms: u64) {
        self.enter_height(now_ms);
        if self.agreement.driver.is_none() {
            return;
        }
        self.take_early(now_ms);
        let due: Vec<Timeout> = {
            let timers = &mut self.agreement.timers;
            let (due, keep): (Vec<_>, Vec<_>) = timers.drain(..).partition(|(t, _)| *t <= now_ms);
            *timers = keep;
            due.into_iter().map(|(_, t)| t).collect()
        };
        for t in due {
            self.process(now_ms, Input::TimeoutElapsed(t));
        }
        let held = std::mem::take(&mut self.agreement.held);
        for p in held {
            self.take_proposal(now_ms, None, p);
        }
        if self.agreement.want_value.is_some() {
            if let Some(input) = self.value_to_propose(now_ms) {
                self.process(now_ms, input);
            }
        }
        self.watch_progress(now_ms);
    }

    /// Starts the driver for the ledger's next height (or its next generation) once this
    /// replica has a checkpoint to propose for it.
    fn enter_height(&mut self, now_ms: u64) {
        let target = Height {
            height: self.ledger.next_height(),
            gen: self.generation_at(now_ms),
        };
        if self.agreement.driver.is_some() && self.agreement.height == target {
            return;
        }
        // A value exists once a checkpoint after the latest certified one has settled here.
        let settled = self.settled_checkpoint(now_ms);
        if self.ledger.final_epoch().is_some_and(|f| f >= settled) {
            return;
        }
        let weights = match self.ledger.validators(target.gen) {
            Some(w) => w,
            // Height 0 of a genesis without founders: no set is agreed in advance; this
            // replica's own view of the settled checkpoint stands in (docs/PROTOCOL.md).
            None if target.gen == 0 && self.ledger.open_height() => {
                if !self.may_vote() {
                    return;
                }
                match self.ledger.checkpoint(settled) {
                    Some(c) => c.weights,
                    None => return,
                }
            }
            // The generation's checkpoint is not in this fold (yet).
            None => return,
        };
        let set = ValidatorSet::new(&weights);
        if mc::ValidatorSet::<Ctx>::count(&set) == 0 {
            return;
        }
        let a = &mut self.agreement;
        // The lock: a value precommitted at this height before (an earlier generation, or
        // before a restart) is carried; a new height starts unlocked.
        if a.lock.as_ref().is_some_and(|(h, _, _)| *h != target.height) {
            a.lock = None;
        }
        if let Some(l) = a.last.filter(|l| l.at.height == target.height) {
            if let (VoteKind::Precommit, Some(id)) = (l.kind, l.value) {
                if a.lock.as_ref().is_none_or(|(_, lid, _)| *lid != id) {
                    a.lock = Some((target.height, id, None));
                }
            }
        }
        // Never sign again in a round already signed in (a restart resumes after it).
        let first_round = match a.last {
            Some(l) if l.at.height == target.height && l.at.gen == target.gen => l.at.round + 1,
            _ => 0,
        };
        let changed_height = a.height.height != target.height;
        a.height = target;
        a.timers.clear();
        a.want_value = None;
        a.proposals_taken.clear();
        if changed_height {
            a.held.clear();
            a.valid.clear();
        }
        a.held
            .retain(|p| p.at.height == target.height && p.at.gen == target.gen);
        a.seen.clear();
        a.driver = Some(Driver::new(
            Ctx,
            target,
            set.clone(),
            Address(self.me),
            ThresholdParams::default(),
        ));
        a.set = Some(set);
        a.progress = (None, u8::MAX, now_ms);
        Counters::bump(&mut self.counters.agreement, "heights_entered");
        if target.gen > 0 {
            Counters::bump(&mut self.counters.agreement, "generations_entered");
        }
        let round = Round::new(first_round);
        let proposer = self.proposer(target, round);
        self.process(now_ms, Input::NewRound(target, round, proposer));
    }

    /// Whether this replica is the proposer of the round `at` names, under the set it is
    /// driving (false once it has moved to another height or generation).
    pub(crate) fn proposed_round(&self, at: At) -> bool {
        let h = &self.agreement.height;
        self.agreement.set.is_some()
            && h.height == at.height
            && h.gen == at.gen
            && self.proposer(*h, Round::new(at.round)).0 == self.me
    }

    fn proposer(&self, h: Height, round: Round) -> Address {
        let set = self.agreement.set.as_ref().expect("a set while driving");
        *mc::Validator::<Ctx>::address(Ctx.select_proposer(set, h, round))
    }

    /// Feeds one input to the driver and acts on everything it outputs (and on the inputs
    /// those outputs lead to).
    fn process(&mut self, now_ms: u64, input: Input<Ctx>) {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let Some(driver) = self.agreement.driver.as_mut() else {
                return;
            };
            let outputs = match driver.process(input) {
                Ok(o) => o,
                Err(_) => {
                    Counters::bump(&mut self.counters.agreement, "driver_errors");
                    continue;
                }
            };
            for o in outputs {
                match o {
                    Output::NewRound(h, r) => {
                        Counters::bump(&mut self.counters.agreement, "rounds_entered");
                        queue.push_back(Input::NewRound(h, r, self.proposer(h, r)));
                    }
                    Output::Propose(p) => {
                        let signed = self.publish_proposal(&p);
                        queue.push_back(Input::Proposal(signed, Validity::Valid));
                    }
                    Output::Vote(v) => {
                        if let Some(signed) = self.cast(v) {
                            queue.push_back(Input::Vote(signed));
                        }
                    }
                    Output::Decide(round, p) => self.decided(now_ms, round, p),
                    Output::ScheduleTimeout(t) => {
                        let at = now_ms + timeout_ms(&t);
                        self.agreement.timers.retain(|(_, x)| *x != t);
                        self.agreement.timers.push((at, t));
                    }
                    Output::GetValue(_, r, _) => {
                        self.agreement.want_value = Some(r);
                        if let Some(i) = self.value_to_propose(now_ms) {
                            queue.push_back(i);
                        }
                    }
                }
            }
        }
    }

    /// The value this replica proposes: the value it is locked on if it still holds, else
    /// its own checkpoint for the latest settled epoch.
    fn value_to_propose(&mut self, now_ms: u64) -> Option<Input<Ctx>> {
        let round = self.agreement.want_value?;
        let locked = self
            .agreement
            .lock
            .as_ref()
            .map(|(_, id, v)| (*id, v.clone()));
        let value = match locked {
            Some((_, Some(v))) => {
                if self.ledger.check_value(&v.body, &v.frontier).is_err() {
                    return None;
                }
                v
            }
            Some((id, None)) => {
                // Locked by id alone (after a restart): propose only if our own value is it.
                let v = self.own_value(now_ms)?;
                if v.body.id() != id {
                    return None;
                }
                v
            }
            None => self.own_value(now_ms)?,
        };
        self.agreement.want_value = None;
        Some(Input::ProposeValue(round, value))
    }

    fn own_value(&self, now_ms: u64) -> Option<Value> {
        let e = self.settled_checkpoint(now_ms);
        let body = self.ledger.vote_body(e)?;
        let cp = self.ledger.checkpoint(e)?;
        Some(Value {
            body,
            frontier: Arc::new(cp.frontier),
        })
    }

    fn publish_proposal(&mut self, p: &context::Proposal) -> SignedMessage<Ctx, context::Proposal> {
        let signed = Proposal::sign(
            &self.keypair,
            &self.network,
            at_of(p.height, p.round),
            p.pol_round.as_u32(),
            p.value.body.clone(),
            (*p.value.frontier).clone(),
        );
        Counters::bump(&mut self.counters.agreement, "proposals_made");
        self.agreement
            .proposals_taken
            .insert(signed.at.round, signed.clone());
        let signature = Signature(signed.signature);
        self.gossip(Gossip::Proposal(Box::new(signed)));
        SignedMessage {
            message: p.clone(),
            signature,
        }
    }

    /// Signs and sends a vote the driver cast for us, after recording it durably; `None`
    /// when we may not (not a validator here, or a round already signed in before a
    /// restart). A carried lock turns a prevote for another value into nil.
    fn cast(&mut self, mut v: context::Vote) -> Option<SignedMessage<Ctx, context::Vote>> {
        let set = self.agreement.set.as_ref()?;
        set.weight(&self.me)?;
        let at = at_of(v.height, v.round);
        let kind = kind_of(v.kind);
        if let Some(l) = self.agreement.last {
            if (l.at, l.kind) >= (at, kind) && !(l.at == at && l.kind == kind) {
                return None;
            }
            if l.at == at && l.kind == kind {
                // Already signed in this round (before a restart): only the same vote again.
                if nil_or(l.value) != v.value {
                    return None;
                }
            }
        }
        if kind == VoteKind::Prevote {
            if let (Some((_, lock, _)), NilOrVal::Val(id)) = (&self.agreement.lock, &v.value) {
                if id.0 != *lock && !self.polka_seen(id) {
                    v.value = NilOrVal::Nil;
                }
            }
        }
        let value = match &v.value {
            NilOrVal::Nil => None,
            NilOrVal::Val(id) => Some(id.0),
        };
        if kind == VoteKind::Precommit {
            if let Some(id) = value {
                let full = self.proposal_value(at.round, id);
                self.agreement.lock = Some((at.height, id, full));
            }
        }
        let last = LastVote { at, kind, value };
        self.agreement.last = Some(last);
        // Durable before it is sent (the drain rule: events before transmissions).
        self.events.push_back(Event::Voted(last));
        let signed = Vote::sign(&self.keypair, &self.network, at, kind, value);
        let signature = Signature(signed.signature);
        self.agreement
            .seen
            .insert((self.me, at, kind), signed.clone());
        self.gossip(Gossip::Vote(signed));
        Some(SignedMessage {
            message: v,
            signature,
        })
    }

    /// Whether a message for `height` is for the next height, which this replica has not
    /// entered yet.
    fn is_early(&self, height: u64) -> bool {
        (self.agreement.driver.is_none() || self.agreement.height.height < height)
            && height == self.ledger.next_height()
    }

    fn hold_early(&mut self, from: MemberId, m: Early) {
        if self.agreement.early.len() < EARLY_MAX {
            self.agreement.early.push((from, m));
        } else {
            Counters::bump(&mut self.counters.agreement, "early_dropped");
        }
    }

    /// Takes the messages that came before this replica entered its current height, with
    /// every check a message gets (those for another height are dropped).
    fn take_early(&mut self, now_ms: u64) {
        if self.agreement.early.is_empty() {
            return;
        }
        let early = std::mem::take(&mut self.agreement.early);
        let h = self.agreement.height.height;
        for (from, m) in early {
            match m {
                Early::Proposal(p) if p.at.height == h => {
                    self.on_proposal(now_ms, from, *p);
                }
                Early::Vote(v) if v.height == h => {
                    self.on_vote(now_ms, from, v);
                }
                _ => {}
            }
        }
    }

    /// Sends every vote and proposal held for this round and the one before to each
    /// connected member, point to point: gossip sends a message once, and one lost while a
    /// peer was cut off is otherwise never seen by it.
    fn resend_round(&mut self, now_ms: u64) {
        let Some(d) = self.agreement.driver.as_ref() else {
            return;
        };
        let round = d.round().as_u32().unwrap_or(0);
        let from = round.saturating_sub(1);
        let votes: Vec<serde_bytes::ByteBuf> = self
            .agreement
            .seen
            .values()
            .filter(|v| v.round >= from)
            .take(crate::limits::MAX_AGREEMENT_RESEND)
            .map(|v| serde_bytes::ByteBuf::from(v.encode()))
            .collect();
        // This round's and the last one's proposals, and every proposal with a proof of
        // lock (a member locked on it, or restarted with only its id, needs it whole).
        let polka_ids: std::collections::BTreeSet<[u8; 32]> = d
            .polka_certificates()
            .iter()
            .map(|c| c.value_id.0)
            .collect();
        let proposals: Vec<serde_bytes::ByteBuf> = self
            .agreement
            .proposals_taken
            .iter()
            .filter(|(r, p)| **r >= from || polka_ids.contains(&p.body.id()))
            .map(|(_, p)| serde_bytes::ByteBuf::from(p.encode()))
            .collect();
        // The proofs of lock the driver holds for this height, as the prevotes they are.
        let h = self.agreement.height;
        let polkas: Vec<Vec<serde_bytes::ByteBuf>> = d
            .polka_certificates()
            .iter()
            .map(|c| {
                let at = at_of(h, c.round);
                c.polka_signatures
                    .iter()
                    .map(|s| {
                        let v = Vote {
                            height: at.height,
                            gen: at.gen,
                            round: at.round,
                            kind: VoteKind::Prevote,
                            value: Some(c.value_id.0),
                            signer: s.address.0,
                            signature: s.signature.0,
                        };
                        serde_bytes::ByteBuf::from(v.encode())
                    })
                    .collect()
            })
            .collect();
        if votes.is_empty() && proposals.is_empty() && polkas.is_empty() {
            return;
        }
        let peers: Vec<MemberId> = self
            .peers
            .iter()
            .filter(|(m, p)| p.connected && self.is_member(m))
            .map(|(m, _)| *m)
            .collect();
        for m in peers {
            let req = crate::wire::Request::Agreement {
                votes: votes.clone(),
                proposals: proposals.clone(),
                polkas: polkas.clone(),
            };
            self.send_request(now_ms, m, req);
        }
    }

    /// A resend from a peer: each message taken as if it came by gossip.
    pub(crate) fn take_agreement_resend(
        &mut self,
        now_ms: u64,
        from: MemberId,
        votes: Vec<serde_bytes::ByteBuf>,
        proposals: Vec<serde_bytes::ByteBuf>,
        polkas: Vec<Vec<serde_bytes::ByteBuf>>,
    ) {
        let polka_votes: usize = polkas.iter().map(Vec::len).sum();
        if votes.len() + proposals.len() + polka_votes > crate::limits::MAX_AGREEMENT_RESEND {
            Counters::bump(&mut self.counters.rejected, "agreement_resend_too_long");
            self.strike(now_ms, from);
            return;
        }
        // Decoded whole before anything is taken: one undecodable item refuses the request.
        let decoded = proposals
            .iter()
            .map(|p| Proposal::decode(p))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|ps| {
                let vs = votes
                    .iter()
                    .map(|v| Vote::decode(v))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((ps, vs))
            });
        let Ok((proposals, votes)) = decoded else {
            Counters::bump(&mut self.counters.rejected, "agreement_resend_undecodable");
            self.strike(now_ms, from);
            return;
        };
        for p in proposals {
            self.on_proposal(now_ms, from, p);
        }
        for v in votes {
            self.on_vote(now_ms, from, v);
        }
        for polka in polkas {
            if !self.take_polka(now_ms, &polka) {
                Counters::bump(&mut self.counters.rejected, "agreement_bad_polka");
                self.strike(now_ms, from);
                return;
            }
        }
    }

    /// A proof of lock from a peer: prevotes of one round for one value, every signature
    /// checked, signers in this height's set holding more than two thirds of its weight.
    /// Handed to the driver (a member that has seen it prevotes a re-proposed locked value).
    /// False for a malformed or forged proof; one for another height is ignored.
    fn take_polka(&mut self, now_ms: u64, polka: &[serde_bytes::ByteBuf]) -> bool {
        let cur = self.agreement.height;
        let Some(set) = self.agreement.set.as_ref() else {
            return true;
        };
        let mut first: Option<(At, [u8; 32])> = None;
        let mut signers = std::collections::BTreeSet::new();
        let mut weight = 0u64;
        let mut signatures = Vec::new();
        for b in polka {
            let Ok(v) = Vote::decode(b) else {
                return false;
            };
            if (v.height, v.gen) != (cur.height, cur.gen) {
                return true;
            }
            let Some(id) = v.value else {
                return false;
            };
            if v.kind != VoteKind::Prevote || first.get_or_insert((v.at(), id)) != &(v.at(), id) {
                return false;
            }
            let Some(w) = set.weight(&v.signer) else {
                return false;
            };
            if !signers.insert(v.signer) || !v.verify(&self.network) {
                return false;
            }
            weight += w;
            signatures.push(mc::PolkaSignature::new(
                Address(v.signer),
                Signature(v.signature),
            ));
        }
        let Some((at, id)) = first else {
            return false;
        };
        let total = mc::ValidatorSet::<Ctx>::total_voting_power(set);
        if !web4fed_core::finality::is_quorum(weight, total) {
            return false;
        }
        let known = self.agreement.driver.as_ref().is_some_and(|d| {
            d.polka_certificates()
                .iter()
                .any(|c| c.round == Round::new(at.round) && c.value_id == ValueId(id))
        });
        if !known {
            Counters::bump(&mut self.counters.agreement, "polkas_taken");
            self.process(
                now_ms,
                Input::PolkaCertificate(mc::PolkaCertificate {
                    height: cur,
                    round: Round::new(at.round),
                    value_id: ValueId(id),
                    polka_signatures: signatures,
                }),
            );
        }
        true
    }

    /// Whether two thirds prevoted `id` in some round of this generation: then a carried
    /// lock on another value no longer holds (Tendermint unlocks on a later polka).
    fn polka_seen(&self, id: &ValueId) -> bool {
        self.agreement
            .driver
            .as_ref()
            .is_some_and(|d| d.polka_certificates().iter().any(|c| c.value_id == *id))
    }

    fn proposal_value(&self, round: u32, id: [u8; 32]) -> Option<Value> {
        let d = self.agreement.driver.as_ref()?;
        d.proposals_and_validities_for_round(Round::new(round))
            .iter()
            .map(|(p, _)| &p.message.value)
            .find(|v| v.body.id() == id)
            .cloned()
    }

    /// The driver decided: its commit certificate becomes our finality certificate.
    fn decided(&mut self, now_ms: u64, round: Round, p: context::Proposal) {
        let value = p.value;
        let id = mc::Value::id(&value);
        // The precommits for it in that round, every one checked when it arrived (ours
        // included): Malachite's consensus layer restores them the same way.
        let at = at_of(self.agreement.height, round);
        let mut signatures: Vec<_> = self
            .agreement
            .seen
            .values()
            .filter(|v| v.at() == at && v.kind == VoteKind::Precommit && v.value == Some(id.0))
            .map(|v| (v.signer, v.signature))
            .collect();
        signatures.sort_by_key(|(m, _)| *m);
        let cert = Certificate {
            at,
            body: value.body,
            frontier: (*value.frontier).clone(),
            signatures,
        };
        Counters::bump(&mut self.counters.agreement, "decisions");
        match self.ledger.handle_certificate(cert.clone()) {
            Ok(()) => self.drain_ledger(now_ms, crate::io::Source::Local),
            Err(CertError::MissingEvents | CertError::RootMismatch { .. }) => {
                self.hold_certificate(cert)
            }
            Err(_) => Counters::bump(&mut self.counters.agreement, "own_decision_refused"),
        }
    }

    /// A proposal from the network: checked cheaply (height, round, proposer) before its
    /// signature, and judged against our own fold before the driver sees it.
    pub(crate) fn on_proposal(&mut self, now_ms: u64, from: MemberId, p: Proposal) -> Acceptance {
        if !self.is_member(&p.proposer) {
            Counters::bump(&mut self.counters.rejected, "proposal_not_member");
            self.strike(now_ms, from);
            return Acceptance::Ignore;
        }
        // A peer whose timer fired first: enter the height now, or keep its message until
        // this replica can.
        self.enter_height(now_ms);
        if self.is_early(p.at.height) {
            self.hold_early(from, Early::Proposal(Box::new(p)));
            return Acceptance::Ignore;
        }
        let cur = self.agreement.height;
        if p.at.height > cur.height && p.at.height >= self.ledger.next_height() {
            // We are behind: the certificates we lack come with a sync.
            self.start_sync(now_ms, from, "proposal_ahead");
            return Acceptance::Ignore;
        }
        let Some(driver) = self.agreement.driver.as_ref() else {
            return Acceptance::Ignore;
        };
        if (p.at.height, p.at.gen) != (cur.height, cur.gen)
            || p.at.round > driver.round().as_u32().unwrap_or(0) + ROUND_WINDOW
        {
            return Acceptance::Ignore;
        }
        if self.proposer(cur, Round::new(p.at.round)).0 != p.proposer {
            Counters::bump(&mut self.counters.rejected, "proposal_wrong_proposer");
            return Acceptance::Reject;
        }
        if let Some(taken) = self.agreement.proposals_taken.get(&p.at.round) {
            if taken.body.id() != p.body.id() {
                Counters::bump(&mut self.counters.agreement, "conflicting_proposals");
            }
            return Acceptance::Ignore;
        }
        if !p.verify(&self.network) {
            Counters::bump(&mut self.counters.rejected, "proposal_bad_signature");
            self.strike(now_ms, from);
            return Acceptance::Reject;
        }
        self.agreement.proposals_taken.insert(p.at.round, p.clone());
        self.take_proposal(now_ms, Some(from), p);
        Acceptance::Accept
    }

    /// Judges a checked proposal and hands it to the driver, or holds it while it cannot be
    /// judged yet (its checkpoint has not settled here, or we lack events it covers).
    fn take_proposal(&mut self, now_ms: u64, from: Option<MemberId>, p: Proposal) {
        let cur = self.agreement.height;
        if (p.at.height, p.at.gen) != (cur.height, cur.gen) {
            return;
        }
        // A lock known by id alone (after a restart) gets its value back.
        if let Some((h, id, full @ None)) = &mut self.agreement.lock {
            if *h == cur.height && *id == p.body.id() {
                *full = Some(Value {
                    body: p.body.clone(),
                    frontier: Arc::new(p.frontier.clone()),
                });
            }
        }
        let validity = if self.agreement.valid.contains(&p.body.id()) {
            Some(Validity::Valid)
        } else if p.body.epoch > self.settled_checkpoint(now_ms) {
            None
        } else {
            match self.ledger.check_value(&p.body, &p.frontier) {
                Ok(()) => {
                    self.agreement.valid.insert(p.body.id());
                    Some(Validity::Valid)
                }
                Err(CertError::MissingEvents) => None,
                Err(e) => {
                    let why = match e {
                        CertError::RootMismatch { .. } => "proposal_root_mismatch",
                        CertError::Conflicting(_) => "proposal_conflicting",
                        CertError::Unverifiable(_) => "proposal_unverifiable",
                        CertError::FrontierMismatch => "proposal_frontier_mismatch",
                        _ => "proposal_other",
                    };
                    Counters::bump(&mut self.counters.agreement, why);
                    Some(Validity::Invalid)
                }
            }
        };
        let Some(validity) = validity else {
            if self.agreement.held.len() < HELD_PROPOSALS_MAX {
                self.agreement.held.push(p.clone());
            }
            if let Some(f) = from {
                self.start_sync(now_ms, f, "proposal_unknown_value");
            }
            return;
        };
        if validity == Validity::Invalid {
            Counters::bump(&mut self.counters.agreement, "proposals_invalid");
        }
        let message = context::Proposal {
            height: cur,
            round: Round::new(p.at.round),
            value: Value {
                body: p.body,
                frontier: Arc::new(p.frontier),
            },
            pol_round: p.pol_round.map_or(Round::Nil, Round::new),
            proposer: Address(p.proposer),
        };
        let signed = SignedMessage {
            message,
            signature: Signature(p.signature),
        };
        self.process(now_ms, Input::Proposal(signed, validity));
    }

    /// A vote from the network or from a member without a node (`POST /v1/votes`).
    pub(crate) fn on_vote(&mut self, now_ms: u64, from: MemberId, v: Vote) -> Acceptance {
        // A vote from a key with no standing is dropped before its signature is checked; a
        // peer that is not a member has no business relaying one (a strike).
        if !self.is_member(&v.signer) {
            Counters::bump(&mut self.counters.rejected, "vote_not_member");
            self.strike(now_ms, from);
            return Acceptance::Ignore;
        }
        self.enter_height(now_ms);
        if self.is_early(v.height) {
            self.hold_early(from, Early::Vote(v));
            return Acceptance::Ignore;
        }
        let cur = self.agreement.height;
        if v.height > cur.height && v.height >= self.ledger.next_height() {
            self.start_sync(now_ms, from, "vote_ahead");
            return Acceptance::Ignore;
        }
        let Some(driver) = self.agreement.driver.as_ref() else {
            return Acceptance::Ignore;
        };
        if (v.height, v.gen) != (cur.height, cur.gen)
            || v.round > driver.round().as_u32().unwrap_or(0) + ROUND_WINDOW
        {
            return Acceptance::Ignore;
        }
        if self
            .agreement
            .set
            .as_ref()
            .is_none_or(|s| s.weight(&v.signer).is_none())
        {
            Counters::bump(&mut self.counters.rejected, "vote_not_validator");
            return Acceptance::Ignore;
        }
        let key = (v.signer, v.at(), v.kind);
        if let Some(old) = self.agreement.seen.get(&key) {
            if *old == v {
                return Acceptance::Ignore;
            }
            // A second, different vote in one round: evidence, if both signatures hold.
            let old = old.clone();
            let known = self.ledger.double_vote_known(&v.signer);
            return match self.ledger.handle_double_vote(old, v) {
                Ok(()) => {
                    self.drain_ledger(now_ms, crate::io::Source::Local);
                    if known {
                        Acceptance::Ignore
                    } else {
                        Acceptance::Accept
                    }
                }
                Err(_) => {
                    self.strike(now_ms, from);
                    Acceptance::Reject
                }
            };
        }
        if !v.verify(&self.network) {
            Counters::bump(&mut self.counters.rejected, "vote_bad_signature");
            self.strike(now_ms, from);
            return Acceptance::Reject;
        }
        self.agreement.seen.insert(key, v.clone());
        let message = context::Vote {
            height: cur,
            round: Round::new(v.round),
            value: nil_or(v.value),
            kind: match v.kind {
                VoteKind::Prevote => mc::VoteType::Prevote,
                VoteKind::Precommit => mc::VoteType::Precommit,
            },
            voter: Address(v.signer),
        };
        self.process(
            now_ms,
            Input::Vote(SignedMessage {
                message,
                signature: Signature(v.signature),
            }),
        );
        Acceptance::Accept
    }

    /// A member with no node of its own may vote only through a node: its votes count
    /// once its log holds another active member (see `may_vote`).
    pub(crate) fn may_vote(&self) -> bool {
        self.peers.bootstrap.is_empty()
            || self
                .ledger
                .state()
                .accounts()
                .any(|(m, a)| *m != self.me && a.status == web4fed_core::state::Status::Active)
    }

    /// What `GET /v1/checkpoint` shows: where the agreement stands and the proposal of the
    /// current round, if one was taken.
    pub fn agreement_view(&self) -> AgreementView {
        let d = self.agreement.driver.as_ref();
        let round = d.and_then(|d| d.round().as_u32()).unwrap_or(0);
        let proposal = d.and_then(|d| {
            d.proposals_and_validities_for_round(Round::new(round))
                .iter()
                .find(|(_, v)| v.is_valid())
                .map(|(p, _)| p.message.value.body.clone())
        });
        AgreementView {
            at: At {
                height: self.agreement.height.height,
                gen: self.agreement.height.gen,
                round,
            },
            running: d.is_some(),
            proposal,
            weights: self
                .agreement
                .set
                .as_ref()
                .map(ValidatorSet::weights)
                .unwrap_or_default(),
        }
    }
}

/// Where the agreement stands (for the API and the dashboard).
#[derive(Debug, Clone)]
pub struct AgreementView {
    /// Height, generation and round.
    pub at: At,
    /// Whether a height is being decided (false while waiting for a checkpoint to settle).
    pub running: bool,
    /// The valid proposal of the current round, if any: what a member without a node checks
    /// and signs.
    pub proposal: Option<web4fed_core::finality::VoteBody>,
    /// The validator set of this height and generation.
    pub weights: BTreeMap<MemberId, u64>,
}
