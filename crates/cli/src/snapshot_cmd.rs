//! `web4fed snapshot`: list, verify, export and import a node's snapshots (backups, and
//! moving a node's state to a new machine).

use crate::commands::CmdResult;
use std::path::Path;
use web4fed_core::attest::GenesisVerifier;
use web4fed_core::ledger::Ledger;
use web4fed_core::snapshot::SnapshotFile;
use web4fed_store::atomic::{self, Existing};
use web4fed_store::node_dir::{load_genesis, NodeDir};
use web4fed_store::snapshots::{self, SnapshotDir};
use web4fed_store::Store;

/// Snapshots kept by `import` (it adds one and deletes none of the node's own).
const IMPORT_KEEP: usize = usize::MAX;

/// Every check a restart makes, for one file: framing, checksum, network, the state's root
/// against the header and the certificate it carries, and against the certificate of that
/// epoch in the node's own log when the log holds one. Returns the epoch and what the root
/// was checked against.
fn check(nd: &NodeDir, file: &Path) -> Result<(u64, &'static str), String> {
    let genesis = load_genesis(&nd.genesis()).map_err(|e| e.to_string())?;
    let f = snapshots::read(file, &genesis.network_id()).map_err(|e| e.to_string())?;
    check_file(nd, &genesis, &f)
        .map(|(epoch, against, _)| (epoch, against))
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// [`check`] for a file already read; also returns the ledger it restores (what its feeds
/// cover is what the log must hold or fetch).
fn check_file(
    nd: &NodeDir,
    genesis: &web4fed_core::genesis::Genesis,
    f: &SnapshotFile,
) -> Result<(u64, &'static str, Ledger), String> {
    let epoch = f.header.epoch;
    let certified = if nd.db().exists() {
        Store::open(&nd.db(), genesis)
            .and_then(|s| s.certified_root(epoch))
            .map_err(|e| e.to_string())?
    } else {
        None
    };
    let verifier = Box::new(GenesisVerifier::new(genesis));
    let (ledger, _) = Ledger::from_snapshot(genesis.clone(), verifier, f, certified)
        .map_err(|e| e.to_string())?;
    Ok((
        epoch,
        if certified.is_some() {
            "the node's own certificate"
        } else {
            "the certificate inside it (this log holds none of that epoch)"
        },
        ledger,
    ))
}

/// `web4fed snapshot list`.
pub fn list(dir: &Path) -> CmdResult {
    let nd = NodeDir::new(dir);
    let listed = SnapshotDir::new(nd.snapshots()).list()?;
    if listed.is_empty() {
        println!("no snapshots in {}", nd.snapshots().display());
    }
    for l in listed {
        match l.header {
            Ok(h) => println!(
                "{}  epoch {}  root {}  {} bytes",
                l.path.display(),
                h.epoch,
                hex::encode(h.root),
                l.bytes
            ),
            Err(e) => println!("{}  unreadable: {e}", l.path.display()),
        }
    }
    Ok(())
}

/// `web4fed snapshot verify`: checks one file, or every snapshot of the node; fails if any
/// is refused.
pub fn verify(dir: &Path, file: Option<&Path>) -> CmdResult {
    let nd = NodeDir::new(dir);
    let files: Vec<_> = match file {
        Some(f) => vec![f.to_owned()],
        None => SnapshotDir::new(nd.snapshots())
            .list()?
            .into_iter()
            .map(|l| l.path)
            .collect(),
    };
    if files.is_empty() {
        return Err(format!("no snapshots in {}", nd.snapshots().display()).into());
    }
    let mut refused = 0;
    for f in &files {
        match check(&nd, f) {
            Ok((epoch, against)) => {
                println!(
                    "ok  {}  epoch {epoch}, root checked against {against}",
                    f.display()
                )
            }
            Err(e) => {
                refused += 1;
                println!("REFUSED  {e}");
            }
        }
    }
    if refused > 0 {
        return Err(format!("{refused} of {} snapshots refused", files.len()).into());
    }
    Ok(())
}

/// `web4fed snapshot export`: the newest snapshot that passes every check, copied to `out`.
pub fn export(dir: &Path, out: &Path) -> CmdResult {
    let nd = NodeDir::new(dir);
    let listed = SnapshotDir::new(nd.snapshots()).list()?;
    for l in listed.iter().rev() {
        match check(&nd, &l.path) {
            Ok((epoch, _)) => {
                let bytes = std::fs::read(&l.path)?;
                atomic::write(out, &bytes, 0o600, Existing::Keep)?;
                println!(
                    "exported the snapshot of epoch {epoch} to {}",
                    out.display()
                );
                return Ok(());
            }
            Err(e) => eprintln!("skipping {e}"),
        }
    }
    Err(format!("no usable snapshot in {}", nd.snapshots().display()).into())
}

/// `web4fed snapshot import`: checks a snapshot against this node's genesis (and its own
/// certificate of that epoch, if its log holds one) and places it where the next start
/// finds it. The node must be stopped.
pub fn import(dir: &Path, file: &Path) -> CmdResult {
    let nd = NodeDir::new(dir);
    let genesis = load_genesis(&nd.genesis())?;
    let f = snapshots::read(file, &genesis.network_id())?;
    let (epoch, against, ledger) = check_file(&nd, &genesis, &f)?;
    SnapshotDir::new(nd.snapshots()).write(&f, IMPORT_KEEP)?;
    // History this log lacks before the snapshot: `run --history lazy` fetches it.
    let lacking = Store::open(&nd.db(), &genesis)?.plan_backfill(&ledger.covered_heads())?;
    println!(
        "imported the snapshot of epoch {epoch} (root checked against {against}); \
         the next `web4fed run` starts from it"
    );
    if lacking > 0 {
        println!(
            "the log lacks the history before it of {lacking} feeds: \
             `web4fed run --history lazy` fetches it from peers"
        );
    }
    Ok(())
}

/// `web4fed snapshot fetch`: state sync without starting the node.
pub fn fetch(dir: &Path, peers: &[String], quorum: usize) -> CmdResult {
    let addrs = peers
        .iter()
        .map(|p| {
            p.parse::<libp2p::Multiaddr>()
                .map_err(|e| format!("peer {p}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let f = rt
        .block_on(web4fed_node::state_sync::fetch_snapshot(
            dir,
            &addrs,
            quorum.min(addrs.len()).max(1),
            true,
        ))
        .map_err(|e| e.to_string())?;
    println!(
        "fetched the snapshot of epoch {} ({} bytes) from {}; {} peers named its root; written to {}",
        f.epoch,
        f.bytes,
        f.from,
        f.agreeing,
        f.path.display()
    );
    Ok(())
}
