//! One `web4fed run` child process and its HTTP API.

use crate::{wait_every, DEADLINE};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An HTTP client that returns 4xx/5xx as responses, not errors.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .new_agent()
}

/// One node process: where it runs, its ports, and the child while it runs.
#[derive(Debug)]
pub struct Node {
    /// Display name.
    pub name: String,
    /// Node directory (from `web4fed init`); its `node.log` collects the child's stderr.
    pub dir: PathBuf,
    /// The `web4fed` binary.
    pub exe: PathBuf,
    /// Host address the node listens on.
    pub ip: String,
    /// libp2p port.
    pub p2p: u16,
    /// API port.
    pub api: u16,
    /// Network namespace to run in, if any.
    pub netns: Option<String>,
    /// The API token, sent with every request when set (read from `api.token` as the node
    /// starts when the API is off loopback).
    pub token: Option<String>,
    /// Run the binary through this command instead of natively (e.g. qemu-aarch64 for an
    /// aarch64 build): the command line, then the binary.
    pub runner: Option<(Vec<String>, String)>,
    /// Extra environment for the child.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl Node {
    /// A node on loopback with free ports.
    pub fn new(exe: impl Into<PathBuf>, dir: impl Into<PathBuf>, name: &str) -> Self {
        Self {
            name: name.into(),
            dir: dir.into(),
            exe: exe.into(),
            ip: "127.0.0.1".into(),
            p2p: crate::free_port(),
            api: crate::free_port(),
            netns: None,
            token: None,
            runner: None,
            env: Vec::new(),
            child: None,
            agent: agent(Duration::from_secs(60)),
        }
    }

    /// The same node inside a namespace at `ip` (fixed ports: the namespace is its own).
    pub fn in_netns(mut self, ns: String, ip: String) -> Self {
        self.netns = Some(ns);
        self.ip = ip;
        self.p2p = 8000;
        self.api = 8080;
        self
    }

    /// A second handle on the same node's API (for another thread); dropping it does not
    /// stop the node.
    pub fn handle(&self) -> Self {
        Self {
            name: self.name.clone(),
            dir: self.dir.clone(),
            exe: self.exe.clone(),
            ip: self.ip.clone(),
            p2p: self.p2p,
            api: self.api,
            netns: self.netns.clone(),
            token: self.token.clone(),
            runner: self.runner.clone(),
            env: self.env.clone(),
            child: None,
            agent: self.agent.clone(),
        }
    }

    /// The libp2p address.
    pub fn addr(&self) -> String {
        format!("/ip4/{}/tcp/{}", self.ip, self.p2p)
    }

    /// An API URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip, self.api)
    }

    /// Starts `web4fed run` with these peers and extra arguments, and waits until its API
    /// answers (re-reading the token, which the node writes as it starts). A child that exits
    /// first fails at once with its log; one that found a port taken (another test process
    /// bound it after [`crate::free_port`] chose it) is started again on fresh ports, unless
    /// it runs in a namespace, whose ports are fixed.
    pub fn spawn(&mut self, peers: &[String], extra: &[&str]) -> Result<(), String> {
        let mut tries = 0;
        loop {
            let seen = self.log().len();
            match self.spawn_once(peers, extra) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let taken = self
                        .log()
                        .get(seen..)
                        .is_some_and(|l| l.contains("Address already in use"));
                    tries += 1;
                    if !taken || self.netns.is_some() || tries >= PORT_RETRIES {
                        return Err(e);
                    }
                    self.p2p = crate::free_port();
                    self.api = crate::free_port();
                }
            }
        }
    }

    fn spawn_once(&mut self, peers: &[String], extra: &[&str]) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut argv: Vec<String> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns].map(String::from));
        }
        match &self.runner {
            Some((prefix, bin)) => {
                argv.extend(prefix.iter().cloned());
                argv.push(bin.clone());
            }
            None => argv.push(self.exe.to_string_lossy().into_owned()),
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .arg("run")
            .arg("--dir")
            .arg(&self.dir)
            .args(["--listen", &self.addr()])
            .args(["--api", &format!("{}:{}", self.ip, self.api)])
            .args(extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log);
        for p in peers {
            cmd.args(["--peer", p]);
        }
        self.child = Some(cmd.spawn().map_err(|e| format!("{}: {e}", argv[0]))?);
        let token_file = self.dir.join("api.token");
        let mut exited = None;
        let res = wait_every(
            &format!("{} API", self.name),
            Duration::from_millis(20),
            || {
                if self.status().is_some() {
                    return true;
                }
                if let Some(c) = self.child.as_mut() {
                    if let Ok(Some(st)) = c.try_wait() {
                        exited = Some(st);
                        return true;
                    }
                }
                // Read again on every miss: an empty or missing file is not a token.
                self.token = std::fs::read_to_string(&token_file)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty());
                false
            },
        );
        if let Some(st) = exited {
            self.child = None;
            return Err(format!(
                "{} exited before its API answered ({st})\n{}",
                self.name,
                self.log()
            ));
        }
        res.map(|_| ()).map_err(|e| format!("{e}\n{}", self.log()))
    }

    /// A `web4fed attack` command (same binary) aimed at this node for `secs` seconds, with
    /// the network's genesis and this node's API token from its directory.
    pub fn attack_command(&self, class: &str, secs: f64) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["attack", "--class", class])
            .args(["--secs", &secs.to_string()])
            .args(["--target", &self.addr()])
            .args(["--api", &format!("{}:{}", self.ip, self.api)])
            .arg("--genesis")
            .arg(self.dir.join("genesis.toml"))
            .arg("--token-file")
            .arg(self.dir.join("api.token"));
        cmd
    }

    /// SIGKILL, and wait for the child.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait up to [`DEADLINE`] for a clean exit; returns whether it exited.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let start = std::time::Instant::now();
        while start.elapsed() < DEADLINE {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// The child's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn with_token<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => r.header("Authorization", format!("Bearer {t}")),
            None => r,
        }
    }

    /// GET a JSON document (None on any failure or non-200 answer).
    pub fn get(&self, path: &str) -> Option<Value> {
        let mut r = self
            .with_token(self.agent.get(self.url(path)))
            .call()
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        r.body_mut().read_json().ok()
    }

    /// GET a text document (None on any failure).
    pub fn get_text(&self, path: &str) -> Option<String> {
        let mut r = self
            .with_token(self.agent.get(self.url(path)))
            .call()
            .ok()?;
        r.body_mut().read_to_string().ok()
    }

    /// POST a body; the status and the JSON answer (Null when it is not JSON).
    pub fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Value), String> {
        let req = self
            .with_token(self.agent.post(self.url(path)))
            .header("content-type", content_type);
        let mut r = req.send(body).map_err(|e| format!("{path}: {e}"))?;
        Ok((
            r.status().as_u16(),
            r.body_mut().read_json().unwrap_or(Value::Null),
        ))
    }

    /// POST a JSON body and require a 2xx answer.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, String> {
        let (st, v) = self.post(path, "application/json", body.to_string().as_bytes())?;
        if !(200..300).contains(&st) {
            return Err(format!("{path}: {st} {v}"));
        }
        Ok(v)
    }

    /// POST a framed binary batch (events or votes) and require a 200 answer.
    pub fn post_frames(&self, path: &str, batch: &[u8]) -> Result<Value, String> {
        let (st, v) = self.post(path, "application/octet-stream", batch)?;
        if st != 200 {
            return Err(format!("{path}: {st} {v}"));
        }
        Ok(v)
    }

    /// GET /v1/status.
    pub fn status(&self) -> Option<Value> {
        self.get("/v1/status")
    }

    /// Events held apart from committee ratings: what clients posted (thoughts, transfers,
    /// registrations, ...). Nodes write ratings by themselves as thoughts arrive, so a count
    /// of what a test or bench posted must leave them out.
    pub fn events(&self) -> Option<u64> {
        posted_events(&self.status()?)
    }

    /// (events, state root): all events, ratings included, since two nodes on one root hold
    /// the same log.
    pub fn head(&self) -> Option<(u64, String)> {
        let s = self.status()?;
        Some((s["events"].as_u64()?, s["state_root"].as_str()?.to_string()))
    }

    /// The latest certified epoch, from /v1/finality (None before the first certificate or
    /// when the node does not answer).
    pub fn final_epoch(&self) -> Option<u64> {
        self.get("/v1/finality?limit=1")?["final_epoch"].as_u64()
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

    /// Sum of a Prometheus counter or gauge (all label sets) from /metrics.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.get_text("/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Resident set size in MB, from /proc.
    pub fn rss_mb(&self) -> Option<f64> {
        rss_mb_of(self.pid()?)
    }

    /// CPU seconds used (user + system), from /proc.
    pub fn cpu_s(&self) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        let after = s.rsplit_once(')')?.1;
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some(ticks / clock_ticks())
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }
}

/// Starts a node whose chosen ports were taken at most this many times before giving up.
const PORT_RETRIES: u32 = 5;

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resident set size of a process in MB, from /proc.
pub(crate) fn rss_mb_of(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// From a `/v1/status` answer: events held apart from committee ratings (see [`Node::events`]).
pub fn posted_events(status: &Value) -> Option<u64> {
    let all = status["events"].as_u64()?;
    Some(all.saturating_sub(status["events_ratings"].as_u64().unwrap_or(0)))
}
