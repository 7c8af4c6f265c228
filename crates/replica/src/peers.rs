//! The peer book: what this replica knows of each peer (connection, liveness, agreement,
//! queues, requests in flight) and of the addresses it was told to dial.

use crate::limits::{
    HEARTBEATS_MISSED_DOWN, MAX_ADDRS_PER_PEER, MAX_KNOWN_PEERS, REDIAL_BACKOFF_MAX_MS,
    REDIAL_BACKOFF_MIN_MS,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use web4fed_core::envelope::Heartbeat;
use web4fed_core::event::Event as SignedEvent;
use web4fed_core::identity::MemberId;

/// What the replica knows of one peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Addresses to dial it at (text; the driver parses them).
    pub addrs: BTreeSet<String>,
    /// Whether the transport has a connection to it.
    pub connected: bool,
    /// Since when it has been connected (eviction spares young connections: a newcomer is
    /// still learning whom else to dial).
    pub connected_since_ms: Option<u64>,
    /// Whether its events are queued while it is away: set when it connects, cleared when we
    /// drop it ourselves to keep our peer set bounded (it is then another node's neighbour,
    /// and gossip and sync reach it through them).
    pub kept: bool,
    /// When its last heartbeat arrived.
    pub last_heartbeat_ms: Option<u64>,
    /// Its last heartbeat.
    pub heartbeat: Option<Heartbeat>,
    /// Whether its reported root equals ours for the same epoch.
    pub root_matches: Option<bool>,
    /// Whether it was last reported down (a partition) rather than up.
    pub reported_down: bool,
    /// When it last delivered events to us (push or gossip).
    pub last_delivery_ms: Option<u64>,
    /// A push to it awaits its ack: pushes go one at a time so they fold in order.
    pub push_in_flight: bool,
    /// When to dial it next.
    pub next_dial_ms: u64,
    /// The wait after the next failed dial.
    pub backoff_ms: u64,
    /// Events waiting to be pushed to it.
    pub queue: VecDeque<Arc<SignedEvent>>,
    /// Events dropped from its full queue.
    pub dropped: u64,
    /// When a sync round with it last started.
    pub last_sync_ms: Option<u64>,
    /// Range requests to it awaiting answers.
    pub ranges_in_flight: u32,
    /// A reconciliation of feed heads with it is under way (its next answer is awaited).
    pub reconcile_in_flight: bool,
    /// Reconciliation rounds run in the current sync round with it.
    pub reconcile_rounds: u32,
    /// What it may still cost us (made on first use).
    pub budget: Option<crate::budget::PeerBudget>,
    /// Requests and bytes refused for being over its budget.
    pub over_budget: u64,
    /// Refusals and bad signatures counted against it (a stranger is shunned at
    /// [`crate::limits::STRIKES_TO_SHUN`]).
    pub strikes: u64,
    /// Where the next page of its evidence starts (a round that stopped at the page limit
    /// resumes here).
    pub evidence_after: Option<web4fed_core::ledger::EvidenceCursor>,
    /// Pages of evidence asked of it in the current sync round.
    pub evidence_pages: u32,
}

impl Peer {
    fn new(now_ms: u64) -> Self {
        Self {
            addrs: BTreeSet::new(),
            connected: false,
            connected_since_ms: None,
            kept: false,
            last_heartbeat_ms: None,
            heartbeat: None,
            root_matches: None,
            reported_down: false,
            last_delivery_ms: None,
            push_in_flight: false,
            next_dial_ms: now_ms,
            backoff_ms: REDIAL_BACKOFF_MIN_MS,
            queue: VecDeque::new(),
            dropped: 0,
            last_sync_ms: None,
            ranges_in_flight: 0,
            reconcile_in_flight: false,
            reconcile_rounds: 0,
            budget: None,
            over_budget: 0,
            strikes: 0,
            evidence_after: None,
            evidence_pages: 0,
        }
    }

    /// Whether it has missed too many heartbeats (or never sent one).
    pub fn is_down(&self, now_ms: u64, heartbeat_ms: u64) -> bool {
        let limit = heartbeat_ms * HEARTBEATS_MISSED_DOWN;
        self.last_heartbeat_ms
            .is_none_or(|t| now_ms.saturating_sub(t) > limit)
    }

    /// Adds a dialable address, up to [`MAX_ADDRS_PER_PEER`].
    pub fn add_addr(&mut self, addr: String) {
        if self.addrs.len() < MAX_ADDRS_PER_PEER || self.addrs.contains(&addr) {
            self.addrs.insert(addr);
        }
    }

    /// Doubles the redial wait, up to its maximum.
    pub(crate) fn back_off(&mut self, now_ms: u64) {
        self.next_dial_ms = now_ms + self.backoff_ms;
        self.backoff_ms = (self.backoff_ms * 2).min(REDIAL_BACKOFF_MAX_MS);
    }
}

/// Where a peer stands in this replica's order of preference for neighbours: the first 8
/// bytes of SHA-256 over both member ids, lowest first. Every node ranks the others
/// differently, so the peer sets the ranks pick form a random graph (1,000 nodes connected
/// within 4 hops at 8 neighbours each: `tests/peer_set.rs`), and the same node keeps the same neighbours
/// across restarts; no one can pick its place in another's order without grinding keys, which
/// proof of work prices.
pub fn preference(me: &MemberId, peer: &MemberId) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"web4fed/neighbour/v1");
    h.update(me.0);
    h.update(peer.0);
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The `k` members of a committee (other than `me`) that `me` prefers most: the committee
/// neighbours a committee member keeps linked (see [`crate::limits::COMMITTEE_PEERS`]).
/// One function for the replica's dials and the simulator's links, so both build the same
/// graph: `k` random-looking out-links from each member make the committee's own graph
/// connected whatever the rest of the peer set looks like.
pub fn committee_neighbours<'a>(
    me: &MemberId,
    committee: impl IntoIterator<Item = &'a MemberId>,
    k: usize,
) -> Vec<MemberId> {
    let mut order: Vec<(u64, MemberId)> = committee
        .into_iter()
        .filter(|m| *m != me)
        .map(|m| (preference(me, m), *m))
        .collect();
    order.sort_unstable();
    order.into_iter().take(k).map(|(_, m)| m).collect()
}

/// An address the operator asked us to keep dialling (its peer is unknown until it answers).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The address.
    pub addr: String,
    /// When to dial it next.
    pub next_dial_ms: u64,
    /// The wait after the next failed dial.
    pub backoff_ms: u64,
}

/// Every peer the replica knows, bounded: connected peers always have an entry, peers only
/// heard of are kept up to [`MAX_KNOWN_PEERS`].
#[derive(Debug, Clone, Default)]
pub struct PeerBook {
    peers: BTreeMap<MemberId, Peer>,
    /// Addresses to keep dialling.
    pub bootstrap: Vec<Bootstrap>,
    /// Members refused for good (ejected by the log).
    pub blocked: BTreeSet<MemberId>,
}

impl PeerBook {
    /// The entry of a peer that talks to us (or that we talk to), made if missing.
    pub(crate) fn entry(&mut self, m: MemberId, now_ms: u64) -> &mut Peer {
        self.peers.entry(m).or_insert_with(|| Peer::new(now_ms))
    }

    /// The entry of a peer only heard of, made if missing and the book has room.
    pub(crate) fn heard_of(&mut self, m: MemberId, now_ms: u64) -> Option<&mut Peer> {
        if !self.peers.contains_key(&m) && self.peers.len() >= MAX_KNOWN_PEERS {
            return None;
        }
        Some(self.entry(m, now_ms))
    }

    /// Forgets a peer (one that is not a member, once it disconnects).
    pub(crate) fn remove(&mut self, m: &MemberId) {
        self.peers.remove(m);
    }

    /// One peer.
    pub fn get(&self, m: &MemberId) -> Option<&Peer> {
        self.peers.get(m)
    }

    pub(crate) fn get_mut(&mut self, m: &MemberId) -> Option<&mut Peer> {
        self.peers.get_mut(m)
    }

    /// Every peer, in member order.
    pub fn iter(&self) -> impl Iterator<Item = (&MemberId, &Peer)> {
        self.peers.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&MemberId, &mut Peer)> {
        self.peers.iter_mut()
    }

    /// Connected peers, in member order.
    pub fn connected(&self) -> Vec<MemberId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.connected)
            .map(|(m, _)| *m)
            .collect()
    }

    /// Whether this peer is connected.
    pub fn is_connected(&self, m: &MemberId) -> bool {
        self.peers.get(m).is_some_and(|p| p.connected)
    }

    /// Queues an event for every kept peer that is not connected (pushed when it comes
    /// back), dropping the oldest from full queues. Returns how many were dropped. Members
    /// only heard of, and neighbours we dropped, get nothing queued: the federation's other
    /// nodes are their neighbours, so queues stay proportional to our own peer set.
    pub(crate) fn queue_for_absent(&mut self, ev: &Arc<SignedEvent>) -> u64 {
        let mut dropped = 0;
        for (m, peer) in self.peers.iter_mut() {
            // Blocked members had their queues cleared and never connect again.
            if peer.connected || !peer.kept || self.blocked.contains(m) {
                continue;
            }
            if peer.queue.len() >= crate::limits::PEER_QUEUE_MAX {
                peer.queue.pop_front();
                peer.dropped += 1;
                dropped += 1;
            }
            peer.queue.push_back(ev.clone());
        }
        dropped
    }

    /// Events queued for all peers.
    pub fn queued(&self) -> usize {
        self.peers.values().map(|p| p.queue.len()).sum()
    }
}
