//! The bench's view of node processes: the shared harness's node with where it runs, and the
//! waits, agreement check and live-feed follower the figures need.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use web4fed_harness::Node;
use web4fed_store::node_dir::{NodeConfig, NodeDir};

use super::DEADLINE;
use crate::commands::init_quiet;

/// Where a node runs: its namespace (if any) and address.
#[derive(Debug, Clone)]
pub(super) struct Host {
    pub ns: Option<String>,
    pub ip: String,
}

/// One `web4fed run` process of the bench (the harness's node, made and started the bench's
/// way: PoW 8, the bench genesis, logs at `warn`).
pub(super) struct NodeProc {
    inner: Node,
    pub host: Host,
    /// Added to `web4fed run` at every start (`bench --node-arg`).
    extra: Vec<String>,
}

impl Deref for NodeProc {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.inner
    }
}

impl DerefMut for NodeProc {
    fn deref_mut(&mut self) -> &mut Node {
        &mut self.inner
    }
}

impl NodeProc {
    pub fn new(root: &Path, name: &str, genesis: &Path, host: Host) -> Result<Self, String> {
        let dir = root.join(name);
        let nd = NodeDir::new(&dir);
        if !nd.config().exists() {
            init_quiet(&dir, name, 8, Some(genesis), "ai", None).map_err(|e| e.to_string())?;
            // The bench's workloads carry their committees' ratings themselves; nodes that
            // rated too would add events of their own and make every count unpredictable.
            let mut config = NodeConfig::load(&nd.config()).map_err(|e| e.to_string())?;
            config.rate_thoughts = false;
            config.save(&nd.config()).map_err(|e| e.to_string())?;
        }
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut inner = Node::new(exe, dir, name);
        if let Some(ns) = &host.ns {
            inner = inner.in_netns(ns.clone(), host.ip.clone());
        }
        inner.env.push(("WEB4FED_LOG".into(), "warn".into()));
        Ok(Self {
            inner,
            host,
            extra: Vec::new(),
        })
    }

    /// The same node, started with these extra `run` arguments.
    pub fn with_args(mut self, extra: &[String]) -> Self {
        self.extra = extra.to_vec();
        self
    }

    /// Bytes of the node's SQLite log on disk (the database and its write-ahead log).
    pub fn log_file_bytes(&self) -> u64 {
        ["events.db", "events.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.inner.dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// A second handle on the same node's API (for an injector thread); dropping it does not
    /// stop the node.
    pub fn handle(&self) -> Self {
        Self {
            inner: self.inner.handle(),
            host: self.host.clone(),
            extra: self.extra.clone(),
        }
    }

    pub fn start(&mut self, peers: &[String]) -> Result<(), String> {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.inner.spawn(peers, &extra)
    }

    pub fn stop(&mut self) {
        self.inner.kill();
    }

    pub fn token(&self) -> Option<String> {
        self.inner.token.clone()
    }

    pub fn post_events(&self, batch: &[u8]) -> Result<Value, String> {
        self.inner.post_frames("/v1/events", batch)
    }

    /// Every event held, ratings included (bench nodes write none of their own).
    pub fn events(&self) -> u64 {
        self.inner
            .status()
            .and_then(|s| s["events"].as_u64())
            .unwrap_or(0)
    }
}

/// Poll interval for waits of a second or more: each poll makes every node compute its state
/// root, which at 20,000 thoughts costs a few ms, so polling faster would slow what it times.
pub(super) const LONG_POLL: Duration = Duration::from_millis(20);
/// Poll interval for the millisecond-scale agreement figure (small state then).
pub(super) const SHORT_POLL: Duration = Duration::from_micros(500);

pub(super) fn wait_until(what: &str, ok: impl FnMut() -> bool) -> Result<Duration, String> {
    wait_every(what, SHORT_POLL, ok)
}

pub(super) fn wait_every(
    what: &str,
    every: Duration,
    ok: impl FnMut() -> bool,
) -> Result<Duration, String> {
    web4fed_harness::wait_for(what, every, DEADLINE, ok)
}

/// True when every node holds `events` events (ratings included) and one root.
pub(super) fn agree(nodes: &[&NodeProc], events: u64) -> bool {
    let heads: Vec<Option<(u64, String)>> = nodes.iter().map(|n| n.head()).collect();
    heads
        .iter()
        .all(|h| h.as_ref().is_some_and(|(n, _)| *n == events))
        && heads.iter().all(|h| h == &heads[0])
}

/// Follows a node's live feed, reporting (event id, arrival) for each admitted event.
pub(super) fn follow(node: &NodeProc) -> mpsc::Receiver<(String, Instant)> {
    let (tx, rx) = mpsc::channel();
    let url = node.url("/v1/live");
    let token = node.token();
    std::thread::spawn(move || {
        let agent = ureq::Agent::config_builder()
            .timeout_global(None)
            .build()
            .new_agent();
        let mut req = agent.get(&url);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let Ok(resp) = req.call() else { return };
        let reader = BufReader::new(resp.into_body().into_reader());
        for line in reader.lines().map_while(Result::ok) {
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            if !data.starts_with("{\"type\":\"event\"") && !data.contains("\"type\":\"event\"") {
                continue;
            }
            let now = Instant::now();
            if let Ok(v) = serde_json::from_str::<Value>(data) {
                if let Some(id) = v["id"].as_str() {
                    if tx.send((id.to_string(), now)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
