//! Shared helpers for tests that run real `web4fed` processes: node directories, starting and
//! killing nodes (optionally inside a network namespace), and the HTTP API.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest any wait in these tests lasts; reaching it is a failure, not a measurement.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// One node process.
pub struct Node {
    /// Display name.
    pub name: String,
    /// Node directory.
    pub dir: PathBuf,
    /// Host address the node listens on.
    pub ip: String,
    /// libp2p port.
    pub p2p: u16,
    /// API port.
    pub api: u16,
    /// Network namespace to run in, if any.
    pub netns: Option<String>,
    /// Send the API token with every request.
    pub token: Option<String>,
    /// Run this binary through this command instead of natively (e.g. qemu-aarch64 for an
    /// aarch64 build): the command line, then the binary.
    pub runner: Option<(Vec<String>, String)>,
    child: Option<Child>,
}

impl Node {
    /// `web4fed init` with PoW 8 and an optional genesis file.
    pub fn init(root: &Path, name: &str, genesis: Option<&Path>) -> Self {
        Self::init_with(root, name, genesis, &[])
    }

    /// `web4fed init` with PoW 8, an optional genesis file and extra arguments.
    pub fn init_with(root: &Path, name: &str, genesis: Option<&Path>, extra: &[&str]) -> Self {
        let dir = root.join(name);
        let mut cmd = web4fed();
        cmd.args(["init", "--pow-bits", "8", "--name", name, "--dir"])
            .arg(&dir)
            .args(extra);
        if let Some(g) = genesis {
            cmd.arg("--genesis").arg(g);
        }
        run_ok(&mut cmd);
        Self {
            name: name.into(),
            dir,
            ip: "127.0.0.1".into(),
            p2p: free_port(),
            api: free_port(),
            netns: None,
            token: None,
            runner: None,
            child: None,
        }
    }

    /// The libp2p address.
    pub fn addr(&self) -> String {
        format!("/ip4/{}/tcp/{}", self.ip, self.p2p)
    }

    /// Starts `web4fed run` with these peers and an optional adversary behaviour.
    pub fn start(&mut self, peers: &[String], adversary: Option<&str>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .unwrap();
        let mut argv: Vec<String> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns].map(String::from));
        }
        match &self.runner {
            Some((prefix, bin)) => {
                argv.extend(prefix.iter().cloned());
                argv.push(bin.clone());
            }
            None => argv.push(env!("CARGO_BIN_EXE_web4fed").to_string()),
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd.arg("run")
            .arg("--dir")
            .arg(&self.dir)
            .args(["--listen", &self.addr()])
            .args(["--api", &format!("{}:{}", self.ip, self.api)])
            .args(["--heartbeat-ms", "250"])
            .stdout(Stdio::null())
            .stderr(log);
        for p in peers {
            cmd.args(["--peer", p]);
        }
        if let Some(a) = adversary {
            cmd.args(["--adversary", a]);
        }
        self.child = Some(cmd.spawn().unwrap());
        let api_ready = Instant::now();
        while api_ready.elapsed() < DEADLINE && self.status().is_none() {
            std::thread::sleep(Duration::from_millis(20));
            // Read again on every miss: the node makes the token as it starts.
            self.token = std::fs::read_to_string(self.dir.join("api.token"))
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty());
        }
        assert!(
            self.status().is_some(),
            "{}: the API did not answer within {DEADLINE:?}\n{}",
            self.name,
            self.log()
        );
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// An API URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip, self.api)
    }

    fn with_token(
        &self,
        r: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        match &self.token {
            Some(t) => r.header("Authorization", format!("Bearer {t}")),
            None => r,
        }
    }

    /// GET a JSON document (None on any failure).
    pub fn get(&self, path: &str) -> Option<Value> {
        let mut r = self.with_token(agent().get(self.url(path))).call().ok()?;
        if r.status() != 200 {
            return None;
        }
        r.body_mut().read_json().ok()
    }

    /// POST a raw body to /v1/thoughts.
    pub fn post_raw(&self, body: &str) -> (u16, Value) {
        let mut req = agent()
            .post(self.url("/v1/thoughts"))
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut r = req.send(body).unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_json().unwrap_or(Value::Null),
        )
    }

    /// POST raw bytes to an API path.
    pub fn post_bytes(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        let mut req = agent()
            .post(self.url(path))
            .header("content-type", content_type);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut r = req.send(body).unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_json().unwrap_or(Value::Null),
        )
    }

    /// Submits a thought.
    pub fn submit(&self, content: &str) -> (u16, Value) {
        self.post_raw(&json!({ "content": content }).to_string())
    }

    /// GET /v1/status.
    pub fn status(&self) -> Option<Value> {
        self.get("/v1/status")
    }

    /// Events held.
    pub fn events(&self) -> Option<u64> {
        self.status()?["events"].as_u64()
    }

    /// One member's account from /v1/state.
    pub fn account(&self, member: &str) -> Option<Value> {
        let state = self.get("/v1/state")?;
        state["accounts"]
            .as_array()?
            .iter()
            .find(|a| a["member"] == member)
            .cloned()
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
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

/// True when every node answers, holds `events` events (if given) and the same state root.
pub fn agree(nodes: &[&Node], events: Option<u64>) -> bool {
    let s: Vec<Value> = nodes.iter().filter_map(|n| n.status()).collect();
    s.len() == nodes.len()
        && s.iter()
            .all(|v| events.is_none() || v["events"].as_u64() == events)
        && s.iter().all(|v| v["state_root"] == s[0]["state_root"])
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
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = samples.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let p99 = ((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1;
    (ms(samples[n / 2]), ms(samples[p99]))
}

/// `web4fed genesis` for a named network with PoW 8 and `--set KEY=VALUE` overrides.
pub fn genesis(root: &Path, name: &str, set: &[&str]) -> std::path::PathBuf {
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
    assert!(cmd.status().unwrap().success());
    path
}
