//! Measuring a victim node while an attack runs against it: its peak memory, its slowest API
//! answer, its CPU, whether honest thoughts still reach it and how fast, whether the honest
//! nodes keep one root and finality keeps advancing, and how fast it stops on SIGTERM.

use crate::node::rss_mb_of;
use crate::{wait_every, Node};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the victim's API and memory are sampled during a siege.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);
/// How often an honest node posts a thought during a siege (two honest nodes alternate, so
/// each stays well inside the default rate limit of ten thoughts a minute).
pub const HONEST_EVERY: Duration = Duration::from_secs(2);
/// Longest an honest thought is waited for on the victim before it counts as lost.
pub const DELIVERY_GIVE_UP: Duration = Duration::from_secs(10);
/// How long the victim is watched after the attacker stops.
pub const AFTERMATH: Duration = Duration::from_secs(2);

/// What a siege measured on the victim.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Measured {
    /// The attack class.
    pub class: String,
    /// Resident memory before the attack, MB.
    pub rss_before_mb: f64,
    /// Peak resident memory during and after the attack, MB.
    pub peak_rss_mb: f64,
    /// Slowest `GET /v1/status` answer, ms (a probe that got no answer counts as its timeout).
    pub worst_api_ms: f64,
    /// Probes of the API that got no answer.
    pub api_failures: u64,
    /// CPU seconds the victim used while under attack, per second of attack.
    pub cpu_cores: f64,
    /// Honest thoughts posted on other nodes during the attack.
    pub honest_sent: u64,
    /// Of those, how many reached the victim.
    pub honest_delivered: u64,
    /// Slowest delivery to the victim, ms.
    pub worst_delivery_ms: f64,
    /// The victim's final epoch before and after.
    pub final_before: Option<u64>,
    /// The victim's final epoch once finality advanced after the attack (None: it did not).
    pub final_after: Option<u64>,
    /// Whether every honest node (victim included) held one state root afterwards.
    pub roots_agree: bool,
    /// Time from SIGTERM to exit, ms (None: it did not exit within the deadline).
    pub stop_ms: Option<f64>,
    /// The victim's `/v1/status` once the attack was over (its pools, counts, members).
    pub victim_status: Value,
    /// The victim's `/v1/state` once the attack was over (every account as it sees it).
    pub victim_state: Value,
    /// Entries in the victim's peer list once the attack was over.
    pub peers_listed: u64,
    /// The attacker's own report (its JSON), or its error.
    pub attack: Value,
}

/// Runs `attack` (a `web4fed attack ...` command) against `victim` while `honest` nodes post
/// thoughts, measures the victim, then stops it with SIGTERM.
pub fn besiege(victim: &mut Node, honest: &[&Node], class: &str, mut attack: Command) -> Measured {
    let mut m = Measured {
        class: class.into(),
        rss_before_mb: victim.rss_mb().unwrap_or(0.0),
        final_before: victim.final_epoch(),
        ..Default::default()
    };
    let cpu0 = victim.cpu_s().unwrap_or(0.0);
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let probe = victim.handle();
    let pid = victim.pid();
    let (attack_out, probes, delivery) = std::thread::scope(|s| {
        let prober = s.spawn(|| probe_api(&probe, pid, &done));
        let poster = s.spawn(|| post_honest(&probe, honest, &done));
        let out = attack
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output();
        let end = Instant::now() + AFTERMATH;
        while Instant::now() < end {
            std::thread::sleep(PROBE_EVERY);
        }
        done.store(true, Ordering::SeqCst);
        let probes = prober.join().unwrap_or_default();
        let delivery = poster.join().unwrap_or_default();
        (out, probes, delivery)
    });
    let attack_secs = started.elapsed().as_secs_f64();
    m.cpu_cores = (victim.cpu_s().unwrap_or(cpu0) - cpu0) / attack_secs.max(1e-3);
    m.attack = match attack_out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| json!({ "error": format!("report is not JSON: {e}") })),
        Ok(o) => json!({ "error": String::from_utf8_lossy(&o.stderr).trim().to_string() }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    (m.peak_rss_mb, m.worst_api_ms, m.api_failures) = probes;
    m.peak_rss_mb = m.peak_rss_mb.max(m.rss_before_mb);
    (m.honest_sent, m.honest_delivered, m.worst_delivery_ms) = delivery;
    let mut all: Vec<&Node> = honest.to_vec();
    all.push(victim);
    m.roots_agree = wait_every("one root after the attack", PROBE_EVERY, || {
        crate::agree(&all, None)
    })
    .is_ok();
    let before = m.final_before;
    let mut seen = None;
    let _ = wait_every("finality to advance", PROBE_EVERY, || {
        seen = victim.final_epoch();
        seen > before
    });
    m.final_after = seen.filter(|f| Some(*f) > before);
    m.victim_status = victim.status().unwrap_or(Value::Null);
    m.victim_state = victim.get("/v1/state").unwrap_or(Value::Null);
    m.peers_listed = victim
        .get("/v1/peers")
        .and_then(|p| p["peers"].as_array().map(|a| a.len() as u64))
        .unwrap_or(0);
    let t = Instant::now();
    m.stop_ms = victim.terminate().then(|| t.elapsed().as_secs_f64() * 1e3);
    m
}

/// Samples the victim's API latency and memory until `done`: (peak RSS MB, worst ms,
/// failures).
fn probe_api(victim: &Node, pid: Option<u32>, done: &AtomicBool) -> (f64, f64, u64) {
    let (mut peak, mut worst, mut failures) = (0.0f64, 0.0f64, 0);
    while !done.load(Ordering::SeqCst) {
        let t = Instant::now();
        if victim.status().is_none() {
            failures += 1;
        }
        worst = worst.max(t.elapsed().as_secs_f64() * 1e3);
        if let Some(rss) = pid.and_then(rss_mb_of) {
            peak = peak.max(rss);
        }
        std::thread::sleep(PROBE_EVERY);
    }
    (peak, worst, failures)
}

/// Posts a thought on an honest node every [`HONEST_EVERY`] (alternating) until `done`, and
/// waits for each on the victim: (sent, delivered, worst delivery ms).
fn post_honest(victim: &Node, honest: &[&Node], done: &AtomicBool) -> (u64, u64, f64) {
    let (mut sent, mut delivered, mut worst) = (0u64, 0u64, 0.0f64);
    let mut i = 0usize;
    while !done.load(Ordering::SeqCst) && !honest.is_empty() {
        let author = honest[i % honest.len()];
        i += 1;
        let content = format!("honest thought {i} during the siege of {}", victim.name);
        let Ok(v) = author.post_json("/v1/thoughts", &json!({ "content": content })) else {
            std::thread::sleep(HONEST_EVERY);
            continue;
        };
        let Some(id) = v["id"].as_str().map(str::to_string) else {
            continue;
        };
        sent += 1;
        let t = Instant::now();
        while t.elapsed() < DELIVERY_GIVE_UP {
            let held = victim.get("/v1/thoughts?limit=1000").is_some_and(|l| {
                l["thoughts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["id"] == id.as_str()))
            });
            if held {
                delivered += 1;
                worst = worst.max(t.elapsed().as_secs_f64() * 1e3);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let rest = HONEST_EVERY.saturating_sub(t.elapsed());
        std::thread::sleep(rest);
    }
    (sent, delivered, worst)
}
