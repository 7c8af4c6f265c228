//! The member's secret key on disk: created with mode 0600, refused when others can read it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use web4fed_core::identity::Keypair;

/// First line of a key file: names the format so a wrong file is refused clearly.
const KEY_FILE_HEADER: &str = "web4fed-ed25519-secret-v1";
/// Permission bits that must be clear: nobody but the owner may read or write the key.
const KEY_FILE_FORBIDDEN_MODE: u32 = 0o077;

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Others may read the key.
    #[error("key file {path} has mode {mode:o}: readable by others; run `chmod 600 {path}`")]
    TooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not a key file of this format.
    #[error("key file {path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The OS random source failed.
    #[error("no randomness from the OS: {0}")]
    Random(String),
}

/// A new key pair from the OS random source.
pub fn generate() -> Result<Keypair, KeyFileError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| KeyFileError::Random(e.to_string()))?;
    Ok(Keypair::from_secret(secret))
}

/// Writes a new key file with mode 0600. Refuses to overwrite an existing file.
pub fn write_new(path: &Path, keypair: &Keypair) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = format!("{KEY_FILE_HEADER}\n{}\n", hex::encode(keypair.secret()));
    crate::atomic::write(path, text.as_bytes(), 0o600, crate::atomic::Existing::Keep).map_err(io)
}

/// Reads a key file, refusing it when others can read it.
pub fn read(path: &Path) -> Result<Keypair, KeyFileError> {
    let p = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| KeyFileError::Io {
        path: p.clone(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & KEY_FILE_FORBIDDEN_MODE != 0 {
        return Err(KeyFileError::TooOpen { path: p, mode });
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: p.clone(),
        source,
    })?;
    let malformed = |reason| KeyFileError::Malformed {
        path: p.clone(),
        reason,
    };
    let mut lines = text.lines();
    if lines.next() != Some(KEY_FILE_HEADER) {
        return Err(malformed("first line is not the web4fed key header"));
    }
    let hex_secret = lines.next().ok_or_else(|| malformed("no key line"))?;
    let bytes = hex::decode(hex_secret.trim()).map_err(|_| malformed("key is not hex"))?;
    let secret: [u8; 32] = bytes
        .try_into()
        .map_err(|_| malformed("key is not 32 bytes"))?;
    Ok(Keypair::from_secret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_key_is_private_and_round_trips_and_open_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let kp = generate().unwrap();
        write_new(&path, &kp).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&path).unwrap().id(), kp.id());
        assert!(write_new(&path, &kp).is_err(), "never overwrites a key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read(&path),
            Err(KeyFileError::TooOpen { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(matches!(read(&path), Err(KeyFileError::Malformed { .. })));
    }
}
