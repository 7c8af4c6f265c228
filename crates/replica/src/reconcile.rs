//! Which feeds differ between two replicas, found by range-based set reconciliation
//! (negentropy, the maintained implementation of the protocol Nostr relays use) over the feed
//! heads, so a sync round costs what the difference costs: two replicas that agree exchange
//! one fingerprint whatever the member count, where listing every head cost 76 bytes per
//! member.
//!
//! Each feed is one item whose 32-byte id is the first 16 bytes of the member id, the feed's
//! length (8 bytes, big-endian) and the first 8 bytes of SHA-256 over the length and head id:
//! a feed that is longer, shorter or on another branch on one side is a different item
//! (negentropy compares ids only), and a differing item of the peer's still names its feed
//! and says how long the peer holds it, so only feeds the peer holds further (or on another
//! branch) are fetched. A member prefix we do not hold is asked for by that prefix
//! ([`crate::wire::Request::Range`] takes one); 128 bits of an Ed25519 key cannot be ground
//! to collide.

use crate::limits::MAX_RECONCILE_BYTES;
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use web4fed_core::event::EventId;
use web4fed_core::identity::MemberId;

/// Bytes of the member id that name a feed in a reconciliation.
pub const FEED_PREFIX: usize = 16;

/// A feed as the reconciliation names it.
pub(crate) type FeedPrefix = [u8; FEED_PREFIX];

/// The prefix naming a member's feed.
pub(crate) fn prefix(m: &MemberId) -> FeedPrefix {
    m.0[..FEED_PREFIX].try_into().expect("16 bytes")
}

/// The feed heads as a sealed negentropy set.
fn storage(heads: &BTreeMap<MemberId, (u64, EventId)>) -> Result<NegentropyStorageVector, String> {
    let mut s = NegentropyStorageVector::with_capacity(heads.len());
    for (m, (len, head)) in heads {
        let mut h = Sha256::new();
        h.update(b"web4fed/feed-head/v1");
        h.update(len.to_be_bytes());
        h.update(head.0);
        let d = h.finalize();
        let mut id = [0u8; 32];
        id[..FEED_PREFIX].copy_from_slice(&prefix(m));
        id[FEED_PREFIX..FEED_PREFIX + 8].copy_from_slice(&len.to_be_bytes());
        id[FEED_PREFIX + 8..].copy_from_slice(&d[..8]);
        // Every item at time 0: they are ordered by id, that is by member.
        s.insert(0, Id::from_byte_array(id))
            .map_err(|e| e.to_string())?;
    }
    s.seal().map_err(|e| e.to_string())?;
    Ok(s)
}

/// A negentropy instance over these heads, after refusing a message longer than a frame.
fn over(
    heads: &BTreeMap<MemberId, (u64, EventId)>,
    msg: &[u8],
) -> Result<Negentropy<'static, NegentropyStorageVector>, String> {
    if msg.len() > MAX_RECONCILE_BYTES {
        return Err(format!(
            "reconcile message of {} bytes (at most {MAX_RECONCILE_BYTES})",
            msg.len()
        ));
    }
    Negentropy::owned(storage(heads)?, MAX_RECONCILE_BYTES as u64).map_err(|e| e.to_string())
}

/// The first message of a reconciliation with these heads.
pub(crate) fn initiate(heads: &BTreeMap<MemberId, (u64, EventId)>) -> Result<Vec<u8>, String> {
    over(heads, &[])?.initiate().map_err(|e| e.to_string())
}

/// The responder's answer to one message (the responder keeps no state between rounds).
pub(crate) fn respond(
    heads: &BTreeMap<MemberId, (u64, EventId)>,
    msg: &[u8],
) -> Result<Vec<u8>, String> {
    over(heads, msg)?.reconcile(msg).map_err(|e| e.to_string())
}

/// A feed the peer holds differently, with the length it holds: the member when we hold
/// the feed, else the prefix alone.
pub(crate) type Differing = (Result<MemberId, FeedPrefix>, u64);

/// What the initiator learnt from one answer: the feeds the peer holds differently, and the
/// next message, if the reconciliation is not finished.
pub(crate) struct Step {
    /// Feeds whose item on the peer's side we lack, with the length the peer holds: the
    /// member when we hold its feed, else the prefix alone.
    pub differ: Vec<Differing>,
    /// The next message to send, if ranges are still undecided.
    pub next: Option<Vec<u8>>,
}

/// The initiator's side of one round.
pub(crate) fn step(
    heads: &BTreeMap<MemberId, (u64, EventId)>,
    answer: &[u8],
) -> Result<Step, String> {
    let mut n = over(heads, answer)?;
    n.set_initiator();
    let (mut have, mut need) = (Vec::new(), Vec::new());
    let next = n
        .reconcile_with_ids(answer, &mut have, &mut need)
        .map_err(|e| e.to_string())?;
    // Our items the peer lacks (`have`) are for the peer to fetch in its own rounds; the
    // peer's items we lack name what we may fetch.
    let known: BTreeMap<FeedPrefix, MemberId> = heads.keys().map(|m| (prefix(m), *m)).collect();
    let mut differ: Vec<Differing> = need
        .into_iter()
        .map(|id| {
            let b = id.to_bytes();
            let p: FeedPrefix = b[..FEED_PREFIX].try_into().expect("16 bytes");
            let len = u64::from_be_bytes(b[FEED_PREFIX..FEED_PREFIX + 8].try_into().expect("8"));
            (known.get(&p).copied().ok_or(p), len)
        })
        .collect();
    differ.sort_unstable();
    differ.dedup();
    Ok(Step { differ, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u16) -> MemberId {
        let mut m = [0x5a; 32];
        m[..2].copy_from_slice(&i.to_be_bytes());
        MemberId(m)
    }

    fn heads(n: u16, skew: &[u16]) -> BTreeMap<MemberId, (u64, EventId)> {
        (0..n)
            .map(|i| {
                let len = 10 + u64::from(skew.contains(&i));
                (id(i), (len, EventId([(i as u8) ^ len as u8; 32])))
            })
            .collect()
    }

    /// Runs a reconciliation to its end; returns the feeds found to differ and the bytes
    /// exchanged.
    fn run(
        a: &BTreeMap<MemberId, (u64, EventId)>,
        b: &BTreeMap<MemberId, (u64, EventId)>,
    ) -> (Vec<Differing>, usize) {
        let mut msg = initiate(a).unwrap();
        let mut bytes = msg.len();
        let mut differ = Vec::new();
        for _ in 0..20 {
            let answer = respond(b, &msg).unwrap();
            bytes += answer.len();
            let s = step(a, &answer).unwrap();
            differ.extend(s.differ);
            match s.next {
                Some(next) => {
                    bytes += next.len();
                    msg = next;
                }
                None => break,
            }
        }
        differ.sort_unstable();
        differ.dedup();
        (differ, bytes)
    }

    #[test]
    fn agreeing_sets_cost_a_fingerprint_whatever_their_size() {
        let mut costs = Vec::new();
        for n in [3u16, 100, 1_000, 10_000] {
            let h = heads(n, &[]);
            let (differ, bytes) = run(&h, &h);
            assert!(differ.is_empty());
            costs.push(bytes);
        }
        // Negentropy lists the ids of a tiny set outright; past that, the initiator's 16
        // bucket fingerprints and a one-byte answer: the same few hundred bytes for a hundred
        // feeds as for ten thousand (listing every head: 7.6 KB and 760 KB).
        assert!(costs[0] < 400, "{costs:?}");
        assert!(costs[1] < 400 && costs[3] <= costs[1] + 16, "{costs:?}");
    }

    #[test]
    fn exactly_the_differing_feeds_are_found() {
        let a = heads(1_000, &[]);
        let b = heads(1_000, &[7, 99, 900]);
        let (differ, bytes) = run(&a, &b);
        // The peer holds these three one event further.
        assert_eq!(
            differ,
            vec![(Ok(id(7)), 11), (Ok(id(99)), 11), (Ok(id(900)), 11)]
        );
        // Seen from the peer's side, nothing of ours is further: our older items name the
        // same feeds at the lengths we hold, which it skips.
        assert!(run(&b, &a).0.iter().all(|(_, len)| *len == 10));
        // Far below listing every head (76 bytes each).
        assert!(bytes < 1_000 * 76 / 10, "{bytes} bytes");
        // A feed only the peer holds is named by its prefix.
        let mut c = a.clone();
        c.insert(id(1_001), (1, EventId([1; 32])));
        assert_eq!(run(&a, &c).0, vec![(Err(prefix(&id(1_001))), 1)]);
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        let h = heads(10, &[]);
        for bad in [
            &[][..],
            &[0x61][..],
            &[0x61, 0xff, 0xff, 0xff][..],
            &[0x00; 64][..],
        ] {
            let _ = respond(&h, bad);
            let _ = step(&h, bad);
        }
        assert!(respond(&h, &vec![0x61; MAX_RECONCILE_BYTES + 1]).is_err());
    }
}
