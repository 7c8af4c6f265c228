//! The folded state: accounts and the live corpus, and the rules that judge each event
//! against them (layers 2 to 9). A pure function of the events fed in canonical order.
//!
//! Judging ([`State::judge`]) never mutates, so a node can preview its own event before
//! signing it; applying ([`State::apply`]) performs the verdict's effects. Time-driven
//! effects (trust decay, ATP recharge) are computed from logical time on demand, so the
//! state at any instant is a projection, never a timer.

use crate::attest::{vouched_enough, Claim, LevelReason};
use crate::event::{Body, Event, EventId, Evidence, Level};
use crate::fixed::{ln_micro, mul_div, DAY_MS, MICRO};
use crate::genesis::Genesis;
use crate::identity::MemberId;
use crate::merkle;
use crate::quality::{coherence_micro, content_key};
use crate::verdict::{EjectCause, Ignored, Rule, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Whether a member takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Registered and in good standing.
    Active,
    /// Ejected: trust and ATP zero, later events ignored.
    Ejected,
}

/// One member's account.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// Display name from the registration.
    pub name: String,
    /// Entity type from the registration (the LCT's middle part).
    pub entity_type: String,
    /// Hardware level granted (not merely claimed).
    pub level: Level,
    /// Why the level is what it is.
    pub level_reason: LevelReason,
    /// Logical time of the registration.
    pub registered_ms: u64,
    /// Trust as of `last_active_ms`, millionths; see [`Account::trust_at`] for decay.
    trust_micro: u64,
    /// ATP as of `recharged_days`, thousandths; see [`Account::atp_at`] for recharge.
    atp_milli: u64,
    /// Whole days of recharge already credited since registration.
    recharged_days: u64,
    /// Logical time of the member's latest event (trust decay counts from here).
    pub last_active_ms: u64,
    /// Logical time of the member's latest event of any kind, presence included (the
    /// inactivity leak of voting weight counts from here).
    pub last_seen_ms: u64,
    /// Violations counted.
    pub violations: u32,
    /// Active or ejected.
    pub status: Status,
    /// Why it was ejected, if it was.
    #[serde(with = "crate::snapshot::eject_cause")]
    pub eject_cause: Option<EjectCause>,
    /// Thoughts accepted over the member's life.
    pub thoughts_accepted: u64,
    /// Layer 2 window: (timestamp, bytes) of accepted thoughts, oldest first.
    #[serde(with = "crate::persistent_serde::vector")]
    window: imbl::Vector<(u64, u64)>,
    /// The member's live thoughts, oldest first (layer 4 share eviction).
    #[serde(with = "crate::persistent_serde::ord_set")]
    live: imbl::OrdSet<(u64, EventId)>,
    /// The TPM behind the member, when its evidence verified: the hardware id and the
    /// members who vouched for it (credential activation).
    pub hardware: Option<Hardware>,
}

/// A member's verified TPM and its vouches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hardware {
    /// SHA-256 of the endorsement key (see `tpm::Verified`).
    pub id: [u8; 32],
    /// Members who ran credential activation with it and vouched.
    pub vouchers: BTreeSet<MemberId>,
}

impl Account {
    /// Trust at logical time `t`, with layer 8 decay applied: after the grace period without
    /// an event, trust falls by `coefficient · ln(1 + days − grace_days)` in total, never
    /// below the floor (and never raised to it).
    pub fn trust_at(&self, g: &Genesis, t: u64) -> u64 {
        if self.status == Status::Ejected {
            return 0;
        }
        let idle = t.saturating_sub(self.last_active_ms);
        if idle <= g.decay_grace_ms || self.trust_micro <= g.decay_floor_micro {
            return self.trust_micro;
        }
        let x_micro = MICRO + mul_div(idle - g.decay_grace_ms, MICRO, DAY_MS);
        let decay = mul_div(g.decay_coefficient_micro, ln_micro(x_micro), MICRO);
        self.trust_micro
            .saturating_sub(decay)
            .max(g.decay_floor_micro)
    }

    /// ATP at logical time `t`, with layer 9 recharge for every whole day since registration.
    pub fn atp_at(&self, g: &Genesis, t: u64) -> u64 {
        if self.status == Status::Ejected {
            return 0;
        }
        let days = t.saturating_sub(self.registered_ms) / DAY_MS;
        let owed = days.saturating_sub(self.recharged_days);
        self.atp_milli
            .saturating_add(owed.saturating_mul(g.atp_recharge_per_day_milli))
            .min(g.atp_cap_milli)
    }

    fn recharge_to(&mut self, g: &Genesis, t: u64) {
        self.atp_milli = self.atp_at(g, t);
        let days = t.saturating_sub(self.registered_ms) / DAY_MS;
        self.recharged_days = self.recharged_days.max(days);
    }

    fn touch(&mut self, g: &Genesis, t: u64) {
        self.trust_micro = self.trust_at(g, t);
        self.last_active_ms = self.last_active_ms.max(t);
        self.recharge_to(g, t);
    }

    /// The trust ceiling of the member's level (layer 6).
    pub fn ceiling(&self, g: &Genesis) -> u64 {
        match self.level {
            Level::L4 => g.trust_ceiling_l4_micro,
            Level::L5 => g.trust_ceiling_l5_micro,
        }
    }

    /// The layer 2/4 factor at time `t`, millionths: `(1 + w·trust)·(1 + min(1, ATP/full))`.
    pub fn rate_factor_micro(&self, g: &Genesis, t: u64) -> u64 {
        let trust = self.trust_at(g, t);
        let atp = self.atp_at(g, t);
        let trust_part = MICRO + mul_div(trust, g.rate_trust_weight_micro, MICRO);
        let bonus = mul_div(atp, MICRO, g.rate_bonus_full_atp_milli).min(MICRO);
        mul_div(trust_part, MICRO + bonus, MICRO)
    }

    /// Thoughts allowed in one window at time `t`.
    pub fn thought_limit(&self, g: &Genesis, t: u64) -> u64 {
        mul_div(g.rate_base_thoughts, self.rate_factor_micro(g, t), MICRO)
    }

    /// Content bytes allowed in one window at time `t`.
    pub fn byte_limit(&self, g: &Genesis, t: u64) -> u64 {
        mul_div(g.rate_base_bytes, self.rate_factor_micro(g, t), MICRO)
    }

    /// Live thoughts this member may hold at time `t` (layer 4): a share of the corpus cap
    /// that grows with trust.
    pub fn corpus_share(&self, g: &Genesis, t: u64) -> u64 {
        let share = g.share_base_micro + mul_div(self.trust_at(g, t), g.share_trust_micro, MICRO);
        mul_div(g.corpus_max_thoughts, share.min(MICRO), MICRO).max(1)
    }

    /// Accepted thoughts and bytes in the window ending at `t` (exclusive start).
    fn window_use(&self, g: &Genesis, t: u64) -> (u64, u64) {
        let start = t.saturating_sub(g.rate_window_ms);
        self.window
            .iter()
            .filter(|(ts, _)| *ts > start && *ts <= t)
            .fold((0, 0), |(n, b), (_, bytes)| (n + 1, b + bytes))
    }

    /// Live thoughts the member holds.
    pub fn live_thoughts(&self) -> usize {
        self.live.len()
    }

    fn leaf(&self, id: &MemberId, g: &Genesis, t: u64) -> [u8; 32] {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(b"acct");
        b.extend_from_slice(&id.0);
        b.push(self.level as u8);
        b.push(self.status as u8);
        b.extend_from_slice(&self.violations.to_be_bytes());
        b.extend_from_slice(&self.trust_at(g, t).to_be_bytes());
        b.extend_from_slice(&self.atp_at(g, t).to_be_bytes());
        // What the inactivity leak reads; an ejected member has no weight to leak (and
        // nodes holding different branches of an equivocator's feed saw it last at
        // different times).
        if self.status == Status::Active {
            b.extend_from_slice(&self.last_seen_ms.to_be_bytes());
        }
        // Only hardware-backed accounts carry this, so other accounts' leaves are unchanged.
        if let Some(h) = &self.hardware {
            b.extend_from_slice(b"hw");
            b.extend_from_slice(&h.id);
            for v in &h.vouchers {
                b.extend_from_slice(&v.0);
            }
        }
        merkle::leaf(&b)
    }
}

/// A thought in the live corpus.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CorpusEntry {
    /// Author.
    pub author: MemberId,
    /// Logical time.
    pub timestamp_ms: u64,
    /// Content size in bytes.
    pub bytes: u64,
    /// The deterministic scorer's coherence, millionths.
    pub coherence_micro: u64,
    /// The content's duplicate key.
    pub key: [u8; 32],
    /// The members drawn to rate it.
    pub committee: Vec<MemberId>,
    /// Ratings received from the committee.
    pub ratings: Vec<(MemberId, u32)>,
    /// The author and raters have been paid or charged by the median (see
    /// [`State::apply`]): every seat rated, or more than half by the window's end.
    pub settled: bool,
    /// No more ratings count: settled, or the rating window ended.
    pub closed: bool,
    leaf: [u8; 32],
}

impl CorpusEntry {
    /// Every seat of the committee has rated.
    pub fn fully_rated(&self) -> bool {
        !self.committee.is_empty() && self.ratings.len() == self.committee.len()
    }

    /// More than half of the seats have rated: enough to settle at the window's end.
    pub fn has_quorum(&self) -> bool {
        !self.ratings.is_empty() && self.ratings.len() * 2 > self.committee.len()
    }

    /// The median of the ratings received so far, millionths (the mean of the two middle
    /// ones for an even count); `None` before the first.
    pub fn median_rating(&self) -> Option<u64> {
        let mut s: Vec<u64> = self.ratings.iter().map(|(_, r)| u64::from(*r)).collect();
        s.sort_unstable();
        let n = s.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(s[n / 2]),
            _ => Some((s[n / 2 - 1] + s[n / 2]) / 2),
        }
    }

    /// Coherence blended with the committee's ratings, millionths.
    pub fn effective_coherence(&self) -> u64 {
        let sum: u64 = self.ratings.iter().map(|(_, s)| u64::from(*s)).sum();
        (self.coherence_micro + sum) / (1 + self.ratings.len() as u64)
    }

    fn refresh_leaf(&mut self, id: &EventId) {
        let mut b = Vec::with_capacity(96);
        b.extend_from_slice(b"thgt");
        b.extend_from_slice(&id.0);
        b.extend_from_slice(&self.author.0);
        b.extend_from_slice(&self.coherence_micro.to_be_bytes());
        for (rater, score) in &self.ratings {
            b.extend_from_slice(&rater.0);
            b.extend_from_slice(&score.to_be_bytes());
        }
        b.push(u8::from(self.settled) | (u8::from(self.closed) << 1));
        self.leaf = merkle::leaf(&b);
    }

    /// Layer 7 keep priority at `t`: `w·coherence + (1 − w)·recency`, recency falling from 1
    /// to 0 over the horizon.
    pub fn keep_priority(&self, g: &Genesis, t: u64) -> u64 {
        let age = t.saturating_sub(self.timestamp_ms);
        let recency = MICRO.saturating_sub(mul_div(age, MICRO, g.recency_horizon_ms));
        let w = g.keep_coherence_weight_micro;
        (w * self.effective_coherence() + (MICRO - w) * recency) / MICRO
    }
}

use crate::corpus_roots::CorpusRoots;
pub use crate::corpus_roots::CORPUS_BUCKETS;

/// The live corpus by thought id. Persistent (structure shared between copies): the ledger
/// keeps copies of the state to re-fold from, and copying a corpus of thousands of thoughts
/// entry by entry, and dropping the copy, was over a third of a loaded node's CPU. Entries
/// are shared too: a change copies a B-tree leaf of pointers and the one entry it changes
/// (`Arc::make_mut`), not sixteen entries with their committees and ratings.
type Corpus = imbl::OrdMap<EventId, Arc<CorpusEntry>>;

/// The accounts and the live corpus.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    accounts: BTreeMap<MemberId, Account>,
    #[serde(with = "crate::persistent_serde::ord_map")]
    corpus: Corpus,
    /// The corpus root by bucket (see [`CORPUS_BUCKETS`]), each forgotten when a thought in
    /// it comes, goes or is rated and computed again only when a root is asked for. Never
    /// stored: a state decoded from a snapshot computes its own.
    #[serde(skip)]
    roots: CorpusRoots,
    #[serde(with = "crate::persistent_serde::hash_map")]
    by_key: imbl::HashMap<[u8; 32], EventId>,
    corpus_bytes: u64,
    /// Latest logical time folded.
    head_ms: u64,
    /// Thoughts removed by layer 7 pruning over the state's life.
    pub pruned_total: u64,
    /// Events folded per feed: the frontier a root covers.
    frontier: BTreeMap<MemberId, u64>,
    /// Feeds closed by an ejection for violations or a double vote: the member's events from
    /// this seq on are refused at admission and left out of the frontier, so an ejected
    /// member cannot make nodes store, fold or replicate anything more. (Equivocators are
    /// handled by their fork seq instead: their certified branch may run past the ejection.)
    closures: BTreeMap<MemberId, u64>,
    /// Forged envelopes already counted (each counts once, however many report it).
    forgeries_applied: BTreeSet<[u8; 32]>,
    /// Layer 6: which member each verified TPM backs (first registration in fold order).
    /// Never released, even on ejection: an ejected member cannot come back on the same TPM.
    hardware: BTreeMap<[u8; 32], MemberId>,
    /// When each open thought's rating window ends (one entry per thought accepted within
    /// the last window, so bounded by the rate limits).
    #[serde(with = "crate::persistent_serde::ord_set")]
    rating_deadlines: imbl::OrdSet<(u64, EventId)>,
}

/// The committee for a thought: the `k` active members other than the author with the
/// smallest `mix(thought, member) / (earned trust + 1)`, so higher earned trust is more
/// likely drawn.
/// Deterministic, O(n) with no hashing per member.
fn committee(
    accounts: &BTreeMap<MemberId, Account>,
    g: &Genesis,
    thought: &EventId,
    author: &MemberId,
    t: u64,
) -> Vec<MemberId> {
    let k = g.committee_size as usize;
    if k == 0 {
        return Vec::new();
    }
    let seed = u64::from_be_bytes(thought.0[..8].try_into().unwrap_or_default());
    let mut drawn: Vec<(u128, MemberId)> = accounts
        .iter()
        .filter(|(id, a)| *id != author && a.status == Status::Active)
        .map(|(id, a)| {
            let m = u64::from_be_bytes(id.0[..8].try_into().unwrap_or_default());
            let r = splitmix64(seed ^ m);
            // Trust earned above the L4 start (as for voting weight): identities that only
            // paid proof of work weigh 1 against 10^4 per 0.01 earned, so Sybils almost
            // never sit on an earned member's thought's committee.
            let earned = a.trust_at(g, t).saturating_sub(g.trust_start_l4_micro);
            let weight = u128::from(earned) + 1;
            ((u128::from(r) << 20) / weight, *id)
        })
        .collect();
    drawn.sort_unstable();
    drawn.truncate(k);
    drawn.into_iter().map(|(_, id)| id).collect()
}

/// True when the live thought `id` has a rating from every seat.
fn entry_full(corpus: &Corpus, id: &EventId) -> bool {
    corpus.get(id).is_some_and(|e| e.fully_rated())
}

/// A well-mixed deterministic 64-bit permutation (splitmix64's finaliser).
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl State {
    /// The account of a member, if registered.
    pub fn account(&self, id: &MemberId) -> Option<&Account> {
        self.accounts.get(id)
    }
    /// All accounts, ordered by member id.
    pub fn accounts(&self) -> impl Iterator<Item = (&MemberId, &Account)> {
        self.accounts.iter()
    }
    /// The live corpus, ordered by thought id.
    pub fn corpus(&self) -> impl Iterator<Item = (&EventId, &CorpusEntry)> {
        self.corpus.iter().map(|(id, e)| (id, &**e))
    }
    /// One live thought.
    pub fn thought(&self, id: &EventId) -> Option<&CorpusEntry> {
        self.corpus.get(id).map(|e| &**e)
    }
    /// Live thoughts.
    pub fn corpus_len(&self) -> usize {
        self.corpus.len()
    }
    /// Live content bytes.
    pub fn corpus_bytes(&self) -> u64 {
        self.corpus_bytes
    }
    /// Latest logical time folded.
    pub fn head_ms(&self) -> u64 {
        self.head_ms
    }

    /// Events folded per feed (each feed folds in seq order, so a count says which).
    pub fn frontier(&self) -> &BTreeMap<MemberId, u64> {
        &self.frontier
    }

    /// The seq from which a member's feed is closed by its ejection, if it is (see
    /// [`State::eject`]).
    pub fn closed_at(&self, member: &MemberId) -> Option<u64> {
        self.closures.get(member).copied()
    }

    /// Every closed feed: member and the seq it closed at.
    pub fn closures(&self) -> impl Iterator<Item = (&MemberId, &u64)> {
        self.closures.iter()
    }

    /// Records that `author`'s event at `seq` was folded.
    pub fn note_folded(&mut self, author: MemberId, seq: u64) {
        let f = self.frontier.entry(author).or_insert(0);
        *f = (*f).max(seq + 1);
    }

    /// Every active member's voting weight at `t` (members with none are left out): the
    /// weights of finality votes. The rule, in docs/PROTOCOL.md ("Voting weight"):
    /// - a founder (named in the genesis) weighs its trust; any other member weighs only the
    ///   trust it holds above the L4 starting trust (verified hardware's higher start counts:
    ///   vouches from more than a third of the trust stand behind it);
    /// - a member with no event in the log for `inactivity_grace_ms` loses weight linearly
    ///   to zero over `inactivity_leak_ms` (the inactivity leak);
    /// - a founder whose registration is not folded yet weighs the L4 starting trust,
    ///   leaking from `genesis_time_ms` (so a node does not certify alone before the other
    ///   founders' registrations reach it);
    /// - at most `max_validators` members weigh anything (the validator committee): the
    ///   heaviest mature members, then the heaviest young ones in the seats left, ties to
    ///   the lower member id;
    /// - members younger than `weight_maturity_ms` together hold at most
    ///   `young_weight_cap_micro` of the total: their weights are scaled down together.
    ///
    /// A genesis naming no founders makes every member a founder (experiments only).
    pub fn weights_at(&self, g: &Genesis, t: u64) -> BTreeMap<MemberId, u64> {
        self.weights_with(g, &g.founder_ids(), t)
    }

    /// [`State::weights_at`] with the genesis's founders already parsed (`founders` must be
    /// `g.founder_ids()`): the ledger computes weights at every checkpoint a fold crosses,
    /// and parsing the founders' hex each time was most of a 300-node simulation's time.
    pub fn weights_with(
        &self,
        g: &Genesis,
        founders: &BTreeSet<MemberId>,
        t: u64,
    ) -> BTreeMap<MemberId, u64> {
        let open = founders.is_empty();
        let mut young = BTreeMap::new();
        let mut mature = BTreeMap::new();
        for (m, a) in &self.accounts {
            if a.status != Status::Active {
                continue;
            }
            let founder = open || founders.contains(m);
            let trust = a.trust_at(g, t);
            let base = if founder {
                trust
            } else {
                trust.saturating_sub(g.trust_start_l4_micro)
            };
            let w = leak(g, base, t.saturating_sub(a.last_seen_ms));
            if w == 0 {
                continue;
            }
            if !founder && t.saturating_sub(a.registered_ms) < g.weight_maturity_ms {
                young.insert(*m, w);
            } else {
                mature.insert(*m, w);
            }
        }
        // Founders not registered here yet (or never) weigh the starting trust, leaking
        // from the genesis time.
        for f in founders {
            if !self.accounts.contains_key(f) {
                let idle = t.saturating_sub(g.genesis_time_ms);
                let w = leak(g, g.trust_start_l4_micro, idle);
                if w > 0 {
                    mature.insert(*f, w);
                }
            }
        }
        let (mut mature, young) = validator_seats(mature, young, g.max_validators as usize);
        let y: u128 = young.values().map(|w| u128::from(*w)).sum();
        let old: u128 = mature.values().map(|w| u128::from(*w)).sum();
        let cap = u128::from(g.young_weight_cap_micro);
        let micro = u128::from(MICRO);
        // Young weight y may be at most cap·(old + y), i.e. y·(1 − cap) ≤ cap·old.
        if y * (micro - cap) > cap * old {
            let (num, den) = (cap * old, y * (micro - cap));
            for (m, w) in young {
                let scaled = (u128::from(w) * num / den) as u64;
                if scaled > 0 {
                    mature.insert(m, scaled);
                }
            }
        } else {
            mature.extend(young);
        }
        mature
    }

    /// Adds a registered member. Registration validity (PoW, encoding, signature) is checked
    /// before an event enters the log; `claim` is what its hardware evidence established.
    /// Every member starts at L4; verified hardware becomes L5 through vouches
    /// ([`Body::Vouch`]), unless its TPM already backs another member.
    pub fn register(&mut self, g: &Genesis, ev: &Event, claim: Claim) -> Verdict {
        let Body::Register(r) = &ev.body else {
            return Verdict::Ignored(Ignored::AuthorEjected);
        };
        let t = ev.timestamp_ms();
        self.head_ms = self.head_ms.max(t);
        let (level_reason, hardware) = match claim {
            Claim::Software(reason) => (reason, None),
            Claim::Hardware(v) => match self.hardware.get(&v.hardware_id) {
                Some(other) if *other != ev.author() => (LevelReason::HardwareInUse(*other), None),
                _ => {
                    self.hardware.insert(v.hardware_id, ev.author());
                    let hw = Hardware {
                        id: v.hardware_id,
                        vouchers: BTreeSet::new(),
                    };
                    (LevelReason::AwaitingVouches { vouchers: 0 }, Some(hw))
                }
            },
        };
        let level = Level::L4;
        let trust = g.trust_start_l4_micro;
        self.accounts.insert(
            ev.author(),
            Account {
                name: r.name.clone(),
                entity_type: r.entity_type.clone(),
                level,
                level_reason,
                registered_ms: t,
                trust_micro: trust,
                atp_milli: g.atp_start_milli,
                recharged_days: 0,
                last_active_ms: t,
                last_seen_ms: t,
                violations: 0,
                status: Status::Active,
                eject_cause: None,
                thoughts_accepted: 0,
                window: imbl::Vector::new(),
                live: imbl::OrdSet::new(),
                hardware,
            },
        );
        Verdict::Accepted
    }

    /// Judges a vouch: the subject must be an active member with verified hardware that is
    /// not yet L5, and the author must not be the subject or have vouched before.
    fn judge_vouch(&self, author: MemberId, subject: &MemberId) -> Verdict {
        if *subject == author {
            return Verdict::Ignored(Ignored::SelfVouch);
        }
        let Some(s) = self.accounts.get(subject) else {
            return Verdict::Ignored(Ignored::NotAwaitingVouches);
        };
        match &s.hardware {
            Some(h) if s.status == Status::Active && s.level == Level::L4 => {
                if h.vouchers.contains(&author) {
                    Verdict::Ignored(Ignored::AlreadyVouched)
                } else {
                    Verdict::Accepted
                }
            }
            _ => Verdict::Ignored(Ignored::NotAwaitingVouches),
        }
    }

    /// Records a vouch and grants L5 when the vouchers' trust exceeds a third of the other
    /// active members' trust (at the vouch's logical time). L5 raises trust to the L5
    /// starting trust if it is below it, and lifts the ceiling.
    fn apply_vouch(&mut self, g: &Genesis, author: MemberId, subject: MemberId, t: u64) {
        let Some(vouchers) = self
            .accounts
            .get_mut(&subject)
            .and_then(|s| s.hardware.as_mut())
            .map(|h| {
                h.vouchers.insert(author);
                h.vouchers.clone()
            })
        else {
            return;
        };
        let (mut vouch_weight, mut others_weight) = (0u64, 0u64);
        for (m, a) in &self.accounts {
            if *m == subject || a.status != Status::Active {
                continue;
            }
            let w = a.trust_at(g, t);
            others_weight += w;
            if vouchers.contains(m) {
                vouch_weight += w;
            }
        }
        let n = vouchers.len() as u32;
        let Some(s) = self.accounts.get_mut(&subject) else {
            return;
        };
        if vouched_enough(vouch_weight, others_weight) {
            s.trust_micro = s.trust_at(g, t).max(g.trust_start_l5_micro);
            s.last_active_ms = s.last_active_ms.max(t);
            s.level = Level::L5;
            s.level_reason = LevelReason::Attested { vouchers: n };
        } else {
            s.level_reason = LevelReason::AwaitingVouches { vouchers: n };
        }
    }

    /// Judges an event (seq > 0) against the state, without changing anything.
    /// `evidence_ok` is the ledger's check of an `Evidence` body (signatures need the
    /// network id, which the state does not hold).
    pub fn judge(&self, g: &Genesis, ev: &Event, evidence_ok: Result<(), String>) -> Verdict {
        let t = ev.timestamp_ms();
        let Some(acct) = self.accounts.get(&ev.author()) else {
            // The ledger only folds events whose registration it holds.
            return Verdict::Ignored(Ignored::AuthorEjected);
        };
        if acct.status == Status::Ejected {
            return Verdict::Ignored(Ignored::AuthorEjected);
        }
        match &ev.body {
            Body::Register(_) => Verdict::Ignored(Ignored::AuthorEjected),
            Body::Vouch { subject } => self.judge_vouch(ev.author(), subject),
            Body::Presence => {
                let gap_ms = t.saturating_sub(acct.last_seen_ms);
                let min_ms = g.presence_every_ms / 2;
                if gap_ms < min_ms {
                    return Verdict::Refused(Rule::PresenceTooOften { gap_ms, min_ms });
                }
                Verdict::Accepted
            }
            Body::Thought(content) => self.judge_thought(g, acct, ev.author(), content, t),
            Body::Validate(v) => {
                let Some(entry) = self.corpus.get(&v.thought) else {
                    return Verdict::Ignored(Ignored::UnknownThought);
                };
                if !entry.committee.contains(&ev.author()) {
                    return Verdict::Ignored(Ignored::NotInCommittee);
                }
                if entry.ratings.iter().any(|(r, _)| *r == ev.author()) {
                    return Verdict::Ignored(Ignored::AlreadyRated);
                }
                if entry.closed || t >= entry.timestamp_ms.saturating_add(g.rating_window_ms) {
                    return Verdict::Ignored(Ignored::RatingClosed);
                }
                Verdict::Accepted
            }
            Body::Transfer { to, amount_milli } => {
                let ok_recipient = *to != ev.author()
                    && self
                        .accounts
                        .get(to)
                        .is_some_and(|a| a.status == Status::Active);
                if !ok_recipient {
                    return Verdict::Ignored(Ignored::BadRecipient);
                }
                let balance = acct.atp_at(g, t);
                if *amount_milli > balance {
                    return Verdict::Refused(Rule::TransferBeyondBalance {
                        amount_milli: *amount_milli,
                        balance_milli: balance,
                    });
                }
                Verdict::Accepted
            }
            Body::Evidence(e) => match evidence_ok {
                Err(reason) => Verdict::Refused(Rule::InvalidEvidence { reason }),
                Ok(()) => match self.accounts.get(&e.accused()) {
                    Some(a) if a.status == Status::Active => match e.as_ref() {
                        Evidence::ForgedEnvelope(env)
                            if self.forgeries_applied.contains(&env.hash()) =>
                        {
                            Verdict::Ignored(Ignored::EvidenceAlreadyApplied)
                        }
                        _ => Verdict::Accepted,
                    },
                    _ => Verdict::Ignored(Ignored::EvidenceAlreadyApplied),
                },
            },
        }
    }

    fn judge_thought(
        &self,
        g: &Genesis,
        acct: &Account,
        author: MemberId,
        content: &str,
        t: u64,
    ) -> Verdict {
        // Layer 2: rate, from the author's own feed timestamps.
        let (count, bytes) = acct.window_use(g, t);
        let limit = acct.thought_limit(g, t);
        if count + 1 > limit {
            return Verdict::Refused(Rule::ThoughtsPerWindow {
                count: count + 1,
                limit,
            });
        }
        let len = content.len() as u64;
        let byte_limit = acct.byte_limit(g, t);
        if bytes + len > byte_limit {
            return Verdict::Refused(Rule::BytesPerWindow {
                bytes: bytes + len,
                limit: byte_limit,
            });
        }
        // Layer 3: quality.
        let chars = content.chars().count() as u64;
        if chars < g.content_min_chars {
            return Verdict::Refused(Rule::TooShort {
                chars,
                min: g.content_min_chars,
            });
        }
        if chars > g.content_max_chars {
            return Verdict::Refused(Rule::TooLong {
                chars,
                max: g.content_max_chars,
            });
        }
        let coherence = coherence_micro(content);
        if coherence < g.coherence_min_micro {
            return Verdict::Refused(Rule::Incoherent {
                coherence_micro: coherence,
                min_micro: g.coherence_min_micro,
            });
        }
        if let Some(of) = self.by_key.get(&content_key(content)) {
            let same_author = self.corpus.get(of).is_some_and(|e| e.author == author);
            return if same_author {
                Verdict::Refused(Rule::DuplicateOwn { of: *of })
            } else {
                Verdict::Ignored(Ignored::DuplicateOfOther { of: *of })
            };
        }
        Verdict::Accepted
    }

    /// Applies an event with the verdict [`State::judge`] gave it.
    pub fn apply(&mut self, g: &Genesis, ev: &Event, verdict: &Verdict) {
        let t = ev.timestamp_ms();
        self.head_ms = self.head_ms.max(t);
        let author = ev.author();
        let Some(acct) = self.accounts.get_mut(&author) else {
            return;
        };
        if acct.status == Status::Ejected {
            return;
        }
        acct.last_seen_ms = acct.last_seen_ms.max(t);
        // Presence keeps voting weight from leaking; it is not activity that holds off
        // trust decay (layer 8) or earns anything.
        if !matches!(ev.body, Body::Presence) {
            acct.touch(g, t);
        }
        match verdict {
            Verdict::Ignored(_) => {}
            Verdict::Refused(rule) => self.penalize(g, author, t, rule),
            Verdict::Accepted => match &ev.body {
                Body::Thought(content) => self.accept_thought(g, ev, content),
                Body::Validate(v) => {
                    let Some(entry) = self.corpus.get_mut(&v.thought).map(Arc::make_mut) else {
                        return;
                    };
                    entry.ratings.push((author, v.score_micro));
                    entry.refresh_leaf(&v.thought);
                    self.roots.forget(&v.thought);
                    if entry_full(&self.corpus, &v.thought) {
                        self.settle_ratings(g, v.thought, t);
                    }
                }
                Body::Transfer { to, amount_milli } => {
                    let Some(rcpt) = self.accounts.get_mut(to) else {
                        return;
                    };
                    rcpt.recharge_to(g, t);
                    let credited = (*amount_milli).min(g.atp_cap_milli - rcpt.atp_milli);
                    rcpt.atp_milli += credited;
                    if let Some(sender) = self.accounts.get_mut(&author) {
                        sender.atp_milli -= credited;
                    }
                }
                // Evidence takes effect where the event that publishes it folds: a position
                // every node agrees on, and one a certificate can fix.
                Body::Evidence(e) => match e.as_ref() {
                    Evidence::Equivocation { a, .. } => {
                        let seq = a.header.seq;
                        self.eject(a.header.author, EjectCause::Equivocation { seq });
                    }
                    Evidence::ForgedEnvelope(env) => {
                        if self.forgeries_applied.insert(env.hash()) {
                            let rule = Rule::ForgedEnvelope {
                                envelope: hex::encode(env.hash()),
                            };
                            self.penalize(g, env.sender, t, &rule);
                        }
                    }
                    Evidence::DoubleVote(a, _) => {
                        let height = a.height;
                        self.eject(a.signer, EjectCause::DoubleVote { height });
                    }
                },
                Body::Vouch { subject } => self.apply_vouch(g, author, *subject, t),
                Body::Register(_) | Body::Presence => {}
            },
        }
    }

    /// Closes the rating windows that ended at or before `t` (the fold calls this before
    /// each event at canonical time `t`, so every node closes them at the same position):
    /// a thought with more than half of its seats rated settles.
    pub fn close_ratings_due(&mut self, g: &Genesis, t: u64) {
        while let Some(&(due, id)) = self.rating_deadlines.get_min() {
            if due > t {
                return;
            }
            self.rating_deadlines.remove_min();
            if self.corpus.get(&id).is_some_and(|e| !e.closed) {
                self.settle_ratings(g, id, due);
            }
        }
    }

    /// Closes a thought's ratings, at the last seat's rating or at the window's end; with
    /// more than half of the seats rated it settles: the author earns `rating_reward_milli` ATP and `rating_trust_gain_micro`
    /// trust, each times the median rating; a rater within `rating_tolerance_micro` of the
    /// median earns `rater_reward_milli` ATP, one further away loses
    /// `rater_stray_penalty_micro` trust. Ejected members get nothing.
    fn settle_ratings(&mut self, g: &Genesis, thought: EventId, t: u64) {
        let Some(e) = self.corpus.get_mut(&thought).map(Arc::make_mut) else {
            return;
        };
        e.closed = true;
        e.settled = e.has_quorum();
        e.refresh_leaf(&thought);
        let entry = e.clone();
        self.roots.forget(&thought);
        let Some(median) = entry.median_rating().filter(|_| entry.settled) else {
            return;
        };
        if let Some(a) = self.accounts.get_mut(&entry.author) {
            if a.status == Status::Active {
                a.recharge_to(g, t);
                let atp = mul_div(g.rating_reward_milli, median, MICRO);
                a.atp_milli = (a.atp_milli + atp).min(g.atp_cap_milli);
                let gain = mul_div(g.rating_trust_gain_micro, median, MICRO);
                a.trust_micro = (a.trust_micro + gain).min(a.ceiling(g));
            }
        }
        for (rater, score) in &entry.ratings {
            let Some(r) = self.accounts.get_mut(rater) else {
                continue;
            };
            if r.status != Status::Active {
                continue;
            }
            if u64::from(*score).abs_diff(median) <= g.rating_tolerance_micro {
                r.recharge_to(g, t);
                r.atp_milli = (r.atp_milli + g.rater_reward_milli).min(g.atp_cap_milli);
            } else {
                r.trust_micro = r.trust_micro.saturating_sub(g.rater_stray_penalty_micro);
            }
        }
    }

    /// Applies a violation's penalties to `member` at time `t`: trust −penalty, ATP −5 (−10
    /// for spam), one more violation, ejection at the threshold.
    pub fn penalize(&mut self, g: &Genesis, member: MemberId, t: u64, rule: &Rule) {
        self.head_ms = self.head_ms.max(t);
        let Some(acct) = self.accounts.get_mut(&member) else {
            return;
        };
        if acct.status == Status::Ejected {
            return;
        }
        acct.touch(g, t);
        let atp_penalty = if rule.is_spam() {
            g.atp_spam_milli
        } else {
            g.atp_violation_milli
        };
        acct.trust_micro = acct.trust_micro.saturating_sub(g.trust_penalty_micro);
        acct.atp_milli = acct.atp_milli.saturating_sub(atp_penalty);
        acct.violations += 1;
        if acct.violations >= g.eject_violations {
            let count = acct.violations;
            self.eject(member, EjectCause::Violations { count });
        }
    }

    fn accept_thought(&mut self, g: &Genesis, ev: &Event, content: &str) {
        let t = ev.timestamp_ms();
        let author = ev.author();
        let id = ev.id();
        let coherence = coherence_micro(content);
        let bytes = content.len() as u64;
        let committee = committee(&self.accounts, g, &id, &author, t);
        let Some(acct) = self.accounts.get_mut(&author) else {
            return;
        };
        let gain = mul_div(g.trust_gain_micro, coherence, MICRO);
        acct.trust_micro = (acct.trust_micro + gain).min(acct.ceiling(g));
        let reward = if coherence >= g.atp_high_coherence_micro {
            g.atp_reward_high_milli
        } else {
            g.atp_reward_milli
        };
        acct.atp_milli = (acct.atp_milli + reward).min(g.atp_cap_milli);
        acct.thoughts_accepted += 1;
        acct.window.push_back((t, bytes));
        let window_start = t.saturating_sub(g.rate_window_ms);
        while acct
            .window
            .front()
            .is_some_and(|(ts, _)| *ts <= window_start)
        {
            acct.window.pop_front();
        }
        acct.live.insert((t, id));
        let share = acct.corpus_share(g, t);
        let mut evict = Vec::new();
        while acct.live.len() as u64 > share {
            if let Some(oldest) = acct.live.remove_min() {
                evict.push(oldest.1);
            }
        }
        let key = content_key(content);
        let mut entry = CorpusEntry {
            author,
            timestamp_ms: t,
            bytes,
            coherence_micro: coherence,
            key,
            committee,
            ratings: Vec::new(),
            settled: false,
            closed: false,
            leaf: [0; 32],
        };
        if !entry.committee.is_empty() {
            self.rating_deadlines
                .insert((t.saturating_add(g.rating_window_ms), id));
        }
        entry.refresh_leaf(&id);
        self.corpus.insert(id, Arc::new(entry));
        self.roots.forget(&id);
        self.by_key.insert(key, id);
        self.corpus_bytes += bytes;
        for old in evict {
            self.remove_thought(&old);
        }
        self.prune_if_needed(g, t);
    }

    /// Recomputes every derived hash (each thought's leaf; bucket roots are forgotten) from
    /// the entries themselves: a state decoded from a snapshot is never trusted for its
    /// hashes, so its root is a function of its accounts and thoughts alone.
    pub(crate) fn rehash(&mut self) {
        let ids: Vec<EventId> = self.corpus.keys().copied().collect();
        for id in ids {
            if let Some(e) = self.corpus.get_mut(&id).map(Arc::make_mut) {
                e.refresh_leaf(&id);
            }
        }
        self.roots = CorpusRoots::default();
    }

    /// The corpus root: the Merkle root over the bucket roots.
    fn corpus_root(&self) -> [u8; 32] {
        self.roots.root(&self.corpus, |e| e.leaf)
    }

    fn remove_thought(&mut self, id: &EventId) {
        if let Some(e) = self.corpus.remove(id) {
            self.roots.forget(id);
            self.corpus_bytes -= e.bytes;
            if self.by_key.get(&e.key) == Some(id) {
                self.by_key.remove(&e.key);
            }
            if let Some(a) = self.accounts.get_mut(&e.author) {
                a.live.remove(&(e.timestamp_ms, *id));
            }
        }
    }

    /// Layer 7: at or above the trigger share of either cap, remove the thoughts of lowest
    /// keep priority (ties by id) until both uses are at or below the target share.
    fn prune_if_needed(&mut self, g: &Genesis, t: u64) {
        let over = |n: u64, cap: u64, share: u64| {
            u128::from(n) * 1_000_000 >= u128::from(cap) * u128::from(share)
        };
        let count = self.corpus.len() as u64;
        if !over(count, g.corpus_max_thoughts, g.prune_trigger_micro)
            && !over(self.corpus_bytes, g.corpus_max_bytes, g.prune_trigger_micro)
        {
            return;
        }
        let target_count = mul_div(g.corpus_max_thoughts, g.prune_target_micro, MICRO);
        let target_bytes = mul_div(g.corpus_max_bytes, g.prune_target_micro, MICRO);
        let mut order: Vec<(u64, EventId)> = self
            .corpus
            .iter()
            .map(|(id, e)| (e.keep_priority(g, t), *id))
            .collect();
        order.sort_unstable();
        for (_, id) in order {
            if self.corpus.len() as u64 <= target_count && self.corpus_bytes <= target_bytes {
                break;
            }
            self.remove_thought(&id);
            self.pruned_total += 1;
        }
    }

    /// Ejects a member: status, zero trust and ATP, and its live thoughts leave the corpus.
    /// Unless it equivocated, its feed closes where the fold stands: every event it signs
    /// later is ordered after this point (a feed's timestamps never go back), so refusing
    /// them changes no verdict, and every node that folds the same events closes the feed at
    /// the same seq.
    pub fn eject(&mut self, member: MemberId, cause: EjectCause) {
        let Some(a) = self.accounts.get_mut(&member) else {
            return;
        };
        if a.status == Status::Ejected {
            return;
        }
        if !matches!(cause, EjectCause::Equivocation { .. }) {
            let folded = self.frontier.get(&member).copied().unwrap_or(0);
            self.closures.insert(member, folded);
        }
        a.status = Status::Ejected;
        a.eject_cause = Some(cause);
        a.trust_micro = 0;
        a.atp_milli = 0;
        a.window.clear();
        let live: Vec<EventId> = a.live.iter().map(|(_, id)| *id).collect();
        for id in live {
            self.remove_thought(&id);
        }
    }

    /// The state root at logical time `t`: a Merkle node over the accounts' root (projected
    /// to `t`: decay and recharge applied) and the live corpus root.
    pub fn root_at(&self, g: &Genesis, t: u64) -> [u8; 32] {
        let accounts = merkle::root(
            self.accounts
                .iter()
                .map(|(id, a)| a.leaf(id, g, t))
                .collect(),
        );
        let corpus = self.corpus_root();
        let mut both = Vec::with_capacity(68);
        both.extend_from_slice(b"root");
        both.extend_from_slice(&accounts);
        both.extend_from_slice(&corpus);
        merkle::leaf(&both)
    }
}

/// The inactivity leak: weight `w` of a member last seen `idle` ms ago.
fn leak(g: &Genesis, w: u64, idle: u64) -> u64 {
    let Some(over) = idle.checked_sub(g.inactivity_grace_ms) else {
        return w;
    };
    if over >= g.inactivity_leak_ms {
        return 0;
    }
    mul_div(w, g.inactivity_leak_ms - over, g.inactivity_leak_ms)
}

/// Checks an equivocation proof: two validly signed, different headers of one author at one
/// seq. Returns why not, if it is not one.
pub fn check_evidence(network: &[u8; 32], e: &Evidence) -> Result<(), String> {
    match e {
        Evidence::Equivocation { a, b } => {
            if a.header.author != b.header.author {
                return Err("headers have different authors".into());
            }
            if a.header.seq != b.header.seq {
                return Err("headers have different seqs".into());
            }
            if a.header == b.header {
                return Err("headers are identical".into());
            }
            if !a.verify(network) || !b.verify(network) {
                return Err("a header's signature does not verify".into());
            }
            Ok(())
        }
        Evidence::ForgedEnvelope(env) => env.proves_forgery(network),
        Evidence::DoubleVote(a, b) => crate::finality::check_double_vote(network, a, b),
    }
}

/// The validator committee: at most `seats` members, the heaviest mature ones first and the
/// heaviest young ones in the seats left (ties to the lower member id), so that fresh
/// identities never push a mature member out and the committee's size, not the
/// federation's, sets what every checkpoint's votes cost.
fn validator_seats(
    mature: BTreeMap<MemberId, u64>,
    young: BTreeMap<MemberId, u64>,
    seats: usize,
) -> (BTreeMap<MemberId, u64>, BTreeMap<MemberId, u64>) {
    fn heaviest(m: BTreeMap<MemberId, u64>, seats: usize) -> BTreeMap<MemberId, u64> {
        if m.len() <= seats {
            return m;
        }
        let mut v: Vec<(MemberId, u64)> = m.into_iter().collect();
        // Stable: equal weights keep the map's order, the lower id first.
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v.truncate(seats);
        v.into_iter().collect()
    }
    let mature = heaviest(mature, seats);
    let young = heaviest(young, seats - mature.len());
    (mature, young)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;
    use crate::testkit::{sentence, Author};

    /// The bucket roots kept up to date equal those computed from the corpus afresh, through
    /// thoughts accepted, rated, pruned (layer 7) and removed by an ejection.
    #[test]
    fn corpus_buckets_kept_up_to_date_equal_a_fresh_computation() {
        let g = Genesis {
            corpus_max_thoughts: 120,
            ..Genesis::with_pow_bits(4)
        };
        const T0: u64 = 1_767_225_600_000;
        let mut authors: Vec<Author> = (0..4).map(|i| Author::from_seed(&g, 300 + i)).collect();
        let mut evs: Vec<Event> = authors
            .iter_mut()
            .enumerate()
            .map(|(i, a)| a.register(&g, &format!("m{i}"), T0))
            .collect();
        let mut last = None;
        for i in 0..400u64 {
            let t = T0 + 1 + i * 2_000;
            let k = (i % 3) as usize;
            let ev = authors[k].thought(t, &sentence(i));
            if i % 5 == 0 {
                if let Some(id) = last {
                    evs.push(authors[(k + 1) % 3].validate(t, id, 800_000));
                }
            }
            last = Some(ev.id());
            evs.push(ev);
        }
        // The fourth member spams until ejected: its thoughts leave the corpus.
        for i in 0..20u64 {
            evs.push(authors[3].thought(T0 + 1_000 + i * 50, &sentence(1_000 + i)));
        }
        let mut l = Ledger::new(g.clone());
        l.handle_batch(T0 + 10_000_000, evs);
        let st = l.state();
        assert!(st.corpus_len() > 0);
        assert!(st.pruned_total > 0, "layer 7 pruned some thoughts");
        let fresh: Vec<[u8; 32]> = (0..=255u8)
            .map(|b| {
                merkle::root(
                    st.corpus
                        .iter()
                        .filter(|(id, _)| id.0[0] == b)
                        .map(|(_, e)| e.leaf)
                        .collect(),
                )
            })
            .collect();
        assert_eq!(st.roots.bucket_roots(&st.corpus, |e| e.leaf), fresh);
    }
}
