//! The measurements that are not a phase of their own (submit latency, the gossip floor, bare
//! crypto cost) and the report's rows and context (machine, commit, date).

use super::procs::{follow, Host, NodeProc};
use super::*;

// ---- the figures ----------------------------------------------------------------------------

/// One row of the report.
pub(super) struct Row {
    pub figure: String,
    pub seed: String,
    pub goal: String,
    pub measured: String,
    pub floor: String,
}

pub(super) fn row(figure: &str, seed: &str, goal: &str, measured: String, floor: String) -> Row {
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
pub(super) fn submit_latency(
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
pub(super) fn gossip_floor(a: &Host, b: &Host, samples: usize) -> Result<Vec<f64>, String> {
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
pub(super) fn bare_crypto_us(content_len: usize) -> f64 {
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

pub(super) fn machine() -> String {
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

pub(super) fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// `web4fed bench`.
pub(super) fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Finality figures of a span of checkpoints, read from every node.
pub(super) struct FinalitySamples {
    /// Per certificate and node: ms from the checkpoint epoch's end until the node adopted it.
    pub latency_ms: Vec<f64>,
    /// Certificates of the span each node holds.
    pub held: Vec<usize>,
    /// Checkpoints whose epoch ended in the span.
    pub expected: usize,
}

/// Finality latency on each node (from `GET /v1/finality`) for every certificate whose
/// checkpoint epoch ended in `[first_end, until_ms]`.
pub(super) fn finality_samples(
    nodes: &[NodeProc],
    g: &Genesis,
    first_end: u64,
    until_ms: u64,
) -> Result<FinalitySamples, Box<dyn std::error::Error>> {
    let every_ms = g.epoch_ms * g.finality_every_epochs;
    // A checkpoint epoch e (a multiple of `finality_every_epochs`) ends at (e + 1)·epoch_ms.
    let expected = (first_end.div_ceil(g.epoch_ms)..=until_ms / g.epoch_ms)
        .filter(|end_epoch| (end_epoch * g.epoch_ms) % every_ms == g.epoch_ms % every_ms)
        .count();
    let mut lat = Vec::new();
    let mut held = Vec::new();
    for n in nodes {
        let v = n.get("/v1/finality?limit=1000").ok_or("GET /v1/finality")?;
        let mut count = 0;
        for c in v["certificates"].as_array().into_iter().flatten() {
            let (Some(end), Some(adopted)) = (c["epoch_end_ms"].as_u64(), c["adopted_ms"].as_u64())
            else {
                continue;
            };
            if end < first_end || end > until_ms {
                continue;
            }
            count += 1;
            lat.push(adopted.saturating_sub(end) as f64);
        }
        held.push(count);
    }
    Ok(FinalitySamples {
        latency_ms: lat,
        held,
        expected,
    })
}
