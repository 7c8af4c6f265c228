//! `web4fed bench --latency-sweep`: the seed's first research question (how link latency
//! changes the federation) on real processes, beside the simulator. For each one-way link
//! delay, three fresh nodes whose every connection passes through a userspace relay adding
//! that delay (and up to half of it again as jitter, as the simulator's `latency-*`
//! scenarios do; this kernel has no netem) take a thought every second, round robin; then
//! the simulator runs its scenario for the same delay. The report is a table (delivery to
//! both other nodes, finality latency) and an SVG plot.

use super::figures::{commit, finality_samples, machine, utc_now, FinalitySamples};
use super::*;
use web4fed_harness::{LinkSpec, Relay};

/// The delays of the sweep, ms: the seed's 10 ms, 100 ms and 1 s.
const DELAYS_MS: [u64; 3] = [10, 100, 1_000];
/// Seeds of the simulator's run for each delay.
const SIM_SEEDS: u64 = 2;

/// What one setting measured (real or simulated), in ms.
struct Figures {
    delivery: (f64, f64),
    finality: (f64, f64),
    samples: usize,
    certified: String,
    /// Real runs: fewest certificates a node held, and checkpoints in the span.
    held: Option<(usize, usize)>,
}

pub(super) fn run(args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let out = args
        .out
        .clone()
        .ok_or("--latency-sweep needs --out FILE (the plot is written beside it)")?;
    let mut rows = Vec::new();
    for d in DELAYS_MS {
        eprintln!("latency sweep: {d} ms links, real processes");
        let real = real_run(args, d)?;
        eprintln!("latency sweep: {d} ms links, simulator");
        let sim = sim_run(d)?;
        rows.push((d, real, sim));
    }
    let svg_name = out
        .file_stem()
        .map(|s| format!("{}.svg", s.to_string_lossy()))
        .unwrap_or_else(|| "latency-sweep.svg".into());
    let series = |f: &dyn Fn(&(u64, Figures, Figures)) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.0 as f64, f(r))).collect()
    };
    let svg = web4fed_sim::report::svg_chart(
        "Link latency: real processes vs simulator (p50, ms)",
        "one-way link delay, ms (log)",
        "ms",
        &[
            ("delivery, real", series(&|r| r.1.delivery.0)),
            ("delivery, simulated", series(&|r| r.2.delivery.0)),
            ("finality, real", series(&|r| r.1.finality.0)),
            ("finality, simulated", series(&|r| r.2.finality.0)),
        ],
        true,
    );
    let svg_path = out.with_file_name(&svg_name);
    std::fs::write(&svg_path, svg)?;
    let cmdline: Vec<String> = std::env::args().collect();
    let mut md = format!(
        "## Latency sweep: real processes beside the simulator\n\nMachine: {}. Commit `{}`. Command: `{}`. Date (UTC): {}.\n\n\
         Real: three nodes on loopback, every connection through a relay adding the delay plus up to half of it as jitter, each way; a thought every second for {} s, round robin. \
         Simulated: the `latency-D` scenario (three honest nodes, the same delay and jitter), seeds 1-{SIM_SEEDS}. \
         Delivery: from the submit's answer until both other nodes hold the thought (real), from creation until every node admitted it (simulated). \
         Finality: from a checkpoint epoch's end until each node holds its certificate (vote delay {} ms).\n\n\
         | link delay | delivery p50 / p99, real | simulated | finality p50 / p99, real | simulated | certified (real, per node / checkpoints) |\n|---|---|---|---|---|---|\n",
        machine(),
        commit(),
        cmdline.join(" "),
        utc_now(),
        args.sweep_secs,
        bench_genesis().vote_delay_ms,
    );
    for (d, real, sim) in &rows {
        md.push_str(&format!(
            "| {d} ms | {:.0} / {:.0} ms ({} samples) | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {} |\n",
            real.delivery.0,
            real.delivery.1,
            real.samples,
            sim.delivery.0,
            sim.delivery.1,
            real.finality.0,
            real.finality.1,
            sim.finality.0,
            sim.finality.1,
            real.certified,
        ));
    }
    let vote_delay = bench_genesis().vote_delay_ms;
    md.push('\n');
    for (d, real, _) in &rows {
        if let Some((least, expected)) = real.held {
            if least < expected {
                md.push_str(&format!(
                    "At {d} ms links only {least} of {expected} checkpoints certified on some node: the vote delay ({vote_delay} ms) is shorter than the time an event dated just before a checkpoint's end takes to reach everyone, so nodes sign different roots and that checkpoint is left to the next. A federation on such links sets `vote_delay_ms` above its link delay.\n\n"
                ));
            }
        }
    }
    md.push_str(
        "Simulated finality p99 includes the first checkpoint after the nodes start (registrations still in flight); the real runs count only checkpoints after the load began.\n",
    );
    md.push_str(&format!("\n![latency sweep]({svg_name})\n"));
    std::fs::write(&out, &md)?;
    println!("{md}");
    eprintln!("written to {} and {}", out.display(), svg_path.display());
    Ok(())
}

/// Three real nodes over relays of `delay_ms`.
fn real_run(args: &BenchArgs, delay_ms: u64) -> Result<Figures, Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let g = bench_genesis();
    let genesis_path = tmp.path().join("genesis.toml");
    save_genesis(&genesis_path, &g)?;
    let host = || Host {
        ns: None,
        ip: "127.0.0.1".into(),
    };
    let mut nodes: Vec<NodeProc> = ["legion", "thor", "sprout"]
        .iter()
        .map(|n| NodeProc::new(tmp.path(), n, &genesis_path, host()))
        .collect::<Result<_, _>>()?;
    let spec = LinkSpec {
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::from_millis(delay_ms / 2),
        bytes_per_sec: None,
    };
    // relays[j] leads to node j; node i dials every earlier node through its relay.
    let relays: Vec<Relay> = nodes
        .iter()
        .map(|n| Relay::start(([127, 0, 0, 1], n.p2p).into(), spec))
        .collect::<Result<_, _>>()?;
    for (i, n) in nodes.iter_mut().enumerate() {
        let peers: Vec<String> = relays[..i].iter().map(Relay::multiaddr).collect();
        n.start(&peers)?;
    }
    wait_every("a full mesh over the relays", LONG_POLL, || {
        nodes.iter().all(|n| {
            n.status()
                .is_some_and(|s| s["peers_connected"] == 2 && s["members"] == 3)
        })
    })?;
    let from_ms = now_ms();
    let until = Instant::now() + Duration::from_secs(args.sweep_secs);
    let mut delivery = Vec::new();
    let mut i = 0u64;
    while Instant::now() < until {
        let k = (i % 3) as usize;
        let started = Instant::now();
        let v = nodes[k].post_json(
            "/v1/thoughts",
            &json!({ "content": sentence(7_000_000 + delay_ms * 1_000 + i) }),
        )?;
        let answered = Instant::now();
        let id = v["id"]
            .as_str()
            .ok_or("no id in the submit's answer")?
            .to_string();
        let holds = |n: &NodeProc| {
            n.get("/v1/thoughts?limit=20").is_some_and(|v| {
                v["thoughts"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x["id"] == id.as_str()))
            })
        };
        let others: Vec<&NodeProc> = (0..3).filter(|j| *j != k).map(|j| &nodes[j]).collect();
        wait_every(
            "a thought on both other nodes",
            Duration::from_millis(2),
            || others.iter().all(|n| holds(n)),
        )?;
        delivery.push(ms(answered.elapsed()));
        i += 1;
        if let Some(rest) = Duration::from_secs(1).checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let until_ms = now_ms();
    std::thread::sleep(Duration::from_millis(
        g.vote_delay_ms + 2 * g.epoch_ms * g.finality_every_epochs + 2 * delay_ms,
    ));
    let FinalitySamples {
        latency_ms: mut fin,
        held,
        expected,
    } = finality_samples(&nodes, &g, from_ms + g.epoch_ms, until_ms)?;
    for n in &mut nodes {
        n.stop();
    }
    let samples = delivery.len();
    Ok(Figures {
        delivery: median_p99(&mut delivery),
        finality: if fin.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            median_p99(&mut fin)
        },
        samples,
        certified: format!("{held:?} / {expected}"),
        held: Some((held.iter().copied().min().unwrap_or(0), expected)),
    })
}

/// The simulator's `latency-D` scenario.
fn sim_run(delay_ms: u64) -> Result<Figures, Box<dyn std::error::Error>> {
    let name = format!("latency-{delay_ms}");
    let cfg = web4fed_sim::scenario::config(&name).ok_or("no such scenario")?;
    let outcomes: Vec<_> = (1..=SIM_SEEDS).map(|s| web4fed_sim::run(&cfg, s)).collect();
    let s = web4fed_sim::report::summarise(&name, &outcomes);
    Ok(Figures {
        delivery: (s.convergence.0 as f64, s.convergence.1 as f64),
        finality: (s.finality.0 as f64, s.finality.1 as f64),
        samples: s.acked as usize,
        certified: s.certified.to_string(),
        held: None,
    })
}
