//! `web4fed bench --nodes N`: what a federation of N real processes on this machine costs and
//! how fast it converges. Every node is started the way an operator would start it: the
//! first on its own, the second told of the first, every other told of the first two only;
//! peer exchange and each node's bounded neighbour set do the rest. For each N:
//! - **membership**: time from the last start until every node lists N members;
//! - **idle CPU**: after the federation has settled (presence events included, which start a
//!   minute after registration), the CPU of all N processes over a span, in cores and per
//!   node (utime + stime from /proc);
//! - **delivery**: one thought posted on each of five nodes at once; the time until every
//!   node's live feed showed all five (p50 / p99 / max over nodes);
//! - **agreement and finality**: the first checkpoint after the posts is certified on every
//!   node with one root, and finality latency (epoch end → certificate held) over the run.

use super::figures::{commit, finality_samples, machine, utc_now};
use super::procs::follow;
use super::*;

/// Nodes posting in the delivery figure.
const POSTERS: usize = 5;
/// Time the live feeds are given to connect before the posts (a feed that connects late
/// would miss the thoughts it is waiting for).
const FEEDS_SETTLE: Duration = Duration::from_millis(500);
/// Checkpoints ending this soon after the first start are left out of the finality figure:
/// nodes are still starting and registering then.
const FINALITY_SKIP_MS: u64 = 20_000;
/// Longest wait for the live feeds to show the five thoughts on every node.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

/// One federation size's figures.
struct Scale {
    n: usize,
    members_s: f64,
    cores: f64,
    rss_mb: f64,
    delivery: (f64, f64, f64),
    finality: (f64, f64),
    certified: String,
    agree: bool,
    connected: (usize, usize, f64),
}

pub(super) fn run(args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut rows = Vec::new();
    for &n in &args.nodes {
        eprintln!("scale: {n} nodes");
        rows.push(one(args, n)?);
    }
    let cmdline: Vec<String> = std::env::args().collect();
    let mut md = format!(
        "## Scale: N real processes on one machine\n\nMachine: {}. Commit `{}`. Command: `{}`. Date (UTC): {}.\n\n\
         Each node started as an operator would: the first alone, the second told of the first, every other told of the first two only. \
         Idle CPU: all N processes over {} s, {} s after the last start (presence events included). \
         Delivery: one thought posted on each of {POSTERS} nodes at once, until every node's live feed showed all {POSTERS}. \
         Finality: checkpoint epoch end until each node held the certificate, over the run.\n\n\
         | nodes | all members known | neighbours min / max / mean | idle CPU, whole federation | per node | RSS per node | delivery to all, p50 / p99 / max over nodes | one certified root | finality p50 / p99 | certified (fewest per node / checkpoints) |\n|---|---|---|---|---|---|---|---|---|---|\n",
        machine(),
        commit(),
        cmdline.join(" "),
        utc_now(),
        args.scale_idle_secs,
        args.scale_settle_secs,
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {:.1} s | {} / {} / {:.1} | {:.3} cores | {:.1} ms/s | {:.0} MB | {:.0} / {:.0} / {:.0} ms | {} | {:.0} / {:.0} ms | {} |\n",
            r.n,
            r.members_s,
            r.connected.0,
            r.connected.1,
            r.connected.2,
            r.cores,
            r.cores * 1000.0 / r.n as f64,
            r.rss_mb,
            r.delivery.0,
            r.delivery.1,
            r.delivery.2,
            if r.agree { "yes" } else { "NO" },
            r.finality.0,
            r.finality.1,
            r.certified,
        ));
    }
    print!("{md}");
    if let Some(out) = &args.out {
        std::fs::write(out, &md)?;
        eprintln!("scale: wrote {}", out.display());
    }
    Ok(())
}

fn one(args: &BenchArgs, n: usize) -> Result<Scale, Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().to_path_buf();
    // Every node a founder: every member carries voting weight from the start, the case
    // in which the validator committee (`max_validators`), not the member count, must bound
    // what the agreement costs. Keys first, so that the genesis can name them.
    let founders = (0..n)
        .map(|i| crate::commands::founder_key(&root.join(format!("n{i}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let g = Genesis {
        network_name: format!("web4fed-scale-{n}"),
        founders,
        genesis_time_ms: web4fed_node::now_ms(),
        ..Genesis::with_pow_bits(8)
    };
    let genesis_path = root.join("genesis.toml");
    save_genesis(&genesis_path, &g)?;
    let host = Host {
        ns: None,
        ip: "127.0.0.1".into(),
    };
    let mut nodes: Vec<NodeProc> = (0..n)
        .map(|i| NodeProc::new(&root, &format!("n{i}"), &genesis_path, host.clone()))
        .collect::<Result<_, _>>()?;
    let seeds: Vec<String> = nodes.iter().take(2).map(|x| x.addr()).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        node.start(&seeds[..i.min(2)])?;
    }
    let started = Instant::now();
    let all: Vec<&NodeProc> = nodes.iter().collect();
    wait_every("every node lists every member", LONG_POLL, || {
        all.iter().all(|x| {
            x.status()
                .and_then(|s| s["members"].as_u64())
                .is_some_and(|m| m == n as u64)
        })
    })?;
    let members_s = started.elapsed().as_secs_f64();
    eprintln!("scale: {n} nodes know every member after {members_s:.1} s");
    let settle = Duration::from_secs(args.scale_settle_secs);
    std::thread::sleep(settle.saturating_sub(started.elapsed()));
    let cpu = |nodes: &[NodeProc]| -> f64 { nodes.iter().filter_map(|x| x.cpu_s()).sum() };
    let (c0, t0) = (cpu(&nodes), Instant::now());
    std::thread::sleep(Duration::from_secs(args.scale_idle_secs));
    let cores = (cpu(&nodes) - c0) / t0.elapsed().as_secs_f64();
    let rss: Vec<f64> = nodes.iter().filter_map(|x| x.rss_mb()).collect();
    let rss_mb = rss.iter().sum::<f64>() / rss.len().max(1) as f64;
    let conn: Vec<usize> = nodes
        .iter()
        .filter_map(|x| x.status()?["peers_connected"].as_u64())
        .map(|c| c as usize)
        .collect();
    let connected = (
        conn.iter().copied().min().unwrap_or(0),
        conn.iter().copied().max().unwrap_or(0),
        conn.iter().sum::<usize>() as f64 / conn.len().max(1) as f64,
    );
    eprintln!("scale: idle {cores:.3} cores; neighbours {connected:?}");

    // Delivery: five thoughts at once, on nodes spread over the start order.
    let feeds: Vec<_> = nodes.iter().map(follow).collect();
    std::thread::sleep(FEEDS_SETTLE);
    let posters: Vec<usize> = (0..POSTERS).map(|k| k * (n - 1) / (POSTERS - 1)).collect();
    let posted_at = now_ms();
    let t_post = Instant::now();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = posters
            .iter()
            .enumerate()
            .map(|(k, &p)| {
                let node = &nodes[p];
                s.spawn(move || {
                    node.post_json(
                        "/v1/thoughts",
                        &json!({ "content": sentence(7_000_000 + k as u64) }),
                    )
                    .ok()
                    .and_then(|v| v["id"].as_str().map(String::from))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect::<Option<Vec<_>>>()
    })
    .ok_or("a post was refused")?;
    let mut per_node = Vec::with_capacity(n);
    for (k, rx) in feeds.iter().enumerate() {
        let mut missing: std::collections::HashSet<&String> = ids.iter().collect();
        let mut last = Duration::ZERO;
        while !missing.is_empty() {
            let left = DELIVERY_DEADLINE.saturating_sub(t_post.elapsed());
            let (id, at) = rx
                .recv_timeout(left)
                .map_err(|_| format!("n{k} did not show all {POSTERS} thoughts"))?;
            if missing.remove(&id) {
                last = last.max(at.saturating_duration_since(t_post));
            }
        }
        per_node.push(ms(last));
    }
    let (p50, p99) = median_p99(&mut per_node.clone());
    let max = per_node.iter().copied().fold(0.0, f64::max);
    eprintln!("scale: delivery p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms");

    // One certified root: the first checkpoint whose epoch ends after the posts, on every node.
    let every = g.finality_every_epochs;
    let e = (posted_at / g.epoch_ms).div_ceil(every) * every;
    let got = wait_every(
        "the checkpoint after the posts certified everywhere",
        LONG_POLL,
        || all.iter().all(|x| x.final_epoch().is_some_and(|f| f >= e)),
    );
    let roots: Vec<Option<String>> = nodes
        .iter()
        .map(|x| {
            x.get("/v1/finality?limit=1000")?["certificates"]
                .as_array()?
                .iter()
                .find(|c| c["epoch"].as_u64() == Some(e))
                .and_then(|c| c["root"].as_str().map(String::from))
        })
        .collect();
    let agree = got.is_ok() && roots.iter().all(|r| r.is_some() && *r == roots[0]);
    let until = now_ms();
    let first_end = until.saturating_sub(started.elapsed().as_millis() as u64) + FINALITY_SKIP_MS;
    let f = finality_samples(&nodes, &g, first_end, until)?;
    let mut lat = f.latency_ms.clone();
    let (f50, f99) = median_p99(&mut lat);
    let certified = format!(
        "{} / {}",
        f.held.iter().copied().min().unwrap_or(0),
        f.expected
    );
    for x in &mut nodes {
        x.stop();
    }
    Ok(Scale {
        n,
        members_s,
        cores,
        rss_mb,
        delivery: (p50, p99, max),
        finality: (f50, f99),
        certified,
        agree,
        connected,
    })
}
