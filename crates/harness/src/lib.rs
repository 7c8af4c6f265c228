//! One harness for child `web4fed run` processes, shared by the bench, the demo and the
//! tests: free ports, network namespaces on a bridge, starting and killing nodes (natively,
//! inside a namespace, or through a runner such as qemu), their HTTP API (with the bearer
//! token off loopback), slow links (a delaying relay), waits with a deadline, agreement
//! checks and percentiles.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod netns;
mod node;
mod relay;
mod siege;
mod stats;

pub use netns::{run_cmd, Netns};
pub use node::{agent, Node};
pub use relay::{LinkSpec, Relay};
pub use siege::{besiege, Measured};
pub use stats::median_p99;

use serde_json::Value;
use std::time::{Duration, Instant};

/// Longest any wait lasts; reaching it is a failure, not a measurement.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A free TCP port on loopback for a child to take, chosen below the kernel's ephemeral range.
///
/// A port inside that range (what binding port 0 returns) can be handed to some process's
/// outgoing connection between our release and the child's bind, and tests run in parallel
/// processes make many connections; below the range only another listener can take it, and
/// the random start makes two test processes unlikely to pick the same one.
/// [`Node::spawn`] still retries with fresh ports when the child reports the port taken.
pub fn free_port() -> u16 {
    let (low, _) = ephemeral_range();
    let span = u64::from(low.saturating_sub(FIRST_PORT)).max(1);
    let start = random_u64();
    for i in 0..PORT_TRIES {
        let port = FIRST_PORT + ((start.wrapping_add(i * 7919)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// Lowest port [`free_port`] hands out: above the registered services most machines run.
const FIRST_PORT: u16 = 10_000;
/// Ports [`free_port`] tries before falling back to one the kernel picks.
const PORT_TRIES: u64 = 200;

/// The kernel's ephemeral port range (Linux default when it cannot be read).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// A random number from the standard library's per-process hash keys, the clock and the pid
/// (enough to spread test processes over ports; nothing depends on it being unpredictable).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
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

/// Starts nodes (the first with no peers, the others knowing only the first, so they must
/// learn each other through peer exchange) with these extra `run` arguments, and waits for
/// the full mesh and every registration everywhere.
pub fn start_mesh(nodes: &mut [Node], extra: &[&str]) -> Result<(), String> {
    let first = nodes.first().map(Node::addr).unwrap_or_default();
    for (i, node) in nodes.iter_mut().enumerate() {
        let peers = if i == 0 { vec![] } else { vec![first.clone()] };
        node.spawn(&peers, extra)?;
    }
    let n = nodes.len() as u64;
    wait_every(
        "full mesh and every registration everywhere",
        Duration::from_millis(20),
        || {
            nodes.iter().all(|nd| {
                nd.status().is_some_and(|s| {
                    s["peers_connected"].as_u64() == Some(n - 1) && s["members"].as_u64() == Some(n)
                })
            })
        },
    )
    .map(|_| ())
}

/// True when every node answers, holds `events` events apart from committee ratings (if
/// given; see [`Node::events`]) and the same state root.
pub fn agree(nodes: &[&Node], events: Option<u64>) -> bool {
    let s: Vec<Value> = nodes.iter().filter_map(|n| n.status()).collect();
    s.len() == nodes.len()
        && s.iter()
            .all(|v| events.is_none() || node::posted_events(v) == events)
        && s.iter().all(|v| v["state_root"] == s[0]["state_root"])
}
