//! The offline commands: `init`, `genesis`, `inspect`.

use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use web4fed_core::event::{Attestation, AttestationKind, Body, Level, Register};
use web4fed_core::genesis::Genesis;
use web4fed_core::identity::{Keypair, MemberId};
use web4fed_core::ledger::Ledger;
use web4fed_core::pow::{self, Pow};
use web4fed_store::keyfile;
use web4fed_store::node_dir::{load_genesis, save_genesis, NodeConfig, NodeDir};
use web4fed_store::Store;

/// A command's failure, printed as `error: ...`.
pub type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// Nonces each mining thread tries between progress updates.
const MINE_CHUNK: u64 = 1 << 14;

/// Wall-clock time in ms: the shell's one clock, handed to the sans-IO core as an argument.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Mines a proof of work on every core, showing a progress bar with the hash rate.
fn mine_with_progress(network: &[u8; 32], member: &MemberId, bits: u8) -> (Pow, u64, Duration) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let found = Arc::new(AtomicBool::new(false));
    let hashes = Arc::new(AtomicU64::new(0));
    let result: Arc<Mutex<Option<Pow>>> = Arc::new(Mutex::new(None));
    let expected = 1u64.checked_shl(u32::from(bits)).unwrap_or(u64::MAX);
    let bar = ProgressBar::new(expected);
    bar.set_style(
        ProgressStyle::with_template(
            "mining PoW ({msg}) [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} expected hashes, {per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{bits} bits"));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (found, hashes, result) = (found.clone(), hashes.clone(), result.clone());
            let (network, member) = (*network, *member);
            std::thread::spawn(move || {
                let mut chunk = t;
                while !found.load(Ordering::Relaxed) {
                    let start = chunk.saturating_mul(MINE_CHUNK);
                    if let Some(p) = pow::mine_range(&network, &member, bits, start, MINE_CHUNK) {
                        found.store(true, Ordering::Relaxed);
                        if let Ok(mut r) = result.lock() {
                            r.get_or_insert(p);
                        }
                    }
                    hashes.fetch_add(MINE_CHUNK, Ordering::Relaxed);
                    chunk += threads;
                }
            })
        })
        .collect();
    while !found.load(Ordering::Relaxed) {
        bar.set_position(hashes.load(Ordering::Relaxed).min(expected));
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in workers {
        let _ = w.join();
    }
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    let pow = result
        .lock()
        .ok()
        .and_then(|r| *r)
        .unwrap_or_else(|| pow::mine(network, member, bits));
    (pow, hashes.load(Ordering::Relaxed), elapsed)
}

/// `init --attest tpm`: where the TPM is and what it needs.
#[derive(Debug, Clone)]
pub struct TpmInit {
    /// TCTI for tpm2-tools.
    pub tcti: String,
    /// Persistent handle for the attestation key.
    pub ak_handle: u32,
    /// PEM file with the intermediates between the EK certificate and a genesis root.
    pub chain: Option<PathBuf>,
}

/// What `init` binds the member to.
#[derive(Debug, Clone)]
pub enum Hardware {
    /// A TPM: provision evidence and claim L5.
    Tpm(TpmInit),
    /// Attack experiments: claim L5 with these evidence bytes, unchecked (empty: none).
    Claim(Vec<u8>),
}

/// Parses a TPM handle given as `0x81010002` or decimal.
pub fn parse_handle(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a TPM handle (e.g. 0x81010002)"))
}

/// `web4fed init`.
pub fn init(
    dir: &Path,
    name: &str,
    pow_bits: u8,
    genesis_file: Option<&Path>,
    entity_type: &str,
    hardware: Option<Hardware>,
) -> CmdResult {
    let lct = init_quiet(dir, name, pow_bits, genesis_file, entity_type, hardware)?;
    println!("{lct}");
    Ok(())
}

/// `init` without printing the LCT id (the demo creates three nodes); returns it.
pub fn init_quiet(
    dir: &Path,
    name: &str,
    pow_bits: u8,
    genesis_file: Option<&Path>,
    entity_type: &str,
    hardware: Option<Hardware>,
) -> Result<String, Box<dyn std::error::Error>> {
    let nd = NodeDir::new(dir);
    if nd.config().exists() {
        return Err(format!(
            "{} already holds an initialised node; refusing to overwrite it",
            dir.display()
        )
        .into());
    }
    // A key made beforehand by `web4fed keygen` (so the member could be named a founder in
    // the genesis) is used; otherwise a new one is made.
    let existing_key = nd.key().exists();
    let genesis = match genesis_file {
        Some(p) => load_genesis(p)?,
        None => {
            let g = Genesis::with_pow_bits(pow_bits);
            g.validate()?;
            g
        }
    };
    create_node_dir(dir)?;
    let keypair: Keypair = if existing_key {
        keyfile::read(&nd.key())?
    } else {
        keyfile::generate()?
    };
    let member = keypair.id();
    let network = genesis.network_id();
    let (claimed_level, attestation, tpm_config) = match &hardware {
        None => (
            Level::L4,
            Attestation {
                kind: AttestationKind::None,
                evidence: Vec::new(),
            },
            None,
        ),
        Some(Hardware::Claim(evidence)) => {
            let kind = if evidence.is_empty() {
                AttestationKind::None
            } else {
                AttestationKind::Tpm2
            };
            (
                Level::L5,
                Attestation {
                    kind,
                    evidence: evidence.clone(),
                },
                None,
            )
        }
        Some(Hardware::Tpm(t)) => {
            if genesis.attest_roots.is_empty() {
                return Err(
                    "--attest tpm: the genesis lists no attest_roots, so no node \
                     would verify this TPM; make the genesis with `web4fed genesis \
                     --attest-root ROOT.pem`"
                        .into(),
                );
            }
            let chain = match &t.chain {
                Some(p) => std::fs::read_to_string(p)
                    .map_err(|e| format!("--tpm-chain {}: {e}", p.display()))?,
                None => String::new(),
            };
            let started = std::time::Instant::now();
            let evidence = web4fed_tpm::Tpm::new(&t.tcti, t.ak_handle)
                .provision(&network, &member, &chain, &genesis.pcr_policy())?
                .encode();
            eprintln!(
                "TPM evidence made in {:.2?} ({} bytes; AK at 0x{:08x})",
                started.elapsed(),
                evidence.len(),
                t.ak_handle
            );
            // Refuse here what every node would refuse, with the same reason.
            let verified = web4fed_core::tpm::verify(
                &genesis.attest_roots_der(),
                &genesis.pcr_policy(),
                &network,
                &member,
                now_ms(),
                &evidence,
            )
            .map_err(|e| format!("the TPM evidence would be refused: {e}"))?;
            eprintln!(
                "boot state: {} = {}",
                genesis.pcr_policy().tools_selection(),
                hex::encode(verified.pcr_digest)
            );
            web4fed_store::atomic::write(
                &dir.join("tpm-evidence.bin"),
                &evidence,
                0o644,
                web4fed_store::atomic::Existing::Replace,
            )?;
            let config = web4fed_store::node_dir::TpmConfig {
                tcti: t.tcti.clone(),
                ak_handle: t.ak_handle,
            };
            (
                Level::L5,
                Attestation {
                    kind: AttestationKind::Tpm2,
                    evidence,
                },
                Some(config),
            )
        }
    };
    let (pow, hashes, elapsed) = mine_with_progress(&network, &member, genesis.pow_bits);
    let body = Body::Register(Register {
        name: name.to_string(),
        entity_type: entity_type.to_string(),
        pow,
        claimed_level,
        attestation,
    });
    // Check the registration encodes within limits before anything is written.
    let mut ledger = Ledger::new(genesis.clone());
    let reg = ledger.author_event(&keypair, now_ms(), body);
    web4fed_core::event::Event::decode(reg.bytes())
        .map_err(|e| format!("registration refused: {e}"))?;
    ledger
        .handle_event(now_ms(), reg)
        .map_err(|e| format!("registration refused: {e}"))?;

    save_genesis(&nd.genesis(), &genesis)?;
    if !existing_key {
        keyfile::write_new(&nd.key(), &keypair)?;
    }
    let mut store = Store::open(&nd.db(), &genesis)?;
    store.persist_outputs(&mut ledger)?;
    store.record_root(&ledger.state_root())?;
    let config = NodeConfig {
        name: name.to_string(),
        entity_type: entity_type.to_string(),
        listen: "/ip4/0.0.0.0/tcp/8000".into(),
        api: "127.0.0.1:8080".into(),
        peers: Vec::new(),
        tpm: tpm_config,
        rate_thoughts: true,
    };
    config.save(&nd.config())?;
    let rate = hashes as f64 / elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "mined {} bits in {:.2?} ({hashes} hashes, {:.2} MH/s)",
        genesis.pow_bits,
        elapsed,
        rate / 1e6
    );
    eprintln!("network {}", hex::encode(network));
    Ok(member.lct(entity_type))
}

/// Creates a node directory readable by its owner only (it holds the secret key).
fn create_node_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// `web4fed keygen`: a member key alone, made before the genesis so that the genesis can
/// name the member a founder; `init --dir` on the same directory then uses it.
pub fn keygen(dir: &Path) -> CmdResult {
    let nd = NodeDir::new(dir);
    if nd.key().exists() {
        return Err(format!(
            "{} already holds a node key; refusing to overwrite it",
            dir.display()
        )
        .into());
    }
    println!("{}", founder_key(dir)?);
    Ok(())
}

/// The member id (hex) of the key in node directory `dir`, made first if there is none:
/// how a founder's key exists before the genesis that names it (`keygen`, the demo, the
/// scale bench), for `init` on the same directory to use.
pub fn founder_key(dir: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let nd = NodeDir::new(dir);
    let keypair: Keypair = if nd.key().exists() {
        keyfile::read(&nd.key())?
    } else {
        create_node_dir(dir)?;
        let kp = keyfile::generate()?;
        keyfile::write_new(&nd.key(), &kp)?;
        kp
    };
    Ok(hex::encode(keypair.id().0))
}

/// A founder as given on the command line: the member id, 64 hex digits (`web4fed keygen`
/// prints it; an LCT id holds only a digest of it, so it cannot name a founder).
fn parse_founder(s: &str) -> Result<String, String> {
    let hex_part = s.trim().to_lowercase();
    match hex::decode(&hex_part) {
        Ok(b) if b.len() == 32 => Ok(hex_part),
        _ => Err(format!(
            "--founder {s}: expected a member id (64 hex digits, as `web4fed keygen` prints)"
        )),
    }
}

/// Layer 6 settings of a new genesis: which TPMs are believed, and in which boot states.
#[derive(Debug, Clone, clap::Args)]
pub struct AttestPolicyArgs {
    /// A root certificate (PEM) that TPM endorsement certificates must chain to for L5
    /// (repeatable): TPM vendors' EK roots, or the swtpm local CA in tests.
    #[arg(long = "attest-root", value_name = "PEM")]
    pub roots: Vec<PathBuf>,
    /// The PCRs (SHA-256 bank) a TPM quote must cover, e.g. `0,1,2,3,4,5,6,7` (default: 0).
    #[arg(long = "attest-pcrs", value_delimiter = ',', value_name = "N,N,..")]
    pub pcrs: Vec<u8>,
    /// An allowed boot state: the digest of those PCRs on a known-good machine, as
    /// `web4fed tpm-pcr-digest` prints it (repeatable; none allows any boot state).
    #[arg(long = "attest-pcr-digest", value_name = "HEX")]
    pub pcr_digests: Vec<String>,
}

/// `web4fed tpm-pcr-digest`.
pub fn tpm_pcr_digest(tcti: &str, pcrs: &[u8]) -> CmdResult {
    let policy = web4fed_core::tpm::PcrPolicy::new(pcrs, Vec::new());
    let d = web4fed_tpm::Tpm::new(tcti, web4fed_tpm::DEFAULT_AK_HANDLE).pcr_digest(&policy)?;
    eprintln!("{}", policy.tools_selection());
    println!("{}", hex::encode(d));
    Ok(())
}

/// `web4fed genesis`.
pub fn genesis(
    out: &Path,
    pow_bits: u8,
    network_name: Option<String>,
    set: &[String],
    attest: &AttestPolicyArgs,
    founders: &[String],
) -> CmdResult {
    let mut g = Genesis::with_pow_bits(pow_bits);
    if let Some(n) = network_name {
        g.network_name = n;
    }
    g.genesis_time_ms = now_ms();
    g.founders = founders
        .iter()
        .map(|f| parse_founder(f))
        .collect::<Result<_, _>>()?;
    if g.founders.is_empty() {
        eprintln!(
            "warning: no --founder named: every member will vote with its whole trust, so \
             enough proof of work can stop finality (fine for experiments, not for a federation)"
        );
    }
    g.attest_pcrs = attest.pcrs.clone();
    g.attest_pcr_digests = attest
        .pcr_digests
        .iter()
        .map(|d| d.to_lowercase())
        .collect();
    for p in &attest.roots {
        let pem = std::fs::read_to_string(p)
            .map_err(|e| format!("--attest-root {}: {e}", p.display()))?;
        web4fed_core::tpm::pem_to_der(&pem)
            .map_err(|e| format!("--attest-root {}: {e}", p.display()))?;
        g.attest_roots.push(pem.trim().to_string() + "\n");
    }
    if !set.is_empty() {
        // Round-trip through TOML so every field is settable by its documented name and an
        // unknown name is refused by the same `deny_unknown_fields` that guards the file.
        let mut table = toml::Value::try_from(&g)?;
        for kv in set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("--set {kv}: expected NAME=VALUE"))?;
            let v: i64 = v
                .trim()
                .parse()
                .map_err(|_| format!("--set {kv}: value must be an integer"))?;
            let t = table.as_table_mut().ok_or("genesis is not a table")?;
            if !t.contains_key(k.trim()) {
                return Err(format!("--set {kv}: no genesis parameter named {k:?}").into());
            }
            t.insert(k.trim().to_string(), toml::Value::Integer(v));
        }
        g = table.try_into()?;
    }
    g.validate()?;
    save_genesis(out, &g)?;
    println!("{}", hex::encode(g.network_id()));
    Ok(())
}

/// `web4fed inspect`.
pub fn inspect(dir: &Path, json: bool) -> CmdResult {
    let nd = NodeDir::new(dir);
    let config = NodeConfig::load(&nd.config())?;
    let genesis = load_genesis(&nd.genesis())?;
    let keypair = keyfile::read(&nd.key())?;
    let store = Store::open(&nd.db(), &genesis)?;
    let mut ledger = Ledger::new(genesis.clone());
    let started = Instant::now();
    let rebuild = store.rebuild(&mut ledger, now_ms())?;
    let verify_ms = started.elapsed().as_secs_f64() * 1e3;
    let me = keypair.id();
    let root = hex::encode(rebuild.root);
    let recorded = rebuild.recorded_root.map(hex::encode);
    let account = ledger.state().account(&me);
    let head = ledger.state().head_ms();
    let (trust, atp, level, status) = account.map_or(
        (0, 0, "unregistered".to_string(), "unregistered".to_string()),
        |a| {
            (
                a.trust_at(&genesis, head),
                a.atp_at(&genesis, head),
                format!("{:?}", a.level),
                format!("{:?}", a.status).to_lowercase(),
            )
        },
    );
    if json {
        let v = serde_json::json!({
            "name": config.name,
            "lct": me.lct(&config.entity_type),
            "member": me.to_hex(),
            "network": hex::encode(genesis.network_id()),
            "feed_len": ledger.feed_len(&me),
            "events": rebuild.events,
            "members": ledger.state().accounts().count(),
            "corpus": ledger.state().corpus_len(),
            "state_root": root,
            "recorded_root": recorded,
            "trust_micro": trust,
            "atp_milli": atp,
            "level": level,
            "status": status,
            "verified_ms": verify_ms,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("name        {}", config.name);
        println!("lct         {}", me.lct(&config.entity_type));
        println!("member      {}", me.to_hex());
        println!("network     {}", hex::encode(genesis.network_id()));
        println!("feed length {}", ledger.feed_len(&me));
        println!(
            "events      {} (all signatures and chains verified in {verify_ms:.1} ms)",
            rebuild.events
        );
        println!("members     {}", ledger.state().accounts().count());
        println!("corpus      {} thoughts", ledger.state().corpus_len());
        println!("level       {level}, status {status}");
        println!("trust       {:.6}", trust as f64 / 1e6);
        println!("atp         {:.3}", atp as f64 / 1e3);
        println!("state root  {root}");
        match &recorded {
            Some(r) if *r == root => println!("            matches the root recorded at the last write"),
            Some(r) => println!("            differs from the recorded root {r} (rebuilt from the log, which is the truth)"),
            None => {}
        }
    }
    Ok(())
}

/// `web4fed verify-cert`: checks a certificate against a member list, with no node.
pub fn verify_cert(file: &Path, members: &Path) -> CmdResult {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let cert = web4fed_core::finality::Certificate::decode(&bytes)
        .map_err(|e| format!("{}: not a certificate: {e}", file.display()))?;
    let text =
        std::fs::read_to_string(members).map_err(|e| format!("{}: {e}", members.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", members.display()))?;
    let network: [u8; 32] = hex::decode(v["network"].as_str().unwrap_or(""))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("members file: \"network\" must be 64 hex characters")?;
    let mut weights = std::collections::BTreeMap::new();
    for (m, w) in v["weights"]
        .as_object()
        .ok_or("members file: \"weights\" must be an object")?
    {
        let id = MemberId::from_hex(m).ok_or_else(|| format!("members file: bad member id {m}"))?;
        let w = w
            .as_u64()
            .ok_or_else(|| format!("members file: weight of {m} must be an integer"))?;
        weights.insert(id, w);
    }
    let (signed, total) = cert
        .verify(&network, &weights)
        .map_err(|e| format!("certificate refused: {e}"))?;
    println!(
        "valid: epoch {} root {} signed by {} members holding {signed} of {total} trust weight ({:.1} %)",
        cert.body.epoch,
        hex::encode(cert.body.root),
        cert.signatures.len(),
        100.0 * signed as f64 / total as f64
    );
    Ok(())
}

/// Magic first bytes of a `gen-log` file.
const LOG_MAGIC: &[u8] = b"web4fed-log-v1\n";
/// Most bytes of the genesis section of a log file.
const LOG_GENESIS_MAX: usize = 64 * 1024;

/// `web4fed gen-log`: `LOG_MAGIC`, u32 genesis-TOML length, the TOML, then each event as a u32
/// length and its wire bytes.
pub fn gen_log(out: &Path, seed: u64, thoughts: usize) -> CmdResult {
    let (g, events) = web4fed_core::testkit::rich_log(seed, thoughts);
    let toml_text = toml::to_string(&g)?;
    let mut buf = Vec::new();
    buf.extend_from_slice(LOG_MAGIC);
    buf.extend_from_slice(&(toml_text.len() as u32).to_be_bytes());
    buf.extend_from_slice(toml_text.as_bytes());
    for e in &events {
        buf.extend_from_slice(&(e.bytes().len() as u32).to_be_bytes());
        buf.extend_from_slice(e.bytes());
    }
    std::fs::write(out, buf)?;
    println!("{} events written to {}", events.len(), out.display());
    Ok(())
}

/// `web4fed fold`: folds a `gen-log` file and prints what the fold did and the root.
pub fn fold(log: &Path, reverse: bool) -> CmdResult {
    let bytes = std::fs::read(log)?;
    let rest = bytes
        .strip_prefix(LOG_MAGIC)
        .ok_or("not a web4fed log (bad magic)")?;
    let take = |b: &[u8], at: usize| -> Result<(usize, usize), String> {
        let n = b
            .get(at..at + 4)
            .ok_or("log truncated")?
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| "log truncated")?;
        Ok((at + 4, n as usize))
    };
    let (at, glen) = take(rest, 0)?;
    if glen > LOG_GENESIS_MAX {
        return Err("genesis section too large".into());
    }
    let gtext = std::str::from_utf8(rest.get(at..at + glen).ok_or("log truncated")?)?;
    let g: Genesis = toml::from_str(gtext)?;
    g.validate()?;
    let mut at = at + glen;
    let mut events = Vec::new();
    while at < rest.len() {
        let (start, len) = take(rest, at)?;
        let b = rest.get(start..start + len).ok_or("log truncated")?;
        events.push(web4fed_core::event::Event::decode(b)?);
        at = start + len;
    }
    let started = Instant::now();
    let mut l = Ledger::new(g.clone());
    let now = u64::MAX / 4;
    let results = fold_all(&mut l, now, events.clone());
    let fold_ms = started.elapsed().as_secs_f64() * 1e3;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let s = l.state();
    let ejected = s
        .accounts()
        .filter(|(_, a)| a.status == web4fed_core::state::Status::Ejected)
        .count();
    let refused = events
        .iter()
        .filter(|e| {
            matches!(
                l.verdict(&e.id()),
                Some(web4fed_core::verdict::Verdict::Refused(_))
            )
        })
        .count();
    let mut rules: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in &events {
        if let Some(web4fed_core::verdict::Verdict::Refused(r)) = l.verdict(&e.id()) {
            *rules.entry(r.name()).or_default() += 1;
        }
    }
    let root = hex::encode(l.state_root());
    println!("arch        {}", std::env::consts::ARCH);
    println!(
        "events      {} ({admitted} admitted, {refused} refused by a layer)",
        events.len()
    );
    println!("refusals    {rules:?}");
    println!("members     {} ({ejected} ejected)", s.accounts().count());
    println!(
        "corpus      {} live, {} pruned",
        s.corpus_len(),
        s.pruned_total
    );
    println!("fold        {fold_ms:.0} ms");
    println!("root        {root}");
    if reverse {
        // Feeds in reverse member order, each in its own order: a different arrival order
        // that stays within the orphan pool's bounds.
        let mut order = events;
        order.sort_by_key(|e| (std::cmp::Reverse(e.author()), e.seq()));
        let mut r = Ledger::new(g);
        fold_all(&mut r, now, order);
        let rr = hex::encode(r.state_root());
        if rr != root {
            return Err(format!("the same events in another order give another root: {rr}").into());
        }
        println!("reordered   same root");
    }
    Ok(())
}

/// Hands a whole log to a ledger in batches of the size it takes, discarding its outputs
/// (offline checks persist nothing). Returns each event's admission.
fn fold_all(
    l: &mut Ledger,
    now: u64,
    events: Vec<web4fed_core::event::Event>,
) -> Vec<Result<web4fed_core::ledger::Admission, web4fed_core::ledger::InsertError>> {
    let mut out = Vec::with_capacity(events.len());
    let mut it = events.into_iter().peekable();
    while it.peek().is_some() {
        let chunk: Vec<_> = it
            .by_ref()
            .take(web4fed_core::ledger::MAX_BATCH_EVENTS)
            .collect();
        out.extend(l.handle_batch(now, chunk));
        while l.poll_output().is_some() {}
    }
    out
}

/// `web4fed attack`: runs one attack class and prints its report as JSON.
pub fn attack(
    class: &str,
    target: String,
    api: String,
    genesis: &Path,
    token_file: Option<&Path>,
    secs: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let class = web4fed_attack::Class::parse(class).ok_or_else(|| {
        let names: Vec<&str> = web4fed_attack::Class::ALL
            .iter()
            .map(|c| c.name())
            .collect();
        format!("--class {class}: not one of {}", names.join(", "))
    })?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 3_600.0) {
        return Err(format!("--secs {secs}: must be between 0 and 3600").into());
    }
    let token = token_file
        .map(|f| {
            std::fs::read_to_string(f)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("--token-file {}: {e}", f.display()))
        })
        .transpose()?;
    let target = web4fed_attack::Target {
        p2p: target,
        api,
        genesis: web4fed_store::node_dir::load_genesis(genesis)?,
        token,
    };
    let report = web4fed_attack::run(class, &target, secs)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
