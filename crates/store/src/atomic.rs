//! Files that appear whole or not at all.
//!
//! A node directory is read by other processes while it is written: the CLI and test
//! harnesses read `api.token` as soon as it exists, and a crash half-way through writing a
//! key or a config must not leave an empty file that later passes for a real one (an empty
//! API token would be a token that anyone can send). So every file is written under a
//! temporary name, synced, and then moved into place with one `link`/`rename`, which
//! readers see either before or after, never during.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How an existing file at the destination is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse with `AlreadyExists` (keys and tokens are never silently replaced).
    Keep,
    /// Replace it (settings files).
    Replace,
}

/// The temporary sibling a file is written under: same directory (so the final move is a
/// rename within one file system), named after the process so two writers never share it.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` with permission `mode`, atomically: readers see no file or the
/// whole file. With [`Existing::Keep`], fails with `AlreadyExists` when `path` exists.
pub fn write(path: &Path, bytes: &[u8], mode: u32, existing: Existing) -> std::io::Result<()> {
    write_with(path, mode, existing, |f| f.write_all(bytes))
}

/// Like [`write`], with the contents written by `fill` into the (empty, new) temporary file:
/// for contents streamed rather than held in memory whole.
pub fn write_with(
    path: &Path,
    mode: u32,
    existing: Existing,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        match existing {
            // A hard link fails if the destination exists: create-new semantics, atomically.
            Existing::Keep => std::fs::hard_link(&tmp, path),
            Existing::Replace => std::fs::rename(&tmp, path),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result?;
    // The directory entry itself must reach the disk for the file to survive a crash.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_refuses_an_existing_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        write(&p, b"one", 0o600, Existing::Keep).unwrap();
        let e = write(&p, b"two", 0o600, Existing::Keep).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write(&p, b"three", 0o600, Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary files left behind: {names:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// The bug this module exists for: a reader polling for the file while it is written
    /// must never see it empty or partial. 4 MiB takes long enough to write that the old
    /// create-then-write code fails this within a few rounds.
    #[test]
    fn a_concurrent_reader_never_sees_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let content = vec![b'x'; 4 << 20];
        for round in 0..20 {
            let p = dir.path().join(format!("token-{round}"));
            let reader = {
                let p = p.clone();
                let len = content.len();
                std::thread::spawn(move || loop {
                    if let Ok(got) = std::fs::read(&p) {
                        return got.len() == len;
                    }
                    std::thread::yield_now();
                })
            };
            write(&p, &content, 0o600, Existing::Keep).unwrap();
            assert!(reader.join().unwrap(), "round {round}: partial file seen");
        }
    }
}
