//! The web4fed daemon: the sans-IO core driven by libp2p, SQLite and an axum operator API.
//!
//! One tokio task owns the ledger, the store and the swarm (`node`); the HTTP API talks to it
//! through a bounded command channel, so every read and write sees one consistent state.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod metrics;
// The NetworkBehaviour derive generates an undocumented event enum.
#[allow(missing_docs)]
pub mod net;
pub mod node;

pub use node::{run, Adversary, NodeSettings};
