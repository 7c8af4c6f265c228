//! Prometheus metrics (`GET /metrics`). Shared between the node task, which updates them,
//! and the API, which renders them; every metric is an atomic, so no lock is held.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label of a per-layer refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LayerLabel {
    /// Defence layer (1-9).
    pub layer: String,
    /// Rule name.
    pub rule: String,
}

/// Label naming an outcome or a source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: String,
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    /// Events admitted to the log, by source (local, gossip, sync, push).
    pub events_admitted: Family<KindLabel, Counter>,
    /// Events whose verdict was a refusal, by layer and rule.
    pub events_refused: Family<LayerLabel, Counter>,
    /// Events not admitted (bad signature, broken chain, PoW, ...), by reason.
    pub events_rejected: Family<KindLabel, Counter>,
    /// Thoughts submitted through the API and refused before signing, by layer and rule.
    pub submits_refused: Family<LayerLabel, Counter>,
    /// Seconds from an event's timestamp to its admission here, for events of other members.
    pub replication_latency: Histogram,
    /// Sync requests sent.
    pub sync_requests: Family<KindLabel, Counter>,
    /// Sync rounds started, by trigger (heartbeat difference, periodic, finality lag, ...).
    pub sync_rounds: Family<KindLabel, Counter>,
    /// Requests received from peers (answered or not), by kind.
    pub requests_received: Family<KindLabel, Counter>,
    /// Gossip messages handed to the replica (new to this node: the transport drops
    /// copies it has seen), by topic.
    pub gossip_received: Family<KindLabel, Counter>,
    /// Gossip messages this node published, by topic.
    pub gossip_sent: Family<KindLabel, Counter>,
    /// Events received through sync.
    pub sync_events: Counter,
    /// Bytes of events received through sync.
    pub sync_bytes: Counter,
    /// Connected peers.
    pub peers_connected: Gauge,
    /// Peers whose latest heartbeat root equals ours for the same epoch.
    pub peers_agreeing: Gauge,
    /// Events waiting in per-peer queues.
    pub queue_depth: Gauge,
    /// Events dropped from full per-peer queues.
    pub queue_dropped: Counter,
    /// Heartbeats received.
    pub heartbeats: Counter,
    /// Evidence found here (equivocations, forged envelopes).
    pub evidence_found: Family<KindLabel, Counter>,
    /// Events in the log.
    pub log_events: Gauge,
    /// Events of the log held in memory (the rest is final history, served from the store).
    pub memory_events: Gauge,
    /// Layer 6 challenge outcomes: answered / answer_failed (by our TPM), vouched /
    /// wrong_answer (answers to our challenges).
    pub attestations: Family<KindLabel, Counter>,
    /// Seconds from a checkpoint epoch's end to this node adopting its certificate.
    pub finality_latency: Histogram,
    /// The latest certified epoch.
    pub final_epoch: Gauge,
    /// 1 while this node is subscribed to the agreement's topics (it is in the validator
    /// committee, or does not know it yet), 0 while it learns finality from certificates.
    pub agreement_subscribed: Gauge,
    /// The certified epoch of the newest snapshot written.
    pub snapshot_epoch: Gauge,
    /// Bytes of the newest snapshot written.
    pub snapshot_bytes: Gauge,
    /// Bytes the event log's pages hold (what a quota bounds).
    pub log_bytes: Gauge,
    /// Events retention removed from the log.
    pub log_trimmed: Counter,
    /// Inbound connections refused by the per-address limits (see `address_limits`).
    pub connections_refused: Counter,
    /// Events of the history before the snapshot fetched, verified and stored (`--history
    /// lazy`).
    pub history_backfilled: Counter,
    /// Events of the history before the snapshot still to fetch.
    pub history_backfill_left: Gauge,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("web4fed");
        let m = Self {
            events_admitted: Family::default(),
            events_refused: Family::default(),
            events_rejected: Family::default(),
            submits_refused: Family::default(),
            replication_latency: Histogram::new([
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
            ]),
            sync_requests: Family::default(),
            sync_rounds: Family::default(),
            requests_received: Family::default(),
            gossip_received: Family::default(),
            gossip_sent: Family::default(),
            sync_events: Counter::default(),
            sync_bytes: Counter::default(),
            peers_connected: Gauge::default(),
            peers_agreeing: Gauge::default(),
            queue_depth: Gauge::default(),
            queue_dropped: Counter::default(),
            heartbeats: Counter::default(),
            evidence_found: Family::default(),
            log_events: Gauge::default(),
            memory_events: Gauge::default(),
            attestations: Family::default(),
            finality_latency: Histogram::new([0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 60.0]),
            final_epoch: Gauge::default(),
            agreement_subscribed: Gauge::default(),
            snapshot_epoch: Gauge::default(),
            snapshot_bytes: Gauge::default(),
            log_bytes: Gauge::default(),
            log_trimmed: Counter::default(),
            connections_refused: Counter::default(),
            history_backfilled: Counter::default(),
            history_backfill_left: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_admitted",
            "Events admitted to the log, by source",
            m.events_admitted.clone(),
        );
        registry.register(
            "events_refused",
            "Events refused by a defence layer (violations)",
            m.events_refused.clone(),
        );
        registry.register(
            "events_rejected",
            "Events not admitted, by reason",
            m.events_rejected.clone(),
        );
        registry.register(
            "submits_refused",
            "API submissions refused before signing",
            m.submits_refused.clone(),
        );
        registry.register(
            "replication_latency_seconds",
            "From an event's timestamp to its admission here",
            m.replication_latency.clone(),
        );
        registry.register(
            "sync_requests",
            "Sync requests sent, by kind",
            m.sync_requests.clone(),
        );
        registry.register(
            "sync_rounds",
            "Sync rounds started, by what started them",
            m.sync_rounds.clone(),
        );
        registry.register(
            "requests_received",
            "Requests received from peers, by kind",
            m.requests_received.clone(),
        );
        registry.register(
            "gossip_received",
            "Gossip messages new to this node, by topic",
            m.gossip_received.clone(),
        );
        registry.register(
            "gossip_sent",
            "Gossip messages this node published, by topic",
            m.gossip_sent.clone(),
        );
        registry.register(
            "sync_events",
            "Events received through sync",
            m.sync_events.clone(),
        );
        registry.register(
            "sync_bytes",
            "Bytes of events received through sync",
            m.sync_bytes.clone(),
        );
        registry.register(
            "peers_connected",
            "Connected peers",
            m.peers_connected.clone(),
        );
        registry.register(
            "peers_agreeing",
            "Peers whose heartbeat root equals ours",
            m.peers_agreeing.clone(),
        );
        registry.register(
            "queue_depth",
            "Events waiting in per-peer queues",
            m.queue_depth.clone(),
        );
        registry.register(
            "queue_dropped",
            "Events dropped from full per-peer queues",
            m.queue_dropped.clone(),
        );
        registry.register("heartbeats", "Heartbeats received", m.heartbeats.clone());
        registry.register(
            "evidence_found",
            "Evidence found here, by kind",
            m.evidence_found.clone(),
        );
        registry.register("log_events", "Events in the log", m.log_events.clone());
        registry.register(
            "memory_events",
            "Events of the log held in memory; final history is served from the store",
            m.memory_events.clone(),
        );
        registry.register(
            "attestations",
            "TPM credential-activation challenges: answered, answer_failed, vouched, wrong_answer",
            m.attestations.clone(),
        );
        registry.register(
            "finality_latency_seconds",
            "From a checkpoint epoch's end to its certificate here",
            m.finality_latency.clone(),
        );
        registry.register(
            "final_epoch",
            "The latest certified epoch",
            m.final_epoch.clone(),
        );
        registry.register(
            "agreement_subscribed",
            "1 while subscribed to votes and proposals (in the validator committee), else 0",
            m.agreement_subscribed.clone(),
        );
        registry.register(
            "snapshot_epoch",
            "The certified epoch of the newest snapshot written (a restart starts there)",
            m.snapshot_epoch.clone(),
        );
        registry.register(
            "snapshot_bytes",
            "Bytes of the newest snapshot written",
            m.snapshot_bytes.clone(),
        );
        registry.register(
            "log_bytes",
            "Bytes the event log's pages hold (what --log-quota-mb bounds)",
            m.log_bytes.clone(),
        );
        registry.register(
            "log_trimmed",
            "Events retention removed from the log (covered by the oldest snapshot kept)",
            m.log_trimmed.clone(),
        );
        registry.register(
            "connections_refused",
            "Inbound connections refused by the per-address limits",
            m.connections_refused.clone(),
        );
        registry.register(
            "history_backfilled",
            "Events of the history before the snapshot fetched from peers, verified and stored",
            m.history_backfilled.clone(),
        );
        registry.register(
            "history_backfill_left",
            "Events of the history before the snapshot still to fetch (--history lazy)",
            m.history_backfill_left.clone(),
        );
        Self { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A kind label.
pub fn kind(k: &str) -> KindLabel {
    KindLabel {
        kind: k.to_string(),
    }
}

/// A layer label.
pub fn layer(layer: u8, rule: &str) -> LayerLabel {
    LayerLabel {
        layer: layer.to_string(),
        rule: rule.to_string(),
    }
}

/// Adds what the replica counted since `seen` to the exported metrics.
pub fn absorb(m: &Metrics, now: &web4fed_replica::Counters, seen: &web4fed_replica::Counters) {
    use std::collections::BTreeMap;
    let family = |f: &Family<KindLabel, Counter>,
                  new: &BTreeMap<&'static str, u64>,
                  old: &BTreeMap<&'static str, u64>| {
        for (k, v) in new {
            let d = v.saturating_sub(old.get(k).copied().unwrap_or(0));
            if d > 0 {
                f.get_or_create(&kind(k)).inc_by(d);
            }
        }
    };
    family(&m.events_rejected, &now.rejected, &seen.rejected);
    family(&m.sync_requests, &now.requests, &seen.requests);
    family(&m.sync_rounds, &now.sync_rounds, &seen.sync_rounds);
    family(&m.evidence_found, &now.evidence_found, &seen.evidence_found);
    family(&m.attestations, &now.attestations, &seen.attestations);
    m.heartbeats
        .inc_by(now.heartbeats.saturating_sub(seen.heartbeats));
    m.sync_events
        .inc_by(now.sync_events.saturating_sub(seen.sync_events));
    m.sync_bytes
        .inc_by(now.sync_bytes.saturating_sub(seen.sync_bytes));
    m.queue_dropped
        .inc_by(now.queue_dropped.saturating_sub(seen.queue_dropped));
}
