//! `web4fed bench`: the seed's six targets and the throughput, memory and cost
//! figures, measured on real `web4fed run` processes (on loopback, or in three network
//! namespaces with `--netns`), printed as a table and written to `BENCHMARKS.md`.
//!
//! Every figure comes from this run: nothing is copied from elsewhere. Latency is timed from
//! just before the submitting HTTP request to the moment each receiver's live feed
//! (`/v1/live`, server-sent events) reports the event admitted; state agreement by polling
//! `/v1/status`; throughput from event counts; CPU and memory from `/proc`.

mod attacks;
mod figures;
mod load;
mod phases;
mod procs;
mod scale;
mod sweep;

use figures::{row, Row};
use procs::{agree, ms, wait_every, wait_until, Host, NodeProc, LONG_POLL};
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use web4fed_core::event::{Body, Event, EventId};
use web4fed_core::finality::{At, Vote, VoteBody, VoteKind};
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::Keypair;
use web4fed_core::ledger::Ledger;
use web4fed_core::testkit::{sentence, Author};
use web4fed_harness::free_port;
use web4fed_harness::median_p99;
use web4fed_store::node_dir::save_genesis;

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
    /// Seconds the sustained run's nodes keep running after the load stops (the load members
    /// still vote), so their last snapshot catches up with the head: a restart of the
    /// directories then reads back only what came after the quiet began, and its time shows
    /// what history costs apart from the stream's last seconds (`scripts/restart-time.sh`).
    #[arg(long, default_value_t = 0)]
    pub sustain_quiet_secs: u64,
    /// Keep the node directories here instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// An argument added to each of the three nodes' `web4fed run` (repeatable), e.g.
    /// `--node-arg=--log-quota-mb --node-arg=200` for a disk soak with a quota.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// Profile a receiving node (Thor) with `perf record -g` during the throughput run and
    /// write the `perf report` here.
    #[arg(long)]
    pub perf: Option<PathBuf>,
    /// Seconds of light load over which finality latency (checkpoint epoch end →
    /// certificate held) is measured on the three nodes (0 skips it).
    #[arg(long, default_value_t = 60)]
    pub finality_secs: u64,
    /// Run only these phases (repeatable; the latency phase always runs, it starts the
    /// nodes): agreement, finality, durable-floor, pow, corpus-sync, partition-heal,
    /// throughput, sustained.
    #[arg(long)]
    pub only: Vec<String>,
    /// Instead of the figures above, the latency sweep: three nodes over relays adding 10 ms,
    /// 100 ms and 1 s per link, beside the simulator's runs for the same delays; writes the
    /// table to --out and an SVG plot beside it.
    #[arg(long)]
    pub latency_sweep: bool,
    /// With --latency-sweep: seconds of load at each delay.
    #[arg(long, default_value_t = 40)]
    pub sweep_secs: u64,
    /// Instead of the figures above, run every attack class of `web4fed attack` against a
    /// fresh three-node federation and table what the victim suffered.
    #[arg(long)]
    pub attacks: bool,
    /// With --attacks: only these classes (repeatable).
    #[arg(long)]
    pub attack_class: Vec<String>,
    /// With --attacks: seconds each attack runs.
    #[arg(long, default_value_t = 20.0)]
    pub attack_secs: f64,
    /// Instead of the figures above, the scale run: N real processes (repeatable: one run
    /// per N), each told of two others; membership, idle CPU, delivery of five thoughts to
    /// every node, one certified root and finality latency.
    #[arg(long)]
    pub nodes: Vec<usize>,
    /// With --nodes: seconds after the last start before idle CPU is measured (presence
    /// events start a minute after registration and belong in the figure).
    #[arg(long, default_value_t = 70)]
    pub scale_settle_secs: u64,
    /// With --nodes: seconds over which idle CPU is measured.
    #[arg(long, default_value_t = 30)]
    pub scale_idle_secs: u64,
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
/// Subnet of the bench's hosts with `--netns`: private, used only inside namespaces it creates.
const SUBNET: &str = "10.78.0";

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

/// The state the phases share: the nodes, the genesis, and the report being built.
struct Bench<'a> {
    args: &'a BenchArgs,
    g: Genesis,
    root: PathBuf,
    nodes: Vec<NodeProc>,
    rows: Vec<Row>,
    notes: Vec<String>,
    where_: &'static str,
    /// Legion's libp2p address, which the others dial.
    first: String,
    /// The three-node submit latency median, which the agreement row compares against.
    submit_median_ms: f64,
}

/// `web4fed bench`: runs every phase on three real nodes and reports.
pub fn bench(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.attacks {
        return attacks::run(&args);
    }
    if args.latency_sweep {
        return sweep::run(&args);
    }
    if !args.nodes.is_empty() {
        return scale::run(&args);
    }
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
        Some(web4fed_harness::Netns::create("w4b", SUBNET, 3)?)
    } else {
        None
    };
    let host = |i: usize| match &netns {
        Some(n) => Host {
            ns: Some(n.ns(i)),
            ip: n.ip(i),
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
    let names = ["legion", "thor", "sprout"];
    // The three nodes are the founders (keys first, so the genesis can name them): the load
    // generator's members are then newcomers whose weight is only the trust they earn, young
    // members capped at a fifth together, as on a real network. With an open genesis every
    // load member was a founder: they took most of the validator committee's seats, and as
    // members without a node they never proposed, so under load each height waited through
    // round after round for a proposal (finality stalled at height 18 in a 250 s run).
    let mut g = bench_genesis();
    if !root.join("genesis.toml").exists() {
        g.founders = names
            .iter()
            .map(|n| crate::commands::founder_key(&root.join(n)))
            .collect::<Result<Vec<_>, _>>()?;
        g.genesis_time_ms = web4fed_node::now_ms();
    }
    let genesis_path = root.join("genesis.toml");
    if genesis_path.exists() {
        g = web4fed_store::node_dir::load_genesis(&genesis_path)?;
    } else {
        save_genesis(&genesis_path, &g)?;
    }
    let nodes: Vec<NodeProc> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            NodeProc::new(&root, n, &genesis_path, host(i)).map(|p| p.with_args(&args.node_args))
        })
        .collect::<Result<_, _>>()?;
    eprintln!("bench: {where_}; nodes under {}", root.display());
    let first = nodes[0].addr();
    let mut b = Bench {
        args: &args,
        g,
        root,
        nodes,
        rows: Vec::new(),
        notes: Vec::new(),
        where_,
        first,
        submit_median_ms: f64::NAN,
    };
    let want = |phase: &str| args.only.is_empty() || args.only.iter().any(|o| o == phase);
    b.latency()?;
    if want("agreement") {
        b.agreement()?;
    }
    if want("finality") {
        b.finality_latency()?;
    }
    if want("durable-floor") {
        b.durable_floor()?;
    }
    if want("pow") {
        b.pow()?;
    }
    if want("corpus-sync") {
        b.corpus_sync()?;
    }
    if want("partition-heal") {
        b.partition_heal()?;
    }
    if want("throughput") {
        b.throughput()?;
    }
    if want("sustained") {
        b.sustained()?;
    }
    b.report()?;
    for n in &mut b.nodes {
        n.stop();
    }
    drop(netns);
    Ok(())
}
