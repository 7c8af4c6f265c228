//! The node's side of state sync: reading its newest snapshot from disk for a peer, after
//! the replica has charged the peer for it (see the replica's snapshot budgets).

use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use web4fed_core::snapshot::{Header, HEADER_LEN};
use web4fed_replica::io::SnapshotPart;
use web4fed_replica::limits::{MAX_SNAPSHOT_CHUNKS, SNAPSHOT_CHUNK_BYTES};
use web4fed_replica::wire::Response;
use web4fed_store::snapshots::SnapshotDir;

/// The snapshot offered: its file and what a `SnapshotInfo` answer carries, computed once
/// per file (hashing it reads the whole file).
#[derive(Debug, Clone)]
pub struct Offered {
    path: PathBuf,
    header: Vec<u8>,
    chunks: Vec<[u8; 32]>,
}

/// Answers a peer's snapshot request from disk.
pub fn read(
    dir: &SnapshotDir,
    offered: &mut Option<Offered>,
    part: SnapshotPart,
) -> Result<Response, String> {
    match part {
        SnapshotPart::Info => {
            let newest = dir
                .list()
                .map_err(|e| e.to_string())?
                .into_iter()
                .rev()
                .find(|l| l.header.is_ok())
                .ok_or("no snapshot to offer")?;
            if offered.as_ref().is_none_or(|o| o.path != newest.path) {
                *offered = Some(describe(newest.path)?);
            }
            let o = offered.as_ref().ok_or("no snapshot to offer")?;
            Ok(Response::SnapshotInfo {
                header: serde_bytes::ByteBuf::from(o.header.clone()),
                chunks: o
                    .chunks
                    .iter()
                    .map(|c| serde_bytes::ByteBuf::from(c.to_vec()))
                    .collect(),
            })
        }
        SnapshotPart::Chunk { epoch, index } => {
            let path = dir.path_of(epoch);
            let mut f = std::fs::File::open(&path)
                .map_err(|_| format!("no snapshot of epoch {epoch} held (rotated out?)"))?;
            let len = f.metadata().map_err(|e| e.to_string())?.len();
            let at = u64::from(index) * SNAPSHOT_CHUNK_BYTES as u64;
            if at >= len {
                return Err(format!("chunk {index} is past the end of the snapshot"));
            }
            f.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
            let mut buf = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES.min((len - at) as usize));
            f.take(SNAPSHOT_CHUNK_BYTES as u64)
                .read_to_end(&mut buf)
                .map_err(|e| e.to_string())?;
            Ok(Response::SnapshotChunk {
                bytes: serde_bytes::ByteBuf::from(buf),
            })
        }
    }
}

/// Reads a snapshot file once: its header and the hash of each chunk.
fn describe(path: PathBuf) -> Result<Offered, String> {
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    Header::read(&bytes).map_err(|e| e.to_string())?;
    let chunks: Vec<[u8; 32]> = bytes
        .chunks(SNAPSHOT_CHUNK_BYTES)
        .map(|c| Sha256::digest(c).into())
        .collect();
    if chunks.len() > MAX_SNAPSHOT_CHUNKS {
        return Err("snapshot too large to offer".into());
    }
    Ok(Offered {
        path,
        header: bytes[..HEADER_LEN].to_vec(),
        chunks,
    })
}
