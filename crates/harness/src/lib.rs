//! One harness for child `web4fed run` processes, shared by the bench, the demo and the
//! tests: free ports, network namespaces on a bridge, starting and killing nodes (natively,
//! inside a namespace, or through a runner such as qemu), their HTTP API (with the bearer
//! token off loopback), waits with a deadline, agreement checks and percentiles.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod netns;
mod node;
mod stats;

pub use netns::{run_cmd, Netns};
pub use node::{agent, Node};
pub use stats::median_p99;

use serde_json::Value;
use std::time::{Duration, Instant};

/// Longest any wait lasts; reaching it is a failure, not a measurement.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A free TCP port on loopback (bound, then released for a child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// Polls `ok` every `every` until it holds (returning how long that took) or [`DEADLINE`]
/// passes.
pub fn wait_every(
    what: &str,
    every: Duration,
    ok: impl FnMut() -> bool,
) -> Result<Duration, String> {
    wait_for(what, every, DEADLINE, ok)
}

/// Polls `ok` every `every` until it holds (returning how long that took) or `deadline`
/// passes.
pub fn wait_for(
    what: &str,
    every: Duration,
    deadline: Duration,
    mut ok: impl FnMut() -> bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if ok() {
            return Ok(start.elapsed());
        }
        std::thread::sleep(every);
    }
    Err(format!("timed out after {deadline:?} waiting for {what}"))
}

/// True when every node answers, holds `events` events (if given) and the same state root.
pub fn agree(nodes: &[&Node], events: Option<u64>) -> bool {
    let s: Vec<Value> = nodes.iter().filter_map(|n| n.status()).collect();
    s.len() == nodes.len()
        && s.iter()
            .all(|v| events.is_none() || v["events"].as_u64() == events)
        && s.iter().all(|v| v["state_root"] == s[0]["state_root"])
}
