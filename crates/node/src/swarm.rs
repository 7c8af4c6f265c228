//! The libp2p side: the behaviour (gossipsub with one topic per kind of gossip,
//! request-response carrying the replica's requests, identify for addresses and the network
//! check, connection limits in all and per source address, and a block list for ejected
//! members), and the mapping between libp2p peers and members. No libp2p ping: the
//! replica's heartbeats (one a second to each neighbour) already show a link alive or dead,
//! and a second liveness protocol cost every connection its own timers and wake-ups.
//!
//! Protocol decisions stay in the replica; this module only wires libp2p up.

use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, connection_limits, gossipsub, identify, identity, noise, request_response,
    tcp, yamux, PeerId, StreamProtocol, Swarm,
};
use std::time::Duration;
use web4fed_core::envelope::MAX_ENVELOPE_BYTES;
use web4fed_core::identity::{Keypair, MemberId};
use web4fed_replica::{Request, Response, Topic};

/// How long a sync request may take before the transport fails it (the replica has its own,
/// equal, deadline).
pub const SYNC_TIMEOUT: Duration =
    Duration::from_millis(web4fed_replica::limits::REQUEST_TIMEOUT_MS);
/// Most established connections, in and out: a federation is a few hundred nodes.
pub const MAX_CONNECTIONS: u32 = 512;
/// Connections from or to one peer.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Inbound connections still negotiating: bounds what a flood of half-open dials can cost.
pub const MAX_PENDING_INCOMING: u32 = 64;
/// A connection with no traffic is kept this long: members stay connected through quiet
/// hours (heartbeats keep them busy anyway); libp2p's default would close them.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3_600);

/// The node's libp2p behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Refuses ejected members.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Bounds what one source address may start: handshakes in progress and new
    /// connections a second (before the totals below, so one address cannot take them all).
    pub addresses: crate::address_limits::Behaviour,
    /// Bounds connection counts.
    pub limits: connection_limits::Behaviour,
    /// Pushes events and heartbeats.
    pub gossipsub: gossipsub::Behaviour,
    /// Anti-entropy sync.
    pub sync: request_response::cbor::Behaviour<Request, Response>,
    /// Listen addresses and the network check.
    pub identify: identify::Behaviour,
}

/// The libp2p key for a member key pair: the same Ed25519 key, so the PeerId names the member.
pub fn libp2p_keypair(kp: &Keypair) -> Result<identity::Keypair, String> {
    let mut secret = kp.secret();
    let sk =
        identity::ed25519::SecretKey::try_from_bytes(&mut secret).map_err(|e| e.to_string())?;
    Ok(identity::Keypair::from(identity::ed25519::Keypair::from(
        sk,
    )))
}

/// The PeerId of a member.
pub fn peer_id_of(member: &MemberId) -> Option<PeerId> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(&member.0).ok()?;
    Some(identity::PublicKey::from(pk).to_peer_id())
}

/// The member behind a PeerId (only Ed25519 peers are members).
pub fn member_of(peer: &PeerId) -> Option<MemberId> {
    let mh = peer.as_ref();
    let pk = identity::PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    let ed = pk.try_into_ed25519().ok()?;
    Some(MemberId(ed.to_bytes()))
}

/// Whether an address is a wildcard (0.0.0.0, ::) that no peer can dial.
pub fn is_unspecified(a: &libp2p::Multiaddr) -> bool {
    a.iter().any(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => ip.is_unspecified(),
        libp2p::multiaddr::Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// Names derived from the network id: peers of other networks share none of them.
#[derive(Debug, Clone)]
pub struct Names {
    /// identify protocol version; compared on connect.
    pub protocol_version: String,
    /// One gossip topic per kind of gossip.
    topics: Vec<(Topic, gossipsub::IdentTopic)>,
    /// Request-response protocol.
    pub sync_protocol: StreamProtocol,
}

impl Names {
    /// Names for a network id.
    pub fn new(network: &[u8; 32]) -> Self {
        let short = hex::encode(&network[..8]);
        Self {
            protocol_version: format!("/web4fed/2.0.0/{}", hex::encode(network)),
            topics: Topic::ALL
                .iter()
                .map(|t| {
                    let name = format!("web4fed/{short}/{}/2", t.name());
                    (*t, gossipsub::IdentTopic::new(name))
                })
                .collect(),
            sync_protocol: StreamProtocol::try_from_owned(format!("/web4fed/{short}/sync/2"))
                .unwrap_or(StreamProtocol::new("/web4fed/sync/2")),
        }
    }

    /// The gossipsub topic of a kind of gossip.
    pub fn topic(&self, t: Topic) -> gossipsub::IdentTopic {
        self.topics
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| gossipsub::IdentTopic::new("web4fed/unknown"))
    }

    /// The kind of gossip a topic carries, if it is one of ours.
    pub fn kind_of(&self, hash: &gossipsub::TopicHash) -> Option<Topic> {
        self.topics
            .iter()
            .find(|(_, name)| name.hash() == *hash)
            .map(|(k, _)| *k)
    }
}

/// Gossipsub scoring: our validation verdicts (reject = invalid message) weigh heavily, and a
/// quiet federation is not punished for delivering few messages.
fn peer_score(names: &Names) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let mut params = gossipsub::PeerScoreParams::default();
    for (_, topic) in &names.topics {
        let t = gossipsub::TopicScoreParams {
            topic_weight: 1.0,
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            // The penalty grows with the square of invalid messages: graylisting (score
            // below -80) comes after five. The log's own rule ejects at three violations, so
            // the evidence always completes before gossipsub stops listening to the sender.
            invalid_message_deliveries_weight: -4.0,
            invalid_message_deliveries_decay: 0.9,
            ..Default::default()
        };
        params.topics.insert(topic.hash(), t);
    }
    // Loopback and LAN test hosts share addresses; do not treat that as a Sybil signal.
    params.ip_colocation_factor_weight = 0.0;
    (params, gossipsub::PeerScoreThresholds::default())
}

/// Builds the swarm for a member on a network.
pub fn build_swarm(
    kp: &Keypair,
    names: &Names,
    heartbeat: Duration,
) -> Result<Swarm<Behaviour>, Box<dyn std::error::Error + Send + Sync>> {
    let key = libp2p_keypair(kp)?;
    let names_c = names.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(move |key| {
            // One signature per message: every payload carries our own (the envelope's
            // sender, the heartbeat's, the vote's, the certificate's), checked before it
            // counts, so gossipsub's signature over the same bytes would be checked twice for
            // nothing. Anonymous: no source, seqno or signature on the wire; anything that
            // carries them is refused.
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .validate_messages()
                .max_transmit_size(MAX_ENVELOPE_BYTES + 1024)
                .heartbeat_interval(heartbeat.min(Duration::from_secs(1)))
                // The mesh is drawn from the replica's bounded peer set (it dials towards
                // `TARGET_PEERS` = 8 neighbours and keeps at most `MAX_PEERS` = 24): six
                // mesh peers per topic, rebuilt below four or above twelve, so a relayed
                // message costs each node about six copies in and out whatever the
                // federation's size. Gossip about recent messages (IHAVE) goes to three
                // peers outside the mesh each heartbeat instead of six: our own messages
                // are flood-published to every neighbour anyway, and anti-entropy sync
                // repairs what gossip misses.
                .mesh_n(6)
                .mesh_n_low(4)
                .mesh_n_high(12)
                .mesh_outbound_min(2)
                .gossip_lazy(3)
                // Content-addressed ids: the same envelope relayed twice is one message.
                .message_id_fn(|m: &gossipsub::Message| {
                    use sha2::Digest;
                    gossipsub::MessageId::from(sha2::Sha256::digest(&m.data)[..20].to_vec())
                })
                // A node's own messages go to every neighbour at once (latency: one hop to
                // each of at most `MAX_PEERS`), relays to the mesh only.
                .flood_publish(true)
                .build()
                .map_err(|e| e.to_string())?;
            let mut gs =
                gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)?;
            let (params, thresholds) = peer_score(&names_c);
            gs.with_peer_score(params, thresholds)?;
            for t in Topic::ALL {
                gs.subscribe(&names_c.topic(t)).map_err(|e| e.to_string())?;
            }
            let sync = request_response::cbor::Behaviour::new(
                [(
                    names_c.sync_protocol.clone(),
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default().with_request_timeout(SYNC_TIMEOUT),
            );
            let identify = identify::Behaviour::new(
                identify::Config::new(names_c.protocol_version.clone(), key.public())
                    .with_agent_version(format!("web4fed/{}", env!("CARGO_PKG_VERSION"))),
            );
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(MAX_CONNECTIONS))
                .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                .with_max_pending_incoming(Some(MAX_PENDING_INCOMING));
            Ok(Behaviour {
                blocked: Default::default(),
                addresses: Default::default(),
                limits: connection_limits::Behaviour::new(limits),
                gossipsub: gs,
                sync,
                identify,
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_and_peer_ids_round_trip() {
        let kp = Keypair::from_secret([9; 32]);
        let pid = peer_id_of(&kp.id()).unwrap();
        assert_eq!(member_of(&pid), Some(kp.id()));
        assert_eq!(libp2p_keypair(&kp).unwrap().public().to_peer_id(), pid);
    }
}
