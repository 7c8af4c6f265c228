//! Per-address limits on inbound connections. Every inbound connection costs a Noise
//! handshake (a Diffie-Hellman and a signature check) before the node knows who is calling,
//! and a fresh key costs the caller nothing. libp2p's own limits bound the handshakes in
//! progress in all; this bounds what one source address may start: handshakes in progress at
//! once, and new connections a second (a token bucket), so one host flooding fresh keys
//! cannot take every handshake slot from the members. IPv6 sources count by their /64, the
//! block one subscriber usually holds.

use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::ListenFailure;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::PeerId;
use std::collections::HashMap;
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Instant;
use web4fed_replica::budget::Bucket;

/// Handshakes one address may have in progress: a node dials a peer once or twice; eight
/// leaves room for several nodes behind one NAT.
pub const MAX_PENDING_PER_ADDRESS: usize = 8;
/// New inbound connections one address may open at once: a burst wide enough for a hundred
/// nodes on one host (the bench, a test federation) dialling a peer as they start.
pub const NEW_CONNECTIONS_BURST: u64 = 128;
/// New inbound connections one address may open per second once its burst is spent: honest
/// nodes reconnect after failures with seconds of backoff; a fresh-key flood is held to this.
pub const NEW_CONNECTIONS_PER_SEC: u64 = 8;
/// Source addresses tracked at once; when full, the one quiet for longest is forgotten.
pub const MAX_TRACKED_ADDRESSES: usize = 4_096;

/// Where a connection comes from, as this limit counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 address (or an IPv4-mapped IPv6 address).
    V4([u8; 4]),
    /// The /64 an IPv6 address is in.
    V6([u8; 8]),
}

impl Source {
    /// The source of a remote address, if it has an IP address.
    pub fn of(addr: &Multiaddr) -> Option<Source> {
        addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(Source::V4(ip.octets())),
            Protocol::Ip6(ip) => Some(match ip.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&ip.octets()[..8]);
                    Source::V6(prefix)
                }
            }),
            _ => None,
        })
    }
}

/// Why an inbound connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Too many handshakes in progress from this address.
    #[error("{MAX_PENDING_PER_ADDRESS} handshakes already in progress from this address")]
    Pending,
    /// This address opened too many connections lately.
    #[error("over {NEW_CONNECTIONS_PER_SEC} new connections a second from this address")]
    Rate,
}

#[derive(Debug)]
struct Entry {
    pending: usize,
    bucket: Bucket,
    seen_ms: u64,
}

/// The behaviour: refuses inbound connections over the per-address limits.
#[derive(Debug)]
pub struct Behaviour {
    origin: Instant,
    sources: HashMap<Source, Entry>,
    pending: HashMap<ConnectionId, Source>,
    /// Inbound connections refused so far (for metrics).
    pub refused: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            sources: HashMap::new(),
            pending: HashMap::new(),
            refused: 0,
        }
    }
}

impl Behaviour {
    /// Decides on a new inbound connection from `source` at `now_ms` (sans-IO core of the
    /// behaviour, so it can be tested without sockets).
    pub fn admit(&mut self, id: ConnectionId, source: Source, now_ms: u64) -> Result<(), Refused> {
        if !self.sources.contains_key(&source) && self.sources.len() >= MAX_TRACKED_ADDRESSES {
            self.forget_quietest();
        }
        let e = self.sources.entry(source).or_insert_with(|| Entry {
            pending: 0,
            bucket: Bucket::new(NEW_CONNECTIONS_BURST, NEW_CONNECTIONS_PER_SEC, now_ms),
            seen_ms: now_ms,
        });
        e.seen_ms = now_ms;
        let verdict = if e.pending >= MAX_PENDING_PER_ADDRESS {
            Err(Refused::Pending)
        } else if !e.bucket.take(1, now_ms) {
            Err(Refused::Rate)
        } else {
            e.pending += 1;
            self.pending.insert(id, source);
            Ok(())
        };
        if verdict.is_err() {
            self.refused += 1;
        }
        verdict
    }

    /// A handshake ended (established, failed or refused elsewhere).
    pub fn settled(&mut self, id: ConnectionId) {
        if let Some(source) = self.pending.remove(&id) {
            if let Some(e) = self.sources.get_mut(&source) {
                e.pending = e.pending.saturating_sub(1);
            }
        }
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Forgets the address with no handshake in progress that was seen longest ago.
    fn forget_quietest(&mut self) {
        let quietest = self
            .sources
            .iter()
            .filter(|(_, e)| e.pending == 0)
            .min_by_key(|(_, e)| e.seen_ms)
            .map(|(s, _)| *s);
        if let Some(s) = quietest {
            self.sources.remove(&s);
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(source) = Source::of(remote_addr) else {
            return Ok(());
        };
        let now = self.now_ms();
        self.admit(connection_id, source, now)
            .map_err(ConnectionDenied::new)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.settled(connection_id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) = event {
            self.settled(connection_id);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> Source {
        Source::V4([10, 0, 0, last])
    }

    #[test]
    fn handshakes_in_progress_are_capped_per_address_and_freed_when_they_end() {
        let mut b = Behaviour::default();
        let ids: Vec<ConnectionId> = (0..=MAX_PENDING_PER_ADDRESS)
            .map(|_| ConnectionId::new_unchecked(rand_id()))
            .collect();
        for id in &ids[..MAX_PENDING_PER_ADDRESS] {
            b.admit(*id, v4(1), 0).unwrap();
        }
        let last = ids[MAX_PENDING_PER_ADDRESS];
        assert!(matches!(b.admit(last, v4(1), 0), Err(Refused::Pending)));
        // Another address is not affected.
        b.admit(ConnectionId::new_unchecked(rand_id()), v4(2), 0)
            .unwrap();
        b.settled(ids[0]);
        b.admit(last, v4(1), 0).unwrap();
        assert_eq!(b.refused, 1);
    }

    #[test]
    fn new_connections_are_rate_limited_per_address() {
        let mut b = Behaviour::default();
        let mut ok = 0;
        for _ in 0..NEW_CONNECTIONS_BURST + 10 {
            let id = ConnectionId::new_unchecked(rand_id());
            if b.admit(id, v4(1), 0).is_ok() {
                ok += 1;
                b.settled(id);
            }
        }
        assert_eq!(ok, NEW_CONNECTIONS_BURST);
        // A second later the bucket has refilled by the rate.
        let mut later = 0;
        for _ in 0..NEW_CONNECTIONS_PER_SEC + 5 {
            let id = ConnectionId::new_unchecked(rand_id());
            if b.admit(id, v4(1), 1_000).is_ok() {
                later += 1;
                b.settled(id);
            }
        }
        assert_eq!(later, NEW_CONNECTIONS_PER_SEC);
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let mut b = Behaviour::default();
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 100) {
            let id = ConnectionId::new_unchecked(rand_id());
            b.admit(id, Source::V4(i.to_be_bytes()), u64::from(i))
                .unwrap();
            b.settled(id);
        }
        assert_eq!(b.tracked(), MAX_TRACKED_ADDRESSES);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: Multiaddr = "/ip6/2001:db8:1:2::1/tcp/1".parse().unwrap();
        let b: Multiaddr = "/ip6/2001:db8:1:2:ffff::9/tcp/2".parse().unwrap();
        let c: Multiaddr = "/ip6/2001:db8:1:3::1/tcp/1".parse().unwrap();
        let m: Multiaddr = "/ip6/::ffff:10.0.0.1/tcp/1".parse().unwrap();
        let four: Multiaddr = "/ip4/10.0.0.1/tcp/9".parse().unwrap();
        assert_eq!(Source::of(&a), Source::of(&b));
        assert_ne!(Source::of(&a), Source::of(&c));
        assert_eq!(Source::of(&m), Source::of(&four));
        assert_eq!(Source::of(&"/memory/1".parse().unwrap()), None);
    }

    fn rand_id() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1 << 40);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}
