//! `web4fed sim`: runs the deterministic simulator's scenarios and writes reports.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use web4fed_sim::{report, scenario, Outcome};

/// Options of `web4fed sim`.
pub struct SimArgs {
    /// A scenario name, `quick` or `all`.
    pub scenario: String,
    /// First seed.
    pub seed: u64,
    /// Seeds per scenario.
    pub seeds: u64,
    /// Where to write report.md and the SVG plots.
    pub report: Option<PathBuf>,
    /// Run new seeds until this many seconds have passed.
    pub soak_seconds: Option<u64>,
}

fn names(s: &str) -> Result<Vec<&'static str>, String> {
    match s {
        "all" => Ok(scenario::ALL.to_vec()),
        "quick" => Ok(scenario::quick()),
        n => scenario::ALL
            .iter()
            .find(|a| **a == n)
            .map(|a| vec![*a])
            .ok_or_else(|| {
                format!(
                    "unknown scenario {n:?}; known: all, quick, {}",
                    scenario::ALL.join(", ")
                )
            }),
    }
}

fn run_one(name: &str, seed: u64) -> Outcome {
    let cfg = scenario::config(name).expect("names come from the scenario list");
    web4fed_sim::run(&cfg, seed)
}

/// `web4fed sim`.
pub fn sim(args: SimArgs) -> Result<(), Box<dyn std::error::Error>> {
    let list = names(&args.scenario)?;
    if let Some(secs) = args.soak_seconds {
        return soak(&list, args.seed, Duration::from_secs(secs));
    }
    let mut summaries = Vec::new();
    let mut failed = 0;
    for name in &list {
        let outcomes: Vec<Outcome> = (args.seed..args.seed + args.seeds.max(1))
            .map(|s| run_one(name, s))
            .collect();
        for o in outcomes.iter().filter(|o| !o.passed()) {
            failed += 1;
            println!("FAIL {name} seed={}: {}", o.seed, o.failures.join("; "));
            println!("  replay: web4fed sim --scenario {name} --seed {}", o.seed);
        }
        let s = report::summarise(name, &outcomes);
        println!(
            "{:<18} nodes {:>3} seeds {:>3} {:<5} converged {}/{} conv p50 {:>5} ms p99 {:>5} ms pushes/event {:>6.1} msgs/event {:>7.1} root {}",
            name,
            s.nodes,
            s.seeds.len(),
            if s.failed.is_empty() { "pass" } else { "FAIL" },
            s.converged.0,
            s.converged.1,
            s.convergence.0,
            s.convergence.1,
            s.push_per_event,
            s.per_event.0,
            s.root
        );
        summaries.push(s);
    }
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)?;
        let cmd = format!(
            "web4fed sim --scenario {} --seed {} --seeds {} --report DIR",
            args.scenario, args.seed, args.seeds
        );
        std::fs::write(dir.join("report.md"), report::markdown(&summaries, &cmd))?;
        for (file, svg) in report::plots(&summaries) {
            std::fs::write(dir.join(file), svg)?;
        }
        println!("report written to {}", dir.join("report.md").display());
    }
    if failed > 0 {
        return Err(format!("{failed} runs broke an invariant").into());
    }
    Ok(())
}

fn soak(
    list: &[&str],
    first_seed: u64,
    budget: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut runs = 0u64;
    let mut failures = Vec::new();
    let mut seed = first_seed;
    while start.elapsed() < budget {
        for name in list {
            let o = run_one(name, seed);
            runs += 1;
            if !o.passed() {
                println!("FAIL {name} seed={seed}: {}", o.failures.join("; "));
                println!("  replay: web4fed sim --scenario {name} --seed {seed}");
                failures.push((name.to_string(), seed));
            }
            if start.elapsed() >= budget {
                break;
            }
        }
        seed += 1;
    }
    println!(
        "soak: {runs} runs over seeds {first_seed}..={seed} of {} scenarios in {:.0?}: {} failed",
        list.len(),
        start.elapsed(),
        failures.len()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} runs failed", failures.len()).into())
    }
}
