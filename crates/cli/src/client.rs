//! The client commands: `submit`, `status`, `peers`, `thoughts`, `state`, talking to a
//! running node's HTTP API.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Where and how to reach a node's API.
pub struct Api {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// Longest a client command waits for the node.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

impl Api {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`). The bearer token comes from
    /// `--token-file`, else `DIR/api.token` when `--dir` is given, else `WEB4FED_TOKEN`.
    pub fn new(base: &str, dir: Option<&Path>, token_file: Option<&Path>) -> Self {
        let from_file = |p: &Path| {
            std::fs::read_to_string(p)
                .ok()
                .map(|t| t.trim().to_string())
        };
        let token = token_file
            .and_then(from_file)
            .or_else(|| dir.and_then(|d| from_file(&d.join("api.token"))))
            .or_else(|| std::env::var("WEB4FED_TOKEN").ok());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CLIENT_TIMEOUT))
            .build()
            .new_agent();
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    /// The dashboard's address with the token in the fragment (which browsers never send):
    /// the page trades it for a session cookie and drops it from the address bar.
    pub fn dashboard_url(&self) -> Result<String, String> {
        let t = self
            .token
            .as_ref()
            .ok_or("no API token: pass --dir DIR (or --token-file FILE)")?;
        Ok(format!("{}/#token={t}", self.base))
    }

    fn finish(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Value), String> {
        let mut resp = r.map_err(|e| format!("cannot reach the node at {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        let v: Value = resp
            .body_mut()
            .read_json()
            .map_err(|e| format!("node answered {status} with a body that is not JSON: {e}"))?;
        Ok((status, v))
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<(u16, Value), String> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(req.call())
    }

    /// POST a JSON document.
    pub fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(req.send_json(body))
    }
}

fn fail(status: u16, v: &Value) -> String {
    let msg = text(&v["message"], "request failed");
    match v["layer"].as_u64() {
        Some(layer) => format!(
            "{status}: {msg} (layer {layer}, rule {})",
            text(&v["rule"], "?")
        ),
        None => format!("{status}: {msg}"),
    }
}

fn ok_or_fail(r: (u16, Value), json: bool) -> Result<Value, String> {
    let (status, v) = r;
    if (200..300).contains(&status) {
        return Ok(v);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    Err(fail(status, &v))
}

/// `web4fed submit`.
pub fn submit(api: &Api, content: &str, json: bool) -> Result<(), String> {
    let v = ok_or_fail(
        api.post("/v1/thoughts", &serde_json::json!({ "content": content }))?,
        json,
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "{} {} (seq {})",
            text(&v["verdict"], "?"),
            text(&v["id"], "?"),
            v["seq"]
        );
    }
    Ok(())
}

/// `web4fed transfer`: the API checks the amount and the recipient, and the node refuses a
/// transfer above its member's balance (layer 9) before signing anything.
pub fn transfer(api: &Api, to: &str, atp: f64, json: bool) -> Result<(), String> {
    let body = serde_json::json!({ "to": to, "atp": atp });
    post_signed(api, "/v1/transfers", &body, json, |v| {
        format!("{atp} ATP to {}", text(&v["to"], "?"))
    })
}

/// `web4fed rate`: the node signs the rating only if its member is on the thought's
/// committee and has not rated it yet.
pub fn rate(api: &Api, thought: &str, score: f64, json: bool) -> Result<(), String> {
    let body = serde_json::json!({ "thought": thought, "score": score });
    post_signed(api, "/v1/ratings", &body, json, |v| {
        format!("rated {} at {score}", text(&v["thought"], "?"))
    })
}

/// Posts a request that makes the node sign an event of its member, and prints the answer:
/// the JSON as it came, or one line with the verdict, id, seq and `what`.
fn post_signed(
    api: &Api,
    path: &str,
    body: &Value,
    json: bool,
    what: impl Fn(&Value) -> String,
) -> Result<(), String> {
    let v = ok_or_fail(api.post(path, body)?, json)?;
    if json {
        print_json(&v);
    } else {
        println!(
            "{} {} (seq {}): {}",
            text(&v["verdict"], "?"),
            text(&v["id"], "?"),
            v["seq"],
            what(&v)
        );
    }
    Ok(())
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// `web4fed status`.
pub fn status(api: &Api, json: bool) -> Result<(), String> {
    let v = ok_or_fail(api.get("/v1/status")?, json)?;
    if json {
        print_json(&v);
        return Ok(());
    }
    println!("{}  {}", text(&v["name"], "?"), text(&v["lct"], "?"));
    println!("network     {}", text(&v["network"], "?"));
    println!(
        "events      {}  members {}  corpus {}",
        v["events"], v["members"], v["corpus"]
    );
    let d = &v["network_density"];
    println!(
        "density     {} of {} active members hardware-verified (L5)",
        d["verified"], d["active"]
    );
    println!("state root  {}", text(&v["state_root"], "?"));
    println!(
        "epoch       {}  root {}",
        v["epoch"],
        text(&v["epoch_root"], "-")
    );
    println!(
        "peers       {} connected, {} agreeing",
        v["peers_connected"], v["peers_agreeing"]
    );
    let me = &v["me"];
    println!(
        "me          {} trust {:.6} ATP {:.3} violations {}",
        text(&me["status"], "?"),
        me["trust"].as_f64().unwrap_or(0.0),
        me["atp"].as_f64().unwrap_or(0.0),
        me["violations"]
    );
    Ok(())
}

/// `web4fed peers`.
pub fn peers(api: &Api, json: bool) -> Result<(), String> {
    let v = ok_or_fail(api.get("/v1/peers")?, json)?;
    if json {
        print_json(&v);
        return Ok(());
    }
    println!(
        "{:<12} {:<10} {:<6} {:<12} {:<14} peer",
        "name", "connected", "down", "root", "heartbeat"
    );
    for p in v["peers"].as_array().into_iter().flatten() {
        println!(
            "{:<12} {:<10} {:<6} {:<12} {:<14} {}",
            text(&p["name"], "-"),
            p["connected"],
            p["down"],
            match p["root_matches"].as_bool() {
                Some(true) => "agrees",
                Some(false) => "DIFFERS",
                None => "unknown",
            },
            p["last_heartbeat_ms_ago"]
                .as_u64()
                .map_or("-".into(), |ms| format!("{ms} ms ago")),
            text(&p["peer_id"], "?"),
        );
    }
    Ok(())
}

/// `web4fed thoughts`.
pub fn thoughts(api: &Api, limit: usize, json: bool) -> Result<(), String> {
    let v = ok_or_fail(api.get(&format!("/v1/thoughts?limit={limit}"))?, json)?;
    if json {
        print_json(&v);
        return Ok(());
    }
    for t in v["thoughts"].as_array().into_iter().flatten() {
        let verdict = text(&t["verdict"]["verdict"], "?");
        let c = &t["committee"];
        let committee = match c["seats"].as_array() {
            Some(seats) => {
                let median = c["median"]
                    .as_f64()
                    .map_or("-".to_string(), |m| format!("{m:.2}"));
                let settled = if c["settled"] == true { " settled" } else { "" };
                format!(
                    "rated {}/{} median {median}{settled}",
                    c["rated"],
                    seats.len()
                )
            }
            None => "not live".to_string(),
        };
        println!(
            "{} {:<10} {:<10} {:<32} {}",
            text(&t["id"], "?"),
            text(&t["name"], "-"),
            verdict,
            committee,
            text(&t["content"], "")
        );
    }
    Ok(())
}

/// `web4fed state`.
pub fn state(api: &Api, json: bool) -> Result<(), String> {
    let v = ok_or_fail(api.get("/v1/state")?, json)?;
    if json {
        print_json(&v);
        return Ok(());
    }
    println!(
        "state root {}  ({} events)",
        text(&v["state_root"], "?"),
        v["events"]
    );
    println!(
        "{:<12} {:<4} {:>9} {:>10} {:>4} {:<8} lct",
        "name", "lvl", "trust", "ATP", "viol", "status"
    );
    for a in v["accounts"].as_array().into_iter().flatten() {
        println!(
            "{:<12} {:<4} {:>9.6} {:>10.3} {:>4} {:<8} {}",
            text(&a["name"], "-"),
            text(&a["level"], "?"),
            a["trust"].as_f64().unwrap_or(0.0),
            a["atp"].as_f64().unwrap_or(0.0),
            a["violations"],
            text(&a["status"], "?"),
            text(&a["lct"], "?"),
        );
    }
    Ok(())
}

/// `web4fed finality`.
pub fn finality(api: &Api, limit: usize, export: Option<&Path>, json: bool) -> Result<(), String> {
    let v = ok_or_fail(api.get(&format!("/v1/finality?limit={limit}"))?, json)?;
    if let Some(dir) = export {
        let latest = v["certificates"]
            .as_array()
            .and_then(|a| a.first())
            .ok_or("no certificate yet")?;
        let epoch = latest["epoch"].as_u64().unwrap_or(0);
        let bytes = hex::decode(text(&latest["certificate_hex"], ""))
            .map_err(|e| format!("certificate_hex: {e}"))?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(format!("cert-{epoch}.bin")), bytes).map_err(|e| e.to_string())?;
        if latest["members"].is_object() {
            let m = serde_json::to_string_pretty(&latest["members"]).unwrap_or_default();
            std::fs::write(dir.join(format!("members-{epoch}.json")), m)
                .map_err(|e| e.to_string())?;
        }
        println!("exported epoch {epoch} to {}", dir.display());
    }
    if json {
        print_json(&v);
        return Ok(());
    }
    println!("final epoch {}", v["final_epoch"]);
    println!(
        "{:>12} {:<18} {:>8} {:>10}  signers",
        "epoch", "root", "weight", "latency"
    );
    for c in v["certificates"].as_array().into_iter().flatten() {
        let signed = c["signed_weight_micro"].as_f64();
        let total = c["total_weight_micro"].as_f64();
        let share = match (signed, total) {
            (Some(s), Some(t)) if t > 0.0 => format!("{:.0} %", 100.0 * s / t),
            _ => "-".into(),
        };
        let latency = match (c["adopted_ms"].as_u64(), c["epoch_end_ms"].as_u64()) {
            (Some(a), Some(e)) => format!("{} ms", a.saturating_sub(e)),
            _ => "-".into(),
        };
        let names: Vec<String> = c["signers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| text(&s["name"], "?").to_string())
            .collect();
        println!(
            "{:>12} {:<18} {:>8} {:>10}  {}",
            c["epoch"],
            &text(&c["root"], "?")[..16],
            share,
            latency,
            names.join(", ")
        );
    }
    Ok(())
}

/// A string from the node, safe to print on a terminal: control characters (escape sequences
/// that could move the cursor, recolour or retitle the terminal) are shown escaped.
fn text(v: &Value, default: &str) -> String {
    printable(v.as_str().unwrap_or(default))
}

/// Escapes control characters (as `\u{1b}` and the like) and keeps everything else.
pub fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        assert_eq!(printable("ok \u{1b}[2Jx\n"), "ok \\u{1b}[2Jx\\u{a}");
        assert_eq!(printable("plain ünïcode"), "plain ünïcode");
    }
}
