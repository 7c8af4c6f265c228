//! The operator HTTP API (axum). Handlers send commands to the node task over a bounded
//! channel and wait for its answer, so reads and writes see one consistent state.
//!
//! Every request but the dashboard page carries `Authorization: Bearer <DIR/api.token>` or a
//! dashboard session cookie, on loopback too (see [`crate::auth`]). Errors are JSON:
//! `{"error", "message", ...}`, naming the field or the defence layer at fault.

use crate::auth::{Access, Denied};
use crate::command::{Command, Query, Submitted};
use crate::metrics::Metrics;
use axum::body::Bytes;
use axum::extract::{Query as QueryParams, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};
use web4fed_core::event::{Event, EventId, MAX_CONTENT_BYTES, MAX_EVENT_BYTES};
use web4fed_core::finality::Vote;
use web4fed_core::identity::MemberId;
use web4fed_core::ledger::VerifiedEvent;
use web4fed_core::verdict::{Ignored, Rule};
use web4fed_replica::limits::MAX_VOTE_BYTES;
use web4fed_replica::CommandError;
use web4fed_store::node_dir::NodeDir;

/// Largest request body accepted: a thought at its byte limit plus JSON overhead.
pub const MAX_REQUEST_BYTES: usize = MAX_CONTENT_BYTES * 2 + 1_024;
/// Largest `POST /v1/events` body: a batch of pre-signed events (load generators, bridges,
/// imports). Bounded so one request cannot hold more than a few MB in the node.
pub const MAX_INGEST_BYTES: usize = 8 * 1024 * 1024;
/// Most thoughts one `GET /v1/thoughts` returns.
pub const MAX_THOUGHTS_PAGE: usize = 1_000;

/// An error answered as JSON with an HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
}

impl ApiError {
    fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"error": error, "message": message.into()}),
        }
    }
    /// A malformed request, naming the field.
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        e.body["field"] = json!(field);
        e
    }
    /// A thought the defence layers would refuse: 429 for the rate layer, 422 otherwise.
    pub fn refused(rule: &Rule) -> Self {
        let status = if rule.layer() == 2 {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let mut e = Self::new(
            status,
            "refused",
            format!("layer {} refused it: {}", rule.layer(), rule.name()),
        );
        e.body["layer"] = json!(rule.layer());
        e.body["rule"] = json!(rule.name());
        e.body["detail"] = serde_json::to_value(rule).unwrap_or(Value::Null);
        e
    }
    /// A thought that would change nothing (e.g. a copy of another member's thought).
    pub fn ignored(reason: &Ignored) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "ignored",
            "the event would change nothing",
        );
        e.body["detail"] = serde_json::to_value(reason).unwrap_or(Value::Null);
        e
    }
    /// A command the replica did not carry out, with the status that says why.
    pub fn from_command(e: &CommandError) -> Self {
        match e {
            CommandError::Refused(rule) => Self::refused(rule),
            CommandError::Ignored(reason) => Self::ignored(reason),
            CommandError::NotAdmitted(m) => Self::internal(m),
        }
    }
    /// A server-side failure.
    pub fn internal(message: &str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

#[derive(Clone)]
struct AppState {
    tx: mpsc::Sender<Command>,
    /// The network id, to check event signatures here rather than on the node task.
    network: [u8; 32],
    metrics: Arc<Metrics>,
    live: broadcast::Sender<Arc<str>>,
    access: Arc<Access>,
}

/// Reads `DIR/api.token`, creating it (mode 0600, 32 random bytes as hex) if missing. The
/// file appears whole or not at all (clients poll for it while the node starts), and an
/// empty one, which no release writes, is refused rather than accepted as "no secret".
pub fn load_or_create_token(
    nd: &NodeDir,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    use web4fed_store::atomic::{self, Existing};
    let path = nd.root().join("api.token");
    let read = |p: &std::path::Path| -> Result<Option<String>, String> {
        match std::fs::read_to_string(p) {
            Ok(t) if t.trim().is_empty() => Err(format!(
                "{} is empty: delete it to have a new token made",
                p.display()
            )),
            Ok(t) => Ok(Some(t.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    };
    if let Some(t) = read(&path)? {
        return Ok(t);
    }
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
    let token = hex::encode(b);
    match atomic::write(
        &path,
        format!("{token}\n").as_bytes(),
        0o600,
        Existing::Keep,
    ) {
        Ok(()) => Ok(token),
        // Another process made one first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(read(&path)?.ok_or("api.token vanished while it was created")?)
        }
        Err(e) => Err(format!("{}: {e}", path.display()).into()),
    }
}

/// The router, for tests and for [`serve`]. Every route but the dashboard page demands the
/// token or a session (see [`crate::auth`]).
pub fn router(
    tx: mpsc::Sender<Command>,
    network: [u8; 32],
    metrics: Arc<Metrics>,
    live: broadcast::Sender<Arc<str>>,
    access: Arc<Access>,
) -> Router {
    let state = AppState {
        tx,
        network,
        metrics,
        live,
        access,
    };
    Router::new()
        .route("/", get(dashboard))
        .route("/v1/session", post(session))
        .route("/v1/thoughts", post(submit).get(thoughts))
        .route("/v1/transfers", post(transfer))
        .route("/v1/ratings", post(rate))
        .route("/v1/state", get(|s: State<AppState>| ask(s, Query::State)))
        .route(
            "/v1/status",
            get(|s: State<AppState>| ask(s, Query::Status)),
        )
        .route(
            "/v1/peers",
            get(|s: State<AppState>| ask(s, Query::Peers)).post(dial),
        )
        .route(
            "/v1/events",
            post(ingest).layer(axum::extract::DefaultBodyLimit::max(MAX_INGEST_BYTES)),
        )
        .route("/v1/finality", get(finality))
        .route(
            "/v1/checkpoint",
            get(|s: State<AppState>| ask(s, Query::Checkpoint)),
        )
        .route(
            "/v1/history",
            get(|s: State<AppState>| ask(s, Query::History)),
        )
        .route(
            "/v1/votes",
            post(votes).layer(axum::extract::DefaultBodyLimit::max(MAX_INGEST_BYTES)),
        )
        .route("/v1/live", get(live_feed))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn auth(
    State(s): State<AppState>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let public = req.method() == axum::http::Method::GET && req.uri().path() == "/";
    let bearer = header(&headers, header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
    let checked = s.access.check(
        header(&headers, header::HOST),
        header(&headers, header::ORIGIN),
        bearer,
        header(&headers, header::COOKIE),
        public,
    );
    if let Err(d) = checked {
        return match d {
            Denied::Unauthorized => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <DIR/api.token> (or open the dashboard through `web4fed dashboard`)",
            ),
            Denied::ForeignHost => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_host",
                "the Host header must name this node's loopback address",
            ),
            Denied::ForeignOrigin => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "requests from other sites' pages are refused",
            ),
        }
        .into_response();
    }
    let Ok(_permit) = s.access.requests.clone().try_acquire_owned() else {
        return busy().into_response();
    };
    next.run(req).await
}

/// Binds the API and serves it in a background task.
pub async fn serve(
    addr: SocketAddr,
    tx: mpsc::Sender<Command>,
    network: [u8; 32],
    metrics: Arc<Metrics>,
    live: broadcast::Sender<Arc<str>>,
    token: String,
) -> Result<tokio::task::JoinHandle<()>, Box<dyn std::error::Error + Send + Sync>> {
    let app = router(
        tx,
        network,
        metrics,
        live,
        Arc::new(Access::new(token, addr)),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(%e, "API server stopped");
        }
    }))
}

/// `POST /v1/session` with the bearer token: a session cookie for the dashboard (HttpOnly,
/// SameSite=Strict), so the page and its live stream never carry the token in a URL.
async fn session(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let bearer = header(&headers, header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| s.access.token_ok(t)) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a session is granted for the bearer token only",
        ));
    }
    let id = s.access.new_session().map_err(|e| ApiError::internal(&e))?;
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        crate::auth::SESSION_COOKIE,
        crate::auth::SESSION_TTL.as_secs()
    );
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(json!({"expires_in_s": crate::auth::SESSION_TTL.as_secs()})),
    )
        .into_response())
}

/// Refuses a body whose declared type is not `want`: a web page can send a simple form post
/// without asking first, but not one of these types.
fn content_type(headers: &HeaderMap, want: &str) -> Result<(), ApiError> {
    match header(headers, header::CONTENT_TYPE) {
        Some(ct) if ct.split(';').next().is_some_and(|t| t.trim() == want) => Ok(()),
        other => Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            body: json!({
                "error": "invalid_request",
                "field": "content-type",
                "message": format!("expected {want}, got {}", other.unwrap_or("none")),
            }),
        }),
    }
}

/// The node's command queue is full: 503, never an unbounded wait.
fn busy() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "node command queue is full",
    )
}

async fn ask(State(s): State<AppState>, query: Query) -> Result<Json<Value>, ApiError> {
    let (reply, rx) = oneshot::channel();
    s.tx.try_send(Command::Query { query, reply })
        .map_err(|_| busy())?;
    rx.await
        .map(Json)
        .map_err(|_| ApiError::internal("node stopped"))
}

#[derive(Deserialize)]
struct ThoughtsParams {
    limit: Option<usize>,
}

type LimitParams = Result<QueryParams<ThoughtsParams>, axum::extract::rejection::QueryRejection>;

/// The `?limit=` of a listing: a 400 naming `limit` when malformed, capped at a page.
fn limit(params: LimitParams, default: usize) -> Result<usize, ApiError> {
    let QueryParams(p) = params.map_err(|e| ApiError::bad_request("limit", e.body_text()))?;
    Ok(p.limit.unwrap_or(default).min(MAX_THOUGHTS_PAGE))
}

async fn thoughts(s: State<AppState>, params: LimitParams) -> Result<Json<Value>, ApiError> {
    let limit = limit(params, 100)?;
    ask(s, Query::Thoughts { limit }).await
}

async fn finality(s: State<AppState>, params: LimitParams) -> Result<Json<Value>, ApiError> {
    let limit = limit(params, 10)?;
    ask(s, Query::Finality { limit }).await
}

/// A body that could not be read (too large, broken stream) as a JSON error naming `body`.
fn body_error(e: &axum::extract::rejection::BytesRejection, limit: usize) -> ApiError {
    ApiError {
        status: e.status(),
        body: json!({
            "error": "invalid_request",
            "field": "body",
            "message": format!("{} (limit {limit} bytes)", e.body_text()),
        }),
    }
}

/// A JSON request body: declared as JSON, within [`MAX_REQUEST_BYTES`], and parsed.
fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Value, ApiError> {
    content_type(headers, "application/json")?;
    let body = body.map_err(|e| body_error(&e, MAX_REQUEST_BYTES))?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("body", format!("not JSON: {e}")))
}

async fn submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let v = json_body(&headers, body)?;
    let content = match v.get("content") {
        Some(Value::String(c)) => c.clone(),
        Some(_) => return Err(ApiError::bad_request("content", "must be a string")),
        None => return Err(ApiError::bad_request("content", "missing")),
    };
    if content.len() > MAX_CONTENT_BYTES {
        return Err(ApiError::bad_request(
            "content",
            format!(
                "{} bytes, over the protocol limit of {MAX_CONTENT_BYTES}",
                content.len()
            ),
        ));
    }
    let (reply, rx) = oneshot::channel();
    s.tx.try_send(Command::Submit { content, reply })
        .map_err(|_| busy())?;
    let done = rx
        .await
        .map_err(|_| ApiError::internal("node stopped"))?
        .map_err(|e| ApiError::from_command(&e))?;
    Ok((StatusCode::CREATED, Json(submitted_json(&done))).into_response())
}

/// Most ATP one transfer may name: far above any balance (the cap is 10,000 by default),
/// low enough that thousandths of it fit any integer on the way.
pub const MAX_TRANSFER_ATP: f64 = 1e12;

/// `POST /v1/transfers` `{"to": MEMBER, "atp": N}`: signs, persists and publishes a transfer
/// of this node's member's ATP. 201 once it is on disk; 400 naming a malformed field; 422
/// for a recipient that is not another active member, or (layer 9) an amount above the
/// balance, with the balance in `detail`.
async fn transfer(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let v = json_body(&headers, body)?;
    let to = match v.get("to") {
        Some(Value::String(t)) => MemberId::from_hex(t)
            .ok_or_else(|| ApiError::bad_request("to", "must be a member id (64 hex digits)"))?,
        Some(_) => return Err(ApiError::bad_request("to", "must be a string")),
        None => return Err(ApiError::bad_request("to", "missing")),
    };
    let amount_milli = atp_milli(v.get("atp"))?;
    let (reply, rx) = oneshot::channel();
    s.tx.try_send(Command::Transfer {
        to,
        amount_milli,
        reply,
    })
    .map_err(|_| busy())?;
    let done = rx
        .await
        .map_err(|_| ApiError::internal("node stopped"))?
        .map_err(|e| match e {
            CommandError::Ignored(Ignored::BadRecipient) => {
                let mut e = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_recipient",
                    "the recipient is not an active member other than this node's own",
                );
                e.body["field"] = json!("to");
                e
            }
            other => ApiError::from_command(&other),
        })?;
    let mut answer = submitted_json(&done);
    answer["to"] = json!(to.to_hex());
    answer["atp_milli"] = json!(amount_milli);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `POST /v1/ratings` `{"thought": ID, "score": S}`: signs, persists and publishes this
/// node's member's rating (0 to 1, at most six decimals) of a thought whose committee holds
/// it. 201 once it is on disk; 400 naming a malformed field; 404 for a thought not in the
/// live corpus; 409 for a thought already rated by this member; 422 for one whose committee
/// does not hold it.
async fn rate(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let v = json_body(&headers, body)?;
    let thought = match v.get("thought") {
        Some(Value::String(t)) => EventId::from_hex(t).ok_or_else(|| {
            ApiError::bad_request("thought", "must be an event id (64 hex digits)")
        })?,
        Some(_) => return Err(ApiError::bad_request("thought", "must be a string")),
        None => return Err(ApiError::bad_request("thought", "missing")),
    };
    let score_micro = score_micro(v.get("score"))?;
    let (reply, rx) = oneshot::channel();
    s.tx.try_send(Command::Rate {
        thought,
        score_micro,
        reply,
    })
    .map_err(|_| busy())?;
    let done = rx
        .await
        .map_err(|_| ApiError::internal("node stopped"))?
        .map_err(|e| {
            let (status, error, message) = match e {
                CommandError::Ignored(Ignored::UnknownThought) => (
                    StatusCode::NOT_FOUND,
                    "unknown_thought",
                    "no such thought in the live corpus",
                ),
                CommandError::Ignored(Ignored::NotInCommittee) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "not_in_committee",
                    "this node's member is not on the thought's committee",
                ),
                CommandError::Ignored(Ignored::AlreadyRated) => (
                    StatusCode::CONFLICT,
                    "already_rated",
                    "this node's member has rated the thought already",
                ),
                other => return ApiError::from_command(&other),
            };
            let mut e = ApiError::new(status, error, message);
            e.body["field"] = json!("thought");
            e
        })?;
    let mut answer = submitted_json(&done);
    answer["thought"] = json!(thought.to_hex());
    answer["score_micro"] = json!(score_micro);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// A rating from JSON: a number from 0 to 1 with at most six decimals, in millionths.
fn score_micro(v: Option<&Value>) -> Result<u32, ApiError> {
    let Some(v) = v else {
        return Err(ApiError::bad_request("score", "missing"));
    };
    let Some(x) = v.as_f64() else {
        return Err(ApiError::bad_request("score", "must be a number"));
    };
    if !x.is_finite() || !(0.0..=1.0).contains(&x) {
        return Err(ApiError::bad_request("score", "must be from 0 to 1"));
    }
    let micro = x * 1e6;
    if (micro - micro.round()).abs() > 1e-3 {
        return Err(ApiError::bad_request(
            "score",
            "at most six decimals (ratings are counted in millionths)",
        ));
    }
    // Finite and within 0..=1: the cast stays within 0..=1,000,000.
    Ok(micro.round() as u32)
}

/// An ATP amount from JSON: a positive number with at most three decimals (the ledger
/// counts thousandths), in thousandths.
fn atp_milli(v: Option<&Value>) -> Result<u64, ApiError> {
    let Some(v) = v else {
        return Err(ApiError::bad_request("atp", "missing"));
    };
    let Some(atp) = v.as_f64() else {
        return Err(ApiError::bad_request("atp", "must be a number"));
    };
    if !atp.is_finite() || atp <= 0.0 {
        return Err(ApiError::bad_request("atp", "must be more than 0"));
    }
    if atp > MAX_TRANSFER_ATP {
        return Err(ApiError::bad_request(
            "atp",
            format!("must be at most {MAX_TRANSFER_ATP}"),
        ));
    }
    let milli = atp * 1_000.0;
    if (milli - milli.round()).abs() > 1e-6 {
        return Err(ApiError::bad_request(
            "atp",
            "at most three decimals (the ledger counts thousandths of an ATP)",
        ));
    }
    // Finite, positive and bounded above: the cast cannot saturate.
    Ok(milli.round() as u64)
}

/// A submitted thought as the API answers it.
fn submitted_json(s: &Submitted) -> Value {
    match s.adversary {
        Some("forge") => json!({"id": s.id.to_hex(), "verdict": "forged", "adversary": "forge"}),
        Some(a) => json!({"id": s.id.to_hex(), "seq": s.seq, "verdict": s.verdict, "adversary": a}),
        None => json!({
            "id": s.id.to_hex(),
            "seq": s.seq,
            "timestamp_ms": s.timestamp_ms,
            "verdict": "accepted",
        }),
    }
}

/// Sends a command to the node task and waits for its answer.
async fn command<T>(
    s: &AppState,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, ApiError> {
    let (reply, rx) = oneshot::channel();
    s.tx.try_send(make(reply)).map_err(|_| busy())?;
    rx.await.map_err(|_| ApiError::internal("node stopped"))
}

/// Splits a request body of frames (a `u32` big-endian length, then that many bytes,
/// repeated), refusing a frame over `max` bytes or a truncated one with a 400 naming it.
fn frames<'a>(mut body: &'a [u8], max: usize, what: &str) -> Result<Vec<&'a [u8]>, ApiError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 4 {
            return Err(ApiError::bad_request("body", "truncated length prefix"));
        }
        let n = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
        if n > max || body.len() < 4 + n {
            return Err(ApiError::bad_request(
                "body",
                format!(
                    "{what} {} declares {n} bytes: too long or truncated",
                    out.len()
                ),
            ));
        }
        out.push(&body[4..4 + n]);
        body = &body[4 + n..];
    }
    Ok(out)
}

/// A framed binary batch body (`POST /v1/events`, `POST /v1/votes`): its declared type, its
/// size, its frames, then each frame decoded (see [`decode_frames`]).
fn framed_batch<T, E: std::fmt::Display>(
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    max_frame: usize,
    what: &str,
    decode: impl Fn(&[u8]) -> Result<T, E>,
) -> Result<(Vec<T>, u64, Option<String>), ApiError> {
    content_type(headers, "application/octet-stream")?;
    let body = body.map_err(|e| body_error(&e, MAX_INGEST_BYTES))?;
    Ok(decode_frames(frames(&body, max_frame, what)?, decode))
}

/// Decodes every frame; returns the decoded items, how many did not decode and the first
/// decoding error.
fn decode_frames<T, E: std::fmt::Display>(
    items: Vec<&[u8]>,
    decode: impl Fn(&[u8]) -> Result<T, E>,
) -> (Vec<T>, u64, Option<String>) {
    let mut ok = Vec::new();
    let mut bad = 0;
    let mut first = None;
    for item in items {
        match decode(item) {
            Ok(v) => ok.push(v),
            Err(e) => {
                bad += 1;
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (ok, bad, first)
}

/// `POST /v1/events`: a binary batch of signed events (`u32` big-endian length, then the
/// event's wire bytes, repeated). Answers how many were admitted, known, waiting or rejected.
async fn ingest(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (events, malformed, first_bad) =
        framed_batch(&headers, body, MAX_EVENT_BYTES, "event", Event::decode)?;
    // Up to 8 MiB of signatures: checked on a blocking thread, never on the node task.
    let network = s.network;
    let (events, forged) = tokio::task::spawn_blocking(move || {
        let mut ok = Vec::with_capacity(events.len());
        let mut forged = 0u64;
        for ev in events {
            match VerifiedEvent::check(ev, &network) {
                Ok(v) => ok.push(v),
                Err(_) => forged += 1,
            }
        }
        (ok, forged)
    })
    .await
    .map_err(|_| ApiError::internal("signature check failed"))?;
    let first_bad = first_bad.or_else(|| (forged > 0).then(|| "bad signature".to_string()));
    let r = command(&s, |reply| Command::Ingest { events, reply }).await?;
    Ok(Json(json!({
        "admitted": r.admitted,
        "known": r.known,
        "waiting": r.waiting,
        "rejected": r.rejected + malformed + forged,
        "first_error": first_bad.or(r.first_error),
    })))
}

/// `POST /v1/votes`: a binary batch of signed votes, framed like `POST /v1/events`, from
/// members that have no node of their own (each signs the body `GET /v1/checkpoint` shows,
/// after checking it). Answers how many were accepted, already known or rejected.
async fn votes(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (votes, malformed, first_bad) =
        framed_batch(&headers, body, MAX_VOTE_BYTES, "vote", Vote::decode)?;
    let r = command(&s, |reply| Command::Votes { votes, reply }).await?;
    Ok(Json(json!({
        "accepted": r.accepted,
        "known": r.known,
        "rejected": r.rejected + malformed,
        "first_error": first_bad.or(r.first_error),
    })))
}

/// `POST /v1/peers` with `{"addr": "/ip4/A.B.C.D/tcp/PORT"}`: dial a peer now.
async fn dial(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = json_body(&headers, Ok(body))?;
    let Some(addr) = v.get("addr").and_then(Value::as_str) else {
        return Err(ApiError::bad_request("addr", "missing or not a string"));
    };
    let text = addr.to_string();
    let addr: libp2p::Multiaddr = addr
        .parse()
        .map_err(|e| ApiError::bad_request("addr", format!("not a multiaddr: {e}")))?;
    let now = command(&s, |reply| Command::Dial { addr, reply }).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"dialing": text, "now": now})),
    )
        .into_response())
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

/// Server-sent events for the dashboard: every admitted or rejected event, partitions and
/// heals as they happen, and a snapshot of members and totals once a second. A client that
/// falls more than [`crate::live::LIVE_BUFFER`] messages behind is told how many it missed.
async fn live_feed(State(s): State<AppState>) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    // The permit lives as long as the stream: at most MAX_LIVE_STREAMS at once.
    let permit = s.access.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "{} live streams are open already",
                crate::auth::MAX_LIVE_STREAMS
            ),
        )
    })?;
    let rx = s.live.subscribe();
    let stream = futures::stream::unfold((rx, permit), |(mut rx, permit)| async move {
        let ev = match rx.recv().await {
            Ok(msg) => Event::default().data(&*msg),
            Err(RecvError::Lagged(n)) => {
                Event::default().data(json!({"type": "lagged", "missed": n}).to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(ev), (rx, permit)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn dashboard() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("dashboard.html"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every JSON value a client can send as a score: in range and exact, or a 400 naming
    /// `score`; never a panic, never a value above one million.
    #[test]
    fn scores_are_parsed_exactly_or_refused_by_name() {
        let ok = [
            (json!(0), 0),
            (json!(1), 1_000_000),
            (json!(0.5), 500_000),
            (json!(0.123456), 123_456),
            (json!(1.0), 1_000_000),
        ];
        for (v, want) in ok {
            assert_eq!(score_micro(Some(&v)).unwrap(), want, "{v}");
        }
        let bad = [
            json!(-0.0000001),
            json!(1.0000001),
            json!(0.1234567),
            json!(1e308),
            json!(-1e308),
            json!("0.5"),
            json!(null),
            json!([0.5]),
            json!({"score": 0.5}),
            json!(u64::MAX),
            json!(i64::MIN),
        ];
        for v in bad {
            let e = score_micro(Some(&v)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{v}");
            assert_eq!(e.body["field"], "score", "{v}");
        }
        assert!(score_micro(None).is_err());
        // A sweep of the range: always within bounds and round-tripping to six decimals.
        for i in 0..=10_000u32 {
            let x = f64::from(i) / 10_000.0;
            let m = score_micro(Some(&json!(x))).unwrap();
            assert!(m <= 1_000_000);
            assert_eq!(m, i * 100);
        }
    }
}
