//! Who may use the operator API, and how much of it at once.
//!
//! Every request but the dashboard's static page carries the bearer token from
//! `DIR/api.token` (`Authorization: Bearer …`) or a session cookie that a request with the
//! token obtained (`POST /v1/session`): on loopback too, because any web page a browser on
//! this machine opens can reach loopback. On top of that, requests must name this node in
//! `Host` when the API is on loopback (a DNS-rebinding page names its own host), a request
//! that says where it comes from (`Origin`) must come from this node's own page, and a
//! bounded number of requests and live streams run at once. Secrets are compared in constant
//! time and never travel in URLs.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Requests handled at once; more are answered 503 at once rather than queued.
pub const MAX_CONCURRENT_REQUESTS: usize = 64;
/// Live streams (`GET /v1/live`) open at once: each holds a connection and a buffer, and a
/// thousand exhaust the process's file descriptors.
pub const MAX_LIVE_STREAMS: usize = 32;
/// Dashboard sessions kept; the oldest is forgotten when a new one would exceed this.
pub const MAX_SESSIONS: usize = 64;
/// How long a dashboard session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "web4fed_session";

/// The API's secret and the sessions it granted.
pub struct Access {
    token: String,
    /// Where the API listens (the `Host` a loopback request must name).
    bound: SocketAddr,
    sessions: Mutex<VecDeque<(String, Instant)>>,
    /// Requests in progress.
    pub requests: Arc<tokio::sync::Semaphore>,
    /// Live streams open.
    pub streams: Arc<tokio::sync::Semaphore>,
}

/// Why a request is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No valid token or session.
    Unauthorized,
    /// `Host` names another server (DNS rebinding) on a loopback API.
    ForeignHost,
    /// `Origin` is another site.
    ForeignOrigin,
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Access {
    /// Access control for an API bound at `bound` with this token.
    pub fn new(token: String, bound: SocketAddr) -> Self {
        Self {
            token,
            bound,
            sessions: Mutex::new(VecDeque::new()),
            requests: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS)),
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_LIVE_STREAMS)),
        }
    }

    /// Whether a bearer token is this node's.
    pub fn token_ok(&self, given: &str) -> bool {
        same(given, &self.token)
    }

    /// Whether a session id is one this node granted and still honours.
    pub fn session_ok(&self, given: &str) -> bool {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        s.retain(|(_, at)| now.duration_since(*at) < SESSION_TTL);
        // Every entry is compared, so timing does not tell which one nearly matched.
        s.iter().fold(false, |ok, (id, _)| ok | same(given, id))
    }

    /// A new session id (32 random bytes, hex).
    pub fn new_session(&self) -> Result<String, String> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| e.to_string())?;
        let id = hex::encode(b);
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        while s.len() >= MAX_SESSIONS {
            s.pop_front();
        }
        s.push_back((id.clone(), Instant::now()));
        Ok(id)
    }

    /// Checks a request's headers: `Host` (on loopback), `Origin`, then the token or session.
    pub fn check(
        &self,
        host: Option<&str>,
        origin: Option<&str>,
        bearer: Option<&str>,
        cookie: Option<&str>,
        public: bool,
    ) -> Result<(), Denied> {
        if self.bound.ip().is_loopback() && !host.is_some_and(|h| self.is_own_host(h)) {
            return Err(Denied::ForeignHost);
        }
        if let Some(o) = origin {
            let own = host.is_some_and(|h| o == format!("http://{h}"));
            if !own {
                return Err(Denied::ForeignOrigin);
            }
        }
        if public {
            return Ok(());
        }
        let session = cookie.and_then(|c| {
            c.split(';')
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| *k == SESSION_COOKIE)
                .map(|(_, v)| v)
        });
        match (bearer, session) {
            (Some(t), _) if self.token_ok(t) => Ok(()),
            (_, Some(s)) if self.session_ok(s) => Ok(()),
            _ => Err(Denied::Unauthorized),
        }
    }

    /// Whether `Host` names this API: a loopback name with the bound port.
    fn is_own_host(&self, host: &str) -> bool {
        let port = self.bound.port().to_string();
        let Some((name, p)) = host.rsplit_once(':') else {
            return false;
        };
        let bound = match self.bound.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        p == port && (matches!(name, "127.0.0.1" | "localhost" | "[::1]") || name == bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access::new("secret".into(), "127.0.0.1:8080".parse().unwrap())
    }

    #[test]
    fn token_or_session_required_even_on_loopback() {
        let a = access();
        let host = Some("127.0.0.1:8080");
        assert_eq!(
            a.check(host, None, None, None, false),
            Err(Denied::Unauthorized)
        );
        assert_eq!(
            a.check(host, None, Some("secreT"), None, false),
            Err(Denied::Unauthorized)
        );
        assert_eq!(a.check(host, None, Some("secret"), None, false), Ok(()));
        let id = a.new_session().unwrap();
        let cookie = format!("a=b; {SESSION_COOKIE}={id}");
        assert_eq!(a.check(host, None, None, Some(&cookie), false), Ok(()));
        assert_eq!(
            a.check(host, None, None, Some("web4fed_session=nope"), false),
            Err(Denied::Unauthorized)
        );
        assert_eq!(a.check(host, None, None, None, true), Ok(()));
    }

    #[test]
    fn foreign_hosts_and_origins_are_refused() {
        let a = access();
        let t = Some("secret");
        assert_eq!(
            a.check(Some("evil.example:8080"), None, t, None, false),
            Err(Denied::ForeignHost)
        );
        assert_eq!(
            a.check(None, None, t, None, false),
            Err(Denied::ForeignHost)
        );
        assert_eq!(
            a.check(Some("127.0.0.1:9999"), None, t, None, false),
            Err(Denied::ForeignHost)
        );
        assert_eq!(
            a.check(
                Some("localhost:8080"),
                Some("http://evil.example"),
                t,
                None,
                false
            ),
            Err(Denied::ForeignOrigin)
        );
        assert_eq!(
            a.check(
                Some("localhost:8080"),
                Some("http://localhost:8080"),
                t,
                None,
                false
            ),
            Ok(())
        );
    }

    #[test]
    fn sessions_are_bounded() {
        let a = access();
        let first = a.new_session().unwrap();
        for _ in 0..MAX_SESSIONS {
            a.new_session().unwrap();
        }
        assert!(!a.session_ok(&first));
        assert_eq!(a.sessions.lock().unwrap().len(), MAX_SESSIONS);
    }
}
