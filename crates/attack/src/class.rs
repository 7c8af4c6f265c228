//! The attack classes: one per way a stranger or a cheap member was found to exhaust a node.

/// Who the attacker is to the victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// A fresh key that never registered (libp2p).
    Stranger,
    /// A key that paid the PoW and registered, nothing more (libp2p).
    CheapMember,
    /// An HTTP client on the API's address, with or without the operator's token.
    ApiClient,
}

/// One attack class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Answers every peer-exchange request with 60,000 made-up peers.
    PeerFlood,
    /// Events by keys that never registered, gossiped and pushed: the orphan pool.
    Orphans,
    /// Pushes of ~750 KiB of events whose signatures do not verify.
    BadSignatures,
    /// Double-vote pairs and proposals by fresh keys, gossiped.
    Votes,
    /// Certificates with no signatures, for current and far-future epochs.
    Certificates,
    /// Heartbeats signed by fresh keys claiming logs the victim lacks.
    Heartbeats,
    /// Sync requests (summary, range, evidence, certificates, peers, agreement resends of
    /// random bytes) as fast as possible.
    Requests,
    /// New connections with fresh keys from one address, 16 at a time, 2,000 spread over
    /// the run: each costs the victim a Noise handshake.
    Handshakes,
    /// A registered member's thoughts dated ten years ahead: the future pool.
    Future,
    /// A registered member's thoughts dated 60 s in the past: re-folds.
    Backdate,
    /// A member that equivocates, is ejected, and keeps writing through a fresh transport key.
    EjectedWriter,
    /// A member that posts past its rate limit until three violations eject it, and keeps
    /// writing through a fresh transport key.
    Spammer,
    /// A thousand live-feed (server-sent events) streams held open.
    LiveStreams,
    /// Concurrent 8 MiB bodies of garbage frames on the batch endpoints.
    BigBodies,
    /// 3,000 double-vote pairs by fresh keys per `POST /v1/votes`.
    ApiVotes,
    /// Requests without the token, from another origin, to another Host.
    NoToken,
    /// Snapshot descriptions and chunks asked for as fast as possible (state sync serves
    /// strangers: a newcomer is not a member yet).
    SnapshotFlood,
}

impl Class {
    /// Every class, in the order the tables list them.
    pub const ALL: [Class; 17] = [
        Class::PeerFlood,
        Class::Orphans,
        Class::BadSignatures,
        Class::Votes,
        Class::Certificates,
        Class::Heartbeats,
        Class::Requests,
        Class::Handshakes,
        Class::Future,
        Class::Backdate,
        Class::EjectedWriter,
        Class::Spammer,
        Class::LiveStreams,
        Class::BigBodies,
        Class::ApiVotes,
        Class::NoToken,
        Class::SnapshotFlood,
    ];

    /// The name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Class::PeerFlood => "peer-flood",
            Class::Orphans => "orphans",
            Class::BadSignatures => "bad-signatures",
            Class::Votes => "votes",
            Class::Certificates => "certificates",
            Class::Heartbeats => "heartbeats",
            Class::Requests => "requests",
            Class::Handshakes => "handshakes",
            Class::Future => "future",
            Class::Backdate => "backdate",
            Class::EjectedWriter => "ejected-writer",
            Class::Spammer => "spammer",
            Class::LiveStreams => "live-streams",
            Class::BigBodies => "big-bodies",
            Class::ApiVotes => "api-votes",
            Class::NoToken => "no-token",
            Class::SnapshotFlood => "snapshot-flood",
        }
    }

    /// The class with this name.
    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Who the attacker is.
    pub fn standing(self) -> Standing {
        match self {
            Class::PeerFlood
            | Class::Future
            | Class::Backdate
            | Class::EjectedWriter
            | Class::Spammer => Standing::CheapMember,
            Class::LiveStreams | Class::BigBodies | Class::ApiVotes | Class::NoToken => {
                Standing::ApiClient
            }
            _ => Standing::Stranger,
        }
    }

    /// Whether the attack needs the operator's API token (an attacker who has it is the
    /// operator's own buggy or compromised client; the node must still survive it).
    pub fn needs_token(self) -> bool {
        matches!(
            self,
            Class::LiveStreams | Class::BigBodies | Class::ApiVotes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Class::ALL {
            assert_eq!(Class::parse(c.name()), Some(c));
        }
        assert_eq!(Class::parse("nope"), None);
    }
}
