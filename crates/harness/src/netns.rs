//! Network namespaces on a bridge: hosts with their own addresses on this machine, for
//! multi-host tests and benchmarks. Removed on drop.

use std::process::Command;

/// Runs a command to completion; its stderr becomes the error.
pub fn run_cmd(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `n` namespaces, each with one veth on a bridge in the root namespace: host `i` has
/// address `SUBNET.(11 + i)`, the bridge `SUBNET.1`.
#[derive(Debug)]
pub struct Netns {
    prefix: String,
    tag: String,
    subnet: String,
    made: Vec<String>,
}

impl Netns {
    /// Creates them. `prefix` (a few letters) keeps names of different users apart; the
    /// process id keeps concurrent runs apart.
    pub fn create(prefix: &str, subnet: &str, n: usize) -> Result<Self, String> {
        let mut h = Self {
            prefix: prefix.into(),
            tag: format!("{}", std::process::id() % 10_000),
            subnet: subnet.into(),
            made: Vec::new(),
        };
        let br = h.bridge();
        run_cmd(&["ip", "link", "add", &br, "type", "bridge"])?;
        run_cmd(&["ip", "addr", "add", &format!("{subnet}.1/24"), "dev", &br])?;
        run_cmd(&["ip", "link", "set", &br, "up"])?;
        for i in 0..n {
            let ns = h.ns(i);
            run_cmd(&["ip", "netns", "add", &ns])?;
            h.made.push(ns.clone());
            let veth = h.veth(i);
            run_cmd(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            run_cmd(&["ip", "link", "set", &veth, "master", &br, "up"])?;
            let cidr = format!("{}/24", h.ip(i));
            run_cmd(&[
                "ip", "netns", "exec", &ns, "ip", "addr", "add", &cidr, "dev", "eth0",
            ])?;
            run_cmd(&[
                "ip", "netns", "exec", &ns, "ip", "link", "set", "eth0", "up",
            ])?;
            run_cmd(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(h)
    }

    fn bridge(&self) -> String {
        format!("{}br{}", self.prefix, self.tag)
    }

    fn veth(&self, i: usize) -> String {
        format!("{}{}v{i}", self.prefix, self.tag)
    }

    /// The name of host `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("{}{}-{i}", self.prefix, self.tag)
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, 11 + i)
    }

    /// How many hosts.
    pub fn len(&self) -> usize {
        self.made.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.made.is_empty()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for (i, ns) in self.made.iter().enumerate() {
            let _ = run_cmd(&["ip", "netns", "del", ns]);
            let _ = run_cmd(&["ip", "link", "del", &self.veth(i)]);
        }
        let _ = run_cmd(&["ip", "link", "del", &self.bridge()]);
    }
}
