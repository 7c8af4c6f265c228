//! The node task: drives the replica with the swarm's messages, the API's commands and the
//! clock, and carries out what it asks, persisting before sending (the drain rule).

use crate::command::{Command, Query, Submitted, COMMAND_QUEUE};
use crate::live::{Live, LIVE_BUFFER, LIVE_SNAPSHOT_PERIOD_MS};
use crate::metrics::{self, Metrics};
use crate::persist::Batch;
use crate::swarm::{self, Behaviour, Names};
use crate::tpm::TpmWorker;
use futures::StreamExt;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::{Multiaddr, PeerId, Swarm};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc};
use web4fed_core::verdict::Verdict;
use web4fed_replica::{
    Command as ReplicaCommand, CommandError, Counters, Destination, DisconnectReason,
    Event as ReplicaEvent, Message, Replica, Reply, Response, Transmit,
};
use web4fed_store::keyfile;
use web4fed_store::node_dir::{load_genesis, NodeConfig, NodeDir};
use web4fed_store::snapshots::SnapshotDir;
use web4fed_store::Store;

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
    /// Snapshots of the fold kept on disk (0: none written; a restart reads the whole log).
    pub snapshots_kept: usize,
    /// What of the certified history leaves the log, if anything.
    pub retention: Retention,
    /// Whether a node that joined from a snapshot fetches the history before it.
    pub history: crate::backfill::History,
}

/// Log retention: events covered by the oldest snapshot kept may leave `events.db` (never
/// registrations; proofs and certificates stay), archived first when a file is named.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Remove covered events while the log's pages hold more than this many bytes.
    pub quota_bytes: Option<u64>,
    /// Remove covered events older than this.
    pub max_age_ms: Option<u64>,
    /// Append removed events here first (length-prefixed frames).
    pub archive: Option<PathBuf>,
}

/// Events retention removes per pass (one a second): a bounded pause for the node task.
const TRIM_BATCH: usize = 5_000;

/// Retention starts removing events once the log's pages pass this share of the quota (in
/// percent), so that the log stays under the quota itself between the once-a-second passes
/// and while a snapshot is being written (no pass runs then): at 4,000 events/s a log grows
/// about 2 MB a second, and 5 % of a 200 MiB quota is 10 MiB. Trimming only above the quota
/// left a one-hour soak's log up to 0.7 MB over it.
pub(crate) const QUOTA_TRIM_AT_PERCENT: u64 = 95;

/// Wall-clock ms: the daemon's one clock, passed into the replica.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why the node could not start.
pub type NodeError = Box<dyn std::error::Error + Send + Sync>;

/// The node task's state: the replica and the I/O around it.
pub(crate) struct Node {
    pub(crate) keypair: web4fed_core::identity::Keypair,
    pub(crate) replica: Replica,
    pub(crate) store: Store,
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) names: Names,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) live: Live,
    pub(crate) config: NodeConfig,
    pub(crate) settings: NodeSettings,
    pub(crate) started: Instant,
    pub(crate) local_peer: PeerId,
    snapshots: SnapshotDir,
    /// The ledger's base moved to a certified epoch during this drain: write a snapshot.
    snapshot_due: bool,
    /// A snapshot write in progress on its own thread (one at a time).
    snapshot_writer: Option<std::thread::JoinHandle<()>>,
    /// The snapshot offered to peers (state sync): its file, header and chunk hashes,
    /// computed once per file.
    offered: Option<crate::snapshot_offer::Offered>,
    tpm: TpmWorker,
    /// Counters already copied into the metrics.
    counters_seen: Counters,
    /// Inbound requests awaiting the replica's response, by the number we gave them.
    inbound: HashMap<u64, ResponseChannel<Response>>,
    /// Inbound requests answered later (by the TPM), kept past the drain.
    inbound_async: HashSet<u64>,
    next_inbound: u64,
    /// Our requests in flight, by libp2p's id.
    outbound: HashMap<OutboundRequestId, web4fed_replica::RequestId>,
    /// History backfill progress, for the operator.
    pub(crate) backfill_report: crate::backfill::Report,
}

/// How often a long rebuild says how far it has come.
const REBUILD_PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Logs a rebuild's progress at most every [`REBUILD_PROGRESS_EVERY`]: rows read, the
/// share of the log, and the rate so far, so an operator watching a restart of a long log
/// sees it move and can tell how long is left.
fn rebuild_progress(started: Instant) -> web4fed_store::db::ProgressHook {
    let last = std::sync::Mutex::new(started);
    Box::new(move |done, total| {
        let Ok(mut last) = last.lock() else {
            return;
        };
        if last.elapsed() < REBUILD_PROGRESS_EVERY {
            return;
        }
        *last = Instant::now();
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        tracing::info!(
            done,
            total,
            percent = (done as f64 * 100.0 / total.max(1) as f64).round() as u64,
            per_sec = (done as f64 / secs) as u64,
            "rebuilding the state from the log"
        );
    })
}

/// Runs a node until `shutdown` resolves.
pub async fn run(
    settings: NodeSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let nd = NodeDir::new(&settings.dir);
    let config = NodeConfig::load(&nd.config())?;
    let genesis = load_genesis(&nd.genesis())?;
    let keypair = keyfile::read(&nd.key())?;
    let mut store = Store::open(&nd.db(), &genesis)?;
    let snapshots = SnapshotDir::new(nd.snapshots());
    let started = Instant::now();
    store.on_progress(rebuild_progress(started));
    let restored = web4fed_store::restore::restore(&store, &snapshots, &genesis, now_ms())?;
    for why in &restored.refused {
        tracing::warn!(%why, "snapshot refused; trying an older one");
    }
    let ledger = restored.ledger;
    let rebuild = restored.rebuild;
    tracing::info!(
        events = rebuild.events,
        proofs = rebuild.proofs,
        snapshot_epoch = restored.snapshot.as_ref().map(|(e, _)| *e),
        ms = started.elapsed().as_millis() as u64,
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
    let mut swarm = swarm::build_swarm(&keypair, &names, settings.heartbeat)?;
    swarm.listen_on(settings.listen.clone()).map_err(|e| {
        // libp2p's transport error displays as nothing: name the address and the cause.
        let mut why = format!("{e:?}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            why = s.to_string();
            src = s.source();
        }
        format!("cannot listen on {}: {why}", settings.listen)
    })?;
    let metrics = Arc::new(Metrics::new());
    // The swarm starts subscribed to every topic; the replica's first events may leave the
    // agreement's.
    metrics.agreement_subscribed.set(1);
    let (tx, mut rx) = mpsc::channel::<Command>(COMMAND_QUEUE);
    let (live_tx, _) = broadcast::channel::<Arc<str>>(LIVE_BUFFER);
    let (tpm, mut answers) = TpmWorker::new(config.tpm.as_ref());
    let token = crate::api::load_or_create_token(&nd)?;
    let api_server = crate::api::serve(
        settings.api,
        tx,
        genesis.network_id(),
        metrics.clone(),
        live_tx.clone(),
        token,
    )
    .await?;
    tracing::info!(api = %settings.api, "operator API listening");
    let replica_config = web4fed_replica::Config {
        keypair: keypair.clone(),
        heartbeat_ms: settings.heartbeat.as_millis() as u64,
        bootstrap: settings.peers.iter().map(|a| a.to_string()).collect(),
        last_vote: store.last_vote()?,
        has_tpm: tpm.has_tpm(),
        rate_thoughts: config.rate_thoughts,
    };
    let replica = Replica::new(replica_config, ledger, now_ms());
    let mut live = Live::new(live_tx);
    live.recent_from_ledger(replica.ledger());
    let mut node = Node {
        keypair,
        local_peer: *swarm.local_peer_id(),
        replica,
        store,
        swarm,
        names,
        metrics,
        live,
        config,
        settings,
        started: Instant::now(),
        snapshots,
        snapshot_due: false,
        snapshot_writer: None,
        offered: None,
        tpm,
        counters_seen: Counters::default(),
        inbound: HashMap::new(),
        inbound_async: HashSet::new(),
        next_inbound: 0,
        outbound: HashMap::new(),
        backfill_report: Default::default(),
    };
    node.start_backfill();
    node.drain();
    let mut live_tick = tokio::time::interval(Duration::from_millis(LIVE_SNAPSHOT_PERIOD_MS));
    tokio::pin!(shutdown);
    loop {
        let wait = node.replica.poll_timeout().saturating_sub(now_ms());
        let timer = tokio::time::sleep(Duration::from_millis(wait));
        tokio::select! {
            ev = node.swarm.select_next_some() => node.on_swarm(ev),
            Some(cmd) = rx.recv() => node.on_command(cmd),
            Some((to, request, result)) = answers.recv() => {
                node.inbound_async.remove(&request.0);
                let _ = node.command(ReplicaCommand::ChallengeAnswered { to, request, result });
            }
            _ = timer => node.replica.handle_timeout(now_ms()),
            _ = live_tick.tick() => node.on_live_tick(),
            _ = &mut shutdown => break,
        }
        node.drain();
    }
    api_server.abort();
    if let Some(w) = node.snapshot_writer.take() {
        let _ = w.join();
    }
    node.store
        .record_root(&node.replica.ledger().state_root())?;
    tracing::info!("stopped");
    Ok(())
}

impl Node {
    /// Runs a replica command and carries out its outputs.
    pub(crate) fn command(&mut self, cmd: ReplicaCommand) -> Result<Reply, CommandError> {
        let r = self.replica.handle_command(now_ms(), cmd);
        self.drain();
        r
    }

    /// The drain rule: every event first (persisting what must be durable, then acting on the
    /// rest, which may queue more), then every transmission; until both are empty.
    pub(crate) fn drain(&mut self) {
        loop {
            let events: Vec<ReplicaEvent> =
                std::iter::from_fn(|| self.replica.poll_event()).collect();
            if !events.is_empty() {
                let batch = Batch::of(&events);
                if let Err(e) = batch.write(&mut self.store) {
                    // Without the disk the node must not send or acknowledge anything.
                    tracing::error!(error = %e, "cannot persist; stopping");
                    std::process::exit(3);
                }
                for e in events {
                    self.on_replica_event(e);
                }
                continue;
            }
            let mut sent = false;
            while let Some(t) = self.replica.poll_transmit() {
                self.transmit(t);
                sent = true;
            }
            if !sent {
                break;
            }
        }
        if std::mem::take(&mut self.snapshot_due) {
            self.write_snapshot();
        }
        // Requests the replica chose not to answer: close them rather than hold them.
        let async_ids = &self.inbound_async;
        self.inbound.retain(|id, _| async_ids.contains(id));
        self.metrics
            .log_events
            .set(self.replica.ledger().len() as i64);
    }

    /// Writes the ledger's snapshot (everything admitted so far is on disk by now: the drain
    /// persists each batch before acting on it), on a thread of its own so the node does
    /// not wait for the disk. Skipped while the previous write is still running.
    fn write_snapshot(&mut self) {
        if self.settings.snapshots_kept == 0
            || self
                .snapshot_writer
                .as_ref()
                .is_some_and(|w| !w.is_finished())
        {
            return;
        }
        let started = Instant::now();
        let Some(draft) = self.replica.ledger().snapshot_draft() else {
            return;
        };
        let epoch = draft.epoch();
        // The mark first: every row stored so far is covered or in a feed the file lists.
        let covered = self.replica.ledger().covered_lens();
        if let Err(e) = self.store.mark_snapshot(epoch, &covered) {
            tracing::error!(error = %e, "cannot mark the snapshot; not writing it");
            return;
        }
        let taken_ms = started.elapsed().as_millis() as u64;
        let dir = self.snapshots.clone();
        let keep = self.settings.snapshots_kept;
        let metrics = self.metrics.clone();
        self.snapshot_writer = Some(std::thread::spawn(move || {
            let t = Instant::now();
            match dir.write_draft(&draft, keep) {
                Ok(bytes) => {
                    metrics.snapshot_epoch.set(epoch as i64);
                    metrics.snapshot_bytes.set(bytes as i64);
                    tracing::info!(
                        epoch,
                        bytes,
                        taken_ms,
                        write_ms = t.elapsed().as_millis() as u64,
                        "snapshot written"
                    );
                }
                Err(e) => tracing::error!(error = %e, epoch, "cannot write the snapshot"),
            }
        }));
    }

    fn transmit(&mut self, t: Transmit) {
        match (t.to, t.message) {
            (Destination::Gossip, Message::Gossip(g)) => {
                self.metrics
                    .gossip_sent
                    .get_or_create(&metrics::kind(g.topic().name()))
                    .inc();
                let topic = self.names.topic(g.topic());
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic, g.encode())
                {
                    tracing::debug!(error = %e, "gossip publish (sync will deliver)");
                }
            }
            (Destination::Peer(m), Message::Request { id, body }) => {
                let Some(pid) = swarm::peer_id_of(&m) else {
                    return;
                };
                let out = self.swarm.behaviour_mut().sync.send_request(&pid, body);
                self.outbound.insert(out, id);
            }
            (Destination::Peer(_), Message::Response { id, body }) => {
                if let Some(channel) = self.inbound.remove(&id.0) {
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, body);
                }
            }
            (to, msg) => tracing::error!(?to, ?msg, "replica asked for an impossible send"),
        }
    }

    fn on_replica_event(&mut self, e: ReplicaEvent) {
        let now = now_ms();
        match e {
            ReplicaEvent::Admitted {
                event,
                source,
                verdict,
            } => self.on_admitted(now, event, source, verdict),
            ReplicaEvent::Rejected {
                author,
                kind,
                error,
                source,
            } => {
                let reason = web4fed_replica::io::insert_error_name(&error);
                self.metrics
                    .events_rejected
                    .get_or_create(&metrics::kind(reason))
                    .inc();
                self.live.rejected += 1;
                if self.live.listening() {
                    let name = self.member_name(&author);
                    self.live.emit(|| {
                        json!({"type": "rejected", "reason": reason, "source": source.name(),
                        "author": author.to_hex(), "name": name, "kind": format!("{kind:?}")})
                    });
                }
            }
            ReplicaEvent::Proof(p) => {
                tracing::warn!(accused = %p.accused(), "evidence found or received; stored");
            }
            ReplicaEvent::Certificate(c) => {
                let e = c.body.epoch;
                let end = (e + 1) * self.replica.genesis().epoch_ms;
                self.metrics
                    .finality_latency
                    .observe(now.saturating_sub(end) as f64 / 1e3);
                self.metrics.final_epoch.set(e as i64);
                self.live.finalized(e, now);
            }
            ReplicaEvent::SnapshotDue { .. } => self.snapshot_due = true,
            ReplicaEvent::Voted(v) => tracing::debug!(
                height = v.at.height,
                gen = v.at.gen,
                round = v.at.round,
                kind = ?v.kind,
                "voted"
            ),
            ReplicaEvent::Ejected { member } => {
                if let Some(p) = swarm::peer_id_of(&member) {
                    tracing::warn!(%member, peer = %p, "member ejected by the log: disconnecting and refusing it");
                    self.swarm.behaviour_mut().blocked.block_peer(p);
                    self.swarm.behaviour_mut().gossipsub.blacklist_peer(&p);
                }
            }
            ReplicaEvent::Disconnect { peer, why } => {
                if let Some(p) = swarm::peer_id_of(&peer) {
                    match why {
                        DisconnectReason::Shunned => {
                            tracing::info!(peer = %p, "stranger over its budget: disconnecting it")
                        }
                        DisconnectReason::Surplus => {
                            tracing::debug!(peer = %p, "more neighbours than the ceiling: dropping one")
                        }
                    }
                    let _ = self.swarm.disconnect_peer_id(p);
                }
            }
            ReplicaEvent::Dial { peer, addrs } => self.dial(peer, addrs),
            ReplicaEvent::Liveness { peer, down } => {
                let name = self.member_name(&peer);
                let pid = swarm::peer_id_of(&peer)
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                if down {
                    tracing::warn!(peer = %pid, %name, "peer unreachable (heartbeats stopped)");
                } else {
                    tracing::info!(peer = %pid, %name, "partition healed (heartbeats resumed)");
                }
                let kind = if down { "partition" } else { "heal" };
                let seen = self.replica.counters().partitions_seen;
                self.live.emit(|| {
                    json!({"type": kind, "peer": pid, "name": name, "at_ms": now, "partitions_seen": seen})
                });
            }
            ReplicaEvent::MakeChallenge { subject, evidence } => {
                tracing::info!(%subject, "challenging the TPM of a member claiming L5");
                let challenge = TpmWorker::make_challenge(&evidence);
                if let Err(e) = &challenge {
                    tracing::warn!(%subject, error = %e, "cannot challenge");
                }
                let _ = self
                    .replica
                    .handle_command(now, ReplicaCommand::SendChallenge { subject, challenge });
            }
            ReplicaEvent::AnswerChallenge {
                from,
                request,
                id_object,
                secret,
            } => {
                self.inbound_async.insert(request.0);
                self.tpm
                    .answer(from, request, id_object, secret, self.metrics.clone());
            }
            ReplicaEvent::ReadSnapshot { to, request, part } => {
                let result = crate::snapshot_offer::read(&self.snapshots, &mut self.offered, part);
                let _ = self.replica.handle_command(
                    now,
                    ReplicaCommand::SnapshotRead {
                        to,
                        request,
                        result,
                    },
                );
            }
            ReplicaEvent::ReadArchive {
                to,
                request,
                author,
                from_seq,
                max,
            } => {
                let result = self.store.feed_range(&author, from_seq, max).map_err(|e| {
                    tracing::error!(%e, "cannot read the log for a peer");
                    "the log could not be read".to_string()
                });
                let _ = self.replica.handle_command(
                    now,
                    ReplicaCommand::ArchiveRead {
                        to,
                        request,
                        result,
                    },
                );
            }
            // Stored by the drain's batch already.
            ReplicaEvent::Backfilled { events, .. } => self.on_backfilled(&events),
            ReplicaEvent::Vouched { subject } => {
                tracing::info!(%subject, "TPM answered the challenge; vouched");
            }
            ReplicaEvent::AgreementTopics { subscribed } => self.agreement_topics(subscribed),
        }
    }

    /// Joins or leaves the votes and proposals topics as the replica enters or leaves the
    /// validator committee.
    fn agreement_topics(&mut self, subscribed: bool) {
        let gs = &mut self.swarm.behaviour_mut().gossipsub;
        for t in web4fed_replica::wire::Topic::AGREEMENT {
            let topic = self.names.topic(t);
            if subscribed {
                // Only fails when the topic name cannot be built, which ours always can.
                let _ = gs.subscribe(&topic);
            } else {
                gs.unsubscribe(&topic);
            }
        }
        self.metrics.agreement_subscribed.set(i64::from(subscribed));
        tracing::info!(subscribed, "agreement topics (votes, proposals)");
    }

    fn on_admitted(
        &mut self,
        now: u64,
        event: Arc<web4fed_core::event::Event>,
        source: web4fed_replica::Source,
        verdict: Option<Verdict>,
    ) {
        self.metrics
            .events_admitted
            .get_or_create(&metrics::kind(source.name()))
            .inc();
        self.live.admitted += 1;
        let latency_ms =
            (event.author() != self.replica.me()).then(|| now.saturating_sub(event.timestamp_ms()));
        if let Some(ms) = latency_ms {
            self.metrics.replication_latency.observe(ms as f64 / 1e3);
            self.live.latencies.push(ms as f64);
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
        if self.live.listening() {
            let msg = self.event_json(&event, source, verdict.clone(), latency_ms);
            self.live.emit(|| msg);
        }
        if event.header.kind == web4fed_core::event::Kind::Thought {
            self.live.remember(event, verdict);
        }
    }

    fn dial(&mut self, peer: Option<web4fed_core::identity::MemberId>, addrs: Vec<String>) {
        use libp2p::swarm::dial_opts::DialOpts;
        let addrs: Vec<Multiaddr> = addrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .filter(|a| !swarm::is_unspecified(a))
            .collect();
        if addrs.is_empty() {
            return;
        }
        let opts = match peer.and_then(|m| swarm::peer_id_of(&m)) {
            Some(pid) => DialOpts::peer_id(pid).addresses(addrs).build(),
            None => DialOpts::unknown_peer_id()
                .address(addrs[0].clone())
                .build(),
        };
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%e, "dial refused");
        }
    }

    /// Once a second: metrics from the replica's counters, verdict refresh, the live
    /// snapshot and a chart point.
    /// One pass of log retention (see [`Retention`]): removes up to [`TRIM_BATCH`] events
    /// the oldest snapshot kept covers, while the log is over its quota or they are older
    /// than the age kept.
    fn retain(&mut self) {
        let r = &self.settings.retention;
        if r.quota_bytes.is_none() && r.max_age_ms.is_none() {
            return;
        }
        if let Ok(b) = self.store.log_bytes() {
            self.metrics.log_bytes.set(b as i64);
        }
        if self
            .snapshot_writer
            .as_ref()
            .is_some_and(|w| !w.is_finished())
        {
            return;
        }
        let Some(oldest) = self
            .snapshots
            .list()
            .ok()
            .and_then(|l| l.into_iter().find_map(|x| x.header.ok()))
            .map(|h| h.epoch)
        else {
            return;
        };
        let over = |s: &Store| match r.quota_bytes {
            Some(q) => s
                .log_bytes()
                .is_ok_and(|b| b > q / 100 * QUOTA_TRIM_AT_PERCENT),
            None => false,
        };
        let before = r.max_age_ms.map(|a| now_ms().saturating_sub(a));
        let cutoff = if over(&self.store) { None } else { before };
        if cutoff.is_none() && !over(&self.store) {
            return;
        }
        let archive = r.archive.clone();
        match self
            .store
            .trim_covered(oldest, cutoff, TRIM_BATCH, archive.as_deref())
        {
            Ok(0) => {}
            Ok(n) => {
                self.metrics.log_trimmed.inc_by(n);
                tracing::debug!(removed = n, snapshot_epoch = oldest, "log retention");
            }
            Err(e) => tracing::error!(error = %e, "log retention failed"),
        }
    }

    fn on_live_tick(&mut self) {
        self.retain();
        self.backfill_tick();
        let now = now_ms();
        let c = self.replica.counters().clone();
        metrics::absorb(&self.metrics, &c, &self.counters_seen);
        self.counters_seen = c;
        let refused = self.swarm.behaviour().addresses.refused;
        let seen = self.metrics.connections_refused.get();
        self.metrics
            .connections_refused
            .inc_by(refused.saturating_sub(seen));
        let peers = self.replica.peers();
        let hb = self.replica.heartbeat_ms();
        self.metrics
            .peers_connected
            .set(peers.connected().len() as i64);
        self.metrics.peers_agreeing.set(
            peers
                .iter()
                .filter(|(_, p)| p.root_matches == Some(true) && !p.is_down(now, hb))
                .count() as i64,
        );
        self.metrics.queue_depth.set(peers.queued() as i64);
        let l = self.replica.ledger();
        self.metrics
            .memory_events
            .set((l.len() - l.pruned()) as i64);
        self.live.refresh_verdicts(self.replica.ledger());
        self.live.last_snapshot_ms = now;
        let point = self.history_point(now);
        if self.live.listening() {
            let snap = self.snapshot_json(&point, now);
            self.live.emit(|| snap);
        }
        self.live.keep_point(point);
    }

    // ---- swarm -------------------------------------------------------------------------

    fn on_swarm(&mut self, ev: libp2p::swarm::SwarmEvent<swarm::BehaviourEvent>) {
        use libp2p::swarm::SwarmEvent;
        use libp2p::{gossipsub, identify, request_response};
        let now = now_ms();
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, peer = %self.local_peer, "listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let Some(m) = swarm::member_of(&peer_id) else {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                };
                let dialed = endpoint
                    .is_dialer()
                    .then(|| endpoint.get_remote_address().to_string());
                if !self.replica.peers().is_connected(&m) {
                    tracing::info!(peer = %peer_id, "connected");
                }
                self.replica.handle_connected(now, m, dialed);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if let Some(m) = swarm::member_of(&peer_id) {
                    tracing::info!(peer = %peer_id, "disconnected");
                    self.replica.handle_disconnected(now, m);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::Behaviour(swarm::BehaviourEvent::Gossipsub(
                gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    message,
                },
            )) => {
                let acceptance = self.on_gossip(now, propagation_source, &message);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            SwarmEvent::Behaviour(swarm::BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if info.protocol_version != self.names.protocol_version {
                    tracing::warn!(peer = %peer_id, theirs = %info.protocol_version, "peer is on another network; disconnecting");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if let Some(m) = swarm::member_of(&peer_id) {
                    let addrs = info
                        .listen_addrs
                        .iter()
                        .filter(|a| !swarm::is_unspecified(a))
                        .map(|a| a.to_string())
                        .collect();
                    self.replica.handle_addresses(now, m, addrs);
                }
            }
            SwarmEvent::Behaviour(swarm::BehaviourEvent::Sync(e)) => match e {
                request_response::Event::Message { peer, message, .. } => {
                    let Some(m) = swarm::member_of(&peer) else {
                        return;
                    };
                    match message {
                        request_response::Message::Request {
                            request, channel, ..
                        } => {
                            self.metrics
                                .requests_received
                                .get_or_create(&metrics::kind(request.kind()))
                                .inc();
                            let id = self.next_inbound;
                            self.next_inbound += 1;
                            self.inbound.insert(id, channel);
                            let msg = Message::Request {
                                id: web4fed_replica::RequestId(id),
                                body: request,
                            };
                            self.replica.handle_message(now, m, msg);
                        }
                        request_response::Message::Response {
                            request_id,
                            response,
                        } => {
                            if let Some(id) = self.outbound.remove(&request_id) {
                                let msg = Message::Response { id, body: response };
                                self.replica.handle_message(now, m, msg);
                            }
                        }
                    }
                }
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                } => {
                    tracing::debug!(%peer, %error, "request failed");
                    if let Some(id) = self.outbound.remove(&request_id) {
                        self.replica.handle_request_failed(now, id);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn on_gossip(
        &mut self,
        now: u64,
        source: PeerId,
        msg: &libp2p::gossipsub::Message,
    ) -> libp2p::gossipsub::MessageAcceptance {
        use libp2p::gossipsub::MessageAcceptance;
        let Some(from) = swarm::member_of(&source) else {
            return MessageAcceptance::Reject;
        };
        let Some(topic) = self.names.kind_of(&msg.topic) else {
            return MessageAcceptance::Reject;
        };
        self.metrics
            .gossip_received
            .get_or_create(&metrics::kind(topic.name()))
            .inc();
        let gossip = match web4fed_replica::Gossip::decode(topic, &msg.data) {
            Ok(g) => g,
            Err(_) => {
                self.metrics
                    .events_rejected
                    .get_or_create(&metrics::kind("undecodable_gossip"))
                    .inc();
                return MessageAcceptance::Reject;
            }
        };
        match self
            .replica
            .handle_message(now, from, Message::Gossip(gossip))
        {
            web4fed_replica::Acceptance::Accept => MessageAcceptance::Accept,
            web4fed_replica::Acceptance::Ignore => MessageAcceptance::Ignore,
            web4fed_replica::Acceptance::Reject => MessageAcceptance::Reject,
        }
    }

    // ---- API ---------------------------------------------------------------------------

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit { content, reply } => {
                let r = self.submit(content);
                let _ = reply.send(r);
            }
            Command::Transfer {
                to,
                amount_milli,
                reply,
            } => {
                let r = self.publish(ReplicaCommand::Transfer { to, amount_milli });
                let _ = reply.send(r);
            }
            Command::Rate {
                thought,
                score_micro,
                reply,
            } => {
                let r = self.publish(ReplicaCommand::Rate {
                    thought,
                    score_micro,
                });
                let _ = reply.send(r);
            }
            Command::Ingest { events, reply } => {
                let r = match self.command(ReplicaCommand::Ingest { events }) {
                    Ok(Reply::Ingested(report)) => report,
                    _ => Default::default(),
                };
                let _ = reply.send(r);
            }
            Command::Votes { votes, reply } => {
                let r = match self.command(ReplicaCommand::Votes { votes }) {
                    Ok(Reply::Votes(report)) => report,
                    _ => Default::default(),
                };
                let _ = reply.send(r);
            }
            Command::Dial { addr, reply } => {
                let now = self.swarm.dial(addr.clone()).is_ok();
                let _ = self.command(ReplicaCommand::Dial {
                    addr: addr.to_string(),
                });
                let _ = reply.send(now);
            }
            Command::Query { query, reply } => {
                let now = now_ms();
                let v = match query {
                    Query::Status => self.status_json(now),
                    Query::State => self.state_json(now),
                    Query::Thoughts { limit } => self.thoughts_json(limit),
                    Query::Peers => self.peers_json(now),
                    Query::Finality { limit } => self.finality_json(limit),
                    Query::Checkpoint => self.checkpoint_json(now),
                    Query::History => self.history_json(),
                };
                let _ = reply.send(v);
            }
        }
    }

    /// Signs, persists and publishes a thought (the replica drains before the answer goes
    /// back, so an acknowledged thought is on disk).
    fn submit(&mut self, content: String) -> Result<Submitted, CommandError> {
        if let Some(a) = self.settings.adversary {
            return Ok(crate::adversary::submit(self, a, content));
        }
        self.publish(ReplicaCommand::Submit { content })
    }

    /// Has the replica sign, persist and publish an event of ours (a thought or a transfer);
    /// refusals by a defence layer are counted.
    fn publish(&mut self, cmd: ReplicaCommand) -> Result<Submitted, CommandError> {
        match self.command(cmd) {
            Ok(Reply::Submitted(ev)) => Ok(Submitted {
                id: ev.id(),
                seq: ev.seq(),
                timestamp_ms: ev.timestamp_ms(),
                verdict: Some(Verdict::Accepted),
                adversary: None,
            }),
            Ok(other) => Err(CommandError::NotAdmitted(format!("{other:?}"))),
            Err(e) => {
                if let CommandError::Refused(rule) = &e {
                    self.metrics
                        .submits_refused
                        .get_or_create(&metrics::layer(rule.layer(), rule.name()))
                        .inc();
                }
                Err(e)
            }
        }
    }
}
