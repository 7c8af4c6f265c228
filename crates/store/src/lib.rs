//! Durable storage of a web4fed node: the SQLite event log, the key file and the node
//! directory layout.
//!
//! Events are the source of truth; everything else (state, roots, certificates' effects) is
//! rebuilt from them. The database runs in WAL mode with `synchronous=FULL`, so a committed append has
//! been fsync'd: an event is acknowledged only after [`Store::append`] returns.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod atomic;
pub mod db;
pub mod keyfile;
pub mod node_dir;
pub mod restore;
pub mod snapshots;

pub use db::{Persisted, Store, StoreError};
