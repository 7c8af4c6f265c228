//! A Byzantine libp2p peer: the node's own behaviour (so it speaks the protocol exactly), a
//! key of the attacker's choosing, and no replica behind it. It publishes whatever the
//! attack makes, sends requests, and answers the victim's requests as the attack wants.

use futures::StreamExt;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use web4fed_core::identity::Keypair;
use web4fed_node::swarm::{build_swarm, Behaviour, BehaviourEvent, Names};
use web4fed_replica::{Request, Response, Topic};

/// How long the peer waits to connect and see the victim subscribe before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait before dialling again after the victim closed the connection.
pub const REDIAL_AFTER: Duration = Duration::from_millis(200);

/// What the peer does with a request from the victim.
pub type Responder = Box<dyn FnMut(&Request) -> Response + Send>;

/// Counts of what happened on the wire, for the attack report.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct WireCounts {
    /// Gossip messages handed to gossipsub.
    pub published: u64,
    /// Gossip the transport refused to send (no subscribed peer, queues full).
    pub publish_refused: u64,
    /// Requests sent.
    pub requests: u64,
    /// Answers received.
    pub answers: u64,
    /// Answers that were `Response::Error` (the victim refused).
    pub refused_answers: u64,
    /// Requests that failed (timeout, connection closed, stream refused).
    pub request_failures: u64,
    /// Requests the victim made of us.
    pub asked: u64,
    /// Times the victim closed our connection.
    pub disconnects: u64,
    /// Dials that failed (e.g. the victim blocks us).
    pub dial_failures: u64,
    /// Bytes of snapshot chunks the victim sent us.
    pub snapshot_bytes: u64,
}

/// One Byzantine peer connected to one victim.
pub struct Peer {
    swarm: Swarm<Behaviour>,
    names: Names,
    target: Multiaddr,
    victim: Option<PeerId>,
    subscribed: bool,
    redial_at: Option<Instant>,
    /// Answers awaited by [`Peer::ask`] (flooded requests are only counted).
    awaited: HashMap<request_response::OutboundRequestId, Option<Response>>,
    responder: Responder,
    /// What happened so far.
    pub counts: WireCounts,
}

impl Peer {
    /// A peer with key `kp` on the network `network` that will dial `target`.
    pub fn new(kp: &Keypair, network: &[u8; 32], target: Multiaddr) -> Result<Self, String> {
        let names = Names::new(network);
        let swarm = build_swarm(kp, &names, Duration::from_secs(1)).map_err(|e| e.to_string())?;
        Ok(Self {
            swarm,
            names,
            target,
            victim: None,
            subscribed: false,
            redial_at: None,
            awaited: HashMap::new(),
            responder: Box::new(|_| Response::Error {
                message: "no".into(),
            }),
            counts: WireCounts::default(),
        })
    }

    /// Sets how the victim's requests are answered.
    pub fn respond_with(&mut self, r: Responder) {
        self.responder = r;
    }

    /// Dials the victim and waits until it is connected and subscribed to our topics.
    pub async fn connect(&mut self) -> Result<(), String> {
        self.swarm
            .dial(self.target.clone())
            .map_err(|e| format!("dial {}: {e}", self.target))?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while !(self.victim.is_some() && self.subscribed) {
            if Instant::now() > deadline {
                return Err(format!("{}: not connected and subscribed", self.target));
            }
            self.pump(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Dials the victim and waits (up to `within`) for the connection's handshake to end:
    /// true if the victim accepted it, false if it refused or it failed.
    pub async fn handshake(&mut self, within: Duration) -> bool {
        if self.swarm.dial(self.target.clone()).is_err() {
            return false;
        }
        let failures = self.counts.dial_failures;
        let deadline = Instant::now() + within;
        while self.victim.is_none() && self.counts.dial_failures == failures {
            if Instant::now() > deadline {
                return false;
            }
            self.pump(Duration::from_millis(10)).await;
        }
        self.victim.is_some()
    }

    /// Publishes bytes on a topic (flood-published to the victim).
    pub fn publish(&mut self, topic: Topic, bytes: Vec<u8>) {
        let t = self.names.topic(topic);
        match self.swarm.behaviour_mut().gossipsub.publish(t, bytes) {
            Ok(_) => self.counts.published += 1,
            Err(_) => self.counts.publish_refused += 1,
        }
    }

    /// Sends a request to the victim without waiting for its answer (only counted).
    pub fn request(&mut self, body: Request) -> Option<request_response::OutboundRequestId> {
        let v = self.victim?;
        self.counts.requests += 1;
        Some(self.swarm.behaviour_mut().sync.send_request(&v, body))
    }

    /// Sends a request and waits up to `within` for its answer.
    pub async fn ask(&mut self, body: Request, within: Duration) -> Option<Response> {
        let id = self.request(body)?;
        self.awaited.insert(id, None);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(Some(_)) = self.awaited.get(&id) {
                return self.awaited.remove(&id).flatten();
            }
            if !self.awaited.contains_key(&id) {
                return None;
            }
            self.pump(Duration::from_millis(20)).await;
        }
        self.awaited.remove(&id);
        None
    }

    /// Requests sent and not yet answered or failed.
    pub fn in_flight(&self) -> u64 {
        self.counts
            .requests
            .saturating_sub(self.counts.answers + self.counts.request_failures)
    }

    /// Runs the swarm for `d`: answers the victim, counts, and redials after a disconnect.
    pub async fn pump(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        loop {
            if let Some(at) = self.redial_at {
                if Instant::now() >= at {
                    self.redial_at = None;
                    if self.swarm.dial(self.target.clone()).is_err() {
                        self.counts.dial_failures += 1;
                    }
                }
            }
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_event(ev),
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }

    fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => self.victim = Some(peer_id),
            SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            } => {
                self.counts.disconnects += 1;
                self.subscribed = false;
                self.redial_at = Some(Instant::now() + REDIAL_AFTER);
            }
            SwarmEvent::OutgoingConnectionError { .. } => {
                self.counts.dial_failures += 1;
                self.redial_at = Some(Instant::now() + REDIAL_AFTER);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(g)) => match g {
                gossipsub::Event::Subscribed { .. } => self.subscribed = true,
                gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    ..
                } => {
                    // We relay nothing: what the victim publishes stops here.
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            gossipsub::MessageAcceptance::Ignore,
                        );
                }
                _ => {}
            },
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.on_sync(e),
            _ => {}
        }
    }

    fn on_sync(&mut self, e: request_response::Event<Request, Response>) {
        match e {
            request_response::Event::Message { message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    self.counts.asked += 1;
                    let answer = (self.responder)(&request);
                    self.answer(channel, answer);
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    self.counts.answers += 1;
                    if matches!(response, Response::Error { .. }) {
                        self.counts.refused_answers += 1;
                    }
                    if let Response::SnapshotChunk { bytes } = &response {
                        self.counts.snapshot_bytes += bytes.len() as u64;
                    }
                    if let Some(slot) = self.awaited.get_mut(&request_id) {
                        *slot = Some(response);
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, .. } => {
                self.counts.request_failures += 1;
                self.awaited.remove(&request_id);
            }
            _ => {}
        }
    }

    fn answer(&mut self, channel: ResponseChannel<Response>, r: Response) {
        let _ = self.swarm.behaviour_mut().sync.send_response(channel, r);
    }
}
