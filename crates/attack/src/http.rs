//! The API attack classes: a hostile HTTP client on the API's address.

use crate::class::Class;
use crate::forge;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use web4fed_core::genesis::Genesis;

/// Live-feed streams the `live-streams` class tries to hold open.
pub const LIVE_STREAMS: usize = 1_000;
/// Concurrent senders in the body and no-token floods.
pub const SENDERS: usize = 8;
/// Size of each body in the `big-bodies` class: the batch endpoints' limit.
pub const BIG_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Bytes in each garbage frame of the `big-bodies` class: thousands of frames per body, so
/// the victim's splitter and decoder work through every one.
pub const GARBAGE_FRAME_BYTES: usize = 1_000;
/// Double-vote pairs per `POST /v1/votes` in the `api-votes` class.
pub const VOTE_PAIRS: usize = 3_000;

/// HTTP statuses seen, and transport failures.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct HttpCounts {
    /// Status code → responses.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer (refused, reset, timed out).
    pub failures: u64,
    /// The first refusal's JSON error, to show what the node said.
    pub first_refusal: Option<String>,
}

impl HttpCounts {
    fn add(&mut self, other: HttpCounts) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self.failures += other.failures;
        if self.first_refusal.is_none() {
            self.first_refusal = other.first_refusal;
        }
    }

    fn record(&mut self, r: Result<(u16, String), String>) {
        match r {
            Ok((st, body)) => {
                *self.statuses.entry(st).or_default() += 1;
                if st >= 400 && self.first_refusal.is_none() {
                    self.first_refusal = Some(body.chars().take(300).collect());
                }
            }
            Err(_) => self.failures += 1,
        }
    }
}

/// Runs an API class against `api` (host:port) for `secs`.
pub fn run(
    class: Class,
    api: &str,
    token: Option<&str>,
    genesis: &Genesis,
    secs: f64,
) -> Result<HttpCounts, String> {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    match class {
        Class::LiveStreams => Ok(live_streams(api, token, end)),
        Class::BigBodies => Ok(flood(end, |k| {
            let path = if k % 2 == 0 {
                "/v1/events"
            } else {
                "/v1/votes"
            };
            post(api, token, path, &[], &garbage_frames(k as u64))
        })),
        Class::ApiVotes => {
            let net = genesis.network_id();
            Ok(flood(end, move |_| {
                let epoch = now_epoch(genesis);
                post(api, token, "/v1/votes", &[], &vote_pairs(&net, epoch))
            }))
        }
        Class::NoToken => Ok(flood(end, |k| match k % 4 {
            0 => get(api, None, "/v1/status", &[]),
            1 => post(
                api,
                None,
                "/v1/thoughts",
                &[("Origin", "http://evil.example")],
                br#"{"content":"posted by a web page"}"#,
            ),
            2 => get(api, Some("not-the-token"), "/v1/state", &[]),
            _ => get(api, token, "/v1/status", &[("Host", "evil.example")]),
        })),
        _ => Err(format!("{} is not an API class", class.name())),
    }
}

fn now_epoch(g: &Genesis) -> u64 {
    let e = web4fed_node::now_ms() / g.epoch_ms;
    let every = g.finality_every_epochs.max(1);
    (e.saturating_sub(3) / every) * every
}

/// Runs `one(k)` from [`SENDERS`] threads until `end`, counting answers.
fn flood(end: Instant, one: impl Fn(usize) -> Result<(u16, String), String> + Sync) -> HttpCounts {
    let one = &one;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..SENDERS)
            .map(|t| {
                s.spawn(move || {
                    let mut c = HttpCounts::default();
                    let mut k = t;
                    while Instant::now() < end {
                        c.record(one(k));
                        k += SENDERS;
                    }
                    c
                })
            })
            .collect();
        let mut all = HttpCounts::default();
        for h in handles {
            if let Ok(c) = h.join() {
                all.add(c);
            }
        }
        all
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

fn get(
    api: &str,
    token: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let mut r = agent().get(format!("http://{api}{path}"));
    if let Some(t) = token {
        r = r.header("Authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let mut resp = r.call().map_err(|e| e.to_string())?;
    let st = resp.status().as_u16();
    Ok((st, resp.body_mut().read_to_string().unwrap_or_default()))
}

fn post(
    api: &str,
    token: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), String> {
    let ct = if path == "/v1/thoughts" {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let mut r = agent()
        .post(format!("http://{api}{path}"))
        .header("content-type", ct);
    if let Some(t) = token {
        r = r.header("Authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let mut resp = r.send(body).map_err(|e| e.to_string())?;
    let st = resp.status().as_u16();
    Ok((st, resp.body_mut().read_to_string().unwrap_or_default()))
}

/// Just under [`BIG_BODY_BYTES`] of well-framed garbage: every frame must be looked at.
fn garbage_frames(seed: u64) -> Vec<u8> {
    let frame = GARBAGE_FRAME_BYTES;
    let mut out = Vec::with_capacity(BIG_BODY_BYTES);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() + 4 + frame < BIG_BODY_BYTES - 1024 {
        out.extend_from_slice(&(frame as u32).to_be_bytes());
        for _ in 0..frame {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(x as u8);
        }
    }
    out
}

/// [`VOTE_PAIRS`] double votes by fresh keys, framed for `POST /v1/votes`.
fn vote_pairs(net: &[u8; 32], epoch: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..VOTE_PAIRS {
        let (a, b) = forge::double_vote(net, epoch);
        for v in [a, b] {
            let bytes = v.encode();
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// Opens up to [`LIVE_STREAMS`] live-feed streams and holds them until `end`.
fn live_streams(api: &str, token: Option<&str>, end: Instant) -> HttpCounts {
    let mut c = HttpCounts::default();
    let mut open = Vec::new();
    for _ in 0..LIVE_STREAMS {
        if Instant::now() >= end {
            break;
        }
        match open_stream(api, token) {
            Ok((st, s)) => {
                *c.statuses.entry(st).or_default() += 1;
                if st == 200 {
                    open.push(s);
                }
            }
            Err(_) => c.failures += 1,
        }
    }
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(open);
    c
}

fn open_stream(api: &str, token: Option<&str>) -> Result<(u16, TcpStream), String> {
    let mut s = TcpStream::connect(api).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET /v1/live HTTP/1.1\r\nHost: {api}\r\n{auth}Accept: text/event-stream\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let st = line
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| format!("no status line: {line:?}"))?;
    Ok((st, s))
}
