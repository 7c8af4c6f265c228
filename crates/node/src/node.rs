//! The node task: drives the core's ledger with events from gossip, sync and the API,
//! persists before acknowledging, sends heartbeats, heals through anti-entropy sync and keeps
//! peers connected.

use crate::api::{self, ApiError, Command, Query};
use crate::metrics::{self, Metrics};
use crate::net::{
    self, Behaviour, BehaviourEvent, Names, SyncRequest, SyncResponse, MAX_PUSH_BATCH_BYTES,
    MAX_SUMMARY_FEEDS, MAX_SYNC_BATCH_BYTES, MAX_SYNC_BATCH_EVENTS,
};
use futures::StreamExt;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, request_response, Multiaddr, PeerId, Swarm};
use serde_bytes::ByteBuf;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc};
use web4fed_core::envelope::{vv_digest, Envelope, Heartbeat};
use web4fed_core::event::{Body, Event, EventId, Evidence, Kind};
use web4fed_core::finality::{CertError, Certificate, Vote};
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::{Keypair, MemberId};
use web4fed_core::ledger::{Admission, InsertError, Ledger};
use web4fed_core::state::Status;
use web4fed_core::verdict::Verdict;
use web4fed_store::keyfile;
use web4fed_store::node_dir::{load_genesis, NodeConfig, NodeDir};
use web4fed_store::Store;

/// Events queued for one unreachable peer; beyond this the oldest is dropped and counted
/// (anti-entropy sync repairs whatever a queue drops).
pub const PEER_QUEUE_MAX: usize = 1_024;
/// Events queued for one connected peer by bulk ingest (`POST /v1/events`) while it
/// acknowledges earlier pushes; beyond this the oldest are dropped (sync repairs them).
pub const BULK_QUEUE_MAX: usize = 65_536;
/// Heartbeats a peer may miss before it is marked down.
pub const HEARTBEATS_MISSED_DOWN: u32 = 3;
/// Range requests in flight to one peer.
pub const MAX_RANGES_IN_FLIGHT: u32 = 64;
/// Least time between two sync rounds with one peer.
pub const SYNC_MIN_INTERVAL: Duration = Duration::from_millis(300);
/// A sync round with some connected peer at least this often, whatever heartbeats say.
pub const SYNC_PERIOD: Duration = Duration::from_secs(10);
/// How often peers are asked whom they know: addresses arrive late (identify runs after the
/// connection), so one exchange on connect is not enough to complete the mesh.
pub const PEER_EXCHANGE_PERIOD: Duration = Duration::from_secs(3);
/// Connected peers asked per exchange round (bounds the cost in a large federation).
pub const PEER_EXCHANGE_FANOUT: usize = 8;
/// Longest wait between redials of a peer.
pub const REDIAL_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// First wait before redialling a peer.
pub const REDIAL_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Recent thoughts remembered for the API's thought stream.
pub const RECENT_THOUGHTS: usize = 2_000;
/// Heartbeats report the root of the epoch this many epochs before the current one, so that
/// events in flight have landed on every node.
pub const HEARTBEAT_EPOCH_LAG: u64 = 2;
/// Votes are taken only for epochs this many epochs back from the current one.
pub const VOTE_EPOCH_WINDOW: u64 = 60;
/// Longest vote accepted in a `POST /v1/votes` frame (a vote encodes to 168 bytes; the slack
/// is for a future version, the bound keeps one frame from claiming the whole body).
pub const MAX_VOTE_BYTES: usize = 1_024;
/// Certificates waiting until this node can check them (it lacks events or the previous one).
pub const PENDING_CERTS_MAX: usize = 16;
/// Timer period for future-dated events, redials and down detection.
const TICK: Duration = Duration::from_millis(250);
/// Messages buffered for each live dashboard; a dashboard further behind skips ahead (it is
/// told how many it missed) rather than holding the node's memory.
pub const LIVE_BUFFER: usize = 1_024;
/// How often the live feed carries a full snapshot (members, totals, latency).
pub const LIVE_SNAPSHOT_PERIOD: Duration = Duration::from_secs(1);
/// Longest thought content sent on the live feed; the API serves the whole text.
pub const LIVE_CONTENT_CHARS: usize = 280;
/// Synced events held back so that a whole sync round folds as one batch: events of many
/// feeds interleave in time, and folding each feed's range as it arrives re-folds the
/// history once per range (quadratic in a heal). Bounded in bytes and in age.
pub const SYNC_BUFFER_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Longest synced events wait in the buffer before they are folded anyway.
pub const SYNC_BUFFER_MAX_AGE: Duration = Duration::from_millis(250);
/// A peer that delivered events (push or gossip) this recently is not asked for a sync
/// when its heartbeat digest differs from ours: the difference is most likely events in
/// flight, and a sync would fetch them twice and fold them out of order. Periodic
/// anti-entropy still runs.
pub const SYNC_QUIET_AFTER_DELIVERY: Duration = Duration::from_secs(1);
/// Wait between credential-activation challenges to one member (an answer takes ~0.1 s on
/// swtpm; a TPM that does not answer is asked again after this).
pub const ATTEST_RETRY: Duration = Duration::from_secs(5);
/// Challenges answered by our TPM at once; more are refused with an error (the TPM is
/// sequential anyway, and each answer costs ~6 tpm2-tools processes).
pub const ATTEST_ANSWERS_IN_FLIGHT: usize = 4;

/// A behaviour a node can be told to adopt, for attack experiments on real processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adversary {
    /// Publishes its submitted thoughts with a corrupted author signature inside a validly
    /// signed envelope (the seed's Test 4): every honest node turns that into evidence.
    Forge,
    /// Signs and publishes every submitted thought without checking it first, so thoughts
    /// beyond its rate limit become violations in its own feed (the seed's Test 2).
    Spam,
}

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The node directory (from `web4fed init`).
    pub dir: PathBuf,
    /// libp2p listen address.
    pub listen: Multiaddr,
    /// Operator API address.
    pub api: SocketAddr,
    /// Peers to dial.
    pub peers: Vec<Multiaddr>,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Attack behaviour, for experiments.
    pub adversary: Option<Adversary>,
}

/// Wall-clock ms: the shell's one clock, passed into the core.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug)]
struct Peer {
    addrs: BTreeSet<Multiaddr>,
    connected: bool,
    last_heartbeat: Option<Instant>,
    heartbeat: Option<Heartbeat>,
    root_matches: Option<bool>,
    /// Whether the live feed last reported this peer down (partition) rather than up.
    reported_down: bool,
    /// When this peer last delivered events to us (push or gossip).
    last_delivery: Option<Instant>,
    /// A push to this peer awaits its ack (see `flush_queue`).
    push_in_flight: bool,
    next_dial: Instant,
    backoff: Duration,
    queue: VecDeque<Arc<Event>>,
    dropped: u64,
    last_sync: Option<Instant>,
    ranges_in_flight: u32,
    summary_in_flight: bool,
}

impl Peer {
    fn new() -> Self {
        Self {
            addrs: BTreeSet::new(),
            connected: false,
            last_heartbeat: None,
            heartbeat: None,
            root_matches: None,
            reported_down: false,
            last_delivery: None,
            push_in_flight: false,
            next_dial: Instant::now(),
            backoff: REDIAL_BACKOFF_MIN,
            queue: VecDeque::new(),
            dropped: 0,
            last_sync: None,
            ranges_in_flight: 0,
            summary_in_flight: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Local,
    Gossip,
    Sync,
    Push,
    Api,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Gossip => "gossip",
            Self::Sync => "sync",
            Self::Push => "push",
            Self::Api => "api",
        }
    }
}

struct Node {
    keypair: Keypair,
    me: MemberId,
    local_peer: PeerId,
    config: NodeConfig,
    genesis: Genesis,
    network: [u8; 32],
    names: Names,
    ledger: Ledger,
    store: Store,
    swarm: Swarm<Behaviour>,
    peers: HashMap<PeerId, Peer>,
    bootstrap: Vec<(Multiaddr, Instant, Duration)>,
    /// The latest thoughts for the API and dashboard, with their verdicts as last seen: the
    /// ledger lets go of final history, so the events are held here and each verdict is
    /// refreshed every second while the ledger still has it (a pruned event is certified; its
    /// verdict no longer changes).
    recent: VecDeque<(Arc<Event>, Option<Verdict>)>,
    metrics: Arc<Metrics>,
    settings: NodeSettings,
    started: Instant,
    last_periodic_sync: Instant,
    last_peer_exchange: Instant,
    blocked: BTreeSet<PeerId>,
    partitions_seen: u64,
    last_vote: Option<u64>,
    pending_certs: Vec<Certificate>,
    /// Certified epochs and when this node adopted them (for latency figures).
    finality_seen: VecDeque<(u64, u64)>,
    live: Live,
    attest: Attest,
    /// Synced events waiting to be folded together (see [`SYNC_BUFFER_MAX_BYTES`]).
    sync_buffer: Vec<Event>,
    sync_buffer_bytes: usize,
    sync_buffer_since: Option<Instant>,
}

/// Layer 6 work of the node: challenging members that claim a TPM, and answering
/// challenges with ours.
struct Attest {
    /// Our TPM, if this member has one.
    tpm: Option<Arc<web4fed_tpm::Tpm>>,
    /// Serialises use of our TPM (tpm2-tools flush transient objects between commands).
    tpm_lock: Arc<std::sync::Mutex<()>>,
    /// Answers computed off the node task, waiting to be sent.
    answers_tx: mpsc::Sender<(
        request_response::ResponseChannel<SyncResponse>,
        SyncResponse,
    )>,
    answering: Arc<std::sync::atomic::AtomicUsize>,
    /// Outstanding challenges: the credential we expect back, and when we asked.
    challenges: HashMap<MemberId, (Vec<u8>, Instant)>,
}

/// What the dashboard's live feed (`GET /v1/live`) needs beyond the ledger: the channel and
/// the running totals a snapshot reports.
struct Live {
    tx: broadcast::Sender<Arc<str>>,
    last_snapshot: Instant,
    admitted: u64,
    rejected: u64,
    refused: BTreeMap<String, u64>,
    /// Replication latencies (ms) observed since the last snapshot.
    latencies: Vec<f64>,
    /// The charts' figures, one point a second, so a dashboard opened now shows the last
    /// minutes instead of empty charts.
    history: VecDeque<HistoryPoint>,
}

/// Seconds of chart history a node keeps (the dashboard's charts span the same).
pub const HISTORY_POINTS: usize = 180;

/// One second of the dashboard's charts.
#[derive(Debug, Clone)]
struct HistoryPoint {
    at_ms: u64,
    admitted: u64,
    refused: BTreeMap<String, u64>,
    p50: Option<f64>,
    p99: Option<f64>,
    /// (member, trust, ATP) of every account.
    accounts: Vec<(MemberId, f64, f64)>,
}

impl HistoryPoint {
    fn json(&self) -> Value {
        json!({
            "at_ms": self.at_ms,
            "totals": {"admitted": self.admitted, "refused": self.refused},
            "latency_ms": {"p50": self.p50, "p99": self.p99},
            "members": self.accounts.iter().map(|(m, trust, atp)| {
                json!({"member": m.to_hex(), "trust": trust, "atp": atp})
            }).collect::<Vec<_>>(),
        })
    }
}

impl Live {
    fn new(tx: broadcast::Sender<Arc<str>>) -> Self {
        Self {
            tx,
            last_snapshot: Instant::now(),
            admitted: 0,
            rejected: 0,
            refused: BTreeMap::new(),
            latencies: Vec::new(),
            history: VecDeque::new(),
        }
    }

    /// Sends one message to every open dashboard (nothing is built when none is open).
    fn emit(&self, msg: impl FnOnce() -> Value) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::from(msg().to_string()));
        }
    }
}

/// Why the node could not start.
pub type NodeError = Box<dyn std::error::Error + Send + Sync>;

/// Runs a node until `shutdown` resolves.
pub async fn run(
    settings: NodeSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let nd = NodeDir::new(&settings.dir);
    let config = NodeConfig::load(&nd.config())?;
    let genesis = load_genesis(&nd.genesis())?;
    let keypair = keyfile::read(&nd.key())?;
    let store = Store::open(&nd.db(), &genesis)?;
    let mut ledger = Ledger::new(genesis.clone());
    let rebuild = store.rebuild(&mut ledger, now_ms())?;
    tracing::info!(
        events = rebuild.events,
        proofs = rebuild.proofs,
        root = %hex::encode(rebuild.root),
        "log verified and state rebuilt"
    );
    if let Some(r) = rebuild.recorded_root {
        if r != rebuild.root {
            tracing::warn!(recorded = %hex::encode(r), "recorded root differs from the rebuilt one; the log is the truth");
        }
    }
    let network = genesis.network_id();
    let names = Names::new(&network);
    let mut swarm = net::build_swarm(&keypair, &names, settings.heartbeat)?;
    swarm.listen_on(settings.listen.clone())?;
    let metrics = Arc::new(Metrics::new());
    metrics.log_events.set(ledger.len() as i64);
    let (tx, mut rx) = mpsc::channel::<Command>(api::COMMAND_QUEUE);
    let (live_tx, _) = broadcast::channel::<Arc<str>>(LIVE_BUFFER);
    let (answers_tx, mut answers_rx) = mpsc::channel(ATTEST_ANSWERS_IN_FLIGHT);
    let tpm = config
        .tpm
        .as_ref()
        .map(|t| Arc::new(web4fed_tpm::Tpm::new(&t.tcti, t.ak_handle)));
    let token = api::load_or_create_token(&nd)?;
    let api_server = api::serve(settings.api, tx, metrics.clone(), live_tx.clone(), token).await?;
    tracing::info!(api = %settings.api, "operator API listening");
    let bootstrap = settings
        .peers
        .iter()
        .map(|a| (a.clone(), Instant::now(), REDIAL_BACKOFF_MIN))
        .collect();
    let local_peer = *swarm.local_peer_id();
    let mut node = Node {
        me: keypair.id(),
        keypair,
        local_peer,
        config,
        genesis,
        network,
        names,
        ledger,
        store,
        swarm,
        peers: HashMap::new(),
        bootstrap,
        recent: VecDeque::new(),
        metrics,
        settings,
        started: Instant::now(),
        last_periodic_sync: Instant::now(),
        last_peer_exchange: Instant::now(),
        blocked: BTreeSet::new(),
        partitions_seen: 0,
        last_vote: None,
        pending_certs: Vec::new(),
        finality_seen: VecDeque::new(),
        live: Live::new(live_tx),
        sync_buffer: Vec::new(),
        sync_buffer_bytes: 0,
        sync_buffer_since: None,
        attest: Attest {
            tpm,
            tpm_lock: Arc::new(std::sync::Mutex::new(())),
            answers_tx,
            answering: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            challenges: HashMap::new(),
        },
    };
    node.last_vote = node.store.last_vote()?;
    node.recent_from_log();
    node.block_ejected();
    let mut tick = tokio::time::interval(TICK);
    let mut heartbeat = tokio::time::interval(node.settings.heartbeat);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            ev = node.swarm.select_next_some() => node.on_swarm(ev),
            Some(cmd) = rx.recv() => node.on_command(cmd),
            Some((channel, resp)) = answers_rx.recv() => {
                let _ = node.swarm.behaviour_mut().sync.send_response(channel, resp);
            }
            _ = tick.tick() => node.on_tick(),
            _ = heartbeat.tick() => node.send_heartbeat(),
            _ = &mut shutdown => break,
        }
    }
    api_server.abort();
    node.store.record_root(&node.ledger.state_root())?;
    tracing::info!("stopped");
    Ok(())
}

impl Node {
    fn peer(&mut self, p: PeerId) -> &mut Peer {
        self.peers.entry(p).or_insert_with(Peer::new)
    }

    fn recent_from_log(&mut self) {
        let mut thoughts: Vec<Arc<Event>> = self
            .ledger
            .version_vector()
            .iter()
            .flat_map(|(m, n)| {
                let start = n.saturating_sub(RECENT_THOUGHTS as u64);
                (start..*n).filter_map(|s| self.ledger.feed_event(m, s).cloned())
            })
            .filter(|e| e.header.kind == Kind::Thought)
            .collect();
        thoughts.sort_by_key(|e| (e.timestamp_ms(), e.id()));
        let skip = thoughts.len().saturating_sub(RECENT_THOUGHTS);
        self.recent = thoughts
            .into_iter()
            .skip(skip)
            .map(|e| {
                let v = self.ledger.verdict(&e.id()).cloned();
                (e, v)
            })
            .collect();
    }

    // ---- events in -------------------------------------------------------------------

    /// Hands events to the ledger, persists what it admitted (fsync), then publishes any
    /// evidence it found. Returns each event's admission.
    fn ingest(
        &mut self,
        events: Vec<Event>,
        source: Source,
    ) -> Vec<Result<Admission, InsertError>> {
        let now = now_ms();
        let stamps: Vec<(EventId, u64, MemberId, Kind)> = events
            .iter()
            .map(|e| (e.id(), e.timestamp_ms(), e.author(), e.header.kind))
            .collect();
        let results = self.ledger.handle_batch(now, events);
        // Live-feed messages go out after the events are on disk (below).
        let live_on = self.live.tx.receiver_count() > 0;
        let mut live_msgs = Vec::new();
        for ((id, ts, author, kind), r) in stamps.iter().zip(&results) {
            match r {
                Ok(Admission::Admitted) => {
                    self.metrics
                        .events_admitted
                        .get_or_create(&metrics::kind(source.name()))
                        .inc();
                    self.live.admitted += 1;
                    let latency_ms = (*author != self.me).then(|| now.saturating_sub(*ts));
                    if let Some(ms) = latency_ms {
                        self.metrics.replication_latency.observe(ms as f64 / 1e3);
                        self.live.latencies.push(ms as f64);
                    }
                    let verdict = self.ledger.verdict(id).cloned();
                    if *kind == Kind::Thought {
                        if let Some(ev) = self.ledger.event(id).cloned() {
                            self.remember(ev, verdict.clone());
                        }
                    }
                    if let Some(Verdict::Refused(rule)) = &verdict {
                        self.metrics
                            .events_refused
                            .get_or_create(&metrics::layer(rule.layer(), rule.name()))
                            .inc();
                        *self
                            .live
                            .refused
                            .entry(format!("L{} {}", rule.layer(), rule.name()))
                            .or_default() += 1;
                    }
                    self.live
                        .emit(|| self.event_json(id, source, verdict, latency_ms));
                }
                Ok(_) => {}
                Err(e) => {
                    let reason = match e {
                        InsertError::BadSignature => "bad_signature",
                        InsertError::Pow(_) => "pow",
                        InsertError::BrokenChain { .. } => "broken_chain",
                        InsertError::TimestampBeforePrev { .. } => "timestamp_before_prev",
                        InsertError::Equivocation { .. } => "equivocation",
                        InsertError::AuthorEquivocated { .. } => "author_equivocated",
                        InsertError::PoolFull { .. } => "pool_full",
                        InsertError::BeyondHorizon { .. } => "beyond_horizon",
                    };
                    self.metrics
                        .events_rejected
                        .get_or_create(&metrics::kind(reason))
                        .inc();
                    self.live.rejected += 1;
                    if live_on {
                        let name = self.member_name(author);
                        live_msgs.push(json!({"type": "rejected", "reason": reason, "source": source.name(),
                               "author": author.to_hex(), "name": name, "kind": format!("{kind:?}")}));
                    }
                }
            }
        }
        self.after_ledger_change();
        for m in live_msgs {
            self.live.emit(|| m);
        }
        results
    }

    fn remember(&mut self, ev: Arc<Event>, verdict: Option<Verdict>) {
        if self.recent.len() >= RECENT_THOUGHTS {
            self.recent.pop_front();
        }
        self.recent.push_back((ev, verdict));
    }

    /// Copies the ledger's current verdicts onto the recent thoughts it still holds.
    fn refresh_recent_verdicts(&mut self) {
        for (ev, v) in &mut self.recent {
            if let Some(now) = self.ledger.verdict(&ev.id()) {
                if v.as_ref() != Some(now) {
                    *v = Some(now.clone());
                }
            }
        }
    }

    /// Persists the ledger's outputs and acts on new evidence and ejections.
    fn after_ledger_change(&mut self) {
        let persisted = match self.store.persist_outputs(&mut self.ledger) {
            Ok(p) => p,
            Err(e) => {
                // Without the disk the node must not acknowledge anything: stop loudly.
                tracing::error!(error = %e, "cannot persist events; stopping");
                std::process::exit(3);
            }
        };
        self.metrics.log_events.set(self.ledger.len() as i64);
        self.metrics
            .memory_events
            .set((self.ledger.len() - self.ledger.pruned()) as i64);
        for c in persisted.certificates {
            self.on_new_certificate(c);
        }
        for p in persisted.proofs {
            let kind = match &p {
                Evidence::Equivocation { .. } => "equivocation",
                Evidence::ForgedEnvelope(_) => "forged_envelope",
                Evidence::DoubleVote(..) => "double_vote",
            };
            tracing::warn!(accused = %p.accused(), kind, "evidence found; publishing it");
            self.metrics
                .evidence_found
                .get_or_create(&metrics::kind(kind))
                .inc();
            if let Err(v) = self.publish_own(Body::Evidence(Box::new(p))) {
                tracing::debug!(verdict = ?v, "evidence not published (already applied)");
            }
        }
        self.block_ejected();
    }

    /// Refuses and disconnects members the log has ejected.
    fn block_ejected(&mut self) {
        let ejected: Vec<MemberId> = self
            .ledger
            .state()
            .accounts()
            .filter(|(_, a)| a.status == Status::Ejected)
            .map(|(m, _)| *m)
            .collect();
        for m in ejected {
            if m == self.me {
                continue;
            }
            if let Some(p) = net::peer_id_of(&m) {
                if self.blocked.insert(p) {
                    tracing::warn!(member = %m, peer = %p, "member ejected by the log: disconnecting and refusing it");
                    self.swarm.behaviour_mut().blocked.block_peer(p);
                    self.swarm.behaviour_mut().gossipsub.blacklist_peer(&p);
                }
            }
        }
    }

    /// Signs, previews, persists and publishes an event of our own. Returns the event, or the
    /// verdict that made us refuse to sign it.
    fn publish_own(&mut self, body: Body) -> Result<Arc<Event>, Verdict> {
        self.publish_own_checked(body, true)
    }

    fn publish_own_checked(&mut self, body: Body, check: bool) -> Result<Arc<Event>, Verdict> {
        let ev = self.ledger.author_event(&self.keypair, now_ms(), body);
        let verdict = self.ledger.preview(&ev);
        if check && !verdict.is_accepted() {
            return Err(verdict);
        }
        let id = ev.id();
        let r = self.ingest(vec![ev], Source::Local);
        if !matches!(r.first(), Some(Ok(Admission::Admitted))) {
            tracing::error!(result = ?r, "own event not admitted");
        }
        let Some(ev) = self.ledger.event(&id).cloned() else {
            return Err(Verdict::Ignored(
                web4fed_core::verdict::Ignored::AuthorEjected,
            ));
        };
        self.broadcast(&ev, ev.bytes());
        Ok(ev)
    }

    /// Gossips event bytes in an envelope we sign, and queues the event for known peers that
    /// are down.
    fn broadcast(&mut self, ev: &Arc<Event>, bytes: &[u8]) {
        let env = Envelope::seal(&self.keypair, &self.network, now_ms(), bytes);
        let topic = self.names.events_topic.clone();
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, env.encode())
        {
            tracing::debug!(error = %e, "gossip publish (sync will deliver)");
        }
        let mut dropped = 0;
        for peer in self.peers.values_mut().filter(|p| !p.connected) {
            if peer.queue.len() >= PEER_QUEUE_MAX {
                peer.queue.pop_front();
                peer.dropped += 1;
                dropped += 1;
            }
            peer.queue.push_back(ev.clone());
        }
        self.metrics.queue_dropped.inc_by(dropped);
        self.update_queue_gauge();
    }

    fn update_queue_gauge(&self) {
        let depth: usize = self.peers.values().map(|p| p.queue.len()).sum();
        self.metrics.queue_depth.set(depth as i64);
    }

    // ---- swarm -----------------------------------------------------------------------

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, peer = %self.local_peer, "listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                if self.blocked.contains(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                let addr = endpoint.get_remote_address().clone();
                for b in &mut self.bootstrap {
                    if b.0 == addr {
                        b.2 = REDIAL_BACKOFF_MIN;
                    }
                }
                let was = self.peers.get(&peer_id).is_some_and(|p| p.connected);
                let p = self.peer(peer_id);
                p.connected = true;
                p.backoff = REDIAL_BACKOFF_MIN;
                if endpoint.is_dialer() {
                    p.addrs.insert(addr);
                }
                if !was {
                    tracing::info!(peer = %peer_id, "connected");
                    self.send_request(peer_id, SyncRequest::Peers);
                    self.start_sync(peer_id);
                    self.flush_queue(peer_id);
                }
                self.update_peer_gauges();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                let p = self.peer(peer_id);
                p.connected = false;
                p.summary_in_flight = false;
                p.ranges_in_flight = 0;
                p.next_dial = Instant::now() + p.backoff;
                tracing::info!(peer = %peer_id, "disconnected");
                self.update_peer_gauges();
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if info.protocol_version != self.names.protocol_version {
                    tracing::warn!(peer = %peer_id, theirs = %info.protocol_version, "peer is on another network; disconnecting");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                let p = self.peer(peer_id);
                for a in info.listen_addrs {
                    if !is_unspecified(&a) {
                        p.addrs.insert(a);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.on_sync(e),
            _ => {}
        }
    }

    fn update_peer_gauges(&self) {
        let connected = self.peers.values().filter(|p| p.connected).count();
        self.metrics.peers_connected.set(connected as i64);
        let agreeing = self
            .peers
            .values()
            .filter(|p| p.root_matches == Some(true) && !self.is_down(p))
            .count();
        self.metrics.peers_agreeing.set(agreeing as i64);
    }

    fn is_down(&self, p: &Peer) -> bool {
        let limit = self.settings.heartbeat * HEARTBEATS_MISSED_DOWN;
        p.last_heartbeat.is_none_or(|t| t.elapsed() > limit)
    }

    fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, msg: gossipsub::Message) {
        let acceptance = if msg.topic == self.names.heartbeat_topic.hash() {
            self.on_heartbeat(source, &msg.data)
        } else if msg.topic == self.names.finality_topic.hash() {
            self.on_finality(source, &msg.data)
        } else if msg.topic == self.names.events_topic.hash() {
            self.on_envelope(source, &msg.data)
        } else {
            gossipsub::MessageAcceptance::Reject
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, acceptance);
    }

    fn on_envelope(&mut self, source: PeerId, data: &[u8]) -> gossipsub::MessageAcceptance {
        use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
        self.peer(source).last_delivery = Some(Instant::now());
        let Ok(env) = Envelope::decode(data) else {
            self.reject("bad_envelope");
            return Reject;
        };
        if !env.verify(&self.network) {
            self.reject("bad_envelope_signature");
            return Reject;
        }
        let event = match Event::decode(&env.event) {
            Ok(ev) if ev.verify(&self.network) => ev,
            _ => {
                // A validly signed envelope carrying a forgery: evidence against its sender.
                if let Err(e) = self.ledger.handle_forged_envelope(env) {
                    tracing::debug!(%e, "forged envelope not evidence");
                }
                self.reject("forged_inner_event");
                self.after_ledger_change();
                return Reject;
            }
        };
        let results = self.ingest(vec![event], Source::Gossip);
        match results.into_iter().next() {
            Some(Ok(Admission::Admitted)) => Accept,
            Some(Ok(Admission::MissingPredecessor { .. })) => {
                self.start_sync(source);
                Ignore
            }
            Some(Ok(_)) => Ignore,
            Some(Err(InsertError::Equivocation { .. } | InsertError::AuthorEquivocated { .. })) => {
                Ignore
            }
            // Not the relay's fault: the author's conflict with history pruned here.
            Some(Err(InsertError::PoolFull { .. } | InsertError::BeyondHorizon { .. })) | None => {
                Ignore
            }
            Some(Err(_)) => Reject,
        }
    }

    fn reject(&self, reason: &str) {
        self.metrics
            .events_rejected
            .get_or_create(&metrics::kind(reason))
            .inc();
    }

    fn on_heartbeat(&mut self, source: PeerId, data: &[u8]) -> gossipsub::MessageAcceptance {
        use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
        let Ok(hb) = Heartbeat::decode(data) else {
            return Reject;
        };
        if !hb.verify(&self.network) {
            return Reject;
        }
        if hb.sender == self.me {
            return Ignore;
        }
        self.metrics.heartbeats.inc();
        let Some(pid) = net::peer_id_of(&hb.sender) else {
            return Reject;
        };
        let ours = self.ledger.epoch_root(hb.epoch);
        let matches = ours.map(|r| r == hb.root);
        let my_digest = vv_digest(&self.ledger.feed_heads());
        let differs = hb.vv_digest != my_digest;
        let was_down = self
            .peers
            .get(&pid)
            .is_some_and(|p| self.is_down(p) && p.last_heartbeat.is_some());
        let p = self.peer(pid);
        p.last_heartbeat = Some(Instant::now());
        p.root_matches = matches;
        p.heartbeat = Some(hb);
        if was_down {
            tracing::info!(peer = %pid, "peer back up (heartbeats resumed)");
        }
        let delivering = self
            .peers
            .get(&pid)
            .and_then(|p| p.last_delivery)
            .is_some_and(|t| t.elapsed() < SYNC_QUIET_AFTER_DELIVERY);
        if differs && !delivering {
            let target = if self.peers.get(&pid).is_some_and(|p| p.connected) {
                pid
            } else {
                source
            };
            self.start_sync(target);
        }
        self.update_peer_gauges();
        Accept
    }

    // ---- finality ----------------------------------------------------------------------

    fn on_finality(&mut self, source: PeerId, data: &[u8]) -> gossipsub::MessageAcceptance {
        use gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
        match data.split_first() {
            Some((0, rest)) => {
                let Ok(v) = Vote::decode(rest) else {
                    return Reject;
                };
                if !self.vote_in_window(v.body.epoch) {
                    return Ignore;
                }
                let r = self.ledger.handle_vote(v);
                self.after_ledger_change();
                if r.is_ok() {
                    Accept
                } else {
                    Reject
                }
            }
            Some((1, rest)) => {
                let Ok(c) = Certificate::decode(rest) else {
                    return Reject;
                };
                if self.ledger.final_epoch() >= Some(c.body.epoch) {
                    return Ignore;
                }
                match self.ledger.handle_certificate(c.clone()) {
                    Ok(()) => {
                        self.after_ledger_change();
                        Accept
                    }
                    Err(
                        CertError::MissingEvents
                        | CertError::Unverifiable(_)
                        | CertError::RootMismatch { .. },
                    ) => {
                        // Not checkable yet: sync, then try again.
                        if self.pending_certs.len() < PENDING_CERTS_MAX {
                            self.pending_certs.push(c);
                        }
                        self.start_sync(source);
                        Ignore
                    }
                    Err(e) => {
                        tracing::warn!(%e, "certificate refused");
                        Reject
                    }
                }
            }
            _ => Reject,
        }
    }

    fn retry_certs(&mut self) {
        let mut pending = std::mem::take(&mut self.pending_certs);
        pending.sort_by_key(|c| c.body.epoch);
        let mut keep = Vec::new();
        let mut changed = false;
        for c in pending {
            if self.ledger.final_epoch() >= Some(c.body.epoch) {
                continue;
            }
            match self.ledger.handle_certificate(c.clone()) {
                Ok(()) => changed = true,
                Err(
                    CertError::MissingEvents
                    | CertError::Unverifiable(_)
                    | CertError::RootMismatch { .. },
                ) => keep.push(c),
                Err(_) => {}
            }
        }
        keep.truncate(PENDING_CERTS_MAX);
        self.pending_certs = keep;
        if changed {
            self.after_ledger_change();
        }
    }

    /// Only closed, recent epochs are voted on: a signed vote for a far-future or ancient
    /// epoch would otherwise cost a root computation and push real votes out of the book.
    fn vote_in_window(&self, epoch: u64) -> bool {
        let now_epoch = now_ms() / self.genesis.epoch_ms;
        epoch < now_epoch && epoch >= now_epoch.saturating_sub(VOTE_EPOCH_WINDOW)
    }

    /// The latest checkpoint settled enough to vote on.
    fn settled_checkpoint(&self) -> u64 {
        let g = &self.genesis;
        let settled = (now_ms() / g.epoch_ms).saturating_sub(1 + HEARTBEAT_EPOCH_LAG);
        settled - settled % g.finality_every_epochs
    }

    /// Signs this node's root for the latest settled checkpoint it has not voted for. The
    /// vote is recorded on disk first: a restarted node never signs a second root for an
    /// epoch (that would be evidence against it).
    fn vote(&mut self) {
        let e = self.settled_checkpoint();
        if self.last_vote.is_some_and(|v| v >= e) {
            return;
        }
        let Some(body) = self.ledger.vote_body(e) else {
            return;
        };
        if let Err(err) = self.store.record_vote(e) {
            tracing::error!(%err, "cannot record the vote; not voting");
            return;
        }
        self.last_vote = Some(e);
        let v = Vote::sign(&self.keypair, &self.network, body);
        let mut msg = vec![0u8];
        msg.extend_from_slice(&v.encode());
        let _ = self.ledger.handle_vote(v);
        self.after_ledger_change();
        let topic = self.names.finality_topic.clone();
        let _ = self.swarm.behaviour_mut().gossipsub.publish(topic, msg);
    }

    fn on_new_certificate(&mut self, c: Certificate) {
        let e = c.body.epoch;
        let end = (e + 1) * self.genesis.epoch_ms;
        let now = now_ms();
        self.metrics
            .finality_latency
            .observe(now.saturating_sub(end) as f64 / 1e3);
        self.metrics.final_epoch.set(e as i64);
        if self.finality_seen.len() >= RECENT_THOUGHTS {
            self.finality_seen.pop_front();
        }
        self.finality_seen.push_back((e, now));
        let mut msg = vec![1u8];
        msg.extend_from_slice(&c.encode());
        let topic = self.names.finality_topic.clone();
        let _ = self.swarm.behaviour_mut().gossipsub.publish(topic, msg);
    }

    fn finality_json(&self, limit: usize) -> Value {
        let certs = self.store.certificates(limit).unwrap_or_default();
        let items: Vec<Value> = certs
            .iter()
            .map(|c| {
                let cp = self.ledger.checkpoint(c.body.epoch);
                let weights = cp.as_ref().map(|cp| cp.weights.clone()).unwrap_or_default();
                let signed: u64 = c.signatures.iter().filter_map(|(m, _)| weights.get(m)).sum();
                let total: u64 = weights.values().sum();
                let adopted = self
                    .finality_seen
                    .iter()
                    .find(|(e, _)| *e == c.body.epoch)
                    .map(|(_, t)| *t);
                json!({
                    "epoch": c.body.epoch,
                    "epoch_end_ms": (c.body.epoch + 1) * self.genesis.epoch_ms,
                    "adopted_ms": adopted,
                    "root": hex::encode(c.body.root),
                    "prev": c.body.prev,
                    "signers": c.signatures.iter().map(|(m, _)| json!({
                        "member": m.to_hex(),
                        "name": self.ledger.state().account(m).map(|a| a.name.clone()),
                        "weight_micro": weights.get(m),
                    })).collect::<Vec<_>>(),
                    "signed_weight_micro": (total > 0).then_some(signed),
                    "total_weight_micro": (total > 0).then_some(total),
                    "members": (total > 0).then(|| json!({
                        "network": hex::encode(self.network),
                        "weights": weights.iter().map(|(m, w)| (m.to_hex(), *w)).collect::<BTreeMap<_, _>>(),
                    })),
                    "certificate_hex": hex::encode(c.encode()),
                })
            })
            .collect();
        json!({ "final_epoch": self.ledger.final_epoch(), "certificates": items })
    }

    // ---- sync ------------------------------------------------------------------------

    fn send_request(&mut self, peer: PeerId, req: SyncRequest) {
        let kind = match &req {
            SyncRequest::Summary => "summary",
            SyncRequest::Range { .. } => "range",
            SyncRequest::Evidence => "evidence",
            SyncRequest::Peers => "peers",
            SyncRequest::Certificates { .. } => "certificates",
            SyncRequest::Push { .. } => "push",
            SyncRequest::Activate { .. } => "activate",
        };
        self.metrics
            .sync_requests
            .get_or_create(&metrics::kind(kind))
            .inc();
        self.swarm.behaviour_mut().sync.send_request(&peer, req);
    }

    /// Starts a sync round with a peer unless one is running or ran very recently.
    fn start_sync(&mut self, peer: PeerId) {
        let p = self.peer(peer);
        if !p.connected || p.summary_in_flight {
            return;
        }
        if p.last_sync.is_some_and(|t| t.elapsed() < SYNC_MIN_INTERVAL) {
            return;
        }
        p.summary_in_flight = true;
        p.last_sync = Some(Instant::now());
        self.send_request(peer, SyncRequest::Summary);
        self.send_request(peer, SyncRequest::Evidence);
        let after = self.ledger.final_epoch();
        self.send_request(peer, SyncRequest::Certificates { after });
    }

    /// Sends the next push batch to a connected peer, one at a time: the next leaves when the
    /// peer acknowledges this one. Pushes handled concurrently could be folded out of order,
    /// and each out-of-order event costs the receiver a re-fold from a snapshot; waiting for
    /// the ack keeps them in order and lets batches grow while the peer is busy.
    fn flush_queue(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.push_in_flight || p.queue.is_empty() {
            return;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(ev) = p.queue.front() {
            if bytes + ev.bytes().len() > MAX_PUSH_BATCH_BYTES && !batch.is_empty() {
                break;
            }
            bytes += ev.bytes().len();
            batch.push(ByteBuf::from(ev.bytes().to_vec()));
            p.queue.pop_front();
        }
        p.push_in_flight = true;
        self.send_request(peer, SyncRequest::Push { events: batch });
        self.update_queue_gauge();
    }

    fn on_sync(&mut self, e: request_response::Event<SyncRequest, SyncResponse>) {
        match e {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request: SyncRequest::Activate { id_object, secret },
                    channel,
                    ..
                } => self.answer_challenge(peer, id_object, secret, channel),
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if matches!(request, SyncRequest::Push { .. }) {
                        self.peer(peer).last_delivery = Some(Instant::now());
                    }
                    let resp = self.serve(request);
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, resp);
                }
                request_response::Message::Response { response, .. } => {
                    self.on_response(peer, response)
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "sync request failed");
                let p = self.peer(peer);
                p.summary_in_flight = false;
                p.ranges_in_flight = 0;
                // A lost push is repaired by anti-entropy; do not stall the queue on it.
                p.push_in_flight = false;
            }
            _ => {}
        }
    }

    fn serve(&mut self, req: SyncRequest) -> SyncResponse {
        match req {
            SyncRequest::Summary => SyncResponse::Summary {
                feeds: self
                    .ledger
                    .feed_heads()
                    .into_iter()
                    .take(MAX_SUMMARY_FEEDS)
                    .map(|(m, (n, head))| {
                        (
                            ByteBuf::from(m.0.to_vec()),
                            n,
                            ByteBuf::from(head.0.to_vec()),
                        )
                    })
                    .collect(),
            },
            SyncRequest::Range {
                author,
                from_seq,
                max,
            } => {
                let Ok(a) = <[u8; 32]>::try_from(author.as_slice()) else {
                    return SyncResponse::Error {
                        message: "author must be 32 bytes".into(),
                    };
                };
                let author = MemberId(a);
                let max = max.min(MAX_SYNC_BATCH_EVENTS) as u64;
                let mut events = Vec::new();
                let mut bytes = 0;
                let mut seq = from_seq;
                let end = from_seq
                    .saturating_add(max)
                    .min(self.ledger.feed_len(&author));
                let mut from_disk = std::collections::VecDeque::new();
                while seq < end {
                    let ev = match self.ledger.feed_event(&author, seq) {
                        Some(ev) => {
                            from_disk.clear(); // rows read ahead start at `seq`, or none
                            ev.bytes().to_vec()
                        }
                        None => {
                            // Final history has left memory: read the rest from the log.
                            if from_disk.is_empty() {
                                match self.store.feed_range(&author, seq, end - seq) {
                                    Ok(rows) => from_disk.extend(rows),
                                    Err(err) => {
                                        tracing::error!(%err, "cannot read the log for a peer");
                                        break;
                                    }
                                }
                            }
                            let Some(b) = from_disk.pop_front() else {
                                break;
                            };
                            b
                        }
                    };
                    bytes += ev.len();
                    if bytes > MAX_SYNC_BATCH_BYTES && !events.is_empty() {
                        break;
                    }
                    events.push(ByteBuf::from(ev));
                    seq += 1;
                }
                SyncResponse::Events { events }
            }
            SyncRequest::Evidence => {
                let mut items: Vec<ByteBuf> = self
                    .ledger
                    .proofs()
                    .map(|e| ByteBuf::from(Body::Evidence(Box::new(e.clone())).encode()))
                    .collect();
                items.extend(self.ledger.forgeries().map(|env| {
                    ByteBuf::from(
                        Body::Evidence(Box::new(Evidence::ForgedEnvelope(env.clone()))).encode(),
                    )
                }));
                SyncResponse::Evidence { items }
            }
            SyncRequest::Peers => SyncResponse::Peers {
                peers: self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.connected && !p.addrs.is_empty())
                    .map(|(id, p)| {
                        (
                            ByteBuf::from(id.to_bytes()),
                            p.addrs.iter().map(|a| a.to_string()).collect(),
                        )
                    })
                    .collect(),
            },
            SyncRequest::Certificates { after } => SyncResponse::Certificates {
                items: self
                    .ledger
                    .certificates()
                    .filter(|c| after.is_none_or(|a| c.body.epoch > a))
                    .take(net::MAX_SYNC_CERTIFICATES)
                    .map(|c| ByteBuf::from(c.encode()))
                    .collect(),
            },
            // Answered off the node task by `answer_challenge`; never reaches here.
            SyncRequest::Activate { .. } => SyncResponse::Error {
                message: "activation is answered separately".into(),
            },
            SyncRequest::Push { events } => {
                let evs = decode_all(&events);
                self.ingest(evs, Source::Push);
                SyncResponse::Ack
            }
        }
    }

    fn on_response(&mut self, peer: PeerId, resp: SyncResponse) {
        match resp {
            SyncResponse::Summary { feeds } => {
                self.peer(peer).summary_in_flight = false;
                let mut wanted = Vec::new();
                let heads = self.ledger.feed_heads();
                for (m, theirs, their_head) in feeds.into_iter().take(MAX_SUMMARY_FEEDS) {
                    let Ok(a) = <[u8; 32]>::try_from(m.as_slice()) else {
                        continue;
                    };
                    let member = MemberId(a);
                    let (ours, our_head) = heads.get(&member).copied().unwrap_or_default();
                    if self.ledger.fork_seq(&member).is_some_and(|f| ours > f) {
                        continue; // nothing past a proven fork is ever admitted
                    }
                    if theirs > ours {
                        // From our last seq, so a branch that diverges there shows as a fork.
                        wanted.push((m, ours.saturating_sub(1)));
                    } else if theirs == ours && ours > 0 && their_head.as_slice() != our_head.0 {
                        // Same length, different head: they hold another branch.
                        wanted.push((m, ours - 1));
                    }
                }
                for (m, from) in wanted {
                    if self.peer(peer).ranges_in_flight >= MAX_RANGES_IN_FLIGHT {
                        break;
                    }
                    self.peer(peer).ranges_in_flight += 1;
                    self.send_request(
                        peer,
                        SyncRequest::Range {
                            author: m,
                            from_seq: from,
                            max: MAX_SYNC_BATCH_EVENTS,
                        },
                    );
                }
            }
            SyncResponse::Events { events } => {
                let p = self.peer(peer);
                p.ranges_in_flight = p.ranges_in_flight.saturating_sub(1);
                let full = events.len() as u32 >= MAX_SYNC_BATCH_EVENTS;
                let bytes: usize = events.iter().map(|e| e.len()).sum();
                self.metrics.sync_events.inc_by(events.len() as u64);
                self.metrics.sync_bytes.inc_by(bytes as u64);
                let evs = decode_all(&events);
                let next = evs.last().map(|e| (e.author(), e.seq() + 1));
                self.sync_buffer.extend(evs);
                self.sync_buffer_bytes += bytes;
                self.sync_buffer_since.get_or_insert_with(Instant::now);
                if let Some((a, from)) = next {
                    if full || !events.is_empty() && bytes > MAX_SYNC_BATCH_BYTES / 2 {
                        self.peer(peer).ranges_in_flight += 1;
                        self.send_request(
                            peer,
                            SyncRequest::Range {
                                author: ByteBuf::from(a.0.to_vec()),
                                from_seq: from,
                                max: MAX_SYNC_BATCH_EVENTS,
                            },
                        );
                    }
                }
                let in_flight: u32 = self.peers.values().map(|p| p.ranges_in_flight).sum();
                if in_flight == 0 || self.sync_buffer_bytes >= SYNC_BUFFER_MAX_BYTES {
                    self.flush_sync_buffer();
                }
            }
            SyncResponse::Evidence { items } => {
                let mut added = false;
                for item in items.iter().take(web4fed_core::ledger::MAX_FORGERIES) {
                    if let Ok(Body::Evidence(e)) = Body::decode(Kind::Evidence, item) {
                        if self.ledger.handle_proof((*e).clone()).is_ok() {
                            if let Err(err) = self.store.add_proof(&e) {
                                tracing::error!(%err, "cannot persist evidence");
                            }
                            added = true;
                        }
                    }
                }
                if added {
                    self.after_ledger_change();
                }
            }
            SyncResponse::Peers { peers } => {
                for (id, addrs) in peers {
                    let Ok(pid) = PeerId::from_bytes(&id) else {
                        continue;
                    };
                    if pid == self.local_peer || self.blocked.contains(&pid) {
                        continue;
                    }
                    let p = self.peer(pid);
                    for a in addrs.iter().filter_map(|a| a.parse::<Multiaddr>().ok()) {
                        if !is_unspecified(&a) {
                            p.addrs.insert(a);
                        }
                    }
                }
            }
            SyncResponse::Certificates { items } => {
                for item in items.iter().take(net::MAX_SYNC_CERTIFICATES) {
                    if let Ok(c) = Certificate::decode(item) {
                        if self.pending_certs.len() < PENDING_CERTS_MAX
                            && self.ledger.final_epoch() < Some(c.body.epoch)
                        {
                            self.pending_certs.push(c);
                        }
                    }
                }
                self.retry_certs();
            }
            SyncResponse::Ack => {
                self.peer(peer).push_in_flight = false;
                self.flush_queue(peer);
            }
            SyncResponse::Activated { credential } => self.on_activated(peer, &credential),
            SyncResponse::Error { message } => {
                tracing::debug!(%peer, %message, "peer refused a sync request");
            }
        }
    }

    /// Folds the buffered synced events as one batch.
    fn flush_sync_buffer(&mut self) {
        if self.sync_buffer.is_empty() {
            return;
        }
        let evs = std::mem::take(&mut self.sync_buffer);
        self.sync_buffer_bytes = 0;
        self.sync_buffer_since = None;
        self.ingest(evs, Source::Sync);
    }

    // ---- timers ----------------------------------------------------------------------

    fn on_tick(&mut self) {
        if self
            .sync_buffer_since
            .is_some_and(|t| t.elapsed() >= SYNC_BUFFER_MAX_AGE)
        {
            self.flush_sync_buffer();
        }
        let before = self.ledger.len();
        self.ledger.handle_tick(now_ms());
        if self.ledger.len() != before {
            self.after_ledger_change();
        }
        let now = Instant::now();
        // Redial known peers and configured addresses with backoff.
        let mut dials = Vec::new();
        for (pid, p) in &mut self.peers {
            if !p.connected
                && !p.addrs.is_empty()
                && now >= p.next_dial
                && !self.blocked.contains(pid)
            {
                dials.push(
                    DialOpts::peer_id(*pid)
                        .addresses(p.addrs.iter().cloned().collect())
                        .build(),
                );
                p.next_dial = now + p.backoff;
                p.backoff = (p.backoff * 2).min(REDIAL_BACKOFF_MAX);
            }
        }
        let connected_addrs: BTreeSet<Multiaddr> = self
            .peers
            .values()
            .filter(|p| p.connected)
            .flat_map(|p| p.addrs.iter().cloned())
            .collect();
        for b in &mut self.bootstrap {
            if !connected_addrs.contains(&b.0) && now >= b.1 {
                dials.push(DialOpts::unknown_peer_id().address(b.0.clone()).build());
                b.1 = now + b.2;
                b.2 = (b.2 * 2).min(REDIAL_BACKOFF_MAX);
            }
        }
        for d in dials {
            if let Err(e) = self.swarm.dial(d) {
                tracing::debug!(%e, "dial refused");
            }
        }
        if self.last_peer_exchange.elapsed() >= PEER_EXCHANGE_PERIOD {
            self.last_peer_exchange = now;
            let mut connected: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.connected)
                .map(|(id, _)| *id)
                .collect();
            connected.sort();
            let offset = (now_ms() / 1_000) as usize;
            let n = connected.len();
            for i in 0..n.min(PEER_EXCHANGE_FANOUT) {
                self.send_request(connected[(offset + i) % n], SyncRequest::Peers);
            }
        }
        // Periodic anti-entropy with one connected peer, whatever heartbeats say.
        if self.last_periodic_sync.elapsed() >= SYNC_PERIOD {
            self.last_periodic_sync = now;
            let connected: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.connected)
                .map(|(id, _)| *id)
                .collect();
            if !connected.is_empty() {
                let pick = (now_ms() / SYNC_PERIOD.as_millis() as u64) as usize % connected.len();
                self.start_sync(connected[pick]);
            }
        }
        self.update_peer_gauges();
        self.report_partitions();
        self.challenge_claimants();
        if self.live.last_snapshot.elapsed() >= LIVE_SNAPSHOT_PERIOD {
            self.refresh_recent_verdicts();
            self.live.last_snapshot = now;
            let point = self.history_point();
            self.live.emit(|| self.snapshot_json(&point));
            if self.live.history.len() >= HISTORY_POINTS {
                self.live.history.pop_front();
            }
            self.live.history.push_back(point);
            self.live.latencies.clear();
        }
    }

    /// A peer whose heartbeats stop is a partition (or a crash: the two look alike from
    /// here); heartbeats resuming is a heal. Each transition is counted and sent live.
    fn report_partitions(&mut self) {
        let mut changes = Vec::new();
        for (pid, p) in &self.peers {
            if p.last_heartbeat.is_none() {
                continue;
            }
            let down = self.is_down(p);
            if down != p.reported_down {
                changes.push((*pid, down));
            }
        }
        for (pid, down) in changes {
            self.peer(pid).reported_down = down;
            let name = net::member_of(&pid)
                .map(|m| self.member_name(&m))
                .unwrap_or_default();
            if down {
                self.partitions_seen += 1;
                tracing::warn!(peer = %pid, %name, "peer unreachable (heartbeats stopped)");
            } else {
                tracing::info!(peer = %pid, %name, "partition healed (heartbeats resumed)");
            }
            let kind = if down { "partition" } else { "heal" };
            self.live.emit(|| {
                json!({"type": kind, "peer": pid.to_string(), "name": name, "at_ms": now_ms(),
                       "partitions_seen": self.partitions_seen})
            });
        }
    }

    // ---- layer 6: TPM attestation ----------------------------------------------------

    /// Sends a credential-activation challenge to every connected member whose TPM evidence
    /// verified and who awaits vouches we have not given. Any active member may challenge:
    /// the verifier's half needs no TPM.
    fn challenge_claimants(&mut self) {
        let me_active = self
            .ledger
            .state()
            .account(&self.me)
            .is_some_and(|a| a.status == Status::Active);
        if !me_active {
            return;
        }
        let pending: Vec<MemberId> = self
            .ledger
            .state()
            .accounts()
            .filter(|(m, a)| {
                **m != self.me
                    && a.status == Status::Active
                    && a.level == web4fed_core::event::Level::L4
                    && a.hardware
                        .as_ref()
                        .is_some_and(|h| !h.vouchers.contains(&self.me))
            })
            .map(|(m, _)| *m)
            .collect();
        for subject in pending {
            if self
                .attest
                .challenges
                .get(&subject)
                .is_some_and(|(_, at)| at.elapsed() < ATTEST_RETRY)
            {
                continue;
            }
            let Some(pid) = net::peer_id_of(&subject) else {
                continue;
            };
            if !self.peers.get(&pid).is_some_and(|p| p.connected) {
                continue;
            }
            let Some(Body::Register(r)) = self.ledger.feed_event(&subject, 0).map(|e| &e.body)
            else {
                continue;
            };
            let challenge = web4fed_core::tpm::Evidence::decode(&r.attestation.evidence)
                .map_err(|e| web4fed_tpm::TpmError::Invalid(e.to_string()))
                .and_then(|ev| {
                    let credential = web4fed_tpm::fresh_credential().to_vec();
                    web4fed_tpm::challenge_for(&ev, &credential).map(|c| (c, credential))
                });
            match challenge {
                Ok((c, credential)) => {
                    tracing::info!(subject = %subject, "challenging the TPM of a member claiming L5");
                    self.attest
                        .challenges
                        .insert(subject, (credential, Instant::now()));
                    self.send_request(
                        pid,
                        SyncRequest::Activate {
                            id_object: ByteBuf::from(c.id_object),
                            secret: ByteBuf::from(c.secret),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(subject = %subject, error = %e, "cannot challenge");
                    self.attest
                        .challenges
                        .insert(subject, (Vec::new(), Instant::now()));
                }
            }
        }
    }

    /// A member answered our challenge: vouch if the TPM released our credential.
    fn on_activated(&mut self, peer: PeerId, credential: &[u8]) {
        let Some(subject) = net::member_of(&peer) else {
            return;
        };
        let Some((expected, asked)) = self.attest.challenges.get(&subject).cloned() else {
            return;
        };
        if expected.is_empty() || !web4fed_tpm::answer_matches(&expected, credential) {
            tracing::warn!(subject = %subject, "TPM answer does not match the challenge: no vouch");
            self.metrics
                .attestations
                .get_or_create(&metrics::kind("wrong_answer"))
                .inc();
            return;
        }
        // One vouch per challenge: forget it so a replayed answer vouches nothing.
        self.attest
            .challenges
            .insert(subject, (Vec::new(), Instant::now()));
        self.metrics
            .attestations
            .get_or_create(&metrics::kind("vouched"))
            .inc();
        tracing::info!(subject = %subject, ms = asked.elapsed().as_millis() as u64, "TPM answered the challenge; vouching");
        if let Err(v) = self.publish_own(Body::Vouch { subject }) {
            tracing::info!(verdict = ?v, "vouch not published");
        }
    }

    /// Answers a challenge with our TPM, off the node task (tpm2-tools takes ~0.1 s).
    fn answer_challenge(
        &mut self,
        peer: PeerId,
        id_object: ByteBuf,
        secret: ByteBuf,
        channel: request_response::ResponseChannel<SyncResponse>,
    ) {
        use std::sync::atomic::Ordering;
        let Some(tpm) = self.attest.tpm.clone() else {
            let resp = SyncResponse::Error {
                message: "this member has no TPM".into(),
            };
            let _ = self.swarm.behaviour_mut().sync.send_response(channel, resp);
            return;
        };
        if self.attest.answering.load(Ordering::SeqCst) >= ATTEST_ANSWERS_IN_FLIGHT {
            let resp = SyncResponse::Error {
                message: "busy: too many challenges in flight".into(),
            };
            let _ = self.swarm.behaviour_mut().sync.send_response(channel, resp);
            return;
        }
        self.attest.answering.fetch_add(1, Ordering::SeqCst);
        let (lock, tx, answering) = (
            self.attest.tpm_lock.clone(),
            self.attest.answers_tx.clone(),
            self.attest.answering.clone(),
        );
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let challenge = web4fed_tpm::Challenge {
                id_object: id_object.into_vec(),
                secret: secret.into_vec(),
            };
            let started = Instant::now();
            let result = {
                let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                tpm.activate(&challenge)
            };
            let resp = match result {
                Ok(credential) => {
                    tracing::info!(%peer, ms = started.elapsed().as_millis() as u64, "answered a TPM challenge");
                    metrics
                        .attestations
                        .get_or_create(&metrics::kind("answered"))
                        .inc();
                    SyncResponse::Activated {
                        credential: ByteBuf::from(credential),
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "TPM could not answer a challenge");
                    metrics
                        .attestations
                        .get_or_create(&metrics::kind("answer_failed"))
                        .inc();
                    SyncResponse::Error {
                        message: format!("activation failed: {e}"),
                    }
                }
            };
            answering.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.blocking_send((channel, resp));
        });
    }

    fn member_name(&self, m: &MemberId) -> String {
        self.ledger
            .state()
            .account(m)
            .map(|a| a.name.clone())
            .unwrap_or_else(|| m.to_hex()[..8].to_string())
    }

    /// One admitted event as the live feed shows it.
    fn event_json(
        &self,
        id: &EventId,
        source: Source,
        verdict: Option<Verdict>,
        latency_ms: Option<u64>,
    ) -> Value {
        let Some(ev) = self.ledger.event(id) else {
            return Value::Null;
        };
        let content = match &ev.body {
            Body::Thought(c) => Some(c.chars().take(LIVE_CONTENT_CHARS).collect::<String>()),
            _ => None,
        };
        json!({
            "type": "event",
            "id": id.to_hex(),
            "kind": format!("{:?}", ev.header.kind),
            "author": ev.author().to_hex(),
            "name": self.member_name(&ev.author()),
            "seq": ev.seq(),
            "timestamp_ms": ev.timestamp_ms(),
            "source": source.name(),
            "latency_ms": latency_ms,
            "content": content,
            "verdict": verdict,
        })
    }

    /// The once-a-second picture the dashboard draws: members with liveness and agreement,
    /// running totals, and the replication latency since the last snapshot.
    /// This second's chart figures.
    fn history_point(&self) -> HistoryPoint {
        let g = &self.genesis;
        let t = now_ms().max(self.ledger.state().head_ms());
        let mut lat = self.live.latencies.clone();
        lat.sort_by(f64::total_cmp);
        let pct =
            |q: f64| (!lat.is_empty()).then(|| lat[((lat.len() - 1) as f64 * q).round() as usize]);
        HistoryPoint {
            at_ms: now_ms(),
            admitted: self.live.admitted,
            refused: self.live.refused.clone(),
            p50: pct(0.5),
            p99: pct(0.99),
            accounts: self
                .ledger
                .state()
                .accounts()
                .map(|(m, a)| {
                    (
                        *m,
                        a.trust_at(g, t) as f64 / 1e6,
                        a.atp_at(g, t) as f64 / 1e3,
                    )
                })
                .collect(),
        }
    }

    fn history_json(&self) -> Value {
        json!({ "points": self.live.history.iter().map(HistoryPoint::json).collect::<Vec<_>>() })
    }

    fn snapshot_json(&self, point: &HistoryPoint) -> Value {
        let t = now_ms().max(self.ledger.state().head_ms());
        let mut online: HashMap<MemberId, (bool, Option<bool>)> = HashMap::new();
        for (pid, p) in &self.peers {
            if let Some(m) = net::member_of(pid) {
                online.insert(m, (p.connected && !self.is_down(p), p.root_matches));
            }
        }
        let members: Vec<Value> = self
            .ledger
            .state()
            .accounts()
            .map(|(m, _)| {
                let mut a = self.account_json(m, t);
                let (up, matches) = if *m == self.me {
                    (true, Some(true))
                } else {
                    online.get(m).copied().unwrap_or((false, None))
                };
                a["online"] = json!(up);
                a["root_matches"] = json!(matches);
                a["me"] = json!(*m == self.me);
                a
            })
            .collect();
        json!({
            "type": "snapshot",
            "at_ms": point.at_ms,
            "status": self.status_json(),
            "final_epoch": self.ledger.final_epoch(),
            "partitions_seen": self.partitions_seen,
            "totals": {
                "admitted": point.admitted,
                "rejected": self.live.rejected,
                "refused": point.refused,
            },
            "latency_ms": {"p50": point.p50, "p99": point.p99, "n": self.live.latencies.len()},
            "members": members,
        })
    }

    fn current_epoch(&self) -> u64 {
        (now_ms() / self.genesis.epoch_ms).saturating_sub(1 + HEARTBEAT_EPOCH_LAG)
    }

    fn send_heartbeat(&mut self) {
        self.vote();
        self.retry_certs();
        let epoch = self.current_epoch();
        let root = self.ledger.epoch_root(epoch).unwrap_or([0; 32]);
        let hb = Heartbeat::sign(
            &self.keypair,
            &self.network,
            now_ms(),
            epoch,
            root,
            vv_digest(&self.ledger.feed_heads()),
            self.ledger.len() as u64,
        );
        let topic = self.names.heartbeat_topic.clone();
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, hb.encode());
    }

    // ---- API -------------------------------------------------------------------------

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit { content, reply } => {
                let _ = reply.send(self.submit(content));
            }
            Command::Ingest { body, reply } => {
                let _ = reply.send(self.ingest_batch(&body));
            }
            Command::Votes { body, reply } => {
                let _ = reply.send(self.votes_batch(&body));
            }
            Command::Dial { addr, reply } => {
                let r = match addr.parse::<Multiaddr>() {
                    Ok(a) => {
                        let r = self.swarm.dial(a.clone());
                        self.bootstrap.push((a, Instant::now(), REDIAL_BACKOFF_MIN));
                        Ok(json!({"dialing": addr, "now": r.is_ok()}))
                    }
                    Err(e) => Err(ApiError::bad_request(
                        "addr",
                        format!("not a multiaddr: {e}"),
                    )),
                };
                let _ = reply.send(r);
            }
            Command::Query { query, reply } => {
                let v = match query {
                    Query::Status => self.status_json(),
                    Query::State => self.state_json(),
                    Query::Thoughts { limit } => self.thoughts_json(limit),
                    Query::Peers => self.peers_json(),
                    Query::Finality { limit } => self.finality_json(limit),
                    Query::Checkpoint => self.checkpoint_json(),
                    Query::History => self.history_json(),
                };
                let _ = reply.send(v);
            }
        }
    }

    fn submit(&mut self, content: String) -> Result<Value, ApiError> {
        match self.settings.adversary {
            Some(Adversary::Forge) => return Ok(self.forge(content)),
            Some(Adversary::Spam) => {
                return match self.publish_own_checked(Body::Thought(content), false) {
                    Ok(ev) => Ok(json!({
                        "id": ev.id().to_hex(),
                        "seq": ev.seq(),
                        "verdict": self.ledger.verdict(&ev.id()),
                        "adversary": "spam",
                    })),
                    Err(v) => Err(ApiError::internal(&format!("spam not published: {v:?}"))),
                };
            }
            None => {}
        }
        match self.publish_own(Body::Thought(content)) {
            Ok(ev) => Ok(json!({
                "id": ev.id().to_hex(),
                "seq": ev.seq(),
                "timestamp_ms": ev.timestamp_ms(),
                "verdict": "accepted",
            })),
            Err(Verdict::Refused(rule)) => {
                self.metrics
                    .submits_refused
                    .get_or_create(&metrics::layer(rule.layer(), rule.name()))
                    .inc();
                Err(ApiError::refused(&rule))
            }
            Err(Verdict::Ignored(reason)) => Err(ApiError::ignored(&reason)),
            Err(Verdict::Accepted) => Err(ApiError::internal("accepted event not published")),
        }
    }

    /// `POST /v1/events`: decodes a length-prefixed batch, admits it like events from any
    /// peer (signatures, chains, PoW, rules), persists it in one transaction and pushes the
    /// admitted events to connected peers in batches over the authenticated sync channel
    /// (one Noise-authenticated message per batch instead of one signed gossip envelope per
    /// event). Peers not directly connected receive them through anti-entropy sync.
    fn ingest_batch(&mut self, body: &[u8]) -> Result<Value, ApiError> {
        let mut events = Vec::new();
        let mut malformed = 0u64;
        let mut first_error: Option<String> = None;
        for item in frames(body, web4fed_core::event::MAX_EVENT_BYTES, "event")? {
            match Event::decode(item) {
                Ok(e) => events.push(e),
                Err(e) => {
                    malformed += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        let ids: Vec<EventId> = events.iter().map(Event::id).collect();
        let results = self.ingest(events, Source::Api);
        let (mut admitted, mut known, mut waiting, mut rejected) = (0u64, 0u64, 0u64, 0u64);
        let mut fresh = Vec::new();
        for (id, r) in ids.iter().zip(&results) {
            match r {
                Ok(Admission::Admitted) => {
                    admitted += 1;
                    fresh.extend(self.ledger.event(id).cloned());
                }
                Ok(Admission::AlreadyKnown) => known += 1,
                Ok(_) => waiting += 1,
                Err(e) => {
                    rejected += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        let connected: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected)
            .map(|(id, _)| *id)
            .collect();
        let mut dropped = 0;
        for pid in connected {
            if let Some(p) = self.peers.get_mut(&pid) {
                p.queue.extend(fresh.iter().cloned());
                while p.queue.len() > BULK_QUEUE_MAX {
                    p.queue.pop_front();
                    p.dropped += 1;
                    dropped += 1;
                }
            }
            self.flush_queue(pid);
        }
        self.metrics.queue_dropped.inc_by(dropped);
        Ok(json!({
            "admitted": admitted,
            "known": known,
            "waiting": waiting,
            "rejected": rejected + malformed,
            "first_error": first_error,
        }))
    }

    /// Votes signed elsewhere, by members without a node of their own (framed like
    /// `ingest_batch`): each is checked and counted like a gossiped vote, and the new ones are
    /// gossiped on.
    fn votes_batch(&mut self, body: &[u8]) -> Result<Value, ApiError> {
        let (mut accepted, mut known, mut rejected) = (0u64, 0u64, 0u64);
        let mut first_error: Option<String> = None;
        let mut fail = |e: String, rejected: &mut u64| {
            *rejected += 1;
            first_error.get_or_insert(e);
        };
        for item in frames(body, MAX_VOTE_BYTES, "vote")? {
            let v = match Vote::decode(item) {
                Ok(v) => v,
                Err(e) => {
                    fail(e.to_string(), &mut rejected);
                    continue;
                }
            };
            if !self.vote_in_window(v.body.epoch) {
                fail(
                    format!("epoch {} is not a recent closed epoch", v.body.epoch),
                    &mut rejected,
                );
                continue;
            }
            let encoded = v.encode();
            match self.ledger.handle_vote(v) {
                Ok(true) => {
                    accepted += 1;
                    let mut msg = vec![0u8];
                    msg.extend_from_slice(&encoded);
                    let topic = self.names.finality_topic.clone();
                    let _ = self.swarm.behaviour_mut().gossipsub.publish(topic, msg);
                }
                Ok(false) => known += 1,
                Err(e) => fail(e, &mut rejected),
            }
        }
        self.after_ledger_change();
        Ok(json!({
            "accepted": accepted,
            "known": known,
            "rejected": rejected,
            "first_error": first_error,
        }))
    }

    /// What a member without a node signs to vote: this node's vote body for the latest
    /// settled checkpoint (none while the node has no view of it, or once it is certified).
    fn checkpoint_json(&self) -> Value {
        let e = self.settled_checkpoint();
        let body = self.ledger.vote_body(e);
        json!({
            "epoch": e,
            "final_epoch": self.ledger.final_epoch(),
            "body": body.as_ref().map(|b| hex::encode(b.encode())),
            "root": body.as_ref().map(|b| hex::encode(b.root)),
        })
    }

    /// Adversary `forge`: a thought whose author signature is corrupted, in an envelope this
    /// node signs. Not stored, since our own ledger refuses it.
    fn forge(&mut self, content: String) -> Value {
        let ev = self
            .ledger
            .author_event(&self.keypair, now_ms(), Body::Thought(content));
        let mut bytes = ev.bytes().to_vec();
        bytes[web4fed_core::event::HEADER_LEN] ^= 0x01;
        let env = Envelope::seal(&self.keypair, &self.network, now_ms(), &bytes);
        let topic = self.names.events_topic.clone();
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, env.encode());
        json!({"id": ev.id().to_hex(), "verdict": "forged", "adversary": "forge"})
    }

    fn account_json(&self, m: &MemberId, t: u64) -> Value {
        let Some(a) = self.ledger.state().account(m) else {
            return Value::Null;
        };
        let g = &self.genesis;
        json!({
            "member": m.to_hex(),
            "lct": m.lct(&a.entity_type),
            "name": a.name,
            "level": format!("{:?}", a.level),
            "level_reason": a.level_reason.to_string(),
            "hardware": a.hardware.as_ref().map(|h| json!({"id": hex::encode(h.id), "vouchers": h.vouchers.iter().map(|v| v.to_hex()).collect::<Vec<_>>()})),
            "start_trust": match a.level { web4fed_core::event::Level::L5 => g.trust_start_l5_micro, web4fed_core::event::Level::L4 => g.trust_start_l4_micro } as f64 / 1e6,
            "ceiling": a.ceiling(g) as f64 / 1e6,
            "trust": a.trust_at(g, t) as f64 / 1e6,
            "trust_micro": a.trust_at(g, t),
            "atp": a.atp_at(g, t) as f64 / 1e3,
            "atp_milli": a.atp_at(g, t),
            "violations": a.violations,
            "status": a.status,
            "eject_cause": a.eject_cause,
            "thoughts_accepted": a.thoughts_accepted,
            "live_thoughts": a.live_thoughts(),
            "feed_len": self.ledger.feed_len(m),
        })
    }

    fn status_json(&self) -> Value {
        let epoch = self.current_epoch();
        let listen: Vec<String> = self.swarm.listeners().map(|a| a.to_string()).collect();
        let (orphans, future) = self.ledger.waiting();
        json!({
            "name": self.config.name,
            "member": self.me.to_hex(),
            "lct": self.me.lct(&self.config.entity_type),
            "peer_id": self.local_peer.to_string(),
            "network": hex::encode(self.network),
            "listen": listen,
            "uptime_s": self.started.elapsed().as_secs(),
            "events": self.ledger.len(),
            "events_in_memory": self.ledger.len() - self.ledger.pruned(),
            "members": self.ledger.state().accounts().count(),
            "corpus": self.ledger.state().corpus_len(),
            "state_root": hex::encode(self.ledger.state_root()),
            "epoch": epoch,
            "epoch_root": self.ledger.epoch_root(epoch).map(hex::encode),
            "peers_connected": self.peers.values().filter(|p| p.connected).count(),
            "peers_agreeing": self.peers.values().filter(|p| p.root_matches == Some(true) && !self.is_down(p)).count(),
            "waiting": {"orphans": orphans, "future": future},
            "adversary": self.settings.adversary.map(|a| format!("{a:?}").to_lowercase()),
            "me": self.account_json(&self.me, now_ms()),
        })
    }

    fn state_json(&self) -> Value {
        let epoch = self.current_epoch();
        let t = now_ms().max(self.ledger.state().head_ms());
        let fin = self.ledger.final_epoch();
        let cp = fin.and_then(|e| self.ledger.checkpoint(e));
        let accounts: Vec<Value> = self
            .ledger
            .state()
            .accounts()
            .map(|(m, _)| {
                let mut a = self.account_json(m, t);
                // The figures above are optimistic (every event held); these are final.
                a["optimistic"] = json!(true);
                a["final"] = match &cp {
                    Some(cp) => json!({
                        "epoch": fin,
                        "trust_micro": cp.weights.get(m),
                        "atp_milli": cp.atp.get(m),
                    }),
                    None => Value::Null,
                };
                a
            })
            .collect();
        json!({
            "epoch": epoch,
            "final_epoch": fin,
            "epoch_root": self.ledger.epoch_root(epoch).map(hex::encode),
            "state_root": hex::encode(self.ledger.state_root()),
            "head_ms": self.ledger.state().head_ms(),
            "events": self.ledger.len(),
            "corpus": {"thoughts": self.ledger.state().corpus_len(), "bytes": self.ledger.state().corpus_bytes(), "pruned_total": self.ledger.state().pruned_total},
            "accounts": accounts,
        })
    }

    fn thoughts_json(&self, limit: usize) -> Value {
        let items: Vec<Value> = self
            .recent
            .iter()
            .rev()
            .take(limit)
            .filter_map(|(ev, verdict)| {
                let id = &ev.id();
                let Body::Thought(content) = &ev.body else {
                    return None;
                };
                let name = self
                    .ledger
                    .state()
                    .account(&ev.author())
                    .map(|a| a.name.clone());
                let live = self.ledger.state().thought(id);
                Some(json!({
                    "id": id.to_hex(),
                    "author": ev.author().to_hex(),
                    "name": name,
                    "seq": ev.seq(),
                    "timestamp_ms": ev.timestamp_ms(),
                    "content": content,
                    "coherence": live.map(|e| e.coherence_micro as f64 / 1e6),
                    "live": live.is_some(),
                    "verdict": self.ledger.verdict(id).or(verdict.as_ref()),
                }))
            })
            .collect();
        json!({ "thoughts": items, "corpus": self.ledger.state().corpus_len() })
    }

    fn peers_json(&self) -> Value {
        let mut out: BTreeMap<String, Value> = BTreeMap::new();
        for (pid, p) in &self.peers {
            let member = net::member_of(pid);
            let name = member
                .and_then(|m| self.ledger.state().account(&m))
                .map(|a| a.name.clone());
            out.insert(
                pid.to_string(),
                json!({
                    "peer_id": pid.to_string(),
                    "member": member.map(|m| m.to_hex()),
                    "name": name,
                    "addrs": p.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "connected": p.connected,
                    "down": self.is_down(p),
                    "blocked": self.blocked.contains(pid),
                    "last_heartbeat_ms_ago": p.last_heartbeat.map(|t| t.elapsed().as_millis() as u64),
                    "heartbeat_epoch": p.heartbeat.as_ref().map(|h| h.epoch),
                    "their_events": p.heartbeat.as_ref().map(|h| h.events),
                    "root_matches": p.root_matches,
                    "queue": p.queue.len(),
                    "dropped": p.dropped,
                }),
            );
        }
        json!({ "peers": out.into_values().collect::<Vec<_>>(), "partitions_seen": self.partitions_seen })
    }
}

fn decode_all(items: &[ByteBuf]) -> Vec<Event> {
    items.iter().filter_map(|b| Event::decode(b).ok()).collect()
}

fn is_unspecified(a: &Multiaddr) -> bool {
    a.iter().any(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => ip.is_unspecified(),
        libp2p::multiaddr::Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// Splits a request body of frames (a `u32` big-endian length, then that many bytes,
/// repeated), refusing a frame over `max` bytes or a truncated one with a 400 naming it.
fn frames<'a>(mut body: &'a [u8], max: usize, what: &str) -> Result<Vec<&'a [u8]>, ApiError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 4 {
            return Err(ApiError::bad_request("body", "truncated length prefix"));
        }
        let n = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
        if n > max || body.len() < 4 + n {
            return Err(ApiError::bad_request(
                "body",
                format!(
                    "{what} {} declares {n} bytes: too long or truncated",
                    out.len()
                ),
            ));
        }
        out.push(&body[4..4 + n]);
        body = &body[4 + n..];
    }
    Ok(out)
}
