//! `web4fed bench`: the seed's six targets and the throughput, memory and cost
//! figures, measured on real `web4fed run` processes (on loopback, or in three network
//! namespaces with `--netns`), printed as a table and written to `BENCHMARKS.md`.
//!
//! Every figure comes from this run: nothing is copied from elsewhere. Latency is timed from
//! just before the submitting HTTP request to the moment each receiver's live feed
//! (`/v1/live`, server-sent events) reports the event admitted; state agreement by polling
//! `/v1/status`; throughput from event counts; CPU and memory from `/proc`.

use crate::commands::init_quiet;
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use web4fed_core::event::{Body, Event, EventId};
use web4fed_core::finality::{Vote, VoteBody};
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::Keypair;
use web4fed_core::ledger::Ledger;
use web4fed_core::testkit::{sentence, Author};
use web4fed_store::node_dir::{save_genesis, NodeDir};

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Write the report here (Markdown).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run the nodes in three network namespaces on a bridge (needs root).
    #[arg(long)]
    pub netns: bool,
    /// Latency samples per latency figure.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Thoughts behind for corpus sync, and per side for the heal.
    #[arg(long, default_value_t = 10_000)]
    pub corpus: usize,
    /// Events offered in the throughput run.
    #[arg(long, default_value_t = 150_000)]
    pub throughput_events: usize,
    /// Dated rate of the throughput run (events/s): the most it can offer.
    #[arg(long, default_value_t = 20_000)]
    pub throughput_rate: u64,
    /// Length of the sustained run in seconds (0 skips it; the issue asks for 600).
    #[arg(long, default_value_t = 0)]
    pub sustain_secs: u64,
    /// Thoughts per second in the sustained run (their committees' ratings come on top).
    #[arg(long, default_value_t = 1_000)]
    pub sustain_rate: u64,
    /// Keep the node directories here instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Profile a receiving node (Thor) with `perf record -g` during the throughput run and
    /// write the `perf report` here.
    #[arg(long)]
    pub perf: Option<PathBuf>,
}

/// Longest any wait lasts; reaching it fails the bench rather than reporting a figure.
const DEADLINE: Duration = Duration::from_secs(300);
/// Members the load generator uses (each a real registered key with its PoW).
const LOAD_MEMBERS: u64 = 50;
/// Seed bases of the load member sets, one per part of the run (each set is `LOAD_MEMBERS`
/// keys). Named, because the sustained run's voter signs for every set registered by then.
const SEED_CORPUS: u64 = 10_000;
const SEED_HEAL_A: u64 = 20_000;
const SEED_HEAL_B: u64 = 30_000;
const SEED_THROUGHPUT: u64 = 40_000;
const SEED_SUSTAIN: u64 = 50_000;
const SEED_PROBE: u64 = 60_000;
/// Events per `POST /v1/events` request.
const INGEST_BATCH: usize = 1_000;

fn now_ms() -> u64 {
    web4fed_node::now_ms()
}

/// The bench network: default rules except that the per-member rate limits and the corpus
/// cap are raised, so a few generator members can offer thousands of events a second and a
/// 10,000-thought corpus is held whole.
pub fn bench_genesis() -> Genesis {
    Genesis {
        network_name: "web4fed-bench".into(),
        rate_base_thoughts: 10_000_000,
        rate_base_bytes: 1 << 40,
        corpus_max_thoughts: 40_000,
        share_base_micro: 200_000,
        ..Genesis::with_pow_bits(8)
    }
}

// ---- hosts and processes ----------------------------------------------------------------

fn run_cmd(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Three network namespaces on a bridge (10.78.0.11-13; the root namespace is 10.78.0.1).
/// Removed on drop.
struct Netns {
    tag: String,
    made: Vec<String>,
}

const SUBNET: &str = "10.78.0";

impl Netns {
    fn ns(&self, i: usize) -> String {
        format!("w4b{}-{i}", self.tag)
    }
    fn ip(i: usize) -> String {
        format!("{SUBNET}.{}", 11 + i)
    }
    fn create(n: usize) -> Result<Self, String> {
        let mut h = Self {
            tag: format!("{}", std::process::id() % 10_000),
            made: Vec::new(),
        };
        let br = format!("w4bbr{}", h.tag);
        run_cmd(&["ip", "link", "add", &br, "type", "bridge"])?;
        run_cmd(&["ip", "addr", "add", &format!("{SUBNET}.1/24"), "dev", &br])?;
        run_cmd(&["ip", "link", "set", &br, "up"])?;
        for i in 0..n {
            let ns = h.ns(i);
            run_cmd(&["ip", "netns", "add", &ns])?;
            h.made.push(ns.clone());
            let veth = format!("w4b{}v{i}", h.tag);
            run_cmd(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run_cmd(&["ip", "link", "set", &veth, "master", &br, "up"])?;
            let cidr = format!("{}/24", Self::ip(i));
            run_cmd(&[
                "ip", "netns", "exec", &ns, "ip", "addr", "add", &cidr, "dev", "eth0",
            ])?;
            run_cmd(&[
                "ip", "netns", "exec", &ns, "ip", "link", "set", "eth0", "up",
            ])?;
            run_cmd(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(h)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for (i, ns) in self.made.iter().enumerate() {
            let _ = run_cmd(&["ip", "netns", "del", ns]);
            let _ = run_cmd(&["ip", "link", "del", &format!("w4b{}v{i}", self.tag)]);
        }
        let _ = run_cmd(&["ip", "link", "del", &format!("w4bbr{}", self.tag)]);
    }
}

/// Where a node runs: its namespace (if any) and address.
#[derive(Debug, Clone)]
struct Host {
    ns: Option<String>,
    ip: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// One `web4fed run` process.
struct NodeProc {
    name: String,
    dir: PathBuf,
    host: Host,
    p2p: u16,
    api: u16,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl NodeProc {
    fn new(root: &Path, name: &str, genesis: &Path, host: Host) -> Result<Self, String> {
        let dir = root.join(name);
        if !NodeDir::new(&dir).key().exists() {
            init_quiet(&dir, name, 8, Some(genesis), "ai", None).map_err(|e| e.to_string())?;
        }
        let (p2p, api) = if host.ns.is_some() {
            (8000, 8080)
        } else {
            (free_port(), free_port())
        };
        Ok(Self {
            name: name.into(),
            dir,
            host,
            p2p,
            api,
            child: None,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .new_agent(),
        })
    }

    /// A second handle on the same node's API (for an injector thread); dropping it does not
    /// stop the node.
    fn handle(&self) -> Self {
        Self {
            name: self.name.clone(),
            dir: self.dir.clone(),
            host: self.host.clone(),
            p2p: self.p2p,
            api: self.api,
            child: None,
            agent: self.agent.clone(),
        }
    }

    fn addr(&self) -> String {
        format!("/ip4/{}/tcp/{}", self.host.ip, self.p2p)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.host.ip, self.api)
    }

    fn start(&mut self, peers: &[String]) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .map_err(|e| e.to_string())?;
        let mut cmd = match &self.host.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.arg("run")
            .arg("--dir")
            .arg(&self.dir)
            .args(["--listen", &self.addr()])
            .args(["--api", &format!("{}:{}", self.host.ip, self.api)])
            .env("WEB4FED_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log);
        for p in peers {
            cmd.args(["--peer", p]);
        }
        self.child = Some(cmd.spawn().map_err(|e| e.to_string())?);
        wait_until(&format!("{} API", self.name), || self.status().is_some())?;
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn token(&self) -> Option<String> {
        self.host.ns.as_ref()?;
        std::fs::read_to_string(self.dir.join("api.token"))
            .ok()
            .map(|t| t.trim().to_string())
    }

    fn get(&self, path: &str) -> Option<Value> {
        let mut req = self.agent.get(self.url(path));
        if let Some(t) = self.token() {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut r = req.call().ok()?;
        if r.status() != 200 {
            return None;
        }
        r.body_mut().read_json().ok()
    }

    fn post_json(&self, path: &str, body: &Value) -> Result<Value, String> {
        let mut req = self.agent.post(self.url(path));
        if let Some(t) = self.token() {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut r = req.send_json(body).map_err(|e| e.to_string())?;
        let st = r.status().as_u16();
        let v: Value = r.body_mut().read_json().map_err(|e| e.to_string())?;
        if st >= 300 {
            return Err(format!("{path}: {st} {v}"));
        }
        Ok(v)
    }

    fn post_events(&self, batch: &[u8]) -> Result<Value, String> {
        self.post_frames("/v1/events", batch)
    }

    /// POSTs a framed binary batch (events or votes) and returns the node's JSON answer.
    fn post_frames(&self, path: &str, batch: &[u8]) -> Result<Value, String> {
        let mut req = self
            .agent
            .post(self.url(path))
            .header("Content-Type", "application/octet-stream");
        if let Some(t) = self.token() {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut r = req.send(batch).map_err(|e| e.to_string())?;
        let st = r.status().as_u16();
        let v: Value = r.body_mut().read_json().map_err(|e| e.to_string())?;
        if st != 200 {
            return Err(format!("{path}: {st} {v}"));
        }
        Ok(v)
    }

    fn status(&self) -> Option<Value> {
        self.get("/v1/status")
    }

    fn events(&self) -> u64 {
        self.status()
            .and_then(|s| s["events"].as_u64())
            .unwrap_or(0)
    }

    /// (events, state root).
    fn head(&self) -> Option<(u64, String)> {
        let s = self.status()?;
        Some((s["events"].as_u64()?, s["state_root"].as_str()?.to_string()))
    }

    /// Resident set size in MB, from /proc.
    fn rss_mb(&self) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kb: f64 = s
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    /// CPU seconds used (user + system), from /proc.
    fn cpu_s(&self) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        let after = s.rsplit_once(')')?.1;
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some(ticks / clock_ticks())
    }

    /// Sum of a Prometheus counter (all label sets) from /metrics.
    fn metric(&self, name: &str) -> f64 {
        let mut req = self.agent.get(self.url("/metrics"));
        if let Some(t) = self.token() {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let Ok(mut r) = req.call() else { return 0.0 };
        let text = r.body_mut().read_to_string().unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Poll interval for waits of a second or more: each poll makes every node compute its state
/// root, which at 20,000 thoughts costs a few ms, so polling faster would slow what it times.
const LONG_POLL: Duration = Duration::from_millis(20);
/// Poll interval for the millisecond-scale agreement figure (small state then).
const SHORT_POLL: Duration = Duration::from_micros(500);

fn wait_until(what: &str, ok: impl FnMut() -> bool) -> Result<Duration, String> {
    wait_every(what, SHORT_POLL, ok)
}

fn wait_every(
    what: &str,
    every: Duration,
    mut ok: impl FnMut() -> bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if ok() {
            return Ok(start.elapsed());
        }
        std::thread::sleep(every);
    }
    Err(format!("timed out after {DEADLINE:?} waiting for {what}"))
}

/// True when every node holds `events` events and one root.
fn agree(nodes: &[&NodeProc], events: u64) -> bool {
    let heads: Vec<Option<(u64, String)>> = nodes.iter().map(|n| n.head()).collect();
    heads
        .iter()
        .all(|h| h.as_ref().is_some_and(|(n, _)| *n == events))
        && heads.windows(2).all(|w| w[0] == w[1])
}

/// Follows a node's live feed, reporting (event id, arrival) for each admitted event.
fn follow(node: &NodeProc) -> mpsc::Receiver<(String, Instant)> {
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

// ---- statistics -------------------------------------------------------------------------

/// Median and p99 of samples in ms.
fn median_p99(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let p99 = ((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1;
    (v[v.len() / 2], v[p99])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---- load generation ----------------------------------------------------------------------

/// Pre-signed events for the federation: registrations of `LOAD_MEMBERS` members (seeds
/// from `seed_base`), then thoughts and, for each thought, `Validate` ratings from its
/// committee (drawn by a local ledger folding the same events, so every rating is valid).
///
/// Events are generated one millisecond slot at a time (`rate/1000` per slot), and each
/// slot is emitted in canonical order (timestamp, author, seq), the order every node folds
/// in: a federation's members would not coordinate that, but a generator that emitted
/// same-millisecond events out of order would make every node re-fold from a snapshot for
/// most batches and measure that instead (see BENCHMARKS.md). Ratings are dated one slot
/// after their thought, whose committee is known once that slot is folded.
struct Workload {
    registrations: Vec<Vec<u8>>,
    events: Vec<(u64, Vec<u8>)>,
    content_bytes: u64,
    thoughts: u64,
}

/// The generator behind [`Workload`]: members, a local ledger to draw committees, and the
/// ratings owed for the last slot's thoughts.
struct Generator {
    ledger: Ledger,
    authors: Vec<Author>,
    index: HashMap<web4fed_core::identity::MemberId, usize>,
    registrations: Vec<Vec<u8>>,
    pending_ratings: Vec<(EventId, Vec<web4fed_core::identity::MemberId>)>,
    ratings_per_thought: usize,
    per_slot: usize,
    seed_base: u64,
    i: u64,
    content_bytes: u64,
    thoughts: u64,
}

impl Generator {
    fn new(g: &Genesis, seed_base: u64, ratings_per_thought: usize, t0_ms: u64, rate: u64) -> Self {
        let mut ledger = Ledger::new(g.clone());
        let mut authors: Vec<Author> = (0..LOAD_MEMBERS)
            .map(|i| Author::from_seed(g, seed_base + i))
            .collect();
        let mut registrations = Vec::new();
        for (i, a) in authors.iter_mut().enumerate() {
            let ev = a.register(g, &format!("load-{seed_base}-{i}"), t0_ms);
            registrations.push(ev.bytes().to_vec());
            let _ = ledger.handle_event(t0_ms, ev);
        }
        let index = authors
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id(), i))
            .collect();
        Self {
            ledger,
            authors,
            index,
            registrations,
            pending_ratings: Vec::new(),
            ratings_per_thought,
            per_slot: (rate / 1_000).max(1) as usize,
            seed_base,
            i: 0,
            content_bytes: 0,
            thoughts: 0,
        }
    }

    /// The events of one millisecond slot at `t`, in canonical order: the ratings owed for
    /// the previous slot's thoughts, then new thoughts (at most `max_thoughts`) to fill it.
    fn slot(&mut self, t: u64, max_thoughts: u64) -> Vec<Event> {
        let mut batch: Vec<Event> = Vec::with_capacity(self.per_slot);
        for (id, committee) in std::mem::take(&mut self.pending_ratings) {
            for m in committee.into_iter().take(self.ratings_per_thought) {
                if let Some(&r) = self.index.get(&m) {
                    let score = 700_000 + (self.i % 300_000) as u32;
                    batch.push(self.authors[r].validate(t, id, score));
                }
            }
        }
        let mut new_thoughts = Vec::new();
        while batch.len() < self.per_slot && self.thoughts < max_thoughts {
            let a = (self.i % self.authors.len() as u64) as usize;
            let content = sentence(self.seed_base * 1_000_000 + self.i);
            self.content_bytes += content.len() as u64;
            let ev = self.authors[a].thought(t, &content);
            new_thoughts.push(ev.id());
            batch.push(ev);
            self.thoughts += 1;
            self.i += 1;
        }
        batch.sort_by_key(Event::order_key);
        for ev in &batch {
            let _ = self.ledger.handle_event(t, ev.clone());
        }
        if self.ratings_per_thought > 0 {
            for id in new_thoughts {
                if let Some(e) = self.ledger.state().thought(&id) {
                    self.pending_ratings.push((id, e.committee.clone()));
                }
            }
        }
        batch
    }
}

fn workload(
    g: &Genesis,
    seed_base: u64,
    thoughts_wanted: usize,
    ratings_per_thought: usize,
    t0_ms: u64,
    rate: u64,
    max_events: usize,
) -> Workload {
    let mut gen = Generator::new(g, seed_base, ratings_per_thought, t0_ms, rate);
    let mut events = Vec::new();
    let mut slot = 0u64;
    while (gen.thoughts < thoughts_wanted as u64 || !gen.pending_ratings.is_empty())
        && events.len() < max_events
    {
        let t = t0_ms + 1 + slot;
        slot += 1;
        for ev in gen.slot(t, thoughts_wanted as u64) {
            if events.len() < max_events {
                events.push((ev.timestamp_ms(), ev.bytes().to_vec()));
            }
        }
    }
    Workload {
        registrations: gen.registrations,
        events,
        content_bytes: gen.content_bytes,
        thoughts: gen.thoughts,
    }
}

/// A live load for `secs` seconds: slots generated against the wall clock (each at most
/// `LEAD_MS` ahead of it) and posted every `POST_EVERY`, as a federation's members would.
/// Returns the events offered.
fn stream_load(
    node: &NodeProc,
    g: &Genesis,
    seed_base: u64,
    rate: u64,
    secs: u64,
    posted: &std::sync::atomic::AtomicU64,
) -> Result<u64, String> {
    use std::sync::atomic::Ordering;
    const LEAD_MS: u64 = 200;
    const POST_EVERY: Duration = Duration::from_millis(50);
    let start = now_ms();
    let mut gen = Generator::new(g, seed_base, g.committee_size as usize, start, rate);
    let mut batch = Vec::new();
    for r in &gen.registrations {
        frame(&mut batch, r);
    }
    node.post_events(&batch)?;
    let end = start + secs * 1_000;
    let mut t = start + 1;
    let mut offered = gen.registrations.len() as u64;
    let mut last_post = Instant::now();
    let mut batch = Vec::new();
    while t <= end {
        while t > now_ms() + LEAD_MS {
            std::thread::sleep(Duration::from_millis(1));
        }
        for ev in gen.slot(t, u64::MAX) {
            frame(&mut batch, ev.bytes());
            offered += 1;
        }
        t += 1;
        if last_post.elapsed() >= POST_EVERY {
            let v = node.post_events(&batch)?;
            if v["rejected"].as_u64().unwrap_or(0) > 0 {
                return Err(format!("events rejected: {v}"));
            }
            posted.store(offered, Ordering::Relaxed);
            batch.clear();
            last_post = Instant::now();
        }
    }
    if !batch.is_empty() {
        node.post_events(&batch)?;
    }
    Ok(offered)
}

/// Signs each new settled checkpoint the node shows with every key and posts the votes,
/// until `stop`. Returns the votes accepted.
fn vote_for(
    node: &NodeProc,
    network: &[u8; 32],
    keys: &[Keypair],
    stop: &std::sync::atomic::AtomicBool,
) -> Result<u64, String> {
    let mut last = None;
    let mut accepted = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let Some(cp) = node.get("/v1/checkpoint") else {
            continue;
        };
        let Some(hex_body) = cp["body"].as_str() else {
            continue;
        };
        let bytes = hex::decode(hex_body).map_err(|e| e.to_string())?;
        let body = VoteBody::decode(&bytes).map_err(|e| e.to_string())?;
        if last == Some(body.epoch) {
            continue;
        }
        last = Some(body.epoch);
        let mut batch = Vec::new();
        for k in keys {
            frame(&mut batch, &Vote::sign(k, network, body.clone()).encode());
        }
        let v = node.post_frames("/v1/votes", &batch)?;
        accepted += v["accepted"].as_u64().unwrap_or(0);
    }
    Ok(accepted)
}

fn frame(batch: &mut Vec<u8>, ev: &[u8]) {
    batch.extend_from_slice(&(ev.len() as u32).to_be_bytes());
    batch.extend_from_slice(ev);
}

/// Posts events in batches as fast as the node takes them, or paced by their timestamps
/// (never more than `lead_ms` ahead of the wall clock) when `paced`.
fn inject(
    node: &NodeProc,
    regs: &[Vec<u8>],
    events: &[(u64, Vec<u8>)],
    paced: bool,
) -> Result<u64, String> {
    let mut batch = Vec::new();
    for r in regs {
        frame(&mut batch, r);
    }
    node.post_events(&batch)?;
    let mut admitted = 0;
    for chunk in events.chunks(INGEST_BATCH) {
        if paced {
            let last = chunk.last().map_or(0, |(t, _)| *t);
            while last > now_ms() + 2_000 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let mut batch = Vec::with_capacity(chunk.len() * 400);
        for (_, e) in chunk {
            frame(&mut batch, e);
        }
        let v = node.post_events(&batch)?;
        admitted += v["admitted"].as_u64().unwrap_or(0);
        if v["rejected"].as_u64().unwrap_or(0) > 0 {
            return Err(format!("events rejected: {v}"));
        }
    }
    Ok(admitted)
}

// ---- the figures ----------------------------------------------------------------------------

/// One row of the report.
struct Row {
    figure: String,
    seed: String,
    goal: String,
    measured: String,
    floor: String,
}

fn row(figure: &str, seed: &str, goal: &str, measured: String, floor: String) -> Row {
    Row {
        figure: figure.into(),
        seed: seed.into(),
        goal: goal.into(),
        measured,
        floor,
    }
}

/// Submit on `from`, time until each of `to` reports it on its live feed (the max over
/// receivers: "visible on all others").
fn submit_latency(
    from: &NodeProc,
    to: &[&NodeProc],
    samples: usize,
    tag: u64,
    acks: &mut Vec<f64>,
) -> Result<Vec<f64>, String> {
    let feeds: Vec<_> = to.iter().map(|n| follow(n)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut out = Vec::with_capacity(samples);
    let mut early: Vec<HashMap<String, Instant>> = vec![HashMap::new(); to.len()];
    for i in 0..samples {
        let content = sentence(tag * 1_000_000 + i as u64);
        let t0 = Instant::now();
        let v = from.post_json("/v1/thoughts", &json!({ "content": content }))?;
        acks.push(ms(t0.elapsed()));
        let id = v["id"].as_str().ok_or("no id")?.to_string();
        let mut worst = Duration::ZERO;
        for (k, rx) in feeds.iter().enumerate() {
            let arrived = loop {
                if let Some(t) = early[k].remove(&id) {
                    break t;
                }
                let (got, at) = rx
                    .recv_timeout(Duration::from_secs(30))
                    .map_err(|_| format!("{} never showed {id}", to[k].name))?;
                if got == id {
                    break at;
                }
                early[k].insert(got, at);
            };
            worst = worst.max(arrived.saturating_duration_since(t0));
        }
        out.push(ms(worst));
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(out)
}

/// The bare gossipsub floor between the hosts of `a` and `b`.
fn gossip_floor(a: &Host, b: &Host, samples: usize) -> Result<Vec<f64>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let port = if b.ns.is_some() { 9000 } else { free_port() };
    let listen = format!("/ip4/{}/tcp/{port}", b.ip);
    let spawn = |h: &Host, args: &[String]| {
        let mut c = match &h.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        c.arg("bench-floor").args(args);
        c
    };
    let count = samples.to_string();
    let recv = spawn(
        b,
        &["--role", "recv", "--listen", &listen, "--count", &count].map(String::from),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    let mut send = spawn(
        a,
        &["--role", "send", "--peer", &listen, "--count", &count].map(String::from),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .map_err(|e| e.to_string())?;
    let out = recv.wait_with_output().map_err(|e| e.to_string())?;
    let _ = send.wait();
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("floor: {e}"))?;
    Ok(v["delays_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default())
}

/// Bare cost of one Ed25519 verification plus one SHA-256 of `content_len` bytes, in µs
/// (median of 5 rounds of 2,000), measured now, in this run.
fn bare_crypto_us(content_len: usize) -> f64 {
    let g = bench_genesis();
    let mut a = Author::from_seed(&g, 999_999);
    let content = "x".repeat(content_len.max(1));
    let evs: Vec<Event> = (0..2_000)
        .map(|i| a.next(i, Body::Thought(format!("{content}{i}"))))
        .collect();
    let network = g.network_id();
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for e in &evs {
            let ok = e.verify(&network);
            let h = sha2::Sha256::digest(content.as_bytes());
            std::hint::black_box((ok, h));
        }
        rounds.push(t.elapsed().as_secs_f64() * 1e6 / evs.len() as f64);
    }
    median_p99(&mut rounds).0
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!(
        "{cpu}, {cores} cores, {mem:.0} GiB, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// `web4fed bench`.
pub fn bench(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let tmp;
    let root = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let netns = if args.netns {
        Some(Netns::create(3)?)
    } else {
        None
    };
    let host = |i: usize| match &netns {
        Some(n) => Host {
            ns: Some(n.ns(i)),
            ip: Netns::ip(i),
        },
        None => Host {
            ns: None,
            ip: "127.0.0.1".into(),
        },
    };
    let where_ = if args.netns {
        "three network namespaces on a bridge (veth, 10.78.0.11-13)"
    } else {
        "loopback"
    };
    let g = bench_genesis();
    let genesis_path = root.join("genesis.toml");
    save_genesis(&genesis_path, &g)?;
    let names = ["legion", "thor", "sprout"];
    let mut nodes: Vec<NodeProc> = names
        .iter()
        .enumerate()
        .map(|(i, n)| NodeProc::new(&root, n, &genesis_path, host(i)))
        .collect::<Result<_, _>>()?;
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    eprintln!("bench: {where_}; nodes under {}", root.display());

    // -- 1. Latency: one receiver, light load; then three nodes. ---------------------------
    let first = nodes[0].addr();
    nodes[0].start(&[])?;
    nodes[1].start(std::slice::from_ref(&first))?;
    wait_until("two nodes connected", || {
        nodes[1]
            .status()
            .is_some_and(|s| s["peers_connected"] == 1 && s["members"] == 2)
    })?;
    std::thread::sleep(Duration::from_millis(1_500));
    let mut acks = Vec::new();
    let mut one = submit_latency(&nodes[0], &[&nodes[1]], args.samples, 1, &mut acks)?;
    let (m1, p1) = median_p99(&mut one);
    let (ack1, _) = median_p99(&mut acks);
    let mut floor = gossip_floor(&nodes[0].host, &nodes[1].host, args.samples)?;
    let (fm, fp) = median_p99(&mut floor);
    eprintln!("latency, one receiver: median {m1:.3} ms, p99 {p1:.3} ms (floor {fm:.3} / {fp:.3})");
    rows.push(row(
        &format!("submit → accepted and visible, one receiver, light load ({where_})"),
        "none",
        "median ≤ 0.8 ms, p99 ≤ 2 ms",
        format!("median {m1:.2} ms, p99 {p1:.2} ms ({} samples)", one.len()),
        format!(
            "bare signed gossipsub, same hosts, same run: median {fm:.2} ms, p99 {fp:.2} ms → ratio {:.1}× / {:.1}×; of the median, {ack1:.2} ms is the submit's own HTTP round trip (sign, judge, fsync)",
            m1 / fm,
            p1 / fp
        ),
    ));
    nodes[2].start(std::slice::from_ref(&first))?;
    wait_until("full mesh of three", || {
        nodes.iter().all(|n| {
            n.status()
                .is_some_and(|s| s["peers_connected"] == 2 && s["members"] == 3)
        })
    })?;
    std::thread::sleep(Duration::from_millis(1_500));
    let mut three = submit_latency(
        &nodes[0],
        &[&nodes[1], &nodes[2]],
        args.samples,
        2,
        &mut Vec::new(),
    )?;
    let (m3, p3) = median_p99(&mut three);
    eprintln!("latency, three nodes: median {m3:.3} ms, p99 {p3:.3} ms");
    rows.push(row(
        &format!("submit on one node → accepted and visible on both others, 3 nodes ({where_})"),
        "< 100 ms",
        "p99 < 10 ms",
        format!(
            "median {m3:.2} ms, p99 {p3:.2} ms ({} samples)",
            three.len()
        ),
        format!(
            "gossipsub floor above: median {fm:.2} ms → ratio {:.1}×",
            m3 / fm
        ),
    ));

    // -- 2. Trust / ATP change visible with equal roots on all nodes. ------------------------
    let mut agree_ms = Vec::new();
    for i in 0..args.samples.min(50) {
        let t0 = Instant::now();
        nodes[i % 3].post_json(
            "/v1/thoughts",
            &json!({ "content": sentence(3_000_000 + i as u64) }),
        )?;
        let (n, _) = nodes[i % 3].head().ok_or("status")?;
        let refs: Vec<&NodeProc> = nodes.iter().collect();
        wait_until("equal roots", || agree(&refs, n))?;
        agree_ms.push(ms(t0.elapsed()));
    }
    let (am, ap) = median_p99(&mut agree_ms);
    eprintln!("trust/ATP change → equal roots on all: median {am:.2} ms, p99 {ap:.2} ms");
    rows.push(row(
        "trust / ATP change (an accepted thought) → equal state roots on all 3 nodes",
        "< 1 s / < 2 s",
        "p99 < 50 ms",
        format!(
            "median {am:.2} ms, p99 {ap:.2} ms ({} samples, polling every 0.5 ms)",
            agree_ms.len()
        ),
        format!("the submit latency above: median {m3:.2} ms"),
    ));

    // -- The durable-commit floor: one event appended with fsync, as a submit does. ------------
    let fsync_ms = {
        let d = root.join("fsync-floor.db");
        let mut store = web4fed_store::Store::open(&d, &g)?;
        let mut a = Author::from_seed(&g, 77_777);
        let reg = a.register(&g, "floor", now_ms());
        store.append([&reg])?;
        let mut v = Vec::new();
        for i in 0..args.samples.min(200) {
            let ev = a.thought(now_ms(), &sentence(9_000_000 + i as u64));
            let t = Instant::now();
            store.append([&ev])?;
            v.push(ms(t.elapsed()));
        }
        median_p99(&mut v).0
    };
    eprintln!("durable commit floor (SQLite WAL, synchronous=FULL): median {fsync_ms:.3} ms");
    notes.push(format!(
        "Durable-commit floor on this disk, measured in the same run: appending one event to the \
         SQLite log (WAL, `synchronous=FULL`) takes a median {fsync_ms:.2} ms. A submit is \
         acknowledged only after that commit, and the receiver commits before it shows the event, \
         so two such commits sit on the latency path."
    ));

    // -- 3. PoW verification (in this process). -------------------------------------------------
    let network = g.network_id();
    let member = Author::from_seed(&g, 4242).id();
    let pow = web4fed_core::pow::mine(&network, &member, g.pow_bits);
    let t = Instant::now();
    let reps = 200_000u32;
    for _ in 0..reps {
        std::hint::black_box(web4fed_core::pow::verify(&network, &member, pow, g.pow_bits).is_ok());
    }
    let pow_ns = t.elapsed().as_nanos() as f64 / f64::from(reps);
    rows.push(row(
        "PoW verification",
        "< 10 ms",
        "< 5 µs",
        format!("{pow_ns:.0} ns (mean of {reps}; `cargo bench -p web4fed-core --bench core` gives the criterion median)"),
        "one SHA-256 of 73 bytes".into(),
    ));

    // -- 4. Corpus sync: Sprout stopped, the others take N thoughts, Sprout catches up. -------
    nodes[2].stop();
    let t0_ms = now_ms();
    let w = workload(&g, SEED_CORPUS, args.corpus, 0, t0_ms, 200_000, args.corpus);
    let expected = nodes[0].events() + w.registrations.len() as u64 + w.events.len() as u64;
    inject(&nodes[0], &w.registrations, &w.events, false)?;
    {
        let refs: Vec<&NodeProc> = nodes[..2].iter().collect();
        wait_every("Legion and Thor to hold the corpus", LONG_POLL, || {
            agree(&refs, expected)
        })?;
    }
    let synced_before = nodes[0].metric("web4fed_sync_bytes_total");
    let t = Instant::now();
    nodes[2].start(std::slice::from_ref(&first))?;
    let api_up = t.elapsed();
    let refs: Vec<&NodeProc> = nodes.iter().collect();
    let caught = wait_every("Sprout to catch up", LONG_POLL, || agree(&refs, expected))?;
    let total = api_up + caught;
    let bytes = nodes[2].metric("web4fed_sync_bytes_total");
    let _ = synced_before;
    eprintln!(
        "corpus sync {} thoughts: {:.0} ms from process start ({:.0} ms after its API was up), {:.1} MB",
        w.thoughts,
        ms(total),
        ms(caught),
        bytes / 1e6
    );
    rows.push(row(
        &format!(
            "corpus sync: a node {} thoughts behind catches up (equal roots)",
            w.thoughts
        ),
        "< 5 s",
        "< 1 s",
        format!(
            "{:.0} ms from process start ({:.0} ms after its API answered)",
            ms(total),
            ms(caught)
        ),
        format!(
            "{:.1} MB of events synced → {:.1} MB/s",
            bytes / 1e6,
            bytes / 1e6 / total.as_secs_f64()
        ),
    ));
    // Memory with the full corpus.
    let corpus_live = nodes[0]
        .status()
        .map_or(0, |s| s["corpus"].as_u64().unwrap_or(0));
    let rss: Vec<String> = nodes
        .iter()
        .map(|n| format!("{} {:.1} MB", n.name, n.rss_mb().unwrap_or(f64::NAN)))
        .collect();
    let max_rss = nodes
        .iter()
        .filter_map(NodeProc::rss_mb)
        .fold(0.0f64, f64::max);
    rows.push(row(
        &format!("memory per node with a {corpus_live}-thought corpus (RSS)"),
        "none",
        "< 64 MB",
        format!("max {max_rss:.1} MB ({})", rss.join(", ")),
        format!("corpus content {:.1} MB", w.content_bytes as f64 / 1e6),
    ));

    // -- 5. Partition heal: Legion alone takes N thoughts, Thor+Sprout another N. -------------
    let base = nodes[0].events();
    nodes[0].stop();
    let side_a = workload(
        &g,
        SEED_HEAL_A,
        args.corpus,
        0,
        now_ms(),
        200_000,
        args.corpus,
    );
    let side_b = workload(
        &g,
        SEED_HEAL_B,
        args.corpus,
        0,
        now_ms(),
        200_000,
        args.corpus,
    );
    let ev_a = base + (side_a.registrations.len() + side_a.events.len()) as u64;
    let ev_b = base + (side_b.registrations.len() + side_b.events.len()) as u64;
    // The partition: Legion comes back on a new port with no peers, so Thor and Sprout
    // (redialling its old address) cannot reach it and it knows none of them, until it is
    // told to dial Thor. (`tests/hosts.rs` partitions with nftables instead.)
    if nodes[0].host.ns.is_none() {
        nodes[0].p2p = free_port();
    } else {
        nodes[0].p2p = 8001;
    }
    nodes[0].start(&[])?;
    inject(&nodes[0], &side_a.registrations, &side_a.events, false)?;
    inject(&nodes[1], &side_b.registrations, &side_b.events, false)?;
    wait_every("side A", LONG_POLL, || nodes[0].events() == ev_a)?;
    {
        let refs: Vec<&NodeProc> = nodes[1..].iter().collect();
        wait_every("side B", LONG_POLL, || agree(&refs, ev_b))?;
    }
    let bytes_before: f64 = nodes
        .iter()
        .map(|n| n.metric("web4fed_sync_bytes_total"))
        .sum();
    let total_events = base
        + (side_a.registrations.len()
            + side_a.events.len()
            + side_b.registrations.len()
            + side_b.events.len()) as u64;
    let refs: Vec<&NodeProc> = nodes.iter().collect();
    let t = Instant::now();
    nodes[0].post_json("/v1/peers", &json!({ "addr": nodes[1].addr() }))?;
    wait_every("one root after the heal", LONG_POLL, || {
        agree(&refs, total_events)
    })?;
    let healed = t.elapsed();
    let moved: f64 = nodes
        .iter()
        .map(|n| n.metric("web4fed_sync_bytes_total"))
        .sum::<f64>()
        - bytes_before;
    eprintln!(
        "heal {}+{} divergent thoughts: {:.0} ms, {:.1} MB synced",
        side_a.thoughts,
        side_b.thoughts,
        ms(healed),
        moved / 1e6
    );
    rows.push(row(
        &format!(
            "partition heal: {} divergent thoughts per side → one root on all 3",
            args.corpus
        ),
        "< 30 s",
        "< 2 s",
        format!("{:.0} ms from the reconnect", ms(healed)),
        format!(
            "{:.1} MB had to move (sync) → {:.1} MB/s, and every node re-folds the merged log of {} events",
            moved / 1e6,
            moved / 1e6 / healed.as_secs_f64(),
            total_events
        ),
    ));

    // -- 6. Sustained throughput, full validation and durable store on all three. -------------
    // Generated before the clock starts (so the figure is what the nodes sustain, not what a
    // generator produces), dated to start just after generation ends, and posted no more
    // than 2 s ahead of the clock: the nodes see events dated "now", as from live members.
    let calib = Instant::now();
    let probe = workload(
        &g,
        SEED_PROBE,
        usize::MAX,
        3,
        now_ms(),
        args.throughput_rate,
        2_000,
    );
    let per_event = calib.elapsed().as_secs_f64() / probe.events.len().max(1) as f64;
    let gen_ms = (per_event * args.throughput_events as f64 * 1.3 * 1e3) as u64;
    let thr = workload(
        &g,
        SEED_THROUGHPUT,
        usize::MAX,
        g.committee_size as usize,
        now_ms() + gen_ms + 2_000,
        args.throughput_rate,
        args.throughput_events,
    );
    let start_events: Vec<u64> = nodes.iter().map(NodeProc::events).collect();
    let cpu_before: Vec<f64> = nodes.iter().map(|n| n.cpu_s().unwrap_or(0.0)).collect();
    let n_events = (thr.registrations.len() + thr.events.len()) as u64;
    let content_avg = thr.content_bytes / thr.thoughts.max(1);
    let perf = match &args.perf {
        Some(_) => {
            let data = root.join("thor.perf.data");
            let pid = nodes[1].pid().ok_or("thor not running")?.to_string();
            Some((
                Command::new("perf")
                    .args(["record", "-F", "999", "-g", "-p", &pid, "-o"])
                    .arg(&data)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
                data,
            ))
        }
        None => None,
    };
    // The clock starts when the first events may be posted (their dates within 2 s).
    let first_date = thr.events.first().map_or(0, |(t, _)| *t);
    while first_date > now_ms() + 2_000 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let t = Instant::now();
    let injector = {
        let (regs, evs) = (thr.registrations.clone(), thr.events.clone());
        let target = nodes[0].handle();
        std::thread::spawn(move || inject(&target, &regs, &evs, true))
    };
    // Every second: events held by each node.
    let mut series: Vec<Vec<(f64, u64)>> = vec![Vec::new(); 3];
    let done_at = loop {
        std::thread::sleep(Duration::from_millis(1_000));
        let el = t.elapsed().as_secs_f64();
        let mut all = true;
        for (k, n) in nodes.iter().enumerate() {
            let e = n.events().saturating_sub(start_events[k]);
            series[k].push((el, e));
            all &= e >= n_events;
        }
        if all {
            break t.elapsed();
        }
        if t.elapsed() > DEADLINE {
            return Err("throughput run did not finish".into());
        }
    };
    injector.join().map_err(|_| "injector panicked")??;
    if let (Some((mut rec, data)), Some(out)) = (perf, &args.perf) {
        let _ = Command::new("kill")
            .args(["-INT", &rec.id().to_string()])
            .status();
        let _ = rec.wait();
        let report = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--percent-limit",
                "1.5",
                "-i",
            ])
            .arg(&data)
            .output()?;
        std::fs::write(out, &report.stdout)?;
        eprintln!(
            "perf report of Thor during the throughput run: {}",
            out.display()
        );
    }
    let rate_all = n_events as f64 / done_at.as_secs_f64();
    let cpu_after: Vec<f64> = nodes.iter().map(|n| n.cpu_s().unwrap_or(0.0)).collect();
    let per_event_us: Vec<f64> = (0..3)
        .map(|k| (cpu_after[k] - cpu_before[k]) * 1e6 / n_events as f64)
        .collect();
    let bare = bare_crypto_us(content_avg as usize);
    let recv_us = per_event_us[1].max(per_event_us[2]);
    let peak: Vec<f64> = series
        .iter()
        .map(|s| {
            s.windows(2)
                .map(|w| (w[1].1 - w[0].1) as f64 / (w[1].0 - w[0].0))
                .fold(0.0, f64::max)
        })
        .collect();
    eprintln!(
        "throughput: {n_events} events in {:.1} s = {rate_all:.0}/s on every node (offered {}/s); CPU/event {:?} µs; bare {bare:.1} µs",
        done_at.as_secs_f64(),
        args.throughput_rate,
        per_event_us
    );
    rows.push(row(
        &format!(
            "sustained event throughput, 3 nodes on this machine, full validation + durable store ({} thoughts and {} ratings from {LOAD_MEMBERS} members, dated {}/s and posted to one node as fast as it takes them, never more than 2 s ahead of their dates)",
            thr.thoughts,
            n_events - thr.thoughts - LOAD_MEMBERS,
            args.throughput_rate,
        ),
        "none",
        "≥ 5,000 events/s accepted on every node",
        format!(
            "{rate_all:.0} events/s until the last node held all {n_events} ({:.1} s); best second per node {:.0} / {:.0} / {:.0}",
            done_at.as_secs_f64(),
            peak[0],
            peak[1],
            peak[2]
        ),
        "2 cores shared by the 3 nodes and the injector".into(),
    ));
    rows.push(row(
        "per-event CPU cost on a receiving node (user+system CPU / events, same run)",
        "none",
        "≤ 3× one Ed25519 verify + one SHA-256 of the content",
        format!(
            "{recv_us:.1} µs (Thor {:.1}, Sprout {:.1}; Legion, which also serves the injector, {:.1})",
            per_event_us[1], per_event_us[2], per_event_us[0]
        ),
        format!(
            "bare verify + SHA-256 of {content_avg} B measured now: {bare:.1} µs → ratio {:.2}×",
            recv_us / bare
        ),
    ));

    // -- 7. Sustained run: rate in the first minute against the last. -------------------------
    if args.sustain_secs > 0 {
        let start: Vec<u64> = nodes.iter().map(NodeProc::events).collect();
        let t = Instant::now();
        let target = nodes[0].handle();
        let (g2, rate, secs) = (g.clone(), args.sustain_rate, args.sustain_secs);
        let posted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let posted2 = posted.clone();
        let injector_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let injector = std::thread::spawn(move || {
            stream_load(&target, &g2, SEED_SUSTAIN, rate, secs, &posted2)
        });
        // The load members have no nodes; without their votes no checkpoint reaches two
        // thirds of the trust, nothing becomes final and no history can leave memory. They
        // vote as any member without a node does: sign the body a node shows.
        let voter = {
            let target = nodes[0].handle();
            let g = &g;
            let keys: Vec<Keypair> = [
                SEED_CORPUS,
                SEED_HEAL_A,
                SEED_HEAL_B,
                SEED_THROUGHPUT,
                SEED_SUSTAIN,
            ]
            .iter()
            .flat_map(|b| (0..LOAD_MEMBERS).map(move |i| Author::from_seed(g, b + i).keypair))
            .collect();
            let network = g.network_id();
            let stop = injector_done.clone();
            std::thread::spawn(move || vote_for(&target, &network, &keys, &stop))
        };
        // (elapsed s, events held by the slowest node, events posted)
        let mut samples: Vec<(f64, u64, u64)> = Vec::new();
        // (elapsed s, largest RSS of the three in MB, most events held in memory by one node)
        let mut memory: Vec<(f64, f64, u64)> = Vec::new();
        while !injector.is_finished() {
            std::thread::sleep(Duration::from_secs(5));
            let rss = nodes
                .iter()
                .filter_map(NodeProc::rss_mb)
                .fold(0.0, f64::max);
            let in_memory = nodes
                .iter()
                .filter_map(|n| n.status()?["events_in_memory"].as_u64())
                .max()
                .unwrap_or(0);
            memory.push((t.elapsed().as_secs_f64(), rss, in_memory));
            let held = nodes
                .iter()
                .enumerate()
                .map(|(k, n)| n.events().saturating_sub(start[k]))
                .min()
                .unwrap_or(0);
            let p = posted.load(std::sync::atomic::Ordering::Relaxed);
            samples.push((t.elapsed().as_secs_f64(), held, p));
        }
        let offered = injector.join().map_err(|_| "injector panicked")??;
        injector_done.store(true, std::sync::atomic::Ordering::Relaxed);
        let votes = voter.join().map_err(|_| "voter panicked")??;
        // RSS and events in memory each minute: flat once history is pruned.
        let per_minute: Vec<String> = memory
            .iter()
            .filter(|m| m.0 >= 55.0)
            .step_by(12)
            .map(|(s, rss, mem)| {
                format!("{:.0} min: {rss:.0} MB, {mem} events in memory", s / 60.0)
            })
            .collect();
        eprintln!("sustained memory: {}", per_minute.join("; "));
        notes.push(format!(
            "Sustained run, largest node RSS and most events held in memory each minute \
             ({votes} votes signed for the load members through `POST /v1/votes`): {}.",
            per_minute.join("; ")
        ));
        let rate_between = |from: f64, to: f64, col: usize| {
            let a = samples.iter().find(|s| s.0 >= from);
            let b = samples.iter().rev().find(|s| s.0 <= to);
            let v = |s: &(f64, u64, u64)| if col == 1 { s.1 } else { s.2 };
            match (a, b) {
                (Some(a), Some(b)) if b.0 > a.0 => v(b).saturating_sub(v(a)) as f64 / (b.0 - a.0),
                _ => f64::NAN,
            }
        };
        let end = samples.last().map_or(0.0, |s| s.0);
        let first = rate_between(0.0, 60.0, 1);
        let last = rate_between(end - 60.0, end, 1);
        let posted_first = rate_between(0.0, 60.0, 2);
        let posted_last = rate_between(end - 60.0, end, 2);
        let rss: Vec<String> = nodes
            .iter()
            .map(|n| format!("{:.0}", n.rss_mb().unwrap_or(f64::NAN)))
            .collect();
        let cpu: Vec<String> = nodes
            .iter()
            .map(|n| format!("{:.0}", n.cpu_s().unwrap_or(f64::NAN)))
            .collect();
        eprintln!("sustained: first minute {first:.0}/s, last {last:.0}/s; RSS {rss:?} MB");
        rows.push(row(
            &format!(
                "sustained for {} s, {:.0} events/s offered live (thoughts at {}/s and their committees' ratings, paced by the clock): events/s on the slowest node, first minute vs last",
                args.sustain_secs,
                offered as f64 / args.sustain_secs as f64,
                args.sustain_rate
            ),
            "none",
            "last minute within 10 % of the first",
            format!(
                "first {first:.0}/s, last {last:.0}/s ({:+.1} %); {offered} events offered; RSS after: {} MB; CPU s used: {}",
                (last - first) / first * 100.0,
                rss.join(" / "),
                cpu.join(" / ")
            ),
            format!("posted by the generator: first minute {posted_first:.0}/s, last {posted_last:.0}/s"),
        ));
    } else {
        notes
            .push("The 10-minute sustained run was skipped (`--sustain-secs 600` runs it).".into());
    }

    // -- report ---------------------------------------------------------------------------------
    let cmdline: Vec<String> = std::env::args().collect();
    let mut md = String::new();
    md.push_str(&format!(
        "## {}\n\nMachine: {}. Commit `{}`. Command: `{}`. Date (UTC): {}.\n\n",
        if args.netns {
            "Three hosts: network namespaces on a bridge (veth)"
        } else {
            "Loopback"
        },
        machine(),
        commit(),
        cmdline.join(" "),
        utc_now()
    ));
    md.push_str(
        "| figure | seed target | our goal | measured | floor / ratio |\n|---|---|---|---|---|\n",
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.figure, r.seed, r.goal, r.measured, r.floor
        ));
    }
    for n in &notes {
        md.push_str(&format!("\n{n}\n"));
    }
    println!("{md}");
    if let Some(out) = &args.out {
        std::fs::write(out, &md)?;
        eprintln!("written to {}", out.display());
    }
    for n in &mut nodes {
        n.stop();
    }
    drop(netns);
    Ok(())
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
