//! `web4fed run` (the daemon) and `web4fed demo` (a local three-node federation).

use libp2p::Multiaddr;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use web4fed_core::testkit::sentence;
use web4fed_harness::{wait_every, Node};
use web4fed_node::{Adversary, NodeSettings};
use web4fed_store::node_dir::{NodeConfig, NodeDir};

/// Options of `web4fed run` that override `node.toml`.
pub struct RunArgs {
    /// Node directory.
    pub dir: PathBuf,
    /// libp2p listen address.
    pub listen: Option<String>,
    /// API address.
    pub api: Option<String>,
    /// Extra peers.
    pub peers: Vec<String>,
    /// Heartbeat period.
    pub heartbeat_ms: u64,
    /// Runtime threads (1: one thread for everything).
    pub threads: usize,
    /// Snapshots kept on disk.
    pub snapshots_kept: usize,
    /// Before starting, fetch a snapshot from the peers if the node has none.
    pub state_sync: bool,
    /// Peers that must name the same root for a fetched snapshot.
    pub state_sync_quorum: usize,
    /// Log retention.
    pub retention: web4fed_node::Retention,
    /// Whether to fetch the history before a snapshot the node joined from.
    pub history: web4fed_node::History,
    /// Attack behaviour.
    pub adversary: Option<String>,
    /// JSON logs.
    pub log_json: bool,
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEB4FED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p_gossipsub=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// How long a stopping node may take to record its root and close before the process
/// exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// `web4fed run`.
pub fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    init_logs(args.log_json);
    let nd = NodeDir::new(&args.dir);
    let config = NodeConfig::load(&nd.config())?;
    let listen: Multiaddr = args
        .listen
        .as_deref()
        .unwrap_or(&config.listen)
        .parse()
        .map_err(|e| format!("--listen: {e}"))?;
    let api: SocketAddr = args
        .api
        .as_deref()
        .unwrap_or(&config.api)
        .parse()
        .map_err(|e| format!("--api: {e}"))?;
    let mut peers = Vec::new();
    for p in config.peers.iter().chain(&args.peers) {
        peers.push(
            p.parse::<Multiaddr>()
                .map_err(|e| format!("peer {p}: {e}"))?,
        );
    }
    let adversary = match args.adversary.as_deref() {
        None => None,
        Some("forge") => Some(Adversary::Forge),
        Some("spam") => Some(Adversary::Spam),
        Some(other) => {
            return Err(format!("unknown adversary {other:?} (known: forge, spam)").into())
        }
    };
    let state_sync = args.state_sync
        && web4fed_store::snapshots::SnapshotDir::new(nd.snapshots())
            .list()?
            .is_empty();
    let fetch_from = peers.clone();
    let settings = NodeSettings {
        dir: args.dir,
        listen,
        api,
        peers,
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(50)),
        adversary,
        snapshots_kept: args.snapshots_kept,
        retention: args.retention,
        history: args.history,
    };
    let rt = match args.threads {
        0 | 1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    if state_sync {
        let quorum = args.state_sync_quorum.min(fetch_from.len()).max(1);
        let f = rt
            .block_on(web4fed_node::state_sync::fetch_snapshot(
                &settings.dir,
                &fetch_from,
                quorum,
                true,
            ))
            .map_err(|e| e.to_string())?;
        tracing::info!(
            epoch = f.epoch,
            bytes = f.bytes,
            from = %f.from,
            agreeing = f.agreeing,
            "state sync: snapshot fetched and checked"
        );
    }
    rt.block_on(async move {
        // Signals are watched on their own task: a node task stuck in long work still hears
        // SIGTERM, and if it cannot stop within the grace period the process exits anyway
        // (everything acknowledged is already on disk).
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let notify = stop.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
            }
            tracing::info!("stop signal received");
            notify.notify_one();
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::error!(grace_s = SHUTDOWN_GRACE.as_secs(), "node did not stop in time; exiting");
            std::process::exit(1);
        });
        // The node task runs on this thread, not spawned on a worker. Spawned, an idle
        // hundred on one 2-core host used less CPU (0.89 against 1.0-1.2 cores), but five
        // thoughts took 2.6 s to reach all hundred instead of 0.5-0.8 s: on a saturated
        // host the node task waited in the workers' queues with every connection's task
        // (`web4fed bench --nodes 100`, BENCHMARKS.md "Scale").
        web4fed_node::run(settings, async move { stop.notified().await }).await
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// `web4fed demo`: three nodes as separate processes on loopback, each posting thoughts,
/// until all three hold every event and the same state root.
pub fn demo(
    dir: Option<PathBuf>,
    thoughts: u64,
    keep: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let base = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("web4fed-demo-{}", std::process::id()))
    });
    std::fs::create_dir_all(&base)?;
    let exe = std::env::current_exe()?;
    let names = ["legion", "thor", "sprout"];
    let mut members: Vec<Node> = Vec::new();
    println!("web4fed demo: three nodes under {}", base.display());
    // Keys first, so the genesis can name the three as founders (their voting weight is
    // their trust; anyone else's only what it earns).
    let genesis_file = base.join("genesis.toml");
    if !genesis_file.exists() {
        let mut founders = Vec::new();
        for name in names {
            founders.push(crate::commands::founder_key(&base.join(name))?);
        }
        let g = web4fed_core::genesis::Genesis {
            network_name: "web4fed-demo".into(),
            founders,
            genesis_time_ms: web4fed_node::now_ms(),
            ..web4fed_core::genesis::Genesis::with_pow_bits(12)
        };
        g.validate()?;
        web4fed_store::node_dir::save_genesis(&genesis_file, &g)?;
    }
    for name in names {
        let d = base.join(name);
        if !NodeDir::new(&d).config().exists() {
            crate::commands::init_quiet(&d, name, 12, Some(&genesis_file), "ai", None)?;
        }
        let _ = std::fs::remove_file(d.join("node.log"));
        let mut node = Node::new(&exe, &d, name);
        let peers: Vec<String> = members.first().map(Node::addr).into_iter().collect();
        node.spawn(&peers, &[])?;
        println!(
            "  {name:<7} api {}  p2p {}:{}  log {}",
            node.url(""),
            node.ip,
            node.p2p,
            d.join("node.log").display()
        );
        members.push(node);
    }
    let every = Duration::from_millis(20);
    let t = wait_every("the three APIs and the mesh", every, || {
        members.iter().all(|m| {
            m.status()
                .is_some_and(|v| v["peers_connected"].as_u64() >= Some(2))
        })
    })?;
    println!("mesh formed in {:.2?}", t);
    // Registrations first, so every member is known everywhere before thoughts flow.
    wait_every("registrations to replicate", every, || {
        members
            .iter()
            .all(|m| m.status().is_some_and(|v| v["members"].as_u64() == Some(3)))
    })?;
    let start = Instant::now();
    for i in 0..thoughts {
        for (k, m) in members.iter().enumerate() {
            let text = sentence(i * 3 + k as u64 + 1_000 * std::process::id() as u64);
            let body = serde_json::json!({"content": text}).to_string();
            let (st, v) = m.post("/v1/thoughts", "application/json", body.as_bytes())?;
            if st != 201 {
                return Err(format!("{} refused a thought: {st} {v}", m.name).into());
            }
        }
    }
    let expected = 3 + 3 * thoughts;
    let refs: Vec<&Node> = members.iter().collect();
    wait_every("every node to hold every event", every, || {
        web4fed_harness::agree(&refs, Some(expected))
    })?;
    let replicated = start.elapsed();
    let roots: Vec<(String, Value)> = members
        .iter()
        .map(|m| (m.name.clone(), m.status().unwrap_or(Value::Null)))
        .collect();
    println!(
        "{} thoughts posted ({} per node) and replicated to all three in {:.2?}",
        3 * thoughts,
        thoughts,
        replicated
    );
    println!("{:<8} {:>7} {:>7}  state root", "node", "events", "corpus");
    for (n, v) in &roots {
        println!(
            "{n:<8} {:>7} {:>7}  {}",
            v["events"].to_string(),
            v["corpus"].to_string(),
            v["state_root"].as_str().unwrap_or("?")
        );
    }
    let first = roots[0].1["state_root"].clone();
    let agree = roots.iter().all(|(_, v)| v["state_root"] == first);
    if !agree {
        return Err("state roots differ".into());
    }
    println!("all three nodes agree on the state root");
    if keep {
        println!("nodes keep running; open a dashboard above (Ctrl-C stops them)");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    Ok(())
}
