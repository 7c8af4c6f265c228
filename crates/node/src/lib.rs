//! The web4fed daemon: the sans-IO replica driven by libp2p, SQLite and an axum operator API.
//!
//! One tokio task owns the replica, the store and the swarm (`driver`); the HTTP API talks to
//! it through a bounded command channel with typed commands and answers, so every read and
//! write sees one consistent state.
//!
//! | file | job |
//! |---|---|
//! | `driver.rs` | the node task: the loop, the drain rule, swarm events into the replica |
//! | `swarm.rs` | the libp2p behaviour, topics, peer ↔ member ids |
//! | `persist.rs` | writing what the replica asks to persist |
//! | `command.rs` | typed commands and queries between the API and the node task |
//! | `api.rs` | HTTP: routes, bodies, status codes |
//! | `auth.rs` | who may use the API: token, sessions, Host and Origin, concurrency |
//! | `views.rs` | JSON views of the node |
//! | `live.rs` | the dashboard's live feed, history and recent thoughts |
//! | `metrics.rs` | Prometheus metrics |
//! | `tpm.rs` | making and answering TPM challenges |
//! | `adversary.rs` | attack behaviours for experiments |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod address_limits;
mod adversary;
pub mod api;
pub mod auth;
mod backfill;
pub mod command;
pub mod driver;
pub mod live;
pub mod metrics;
pub mod persist;
mod snapshot_offer;
pub mod state_sync;
// The NetworkBehaviour derive generates an undocumented event enum.
#[allow(missing_docs)]
pub mod swarm;
pub mod tpm;
mod views;

pub use backfill::History;
pub use driver::{now_ms, run, Adversary, NodeSettings, Retention};
