//! Snapshot files of a node, `DIR/snapshots/snapshot-<epoch>.w4s`: each one the fold at a
//! certified checkpoint (see `web4fed_core::snapshot`), written whole or not at all (a kill
//! during a write leaves the previous ones and at most a hidden temporary file), the newest
//! few kept.

use crate::atomic::{self, Existing};
use std::path::{Path, PathBuf};
use web4fed_core::snapshot::{Header, SnapshotDraft, SnapshotError, SnapshotFile, HEADER_LEN};

/// Snapshots kept by default: the newest is what a restart uses; the ones before it are
/// there in case it is damaged (each is one copy of the state on disk).
pub const DEFAULT_KEPT: usize = 3;

/// The extension of snapshot files.
const EXT: &str = "w4s";

/// A node's snapshot directory.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    path: PathBuf,
}

/// One snapshot file found on disk.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its path.
    pub path: PathBuf,
    /// Its header, or why it could not be read.
    pub header: Result<Header, String>,
    /// Its size in bytes.
    pub bytes: u64,
}

impl SnapshotDir {
    /// The directory at `path` (created on the first write).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the snapshot of `epoch` is written.
    pub fn path_of(&self, epoch: u64) -> PathBuf {
        self.path.join(format!("snapshot-{epoch:020}.{EXT}"))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a snapshot atomically, then deletes all but the newest `keep`. Returns the
    /// bytes written.
    pub fn write(&self, file: &SnapshotFile, keep: usize) -> std::io::Result<u64> {
        std::fs::create_dir_all(&self.path)?;
        let bytes = file.encode();
        atomic::write(
            &self.path_of(file.header.epoch),
            &bytes,
            0o600,
            Existing::Replace,
        )?;
        self.keep_newest(keep)?;
        Ok(bytes.len() as u64)
    }

    /// [`SnapshotDir::write`] for a snapshot not yet encoded: checked and streamed into the
    /// file (what a running node writes; no copy of the whole body is held in memory).
    pub fn write_draft(&self, draft: &SnapshotDraft, keep: usize) -> std::io::Result<u64> {
        std::fs::create_dir_all(&self.path)?;
        let mut len = 0;
        atomic::write_with(
            &self.path_of(draft.epoch()),
            0o600,
            Existing::Replace,
            |f| {
                len = draft.write_to(f)?;
                Ok(())
            },
        )?;
        self.keep_newest(keep)?;
        Ok(len)
    }

    /// Deletes all but the newest `keep` files (at least one).
    fn keep_newest(&self, keep: usize) -> std::io::Result<()> {
        let listed = self.list()?;
        for old in listed.iter().rev().skip(keep.max(1)) {
            let _ = std::fs::remove_file(&old.path);
        }
        Ok(())
    }

    /// The snapshot files present, oldest first (by the epoch in their name).
    pub fn list(&self) -> std::io::Result<Vec<Listed>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Temporaries of an interrupted write start with a dot; they are never read.
            if name.starts_with('.') || path.extension().is_none_or(|x| x != EXT) {
                continue;
            }
            let bytes = entry.metadata().map_or(0, |m| m.len());
            let header = read_header(&path);
            out.push(Listed {
                path,
                header,
                bytes,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// Reads a file's header only.
fn read_header(path: &Path) -> Result<Header, String> {
    use std::io::Read;
    let mut buf = [0u8; HEADER_LEN];
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut n = 0;
    while n < HEADER_LEN {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(e.to_string()),
        }
    }
    Header::read(&buf[..n]).map_err(|e| e.to_string())
}

/// Why a snapshot file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file was read and refused.
    #[error("{path}: {source}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        source: SnapshotError,
    },
}

/// Reads a whole snapshot file and checks its framing, network and checksum.
pub fn read(path: &Path, network: &[u8; 32]) -> Result<SnapshotFile, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    SnapshotFile::decode(&bytes, network).map_err(|source| LoadError::Refused {
        path: path.to_owned(),
        source,
    })
}
