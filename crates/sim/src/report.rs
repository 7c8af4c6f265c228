//! Reports: a Markdown summary per scenario and SVG plots of the scaling curves, written
//! without wall-clock times so the same seeds give the same bytes.

use crate::scenario;
use crate::Outcome;
use std::fmt::Write;

/// Figures of one scenario over its seeds.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Scenario.
    pub name: String,
    /// Nodes per run.
    pub nodes: usize,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Seeds whose invariants failed, with the first failure.
    pub failed: Vec<(u64, String)>,
    /// Attack events produced, and attack thoughts that ended accepted.
    pub attack: (u64, u64),
    /// Median time to eject over the seeds that ejected, ms.
    pub eject_ms: Option<u64>,
    /// Acknowledged honest events.
    pub acked: u64,
    /// Convergence p50 and p99 over all events of all seeds, ms.
    pub convergence: (u64, u64),
    /// Delivered messages and bytes per created event.
    pub per_event: (f64, f64),
    /// Delivered push messages per created event (the rest is periodic anti-entropy).
    pub push_per_event: f64,
    /// Delivered messages and bytes per node per simulated second (under the scenario's
    /// load, heartbeats, votes and anti-entropy included): what one node's link carries.
    pub per_node_second: (f64, f64),
    /// Honest nodes converged / checked, over all seeds.
    pub converged: (u64, u64),
    /// Sybil registrations attempted / admitted (summed).
    pub sybils: (u64, u64),
    /// Events held as future-dated at the end (summed).
    pub future_held: u64,
    /// The final root of the first seed (shows determinism at a glance).
    pub root: String,
    /// Finality latency p50 and p99 over certified epochs of all seeds, ms.
    pub finality: (u64, u64),
    /// Certified epochs on the reference node, summed over seeds.
    pub certified: u64,
    /// Certificates that decided an already decided height again (must be 0).
    pub decided_twice: u64,
    /// Live thoughts at the end on the reference node, and of those settled by their
    /// committees (summed over seeds).
    pub thoughts_settled: (u64, u64),
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Summarises the outcomes of one scenario.
pub fn summarise(name: &str, outcomes: &[Outcome]) -> Summary {
    let mut conv: Vec<u64> = outcomes
        .iter()
        .flat_map(|o| o.stats.convergence_ms.iter().copied())
        .collect();
    conv.sort_unstable();
    let mut ejects: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| o.stats.time_to_eject_ms)
        .collect();
    ejects.sort_unstable();
    let events: u64 = outcomes
        .iter()
        .map(|o| o.stats.convergence_ms.len() as u64)
        .sum::<u64>()
        .max(1);
    let messages: u64 = outcomes.iter().map(|o| o.stats.messages).sum();
    let bytes: u64 = outcomes.iter().map(|o| o.stats.bytes).sum();
    Summary {
        name: name.into(),
        nodes: outcomes.first().map_or(0, |o| o.nodes),
        seeds: outcomes.iter().map(|o| o.seed).collect(),
        failed: outcomes
            .iter()
            .filter(|o| !o.passed())
            .map(|o| (o.seed, o.failures[0].clone()))
            .collect(),
        attack: (
            outcomes.iter().map(|o| o.stats.attack_events).sum(),
            outcomes.iter().map(|o| o.stats.attack_accepted).sum(),
        ),
        eject_ms: (!ejects.is_empty()).then(|| ejects[ejects.len() / 2]),
        acked: outcomes.iter().map(|o| o.stats.acked).sum(),
        convergence: (percentile(&conv, 0.5), percentile(&conv, 0.99)),
        per_event: (
            messages as f64 / events as f64,
            bytes as f64 / events as f64,
        ),
        per_node_second: {
            let node_secs: f64 = outcomes
                .iter()
                .map(|o| o.nodes as f64 * o.ran_ms as f64 / 1e3)
                .sum::<f64>()
                .max(1e-9);
            (messages as f64 / node_secs, bytes as f64 / node_secs)
        },
        push_per_event: outcomes.iter().map(|o| o.stats.push_messages).sum::<u64>() as f64
            / events as f64,
        converged: (
            outcomes.iter().map(|o| o.stats.converged).sum(),
            outcomes.iter().map(|o| o.stats.honest_nodes).sum(),
        ),
        sybils: (
            outcomes.iter().map(|o| o.stats.sybils.0).sum(),
            outcomes.iter().map(|o| o.stats.sybils.1).sum(),
        ),
        future_held: outcomes.iter().map(|o| o.stats.future_held).sum(),
        root: outcomes.first().map_or(String::new(), |o| hex16(&o.root)),
        finality: {
            let mut f: Vec<u64> = outcomes
                .iter()
                .flat_map(|o| o.stats.finality_ms.iter().copied())
                .collect();
            f.sort_unstable();
            (percentile(&f, 0.5), percentile(&f, 0.99))
        },
        certified: outcomes
            .iter()
            .map(|o| o.stats.finalized.len() as u64)
            .sum(),
        decided_twice: outcomes.iter().map(|o| o.stats.decided_twice).sum(),
        thoughts_settled: outcomes.iter().fold((0, 0), |(l, s), o| {
            (
                l + o.stats.thoughts_settled.0,
                s + o.stats.thoughts_settled.1,
            )
        }),
    }
}

/// The finality column: p50/p99, or a dash where nothing was certified.
fn finality_cell(certified: u64, f: (u64, u64)) -> String {
    if certified == 0 {
        "–".into()
    } else {
        format!("{}/{}", f.0, f.1)
    }
}

fn hex16(b: &[u8; 32]) -> String {
    b[..8].iter().map(|x| format!("{x:02x}")).collect()
}

/// The verdict line a researcher reads first: what the defence did in this scenario.
fn finding(s: &Summary) -> String {
    let (made, accepted) = s.attack;
    let blocked = if made > 0 {
        format!(
            "{:.1} % of attack events had no effect ({} of {made} took effect)",
            100.0 * (made - accepted.min(made)) as f64 / made as f64,
            accepted
        )
    } else {
        String::new()
    };
    let eject = s.eject_ms.map_or(String::new(), |ms| {
        format!(
            "; attacker ejected on every honest node {:.1} s after its first attack (median)",
            ms as f64 / 1e3
        )
    });
    match s.name.as_str() {
        "eclipse" => format!(
            "DEFENCE DOES NOT HOLD for a fully eclipsed node: {} of {} honest nodes converged; the victim, whose every link is a Sybil, never sees the federation. Nothing in the protocol can repair a node with no honest link; operators must give each node at least one trusted peer.",
            s.converged.0, s.converged.1
        ),
        "eclipse-partial" => format!("With one honest link the victim heals: {} of {} honest nodes converged.", s.converged.0, s.converged.1),
        "sybil" => format!(
            "{} of {} Sybil registrations admitted: every one with a valid PoW, none without. PoW prices identities (2^D hashes each; at the production D = 22 about 4 M hashes, ~3 s of one core here) but does not stop a patient attacker; each Sybil is then rate-limited on its own. Finality holds ({} epochs certified): the admitted Sybils are not founders and earned no trust above the start, so they weigh nothing (docs/PROTOCOL.md, \"Voting weight\").",
            s.sybils.1, s.sybils.0, s.certified
        ),
        "finality-partition" => format!("{} epochs certified over the runs; none during the partition (no side holds two thirds), finality resumes after the heal.", s.certified),
        "finality-byzantine" | "finality-withhold" => {
            let lead = if blocked.is_empty() { String::new() } else { format!("{blocked}{eject}; ") };
            format!("{lead}{} epochs certified, finality p50 {} ms after the epoch end: under a third of the weight cannot stop it.", s.certified, s.finality.0)
        }
        "timing" => format!("{blocked}{eject}; {} future-dated events still held in future pools at the end (they fold only when their time comes).", s.future_held),
        "atp-forger" => format!("{blocked}{eject}. Transfers claiming another author fail signature checks and never enter any log; over-balance transfers are violations."),
        _ if made > 0 => format!("{blocked}{eject}."),
        _ => format!("{} of {} honest nodes converged after the heal.", s.converged.0, s.converged.1),
    }
}

/// The Markdown report over every scenario.
pub fn markdown(summaries: &[Summary], command: &str) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# web4fed simulation report\n");
    let _ = writeln!(
        m,
        "Produced by `{command}`. Deterministic: the same seeds give this file byte for byte.\n"
    );
    let seeds: usize = summaries.iter().map(|s| s.seeds.len()).sum();
    let failed: usize = summaries.iter().map(|s| s.failed.len()).sum();
    let _ = writeln!(m, "{seeds} runs, {failed} with a broken invariant.\n");
    let _ = writeln!(m, "| scenario | nodes | seeds | invariants | converged | conv. p50 ms | conv. p99 ms | pushes/event | msgs/event | bytes/event | certified epochs | finality p50/p99 ms | finding |");
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in summaries {
        let inv = if s.failed.is_empty() {
            "pass".to_string()
        } else {
            format!("**{} FAILED**", s.failed.len())
        };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {}/{} | {} | {} | {:.1} | {:.1} | {:.0} | {} | {} | {} |",
            s.name,
            s.nodes,
            s.seeds.len(),
            inv,
            s.converged.0,
            s.converged.1,
            s.convergence.0,
            s.convergence.1,
            s.push_per_event,
            s.per_event.0,
            s.per_event.1,
            s.certified,
            finality_cell(s.certified, s.finality),
            finding(s)
        );
    }
    let _ = writeln!(m, "\n## Scenarios\n");
    for s in summaries {
        let _ = writeln!(m, "### {}\n\n{}\n", s.name, scenario::describe(&s.name));
        let _ = writeln!(m, "- seeds: {:?}", s.seeds);
        let _ = writeln!(
            m,
            "- honest events acknowledged: {}; convergence p50 {} ms, p99 {} ms",
            s.acked, s.convergence.0, s.convergence.1
        );
        let _ = writeln!(m, "- push messages per event {:.1}; all messages (with anti-entropy) per event {:.1}, bytes per event {:.0}", s.push_per_event, s.per_event.0, s.per_event.1);
        let _ = writeln!(
            m,
            "- per node and simulated second: {:.1} messages, {:.0} bytes",
            s.per_node_second.0, s.per_node_second.1
        );
        if s.attack.0 > 0 {
            let _ = writeln!(
                m,
                "- attack events {}, of which took effect {}",
                s.attack.0, s.attack.1
            );
        }
        if let Some(e) = s.eject_ms {
            let _ = writeln!(m, "- time to eject (median): {e} ms");
        }
        if s.certified > 0 {
            let _ = writeln!(
                m,
                "- heights decided twice (a decided checkpoint replaced), over all nodes: {}",
                s.decided_twice
            );
        }
        let _ = writeln!(
            m,
            "- live thoughts at the end, and of those settled by their committees: {} / {}",
            s.thoughts_settled.0, s.thoughts_settled.1
        );
        let _ = writeln!(
            m,
            "- root of seed {}: {}",
            s.seeds.first().copied().unwrap_or(0),
            s.root
        );
        for (seed, f) in &s.failed {
            let _ = writeln!(
                m,
                "- **FAILED** seed={seed}: {f} — replay: `web4fed sim --scenario {} --seed {seed}`",
                s.name
            );
        }
        let _ = writeln!(m, "- finding: {}\n", finding(s));
    }
    m
}

/// A line chart as SVG. Series are (label, points); x may be logarithmic.
pub fn svg_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    log_x: bool,
) -> String {
    let (w, h, pad) = (640.0, 400.0, 60.0);
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    let fx = |x: f64| if log_x { x.max(1e-9).log10() } else { x };
    let (xmin, xmax) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(fx(p.0)), b.max(fx(p.0)))
    });
    let ymax = pts.iter().fold(0.0f64, |a, p| a.max(p.1)).max(1e-9) * 1.1;
    let xspan = if xmax > xmin { xmax - xmin } else { 1.0 };
    let sx = |x: f64| pad + (fx(x) - xmin) / xspan * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - y / ymax * (h - 2.0 * pad);
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="{w}" height="{h}" fill="white"/><text x="{}" y="24" text-anchor="middle" font-size="15">{title}</text>"#,
        w / 2.0
    );
    let _ = writeln!(
        s,
        r#"<line x1="{pad}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{}" stroke="black"/>"#,
        h - pad,
        w - pad,
        h - pad,
        h - pad
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text><text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">{y_label}</text>"#,
        w / 2.0,
        h - 16.0,
        h / 2.0,
        h / 2.0
    );
    for k in 0..=4 {
        let y = ymax * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{:.1}</text>"#,
            pad - 6.0,
            sy(y) + 4.0,
            y
        );
    }
    let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{x}</text>"#,
            sx(x),
            h - pad + 16.0
        );
    }
    for (i, (label, points)) in series.iter().enumerate() {
        let c = colors[i % colors.len()];
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for p in points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                sx(p.0),
                sy(p.1)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{c}">{label}</text>"#,
            w - pad - 120.0,
            pad + 16.0 * (i as f64 + 1.0)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The scaling and latency plots, by file name.
pub fn plots(summaries: &[Summary]) -> Vec<(String, String)> {
    let find = |n: &str| summaries.iter().find(|s| s.name == n);
    let mut out = Vec::new();
    let lat: Vec<(f64, &Summary)> = [1u64, 10, 100, 1000]
        .iter()
        .filter_map(|l| find(&format!("latency-{l}")).map(|s| (*l as f64, s)))
        .collect();
    if !lat.is_empty() {
        out.push((
            "latency.svg".into(),
            svg_chart(
                "Convergence against link latency (3 nodes)",
                "one-way link latency, ms (log)",
                "ms until on every honest node",
                &[
                    (
                        "p50",
                        lat.iter()
                            .map(|(x, s)| (*x, s.convergence.0 as f64))
                            .collect(),
                    ),
                    (
                        "p99",
                        lat.iter()
                            .map(|(x, s)| (*x, s.convergence.1 as f64))
                            .collect(),
                    ),
                ],
                true,
            ),
        ));
    }
    let scale = |mode: &str, f: &dyn Fn(&Summary) -> f64| -> Vec<(f64, f64)> {
        [3usize, 10, 30, 100, 200, 300, 1000]
            .iter()
            .filter_map(|n| find(&format!("scale-{n}-{mode}")).map(|s| (*n as f64, f(s))))
            .collect()
    };
    let msgs = |s: &Summary| s.push_per_event;
    let p50 = |s: &Summary| s.convergence.0 as f64;
    let p99 = |s: &Summary| s.convergence.1 as f64;
    let per_node = |s: &Summary| s.per_node_second.0;
    if !scale("peers", &per_node).is_empty() {
        let fin50 = |s: &Summary| s.finality.0 as f64;
        let fin99 = |s: &Summary| s.finality.1 as f64;
        out.push((
            "scale-per-node.svg".into(),
            svg_chart(
                "Messages per node per second against federation size",
                "nodes (log)",
                "messages per node per second",
                &[
                    ("full mesh", scale("mesh", &per_node)),
                    ("gossip, fan-out 6", scale("gossip", &per_node)),
                    ("bounded peer set (the daemon's)", scale("peers", &per_node)),
                    ("bounded peer set, idle", scale("idle", &per_node)),
                ],
                true,
            ),
        ));
        out.push((
            "scale-peers-latency.svg".into(),
            svg_chart(
                "Bounded peer set: convergence and finality against federation size",
                "nodes (log)",
                "ms",
                &[
                    ("convergence p50", scale("peers", &p50)),
                    ("convergence p99", scale("peers", &p99)),
                    ("finality p50", scale("peers", &fin50)),
                    ("finality p99", scale("peers", &fin99)),
                ],
                true,
            ),
        ));
    }
    if !scale("mesh", &msgs).is_empty() {
        out.push((
            "scale-messages.svg".into(),
            svg_chart(
                "Push messages per event against federation size",
                "nodes",
                "push messages per event",
                &[
                    ("full mesh", scale("mesh", &msgs)),
                    ("gossip, fan-out 6", scale("gossip", &msgs)),
                ],
                false,
            ),
        ));
        out.push((
            "scale-convergence.svg".into(),
            svg_chart(
                "Convergence against federation size (10 ms links)",
                "nodes",
                "ms until on every honest node",
                &[
                    ("mesh p50", scale("mesh", &p50)),
                    ("mesh p99", scale("mesh", &p99)),
                    ("gossip p50", scale("gossip", &p50)),
                    ("gossip p99", scale("gossip", &p99)),
                ],
                false,
            ),
        ));
    }
    out
}
