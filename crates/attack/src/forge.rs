//! Hostile messages, made the way a stranger with fresh keys or a cheap member would make
//! them: every one is well formed on the wire, so the victim must judge it, not merely
//! decode it.

use web4fed_core::envelope::{Envelope, Heartbeat};
use web4fed_core::event::{Body, Event, EventId};
use web4fed_core::finality::{
    frontier_digest, At, Certificate, Frontier, Proposal, Vote, VoteBody, VoteKind,
};
use web4fed_core::identity::{Keypair, MemberId};

/// Thought text in forged events: long enough that each one costs the victim a real hash and
/// signature check over kilobytes, short enough to pack dozens into one push.
pub const FILLER_CHARS: usize = 4_000;

/// 32 random bytes.
pub fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    // The OS generator does not fail on Linux; a zero key would still be a valid stranger.
    let _ = getrandom::fill(&mut b);
    b
}

/// A key nobody registered.
pub fn fresh_key() -> Keypair {
    Keypair::from_secret(random32())
}

/// Text that passes the quality layer's shape checks (words, not one repeated byte).
pub fn filler(i: u64, chars: usize) -> String {
    let mut s = String::with_capacity(chars + 16);
    let words = [
        "ledger", "trust", "quorum", "signal", "entropy", "member", "vector", "epoch",
    ];
    let mut k = i;
    while s.len() < chars {
        s.push_str(words[(k % words.len() as u64) as usize]);
        s.push(' ');
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 7;
    }
    s
}

/// An event by a key that never registered, waiting on a predecessor nobody has: it can only
/// go to the orphan pool.
pub fn orphan(network: &[u8; 32], now_ms: u64, i: u64) -> Event {
    let kp = fresh_key();
    Event::sign(
        &kp,
        network,
        1 + i % 7,
        EventId(random32()),
        now_ms,
        Body::Thought(filler(i, FILLER_CHARS)),
    )
}

/// An orphan event whose author signature is wrong (one bit of it flipped): the bytes a
/// peer pushes to make the victim verify signatures for nothing.
pub fn bad_signature(network: &[u8; 32], now_ms: u64, i: u64) -> Vec<u8> {
    let mut bytes = orphan(network, now_ms, i).bytes().to_vec();
    bytes[web4fed_core::event::HEADER_LEN] ^= 0x01;
    bytes
}

/// An envelope carrying `event`, signed by the peer that sends it on.
pub fn envelope(sender: &Keypair, network: &[u8; 32], now_ms: u64, event: &[u8]) -> Envelope {
    Envelope::seal(sender, network, now_ms, event)
}

/// Two conflicting prevotes by one fresh key in one round of `height`: a "double vote"
/// whose proof an unbounded node would store and gossip.
pub fn double_vote(network: &[u8; 32], height: u64) -> (Vote, Vote) {
    let kp = fresh_key();
    let at = At {
        height,
        gen: 0,
        round: 0,
    };
    (
        Vote::sign(&kp, network, at, VoteKind::Prevote, Some(random32())),
        Vote::sign(&kp, network, at, VoteKind::Prevote, Some(random32())),
    )
}

/// A proposal by a fresh key for a checkpoint near `epoch`: a stranger is not the proposer
/// of anything, so the victim must drop it before its signature is checked.
pub fn proposal(network: &[u8; 32], epoch: u64) -> Proposal {
    let frontier: Frontier = (0..4).map(|i| (MemberId(random32()), i)).collect();
    let body = VoteBody {
        epoch,
        prev: epoch.checked_sub(5),
        root: random32(),
        frontier: frontier_digest(&frontier),
    };
    Proposal::sign(&fresh_key(), network, At::default(), None, body, frontier)
}

/// A certificate with no signatures at all for `epoch` (the victim must refuse it before it
/// re-folds anything).
pub fn empty_certificate(epoch: u64) -> Certificate {
    let frontier: Frontier = (0..4).map(|i| (MemberId(random32()), i)).collect();
    Certificate {
        at: At {
            height: epoch / 5,
            gen: 0,
            round: 0,
        },
        body: VoteBody {
            epoch,
            prev: epoch.checked_sub(5),
            root: random32(),
            frontier: frontier_digest(&frontier),
        },
        frontier,
        signatures: Vec::new(),
    }
}

/// A heartbeat signed by a fresh key, claiming a log the victim lacks (so an unguarded
/// victim would sync with it and list it as a peer).
pub fn stranger_heartbeat(network: &[u8; 32], now_ms: u64, epoch: u64) -> Heartbeat {
    Heartbeat::sign(
        &fresh_key(),
        network,
        now_ms,
        epoch,
        random32(),
        random32(),
        1_000_000,
        Some(epoch),
        1_000,
    )
}

/// Made-up peer records: (member id, addresses) for a peer-exchange answer.
pub fn fake_peers(count: usize) -> Vec<(serde_bytes::ByteBuf, Vec<String>)> {
    (0..count)
        .map(|i| {
            let id = random32();
            let addrs = (0..4)
                .map(|k| {
                    format!(
                        "/ip4/10.{}.{}.{}/tcp/{}",
                        (i >> 16) & 0xff,
                        (i >> 8) & 0xff,
                        i & 0xff,
                        4000 + k
                    )
                })
                .collect();
            (serde_bytes::ByteBuf::from(id.to_vec()), addrs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_messages_fail_the_checks_they_are_meant_to_fail() {
        let net = [7u8; 32];
        let bad = bad_signature(&net, 1, 2);
        let ev = web4fed_core::event::Event::decode(&bad).unwrap();
        assert!(!ev.signed_header().verify(&net));
        let good = orphan(&net, 1, 2);
        assert!(good.signed_header().verify(&net));
        let (a, b) = double_vote(&net, 10);
        assert!(web4fed_core::finality::check_double_vote(&net, &a, &b).is_ok());
        let c = empty_certificate(10);
        assert!(c.signatures.is_empty());
        assert!(stranger_heartbeat(&net, 1, 1).verify(&net));
        assert_eq!(fake_peers(3).len(), 3);
    }
}
