//! The sans-IO replica of web4fed: one implementation of the replication and agreement
//! protocol, driven by the daemon (libp2p, SQLite, HTTP) and by the deterministic simulator
//! (a seeded fake network and clock) alike.
//!
//! A [`Replica`] owns the [`Ledger`](web4fed_core::ledger::Ledger) and everything around it:
//! pushing events, anti-entropy sync (client and server), heartbeats and liveness, peer
//! exchange and redials, vote timing, certificate retries, publishing evidence, and the
//! policy of TPM attestation challenges. It does no I/O, reads no clock, starts no thread
//! and holds no channel: time is an argument of every input.
//!
//! # Inputs and outputs
//! - In: [`Replica::handle_message`] (a peer's gossip, request or response),
//!   [`Replica::handle_timeout`], [`Replica::handle_command`], and the transport's
//!   connection news ([`Replica::handle_connected`], [`Replica::handle_disconnected`],
//!   [`Replica::handle_addresses`], [`Replica::handle_request_failed`]).
//! - Out: [`Replica::poll_event`] (things to persist or do), [`Replica::poll_transmit`]
//!   (messages to send), [`Replica::poll_timeout`] (when to call `handle_timeout` next).
//!
//! # The drain rule
//! After every `handle_*` call the driver drains **all events first, then all
//! transmissions**, then reads `poll_timeout`. Events that change what is durable
//! (`Admitted`, `Proof`, `Certificate`, `Voted`) are persisted while draining events; so
//! nothing is sent, and no command is acknowledged to a client, before what it depends on is
//! on disk. A driver that cannot persist must stop, not send.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agreement;
mod attest;
pub mod backfill;
pub mod budget;
mod gossip;
pub mod io;
pub mod limits;
pub mod peers;
pub mod rating;
mod reconcile;
mod replica;
mod snapshot_serve;
mod sync;
pub mod wire;

pub use agreement::AgreementView;
pub use backfill::{BackfillStatus, Gap};
pub use io::{
    Acceptance, Challenge, Command, CommandError, Counters, Destination, DisconnectReason, Event,
    IngestReport, Reply, Source, Transmit, VotesReport,
};
pub use replica::{Config, Replica};
pub use wire::{Gossip, Message, Request, RequestId, Response, Topic};
