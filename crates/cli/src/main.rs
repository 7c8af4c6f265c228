//! `web4fed`: the node daemon and command-line tool.
#![forbid(unsafe_code)]

mod bench;
mod bench_floor;
mod client;
mod commands;
mod daemon;
mod simulate;
mod snapshot_cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The process's allocator: jemalloc rather than the C library's. Under sustained load a node
/// allocates and frees events, persistent-map nodes and snapshot buffers from several threads;
/// jemalloc bounds fragmentation across threads and hands pages freed by a burst back to the
/// system on a timer, which is what keeps a long-lived node's resident memory near its live
/// heap (BENCHMARKS.md, "Four thousand events a second, with a disk quota", has both
/// allocators' figures). It is the allocator long-running Rust servers use for this.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A trust-aware federation of machines: signed feeds, nine defence layers, one state root.
#[derive(Debug, Parser)]
#[command(name = "web4fed", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a node: identity key (mode 0600), proof of work, registration, node.toml.
    Init {
        /// The node directory to create.
        #[arg(long)]
        dir: PathBuf,
        /// The member's display name.
        #[arg(long)]
        name: String,
        /// PoW difficulty in leading zero bits for the default genesis (ignored with --genesis).
        #[arg(long, default_value_t = 22)]
        pow_bits: u8,
        /// A genesis file handed out by the federation (from `web4fed genesis`).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// The entity type in the LCT id (`[a-z0-9_-]`).
        #[arg(long, default_value = "ai")]
        entity_type: String,
        /// Bind the member to hardware and claim L5: `tpm` creates an attestation key in the
        /// TPM and quotes this member's key with it (needs tpm2-tools and a genesis with
        /// attest_roots). L5 is granted once other members' challenges succeed.
        #[arg(long, value_parser = ["tpm"])]
        attest: Option<String>,
        /// The TPM's TCTI (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`).
        #[arg(long, default_value = web4fed_tpm::DEFAULT_TCTI, requires = "attest")]
        tcti: String,
        /// Persistent handle for the attestation key (replaced if present).
        #[arg(long, default_value = "0x81010002", value_parser = commands::parse_handle, requires = "attest")]
        ak_handle: u32,
        /// PEM file with the certificates between the TPM's EK certificate and the genesis
        /// root (the vendor's intermediate CA), issuer first.
        #[arg(long, requires = "attest")]
        tpm_chain: Option<PathBuf>,
        /// For attack experiments: claim L5 with the evidence bytes in this file, unchecked
        /// (an empty file claims L5 with no evidence). Every node judges it as usual.
        #[arg(long, conflicts_with = "attest", hide = true)]
        claim_l5_with: Option<PathBuf>,
    },
    /// Make a member key alone (mode 0600) and print the member id, so the federation's
    /// genesis can name the member a founder; `init` with the same --dir then uses the key.
    Keygen {
        /// The node directory to create.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print the SHA-256 digest of this machine's PCR values: the boot state to list in a
    /// genesis with `--attest-pcr-digest` (run it on each known-good machine).
    TpmPcrDigest {
        /// The TPM's TCTI (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`).
        #[arg(long, default_value = web4fed_tpm::DEFAULT_TCTI)]
        tcti: String,
        /// The PCRs, as the genesis's `--attest-pcrs` names them.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        pcrs: Vec<u8>,
    },
    /// Write a genesis file (the network's parameters) to hand to every member.
    Genesis {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// PoW difficulty in leading zero bits.
        #[arg(long, default_value_t = 22)]
        pow_bits: u8,
        /// A name for the network (part of the network id).
        #[arg(long)]
        network_name: Option<String>,
        /// Hardware attestation (layer 6): roots and boot-state policy.
        #[command(flatten)]
        attest: commands::AttestPolicyArgs,
        /// A founding member (repeatable): its member id as `web4fed keygen` printed it.
        /// Founders vote with their whole trust; everyone else only with trust earned
        /// above the start, so voting weight cannot be bought with proof of work.
        #[arg(long = "founder", value_name = "MEMBER_ID")]
        founders: Vec<String>,
        /// Any other parameter, as `name=integer` (repeatable), e.g. `rate_base_thoughts=1000`.
        /// Names are the fields of genesis.toml; an unknown name is refused.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Run the node daemon.
    Run {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// libp2p listen multiaddr (overrides node.toml), e.g. /ip4/0.0.0.0/tcp/8000.
        #[arg(long)]
        listen: Option<String>,
        /// Operator API address (overrides node.toml); non-loopback requires the token.
        #[arg(long)]
        api: Option<String>,
        /// A peer to dial, as a multiaddr (repeatable; added to node.toml's peers).
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// Heartbeat period in milliseconds.
        #[arg(long, default_value_t = 1000)]
        heartbeat_ms: u64,
        /// Threads that run the node (network, replica, API). 1 runs everything on one
        /// thread, which costs least while idle (no wake-ups between threads); 2 or more let
        /// the network's connections and the replica work in parallel under load.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Snapshots of the state kept in DIR/snapshots (one is written each time the
        /// certified history the node keeps in memory moves on, about every 30 s while
        /// finality runs); a restart loads the newest and reads only the log after it.
        /// 0 writes none (every restart re-reads the whole log).
        #[arg(long, default_value_t = web4fed_store::snapshots::DEFAULT_KEPT)]
        snapshots_kept: usize,
        /// Join from a snapshot: when the node holds none, first fetch the newest one its
        /// peers offer (each chunk checked, the root confirmed by --state-sync-quorum
        /// peers, every restart check run), then start from it; the events after it come
        /// by sync and history before it is not fetched.
        #[arg(long)]
        state_sync: bool,
        /// Peers that must name the same root for the snapshot's epoch (capped at the
        /// number of peers given).
        #[arg(long, default_value_t = 2)]
        state_sync_quorum: usize,
        /// History before the snapshot a node joined from: `never` fetched (the state is
        /// whole without it), or fetched `lazy`ly from peers in the background, newest first,
        /// each page checked back from the snapshot's feed heads, until done or the log
        /// reaches its retention limits. Progress: the log and
        /// `web4fed_history_backfill_left`.
        #[arg(long, value_enum, default_value_t = HistoryArg::Never)]
        history: HistoryArg,
        /// Log retention: while events.db's pages hold more than this many MiB, remove the
        /// events the oldest snapshot kept covers (registrations, proofs and certificates
        /// stay). The log then no longer rebuilds the node alone: a snapshot must.
        #[arg(long)]
        log_quota_mb: Option<u64>,
        /// Log retention: remove covered events older than this many hours.
        #[arg(long)]
        retain_hours: Option<f64>,
        /// Append every event retention removes to this file first (length-prefixed
        /// frames, which `POST /v1/events` takes back).
        #[arg(long)]
        archive: Option<PathBuf>,
        /// Attack behaviour for experiments: `forge` (forged inner signatures) or `spam` (signs
        /// thoughts beyond its rate limit).
        #[arg(long)]
        adversary: Option<String>,
        /// Logs as JSON lines instead of human text (levels via WEB4FED_LOG, e.g. `debug,libp2p=info`).
        #[arg(long)]
        log_json: bool,
    },
    /// Three nodes as separate processes on loopback, posting and replicating until they agree.
    Demo {
        /// Where to put the three node directories (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Thoughts each node posts.
        #[arg(long, default_value_t = 10)]
        thoughts: u64,
        /// Keep the nodes running afterwards (for the dashboards).
        #[arg(long)]
        keep: bool,
    },
    /// Measure the federation on real node processes (latency, agreement, PoW, corpus sync,
    /// heal, throughput, memory, CPU per event) and write BENCHMARKS-style Markdown.
    Bench(bench::BenchArgs),
    /// Attack a node of your own test federation, for a while, and print what was sent and
    /// what it answered as JSON: a Byzantine libp2p peer (stranger or cheap member) or a
    /// hostile API client. Classes: peer-flood, orphans, bad-signatures, votes,
    /// certificates, heartbeats, requests, future, backdate, ejected-writer, live-streams,
    /// big-bodies, api-votes, no-token.
    Attack {
        /// The attack class.
        #[arg(long)]
        class: String,
        /// The victim's libp2p address, e.g. /ip4/127.0.0.1/tcp/8000.
        #[arg(long)]
        target: String,
        /// The victim's API address, host:port.
        #[arg(long)]
        api: String,
        /// The network's genesis file (genesis.toml in any member's node directory).
        #[arg(long)]
        genesis: PathBuf,
        /// A file holding the victim's API token (live-streams, big-bodies and api-votes
        /// model the operator's own misbehaving client and need it).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Seconds to attack.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
    },
    /// The bare gossipsub latency floor (used by `bench`).
    #[command(hide = true)]
    BenchFloor {
        /// recv or send.
        #[arg(long)]
        role: String,
        /// Listen address (recv).
        #[arg(long)]
        listen: Option<libp2p::Multiaddr>,
        /// Peer to dial (send).
        #[arg(long)]
        peer: Option<libp2p::Multiaddr>,
        /// Messages.
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Interval between messages (ms).
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
    /// Run the deterministic simulator: scenarios with seeded faults and adversaries.
    Sim {
        /// A scenario name, `quick` (the CI set) or `all`.
        #[arg(long, default_value = "quick")]
        scenario: String,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seeds per scenario.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Write report.md and SVG plots here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Soak: run ever new seeds of the scenarios for this many seconds, then summarise.
        #[arg(long)]
        soak_seconds: Option<u64>,
    },
    /// Submit a thought to a running node.
    Submit {
        /// The thought's content.
        content: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Transfer some of this node's member's ATP to another member.
    Transfer {
        /// The recipient's member id (64 hex digits; `web4fed state` lists them).
        #[arg(long)]
        to: String,
        /// How much, in ATP (thousandths allowed).
        #[arg(long)]
        atp: f64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Rate, by hand, a thought this node's member is on the committee of (for nodes with
    /// `rate_thoughts = false` in node.toml; otherwise the node rates with its scorer).
    Rate {
        /// The thought's id (64 hex digits; `web4fed thoughts` lists them).
        #[arg(long)]
        thought: String,
        /// The rating, from 0 to 1.
        #[arg(long)]
        score: f64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Prints the address that opens a node's dashboard in a browser (with the token in the
    /// fragment, which the page exchanges for a session cookie).
    Dashboard {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A running node's identity, counts, root and peers.
    Status {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A running node's peers and whether their roots agree with its own.
    Peers {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Recent thoughts with their verdicts.
    Thoughts {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Recent finality certificates (epoch, root, signers and their weight).
    Finality {
        /// How many.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Write the latest certificate (`cert-EPOCH.bin`) and its member list
        /// (`members-EPOCH.json`) here, for `verify-cert`.
        #[arg(long)]
        export: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Verify a finality certificate against a member list, without running a node.
    VerifyCert {
        /// The certificate (binary, as written by `finality --export`).
        file: PathBuf,
        /// The member list: {"network": hex, "weights": {member hex: trust in millionths}}.
        #[arg(long)]
        members: PathBuf,
    },
    /// Every member's trust, ATP, level and status, and the state root.
    State {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Write a deterministic test log exercising every event kind and rule (for checking that
    /// every platform folds it to the same root).
    GenLog {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the log.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Accepted-or-not thoughts to generate (other kinds come on top).
        #[arg(long, default_value_t = 10_000)]
        thoughts: usize,
    },
    /// Fold a log written by `gen-log` and print the state root and what the fold did.
    Fold {
        /// The log.
        #[arg(long)]
        log: PathBuf,
        /// Fold the events again in another order (feeds in reverse member order) and check the
        /// roots agree.
        #[arg(long)]
        reverse: bool,
    },
    /// Show a node's identity, feed length and state root, verifying its whole log.
    Inspect {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// A node's snapshots of its state at certified checkpoints: list, verify, export, import.
    Snapshot {
        #[command(subcommand)]
        action: SnapshotAction,
    },
}

/// `web4fed run --history`: see `web4fed_node::History`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HistoryArg {
    /// Never fetch the history before the snapshot.
    Never,
    /// Fetch it from peers in the background.
    Lazy,
}

/// What to do with snapshots.
#[derive(Subcommand, Debug)]
enum SnapshotAction {
    /// List DIR/snapshots with each file's epoch, root and size.
    List {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Run every check a restart makes on each snapshot (or on one file); fails if any is
    /// refused.
    Verify {
        /// The node directory (its genesis, and its log's certificates).
        #[arg(long)]
        dir: PathBuf,
        /// One snapshot file instead of the node's own.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Copy the newest snapshot that passes every check to a file (a backup).
    Export {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// Where to write it (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Fetch the newest snapshot the peers offer (state sync), check it, and place it where
    /// the next start finds it. Stop the node first.
    Fetch {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// A peer's multiaddr (repeatable).
        #[arg(long = "peer", required = true)]
        peers: Vec<String>,
        /// Peers that must name the same root for the snapshot's epoch.
        #[arg(long, default_value_t = 2)]
        quorum: usize,
    },
    /// Check a snapshot against this node's genesis and place it where the next start finds
    /// it. Stop the node first.
    Import {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The snapshot file.
        #[arg(long)]
        file: PathBuf,
    },
}

/// How client commands reach a node.
#[derive(Debug, clap::Args)]
struct ApiArgs {
    /// The node's API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// The node directory, to read its api.token (every request but the dashboard page
    /// carries it, on loopback too).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A file holding the API token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

impl ApiArgs {
    fn client(&self) -> client::Api {
        client::Api::new(&self.api, self.dir.as_deref(), self.token_file.as_deref())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init {
            dir,
            name,
            pow_bits,
            genesis,
            entity_type,
            attest,
            tcti,
            ak_handle,
            tpm_chain,
            claim_l5_with,
        } => {
            let hardware = match (attest, claim_l5_with) {
                (Some(_), _) => Ok(Some(commands::Hardware::Tpm(commands::TpmInit {
                    tcti,
                    ak_handle,
                    chain: tpm_chain,
                }))),
                (None, Some(f)) => std::fs::read(&f)
                    .map(|b| Some(commands::Hardware::Claim(b)))
                    .map_err(|e| format!("--claim-l5-with {}: {e}", f.display()).into()),
                (None, None) => Ok(None),
            };
            hardware.and_then(|hw| {
                commands::init(&dir, &name, pow_bits, genesis.as_deref(), &entity_type, hw)
            })
        }
        Command::Genesis {
            out,
            pow_bits,
            network_name,
            set,
            attest,
            founders,
        } => commands::genesis(&out, pow_bits, network_name, &set, &attest, &founders),
        Command::Keygen { dir } => commands::keygen(&dir),
        Command::TpmPcrDigest { tcti, pcrs } => commands::tpm_pcr_digest(&tcti, &pcrs),
        Command::Inspect { dir, json } => commands::inspect(&dir, json),
        Command::Snapshot { action } => match action {
            SnapshotAction::List { dir } => snapshot_cmd::list(&dir),
            SnapshotAction::Verify { dir, file } => snapshot_cmd::verify(&dir, file.as_deref()),
            SnapshotAction::Export { dir, out } => snapshot_cmd::export(&dir, &out),
            SnapshotAction::Import { dir, file } => snapshot_cmd::import(&dir, &file),
            SnapshotAction::Fetch { dir, peers, quorum } => {
                snapshot_cmd::fetch(&dir, &peers, quorum)
            }
        },
        Command::Run {
            dir,
            listen,
            api,
            peers,
            heartbeat_ms,
            threads,
            snapshots_kept,
            state_sync,
            state_sync_quorum,
            history,
            log_quota_mb,
            retain_hours,
            archive,
            adversary,
            log_json,
        } => daemon::run(daemon::RunArgs {
            dir,
            listen,
            api,
            peers,
            heartbeat_ms,
            threads,
            snapshots_kept,
            state_sync,
            state_sync_quorum,
            history: match history {
                HistoryArg::Never => web4fed_node::History::Never,
                HistoryArg::Lazy => web4fed_node::History::Lazy,
            },
            retention: web4fed_node::Retention {
                quota_bytes: log_quota_mb.map(|m| m.saturating_mul(1 << 20)),
                max_age_ms: retain_hours.map(|h| (h.max(0.0) * 3_600_000.0) as u64),
                archive,
            },
            adversary,
            log_json,
        }),
        Command::Demo {
            dir,
            thoughts,
            keep,
        } => daemon::demo(dir, thoughts, keep),
        Command::Sim {
            scenario,
            seed,
            seeds,
            report,
            soak_seconds,
        } => simulate::sim(simulate::SimArgs {
            scenario,
            seed,
            seeds,
            report,
            soak_seconds,
        }),
        Command::Submit { content, api } => {
            client::submit(&api.client(), &content, api.json).map_err(Into::into)
        }
        Command::Rate {
            thought,
            score,
            api,
        } => client::rate(&api.client(), &thought, score, api.json).map_err(Into::into),
        Command::Transfer { to, atp, api } => {
            client::transfer(&api.client(), &to, atp, api.json).map_err(Into::into)
        }
        Command::Dashboard { api } => api
            .client()
            .dashboard_url()
            .map(|url| println!("{url}"))
            .map_err(Into::into),
        Command::Status { api } => client::status(&api.client(), api.json).map_err(Into::into),
        Command::Peers { api } => client::peers(&api.client(), api.json).map_err(Into::into),
        Command::Thoughts { limit, api } => {
            client::thoughts(&api.client(), limit, api.json).map_err(Into::into)
        }
        Command::State { api } => client::state(&api.client(), api.json).map_err(Into::into),
        Command::Finality { limit, export, api } => {
            client::finality(&api.client(), limit, export.as_deref(), api.json).map_err(Into::into)
        }
        Command::VerifyCert { file, members } => commands::verify_cert(&file, &members),
        Command::GenLog {
            out,
            seed,
            thoughts,
        } => commands::gen_log(&out, seed, thoughts),
        Command::Fold { log, reverse } => commands::fold(&log, reverse),
        Command::Bench(args) => bench::bench(args),
        Command::Attack {
            class,
            target,
            api,
            genesis,
            token_file,
            secs,
        } => commands::attack(&class, target, api, &genesis, token_file.as_deref(), secs),
        Command::BenchFloor {
            role,
            listen,
            peer,
            count,
            interval_ms,
        } => bench_floor::run(&role, listen, peer, count, interval_ms),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", client::printable(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}
