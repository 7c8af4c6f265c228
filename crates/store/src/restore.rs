//! How a node's ledger comes back at start: from the newest snapshot that passes every
//! check plus the log after it, or, when there is none, from the whole log.

use crate::db::{Rebuild, Store, StoreError};
use crate::snapshots::{self, SnapshotDir};
use std::path::PathBuf;
use web4fed_core::attest::GenesisVerifier;
use web4fed_core::genesis::Genesis;
use web4fed_core::ledger::Ledger;

/// A ledger brought back, and how.
pub struct Restored {
    /// The ledger, up to date with the log.
    pub ledger: Ledger,
    /// What was read.
    pub rebuild: Rebuild,
    /// The snapshot it started from (epoch and file), if any.
    pub snapshot: Option<(u64, PathBuf)>,
    /// Snapshots refused on the way, newest first, each with the reason.
    pub refused: Vec<String>,
}

/// Restores the ledger: tries the snapshots newest first (framing, checksum, network, the
/// state's root against the certificate this store holds for its epoch, ...), and takes the
/// first that loads; with none, rebuilds from the whole log. A refused snapshot is reported,
/// never deleted: the operator may want to look at it.
pub fn restore(
    store: &Store,
    snaps: &SnapshotDir,
    genesis: &Genesis,
    now_ms: u64,
) -> Result<Restored, StoreError> {
    let network = genesis.network_id();
    let mut refused = Vec::new();
    let listed = snaps.list().map_err(|e| StoreError::Corrupt {
        id: snaps.path().display().to_string(),
        reason: e.to_string(),
    })?;
    let trimmed = store.trimmed_through()?;
    for l in listed.iter().rev() {
        if let (Some(t), Ok(h)) = (trimmed, &l.header) {
            if h.epoch < t {
                refused.push(format!(
                    "{}: older than the history retention removed (epoch {t})",
                    l.path.display()
                ));
                continue;
            }
        }
        let file = match snapshots::read(&l.path, &network) {
            Ok(f) => f,
            Err(e) => {
                refused.push(e.to_string());
                continue;
            }
        };
        let epoch = file.header.epoch;
        let certified = store.certified_root(epoch)?;
        let verifier = Box::new(GenesisVerifier::new(genesis));
        match Ledger::from_snapshot(genesis.clone(), verifier, &file, certified) {
            Ok((mut ledger, known)) => {
                let rebuild = store.rebuild_after_snapshot(&mut ledger, epoch, &known, now_ms)?;
                return Ok(Restored {
                    ledger,
                    rebuild,
                    snapshot: Some((epoch, l.path.clone())),
                    refused,
                });
            }
            Err(e) => refused.push(format!("{}: {e}", l.path.display())),
        }
    }
    if let Some(epoch) = trimmed {
        for why in &refused {
            eprintln!("snapshot refused: {why}");
        }
        return Err(StoreError::Trimmed(epoch));
    }
    let mut ledger = Ledger::new(genesis.clone());
    let rebuild = store.rebuild(&mut ledger, now_ms)?;
    Ok(Restored {
        ledger,
        rebuild,
        snapshot: None,
        refused,
    })
}
