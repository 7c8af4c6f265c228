//! The operator API defends itself on a real node process: the token on loopback too, no token
//! in URLs, Host and Origin checks against web pages, declared body types, a cap on live
//! streams, sessions for the dashboard, and a clean stop on SIGTERM.

mod common;

use common::{agent, sentence, Node, NodeExt};
use serde_json::Value;
use std::time::{Duration, Instant};
use web4fed_node::auth::MAX_LIVE_STREAMS;

fn start() -> (tempfile::TempDir, Node) {
    let tmp = tempfile::tempdir().unwrap();
    let mut n = Node::init(tmp.path(), "legion", None);
    n.start(&[], None);
    (tmp, n)
}

fn status_with(n: &Node, headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = agent().get(n.url("/v1/status"));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let mut r = req.call().unwrap();
    (
        r.status().as_u16(),
        r.body_mut().read_json().unwrap_or(Value::Null),
    )
}

#[test]
fn the_api_refuses_what_a_web_page_or_a_stranger_could_send() {
    let (_tmp, n) = start();
    let token = n.token.clone().expect("the harness read the token");
    let bearer = ("Authorization", format!("Bearer {token}"));

    // The token is required on loopback too, and never taken from the URL.
    let (st, v) = status_with(&n, &[]);
    assert_eq!(
        (st, v["error"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let mut r = agent()
        .get(n.url(&format!("/v1/status?token={token}")))
        .call()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "a token in the URL is not a token"
    );
    let _ = r.body_mut().read_to_string();
    let (st, _) = status_with(&n, std::slice::from_ref(&bearer));
    assert_eq!(st, 200);
    let (st, _) = status_with(&n, &[("Authorization", format!("Bearer {token}x"))]);
    assert_eq!(st, 401);

    // A DNS-rebinding page names its own host; another site's page says so in Origin.
    let (st, v) = status_with(&n, &[bearer.clone(), ("Host", "evil.example:80".into())]);
    assert_eq!(
        (st, v["error"].as_str()),
        (403, Some("forbidden_host")),
        "{v}"
    );
    let (st, v) = status_with(
        &n,
        &[bearer.clone(), ("Origin", "http://evil.example".into())],
    );
    assert_eq!(
        (st, v["error"].as_str()),
        (403, Some("forbidden_origin")),
        "{v}"
    );

    // A form post (text/plain) is refused before its body is read.
    let body = serde_json::json!({"content": sentence(1)}).to_string();
    let (st, v) = n
        .post("/v1/thoughts", "text/plain", body.as_bytes())
        .unwrap();
    assert_eq!(
        (st, v["field"].as_str()),
        (415, Some("content-type")),
        "{v}"
    );
    let (st, v) = n
        .post("/v1/events", "application/json", b"\x00\x00\x00\x01x")
        .unwrap();
    assert_eq!(
        (st, v["field"].as_str()),
        (415, Some("content-type")),
        "{v}"
    );
    let (st, v) = n.submit(&sentence(2));
    assert_eq!(st, 201, "{v}");

    // The dashboard page itself is public; its session comes from the token.
    let mut r = agent().get(n.url("/")).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = r.body_mut().read_to_string();
    let r = agent().post(n.url("/v1/session")).send_empty().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = agent()
        .post(n.url("/v1/session"))
        .header("Authorization", format!("Bearer {token}"))
        .send_empty()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_string();
    let (st, _) = status_with(&n, &[("Cookie", pair.clone())]);
    assert_eq!(st, 200, "the session opens the API");
    let (st, _) = status_with(&n, &[("Cookie", "web4fed_session=00".into())]);
    assert_eq!(st, 401);
}

#[test]
fn live_streams_are_capped_and_their_slots_come_back() {
    let (_tmp, n) = start();
    let token = n.token.clone().unwrap();
    let open = || {
        agent()
            .get(n.url("/v1/live"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap()
    };
    let streams: Vec<_> = (0..MAX_LIVE_STREAMS).map(|_| open()).collect();
    assert!(streams.iter().all(|s| s.status().as_u16() == 200));
    let mut extra = open();
    assert_eq!(extra.status().as_u16(), 503);
    let v: Value = extra.body_mut().read_json().unwrap();
    assert_eq!(v["error"], "busy");
    // The API still answers everything else while the streams are open.
    assert!(n.status().is_some());
    drop(streams);
    // A closed stream gives its slot back when the node next writes to it (a snapshot a
    // second).
    let start = Instant::now();
    let mut again = open();
    while again.status().as_u16() != 200 && start.elapsed() < common::DEADLINE {
        std::thread::sleep(Duration::from_millis(200));
        again = open();
    }
    assert_eq!(again.status().as_u16(), 200);
}

#[test]
fn a_node_stops_on_sigterm() {
    let (_tmp, mut n) = start();
    // Within the rate limit of a fresh member (10 a minute).
    for i in 0..5 {
        let (st, v) = n.submit(&sentence(100 + i));
        assert_eq!(st, 201, "{v}");
    }
    let t = Instant::now();
    assert!(n.terminate(), "the node did not stop on SIGTERM");
    println!("MEASURED stop after SIGTERM: {:?}", t.elapsed());
}
