//! The sans-IO protocol core of web4fed.
//!
//! No I/O, no clock, no threads: time arrives as an argument, and everything the core wants
//! done comes back as data. The daemon drives it with libp2p and SQLite, the simulator with a
//! seeded fake network and clock; the same code runs in both.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attest;
pub mod codec;
mod corpus_roots;
pub mod envelope;
pub mod event;
pub mod evidence;
pub mod finality;
pub mod fixed;
pub mod genesis;
pub mod identity;
pub mod ledger;
pub mod merkle;
mod persistent_serde;
pub mod pow;
pub mod quality;
pub mod snapshot;
pub mod state;
pub mod testkit;
pub mod tpm;
pub mod verdict;
