//! A Byzantine web4fed peer and a hostile API client. Each [`Class`] is one way a stranger
//! with a fresh key, a member that paid only the proof of work, or a client on the API's
//! address was found to exhaust a node; [`run`] carries one out against a real node process
//! for a while and reports what was sent and what the victim answered. The tests and
//! `web4fed bench attacks` measure the victim meanwhile (memory, API latency, delivery of
//! honest thoughts, agreement, finality, shutdown).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod class;
pub mod forge;
mod http;
mod p2p;
mod peer;

pub use class::{Class, Standing};
pub use http::HttpCounts;
pub use peer::{Peer, WireCounts};

use web4fed_core::genesis::Genesis;

/// Where the victim is, and what the attacker knows of the network.
#[derive(Debug, Clone)]
pub struct Target {
    /// The victim's libp2p address.
    pub p2p: String,
    /// The victim's API address, host:port.
    pub api: String,
    /// The network's genesis (public: every member is handed it).
    pub genesis: Genesis,
    /// The operator's API token, for the classes that model the operator's own client.
    pub token: Option<String>,
}

/// What became of an ejected member's writes after its ejection (`ejected-writer`,
/// `spammer`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct EjectedWriter {
    /// The seq at which the attacker equivocated, or the last it wrote before the victim
    /// disconnected it for its violations.
    pub seq_at_ejection: u64,
    /// Events it wrote after the ejection.
    pub written_after: u64,
    /// The victim's feed length for the attacker at the end (None if it did not answer).
    pub held_by_victim: Option<u64>,
}

/// What became of the `handshakes` class's connections.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Handshakes {
    /// Connections the victim accepted.
    pub accepted: u64,
    /// Connections it refused (or that failed).
    pub refused: u64,
}

/// What one attack sent and what came back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The class.
    pub class: Class,
    /// Who the attacker was.
    pub standing: Standing,
    /// How long it ran, in seconds.
    pub secs: f64,
    /// The victim's libp2p address.
    pub target: String,
    /// The attacker's member id, when it registered.
    pub member: Option<String>,
    /// libp2p traffic.
    pub wire: WireCounts,
    /// HTTP answers.
    pub http: HttpCounts,
    /// The ejected writer's outcome.
    pub ejected_writer: Option<EjectedWriter>,
    /// The handshake flood's outcome.
    pub handshakes: Option<Handshakes>,
    /// Anything else worth saying.
    pub notes: Vec<String>,
}

/// Runs `class` against `target` for `secs` seconds.
pub fn run(class: Class, target: &Target, secs: f64) -> Result<Report, String> {
    let mut report = Report {
        class,
        standing: class.standing(),
        secs,
        target: target.p2p.clone(),
        member: None,
        wire: WireCounts::default(),
        http: HttpCounts::default(),
        ejected_writer: None,
        handshakes: None,
        notes: Vec::new(),
    };
    if class.needs_token() && target.token.is_none() {
        return Err(format!("{} needs the API token", class.name()));
    }
    match class.standing() {
        Standing::ApiClient => {
            report.http = http::run(
                class,
                &target.api,
                target.token.as_deref(),
                &target.genesis,
                secs,
            )?;
        }
        _ => {
            let addr: libp2p::Multiaddr = target
                .p2p
                .parse()
                .map_err(|e| format!("{}: {e}", target.p2p))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(p2p::run(class, &addr, &target.genesis, secs, &mut report))?;
        }
    }
    Ok(report)
}
