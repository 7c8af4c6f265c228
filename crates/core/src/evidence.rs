//! Self-certifying evidence against a member: what any node can check without trusting the
//! node that found it. Its own module so that events (which carry evidence) and envelopes
//! and votes (which evidence carries) do not import each other.

use crate::codec::{DecodeError, Reader, Writer};
use crate::envelope::Envelope;
use crate::event::SignedHeader;
use crate::finality::Vote;
use crate::identity::MemberId;

/// Self-certifying proof against a member.
// Always held boxed (in `Body` and `Output`), so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Two different signed headers with one author and one seq.
    Equivocation {
        /// One header.
        a: SignedHeader,
        /// The other.
        b: SignedHeader,
    },
    /// An envelope signed by its sender that carried an event with a forged signature.
    ForgedEnvelope(Envelope),
    /// Two different agreement votes of one member, of one kind, in one round.
    DoubleVote(Vote, Vote),
}

impl Evidence {
    /// The member the evidence is against.
    pub fn accused(&self) -> MemberId {
        match self {
            Self::Equivocation { a, .. } => a.header.author,
            Self::ForgedEnvelope(e) => e.sender,
            Self::DoubleVote(a, _) => a.signer,
        }
    }
}

impl Evidence {
    /// Writes the evidence as an `Evidence` event body carries it: a kind byte, then the proof.
    pub(crate) fn write(&self, w: &mut Writer) {
        match self {
            Evidence::Equivocation { a, b } => {
                w.u8(0);
                a.write(w);
                b.write(w);
            }
            Evidence::ForgedEnvelope(env) => {
                w.u8(1);
                env.write(w);
            }
            Evidence::DoubleVote(a, b) => {
                w.u8(2);
                a.write(w);
                b.write(w);
            }
        }
    }

    /// Reads what [`Evidence::write`] wrote; a forged envelope carries at most
    /// `max_carried` bytes of event.
    pub(crate) fn read(r: &mut Reader<'_>, max_carried: usize) -> Result<Self, DecodeError> {
        Ok(match r.u8("evidence_kind")? {
            0 => {
                let a = SignedHeader::read(r)?;
                let b = SignedHeader::read(r)?;
                Evidence::Equivocation { a, b }
            }
            1 => Evidence::ForgedEnvelope(Envelope::read(r, max_carried)?),
            2 => Evidence::DoubleVote(Vote::read(r)?, Vote::read(r)?),
            _ => {
                return Err(DecodeError::Invalid {
                    field: "evidence_kind",
                    reason: "unknown evidence kind",
                })
            }
        })
    }
}
