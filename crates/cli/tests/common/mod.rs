//! Shared helpers for tests that run real `web4fed` processes: node directories, starting and
//! killing nodes (optionally inside a network namespace), and the HTTP API.
#![allow(dead_code, unused_imports)]

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub use web4fed_harness::{agree, Node, DEADLINE};

/// The `web4fed` binary under test.
pub fn web4fed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_web4fed"))
}

/// Runs a command to completion and requires success, showing its stderr otherwise.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An HTTP client that returns 4xx/5xx as responses, not errors.
pub fn agent() -> ureq::Agent {
    web4fed_harness::agent(Duration::from_secs(10))
}

/// What the tests do with a node beyond the harness: make it with `web4fed init`, start it
/// or fail the test, and post to its API expecting an answer.
pub trait NodeExt: Sized {
    /// `web4fed init` with PoW 8 and an optional genesis file.
    fn init(root: &Path, name: &str, genesis: Option<&Path>) -> Self;
    /// `web4fed init` with PoW 8, an optional genesis file and extra arguments.
    fn init_with(root: &Path, name: &str, genesis: Option<&Path>, extra: &[&str]) -> Self;
    /// Starts `web4fed run` (heartbeat 250 ms) and waits for its API, or fails the test.
    fn start(&mut self, peers: &[String], adversary: Option<&str>);
    /// Starts the node with extra `web4fed run` flags.
    fn start_with(&mut self, peers: &[String], extra: &[&str]);
    /// POST a raw body to /v1/thoughts.
    fn post_raw(&self, body: &str) -> (u16, Value);
    /// POST raw bytes to an API path.
    fn post_bytes(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, Value);
    /// Submits a thought.
    fn submit(&self, content: &str) -> (u16, Value);
}

impl NodeExt for Node {
    fn init(root: &Path, name: &str, genesis: Option<&Path>) -> Self {
        Self::init_with(root, name, genesis, &[])
    }

    fn init_with(root: &Path, name: &str, genesis: Option<&Path>, extra: &[&str]) -> Self {
        let dir = root.join(name);
        let mut cmd = web4fed();
        cmd.args(["init", "--pow-bits", "8", "--name", name, "--dir"])
            .arg(&dir)
            .args(extra);
        if let Some(g) = genesis {
            cmd.arg("--genesis").arg(g);
        }
        run_ok(&mut cmd);
        Node::new(env!("CARGO_BIN_EXE_web4fed"), dir, name)
    }

    fn start(&mut self, peers: &[String], adversary: Option<&str>) {
        let mut extra = vec!["--heartbeat-ms", "250"];
        if let Some(a) = adversary {
            extra.extend(["--adversary", a]);
        }
        if let Err(e) = self.spawn(peers, &extra) {
            panic!("{}: {e}", self.name);
        }
    }

    fn start_with(&mut self, peers: &[String], extra: &[&str]) {
        let mut all = vec!["--heartbeat-ms", "250"];
        all.extend_from_slice(extra);
        if let Err(e) = self.spawn(peers, &all) {
            panic!("{}: {e}", self.name);
        }
    }

    fn post_raw(&self, body: &str) -> (u16, Value) {
        self.post_bytes("/v1/thoughts", "application/json", body.as_bytes())
    }

    fn post_bytes(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        self.post(path, content_type, body).unwrap()
    }

    fn submit(&self, content: &str) -> (u16, Value) {
        self.post_raw(&json!({ "content": content }).to_string())
    }
}

/// Waits for `ok`, printing every node's log and failing at the deadline. Returns the time
/// it took.
pub fn wait(what: &str, nodes: &[&Node], mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if ok() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for n in nodes {
        eprintln!("==== {} log ====\n{}", n.name, n.log());
    }
    for n in nodes {
        eprintln!("==== {} status ====\n{:?}", n.name, n.status());
        eprintln!("==== {} peers ====\n{:?}", n.name, n.get("/v1/peers"));
    }
    panic!("timed out waiting for {what}");
}

/// A coherent, distinct thought.
pub fn sentence(i: u64) -> String {
    web4fed_core::testkit::sentence(i)
}

/// Starts nodes: the first with no peers, the others knowing only the first (so they must
/// learn each other through peer exchange). Waits for the full mesh and every registration.
pub fn start_federation(nodes: &mut [Node], adversary: &[(usize, &str)]) {
    let first = nodes[0].addr();
    let n = nodes.len() as u64;
    for (i, node) in nodes.iter_mut().enumerate() {
        let peers = if i == 0 { vec![] } else { vec![first.clone()] };
        let adv = adversary.iter().find(|(k, _)| *k == i).map(|(_, a)| *a);
        node.start(&peers, adv);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait("full mesh and every registration everywhere", &refs, || {
        refs.iter().all(|nd| {
            nd.status().is_some_and(|s| {
                s["peers_connected"].as_u64() == Some(n - 1) && s["members"].as_u64() == Some(n)
            })
        })
    });
}

/// Median and 99th percentile of durations, in ms.
pub fn median_p99(samples: &mut [Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    web4fed_harness::median_p99(&mut ms)
}

/// `web4fed genesis` for a named network with PoW 8 and `--set KEY=VALUE` overrides (no
/// founders: the open setting).
pub fn genesis(root: &Path, name: &str, set: &[&str]) -> std::path::PathBuf {
    genesis_founded(root, name, set, &[])
}

/// `web4fed keygen` for node `name` under `root`: its member id (hex), for `--founder`.
pub fn keygen(root: &Path, name: &str) -> String {
    let out = run_ok(web4fed().args(["keygen", "--dir"]).arg(root.join(name)));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `web4fed genesis` like [`genesis`], naming `founders` (member ids from [`keygen`]).
pub fn genesis_founded(
    root: &Path,
    name: &str,
    set: &[&str],
    founders: &[String],
) -> std::path::PathBuf {
    let path = root.join(name);
    let mut cmd = web4fed();
    cmd.args([
        "genesis",
        "--pow-bits",
        "8",
        "--network-name",
        name,
        "--out",
    ])
    .arg(&path);
    for s in set {
        cmd.args(["--set", s]);
    }
    for f in founders {
        cmd.args(["--founder", f]);
    }
    run_ok(&mut cmd);
    path
}

/// Events framed as `POST /v1/events` takes them: each as a 4-byte big-endian length and
/// its bytes.
pub fn framed(events: &[web4fed_core::event::Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(&(e.bytes().len() as u32).to_be_bytes());
        out.extend_from_slice(e.bytes());
    }
    out
}

/// A federation whose genesis names every node a founder: keys first (`keygen`), then the
/// genesis (`set` as `NAME=VALUE` overrides), then `init` with it. Returns the nodes (not
/// started) and the genesis file.
pub fn founded_nodes(root: &Path, names: &[&str], set: &[&str]) -> (Vec<Node>, std::path::PathBuf) {
    std::fs::create_dir_all(root).unwrap();
    let ids: Vec<String> = names.iter().map(|n| keygen(root, n)).collect();
    let g = genesis_founded(root, "genesis.toml", set, &ids);
    let nodes = names
        .iter()
        .map(|n| Node::init(root, n, Some(&g)))
        .collect();
    (nodes, g)
}
