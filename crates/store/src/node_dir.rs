//! The node directory: where a node keeps its key, settings, genesis and event log.
//!
//! ```text
//! DIR/node.key      secret key, mode 0600
//! DIR/node.toml     settings (NodeConfig)
//! DIR/genesis.toml  the network's parameters; its hash is the network id
//! DIR/events.db     the SQLite event log (plus -wal and -shm files)
//! DIR/snapshots/    the fold at recent certified checkpoints (what a restart starts from)
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use web4fed_core::genesis::Genesis;

/// Paths inside a node directory.
#[derive(Debug, Clone)]
pub struct NodeDir {
    root: PathBuf,
}

impl NodeDir {
    /// The directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The secret key file.
    pub fn key(&self) -> PathBuf {
        self.root.join("node.key")
    }
    /// The settings file.
    pub fn config(&self) -> PathBuf {
        self.root.join("node.toml")
    }
    /// The genesis file.
    pub fn genesis(&self) -> PathBuf {
        self.root.join("genesis.toml")
    }
    /// The event log.
    pub fn db(&self) -> PathBuf {
        self.root.join("events.db")
    }
    /// The snapshots of the fold at certified checkpoints.
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }
}

/// A node's settings, from `DIR/node.toml`. Command-line flags override them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The member's display name (also in its registration).
    pub name: String,
    /// The entity type in the member's LCT id.
    pub entity_type: String,
    /// libp2p listen multiaddr.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Operator API address; anything but loopback requires the bearer token.
    #[serde(default = "default_api")]
    pub api: String,
    /// Peers to dial at start, as libp2p multiaddrs.
    #[serde(default)]
    pub peers: Vec<String>,
    /// The TPM that backs this member (written by `init --attest tpm`); the node answers
    /// credential-activation challenges with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmConfig>,
    /// Whether the node rates, with its scorer, each thought its member is drawn onto the
    /// committee of. `false`: the operator rates by hand (`web4fed rate`); a seat left
    /// unrated holds that thought's settlement back.
    #[serde(default = "default_rate_thoughts")]
    pub rate_thoughts: bool,
}

fn default_rate_thoughts() -> bool {
    true
}

/// Where this node's TPM is and where its attestation key lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmConfig {
    /// TCTI for tpm2-tools: `device:/dev/tpmrm0` on a board, `swtpm:host=H,port=P` for swtpm.
    pub tcti: String,
    /// Persistent handle of the attestation key.
    pub ak_handle: u32,
}

fn default_listen() -> String {
    "/ip4/0.0.0.0/tcp/8000".into()
}

fn default_api() -> String {
    "127.0.0.1:8080".into()
}

/// Why a settings or genesis file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML did not parse or named an unknown field.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The genesis parameters are inconsistent.
    #[error("{path}: {source}")]
    Genesis {
        /// The file.
        path: String,
        /// What is wrong.
        source: web4fed_core::genesis::GenesisError,
    },
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ConfigError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: p.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: p,
        message: e.to_string(),
    })
}

fn write_text(path: &Path, text: &str) -> Result<(), ConfigError> {
    crate::atomic::write(
        path,
        text.as_bytes(),
        0o644,
        crate::atomic::Existing::Replace,
    )
    .map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })
}

impl NodeConfig {
    /// Reads `node.toml`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        read_toml(path)
    }
    /// Writes `node.toml`.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        write_text(path, &text)
    }
}

/// Reads and validates a genesis file.
pub fn load_genesis(path: &Path) -> Result<Genesis, ConfigError> {
    let g: Genesis = read_toml(path)?;
    g.validate().map_err(|source| ConfigError::Genesis {
        path: path.display().to_string(),
        source,
    })?;
    Ok(g)
}

/// Writes a genesis file, with a comment naming its network id.
pub fn save_genesis(path: &Path, g: &Genesis) -> Result<(), ConfigError> {
    let body = toml::to_string_pretty(g).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let text = format!(
        "# web4fed network genesis. Every member must hold this exact file.\n\
         # network id: {}\n\
         # Trust and coherence in millionths, ATP in thousandths, durations in ms.\n\n{body}",
        hex::encode(g.network_id())
    );
    write_text(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_round_trips_through_toml_with_the_same_network_id() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("genesis.toml");
        let g = Genesis::with_pow_bits(12);
        save_genesis(&p, &g).unwrap();
        let back = load_genesis(&p).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.network_id(), g.network_id());
        std::fs::write(&p, "pow_bits = 12\nbogus = 1\n").unwrap();
        assert!(matches!(load_genesis(&p), Err(ConfigError::Parse { .. })));
    }
}
