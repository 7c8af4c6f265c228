//! What the fold decided about an event, naming the layer and the rule.

use crate::event::EventId;
use crate::identity::MemberId;
use serde::{Deserialize, Serialize};

/// A rule an event broke. Each belongs to one of the nine defence layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// Layer 2: more thoughts in the sliding window than the author's factor allows.
    ThoughtsPerWindow {
        /// Thoughts in the window including this one.
        count: u64,
        /// The author's limit at this point.
        limit: u64,
    },
    /// Layer 2: more content bytes in the window than allowed.
    BytesPerWindow {
        /// Bytes in the window including this thought.
        bytes: u64,
        /// The author's limit at this point.
        limit: u64,
    },
    /// Layer 3: fewer characters than the minimum.
    TooShort {
        /// Characters in the thought.
        chars: u64,
        /// The minimum.
        min: u64,
    },
    /// Layer 3: more characters than the maximum.
    TooLong {
        /// Characters in the thought.
        chars: u64,
        /// The maximum.
        max: u64,
    },
    /// Layer 3: coherence below the floor.
    Incoherent {
        /// The scorer's result, millionths.
        coherence_micro: u64,
        /// The floor, millionths.
        min_micro: u64,
    },
    /// Layer 3: the same content as one of the author's own live thoughts.
    DuplicateOwn {
        /// The live thought it repeats.
        of: EventId,
    },
    /// Layer 9: a transfer of more ATP than the author holds.
    TransferBeyondBalance {
        /// Amount asked, thousandths.
        amount_milli: u64,
        /// Balance at this point, thousandths.
        balance_milli: u64,
    },
    /// Layer 5: the member signed an envelope carrying an event with a forged signature.
    ForgedEnvelope {
        /// Hex of the envelope's hash.
        envelope: String,
    },
    /// Layer 5: evidence that does not prove what it claims (a false accusation).
    InvalidEvidence {
        /// What failed.
        reason: String,
    },
    /// Layer 2: a presence event sooner after the author's previous event than half of
    /// `presence_every_ms` (an honest node writes one only after a silence that long).
    PresenceTooOften {
        /// Milliseconds since the author's previous event.
        gap_ms: u64,
        /// The least gap allowed.
        min_ms: u64,
    },
}

impl Rule {
    /// The defence layer the rule belongs to.
    pub fn layer(&self) -> u8 {
        match self {
            Self::ThoughtsPerWindow { .. }
            | Self::BytesPerWindow { .. }
            | Self::PresenceTooOften { .. } => 2,
            Self::TooShort { .. }
            | Self::TooLong { .. }
            | Self::Incoherent { .. }
            | Self::DuplicateOwn { .. } => 3,
            Self::InvalidEvidence { .. } | Self::ForgedEnvelope { .. } => 5,
            Self::TransferBeyondBalance { .. } => 9,
        }
    }
    /// A layer-3 failure is spam (garbage or duplicate) and costs more ATP.
    pub fn is_spam(&self) -> bool {
        self.layer() == 3
    }
    /// A short stable name for metrics and APIs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ThoughtsPerWindow { .. } => "thoughts_per_window",
            Self::BytesPerWindow { .. } => "bytes_per_window",
            Self::TooShort { .. } => "too_short",
            Self::TooLong { .. } => "too_long",
            Self::Incoherent { .. } => "incoherent",
            Self::DuplicateOwn { .. } => "duplicate_own",
            Self::TransferBeyondBalance { .. } => "transfer_beyond_balance",
            Self::InvalidEvidence { .. } => "invalid_evidence",
            Self::ForgedEnvelope { .. } => "forged_envelope",
            Self::PresenceTooOften { .. } => "presence_too_often",
        }
    }
}

/// Why an event stays in its feed but changes nothing. Never a penalty: these rules read
/// other members' events, whose late arrival could otherwise punish an honest author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Ignored {
    /// The author was ejected before this event.
    AuthorEjected,
    /// The content repeats another member's live thought: it earns nothing and costs nothing,
    /// since who copied whom is not knowable across concurrent feeds.
    DuplicateOfOther {
        /// The live thought it repeats.
        of: EventId,
    },
    /// The rated thought is not in the live corpus.
    UnknownThought,
    /// The rater is not on the thought's committee.
    NotInCommittee,
    /// The rater already rated this thought.
    AlreadyRated,
    /// The thought's ratings are closed: it settled, or its rating window ended.
    RatingClosed,
    /// A transfer to an unknown or ejected member, or to oneself.
    BadRecipient,
    /// Evidence against a member that is already ejected by it.
    EvidenceAlreadyApplied,
    /// A vouch for oneself.
    SelfVouch,
    /// A vouch for a member without verified hardware, already L5, unknown or ejected.
    NotAwaitingVouches,
    /// A second vouch for the same member by the same author.
    AlreadyVouched,
}

/// The fold's verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The event took effect.
    Accepted,
    /// The event is valid but changes nothing.
    Ignored(Ignored),
    /// The event broke a rule: a violation, penalised per the parameter table.
    Refused(Rule),
}

impl Verdict {
    /// True for `Accepted`.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted)
    }
}

/// Why a member was ejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum EjectCause {
    /// It reached the violation threshold.
    Violations {
        /// Violations counted.
        count: u32,
    },
    /// It signed two different events at one seq.
    Equivocation {
        /// The seq at which it forked.
        seq: u64,
    },
    /// It signed two different votes of one kind in one round of the agreement.
    DoubleVote {
        /// The height of the votes.
        height: u64,
    },
}

/// Notifications from the fold for the node to act on (disconnect, log, count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A member was ejected.
    Ejected {
        /// Who.
        member: MemberId,
        /// Why.
        cause: EjectCause,
    },
}
