//! The operator HTTP API (axum). Handlers send commands to the node task over a bounded
//! channel and wait for its answer, so reads and writes see one consistent state.
//!
//! On a loopback address the API is open; on any other address every request must carry
//! `Authorization: Bearer <DIR/api.token>`. Errors are JSON: `{"error", "message", ...}`,
//! naming the field or the defence layer at fault.

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
use web4fed_core::event::MAX_CONTENT_BYTES;
use web4fed_core::verdict::{Ignored, Rule};
use web4fed_store::node_dir::NodeDir;

/// Commands waiting for the node task; a full queue answers 503 rather than growing.
pub const COMMAND_QUEUE: usize = 256;
/// Largest request body accepted: a thought at its byte limit plus JSON overhead.
pub const MAX_REQUEST_BYTES: usize = MAX_CONTENT_BYTES * 2 + 1_024;
/// Largest `POST /v1/events` body: a batch of pre-signed events (load generators, bridges,
/// imports). Bounded so one request cannot hold more than a few MB in the node.
pub const MAX_INGEST_BYTES: usize = 8 * 1024 * 1024;
/// Most thoughts one `GET /v1/thoughts` returns.
pub const MAX_THOUGHTS_PAGE: usize = 1_000;

/// A read the API asks of the node.
#[derive(Debug)]
pub enum Query {
    /// Identity, counts, root, peers summary.
    Status,
    /// Accounts and roots.
    State,
    /// The most recent thoughts.
    Thoughts {
        /// How many.
        limit: usize,
    },
    /// Peers and their agreement.
    Peers,
    /// Recent finality certificates.
    Finality {
        /// How many.
        limit: usize,
    },
    /// The vote body of the latest settled checkpoint, for members without a node.
    Checkpoint,
    /// The dashboard's chart figures of the last minutes, one point a second.
    History,
}

/// What the API asks of the node task.
#[derive(Debug)]
pub enum Command {
    /// Sign, persist and publish a thought.
    Submit {
        /// The thought's content.
        content: String,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Value, ApiError>>,
    },
    /// Admit a batch of pre-signed events (each fully validated like any other), persist
    /// them and push the admitted ones to connected peers.
    Ingest {
        /// Events, each as a 4-byte big-endian length and the wire bytes.
        body: Bytes,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Value, ApiError>>,
    },
    /// Take votes signed by members without a node of their own, and gossip the new ones.
    Votes {
        /// Votes, each as a 4-byte big-endian length and the vote's encoding.
        body: Bytes,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Value, ApiError>>,
    },
    /// Dial a peer now and keep redialling it.
    Dial {
        /// libp2p multiaddr.
        addr: String,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Value, ApiError>>,
    },
    /// A read.
    Query {
        /// What to read.
        query: Query,
        /// Where the answer goes.
        reply: oneshot::Sender<Value>,
    },
}

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
    metrics: Arc<Metrics>,
    live: broadcast::Sender<Arc<str>>,
    token: Option<Arc<String>>,
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

/// The router, for tests and for [`serve`]. `token` is required on every request when set.
pub fn router(
    tx: mpsc::Sender<Command>,
    metrics: Arc<Metrics>,
    live: broadcast::Sender<Arc<str>>,
    token: Option<String>,
) -> Router {
    let state = AppState {
        tx,
        metrics,
        live,
        token: token.map(Arc::new),
    };
    Router::new()
        .route("/", get(dashboard))
        .route("/v1/thoughts", post(submit).get(thoughts))
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

async fn auth(
    State(s): State<AppState>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &s.token {
        // Browsers cannot put a header on a page load or an EventSource, so the dashboard
        // may carry the token as `?token=` instead.
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| {
                req.uri()
                    .query()
                    .into_iter()
                    .flat_map(|q| q.split('&'))
                    .find_map(|kv| kv.strip_prefix("token="))
            });
        if given != Some(token.as_str()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this API is not on loopback: send Authorization: Bearer <DIR/api.token>",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Binds the API and serves it in a background task.
pub async fn serve(
    addr: SocketAddr,
    tx: mpsc::Sender<Command>,
    metrics: Arc<Metrics>,
    live: broadcast::Sender<Arc<str>>,
    token: String,
) -> Result<tokio::task::JoinHandle<()>, Box<dyn std::error::Error + Send + Sync>> {
    let token = (!addr.ip().is_loopback()).then_some(token);
    let app = router(tx, metrics, live, token);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(%e, "API server stopped");
        }
    }))
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

async fn submit(
    State(s): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_error(&e, MAX_REQUEST_BYTES))?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("body", format!("not JSON: {e}")))?;
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
    let ok = command(&s, |reply| Command::Submit { content, reply }).await?;
    Ok((StatusCode::CREATED, Json(ok)).into_response())
}

/// Sends a command that answers `Result<Value, ApiError>` and waits for it.
async fn command(
    s: &AppState,
    make: impl FnOnce(oneshot::Sender<Result<Value, ApiError>>) -> Command,
) -> Result<Value, ApiError> {
    let (reply, rx) = oneshot::channel();
    s.tx.try_send(make(reply)).map_err(|_| busy())?;
    rx.await.map_err(|_| ApiError::internal("node stopped"))?
}

/// `POST /v1/events`: a binary batch of signed events (`u32` big-endian length, then the
/// event's wire bytes, repeated). Answers how many were admitted, known, waiting or rejected.
async fn ingest(
    State(s): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| body_error(&e, MAX_INGEST_BYTES))?;
    command(&s, |reply| Command::Ingest { body, reply })
        .await
        .map(Json)
}

/// `POST /v1/votes`: a binary batch of signed votes, framed like `POST /v1/events`, from
/// members that have no node of their own (each signs the body `GET /v1/checkpoint` shows,
/// after checking it). Answers how many were accepted, already known or rejected.
async fn votes(
    State(s): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| body_error(&e, MAX_INGEST_BYTES))?;
    command(&s, |reply| Command::Votes { body, reply })
        .await
        .map(Json)
}

/// `POST /v1/peers` with `{"addr": "/ip4/A.B.C.D/tcp/PORT"}`: dial a peer now.
async fn dial(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("body", format!("not JSON: {e}")))?;
    let Some(addr) = v.get("addr").and_then(Value::as_str) else {
        return Err(ApiError::bad_request("addr", "missing or not a string"));
    };
    let addr = addr.to_string();
    let ok = command(&s, |reply| Command::Dial { addr, reply }).await?;
    Ok((StatusCode::ACCEPTED, Json(ok)).into_response())
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
/// falls more than [`crate::node::LIVE_BUFFER`] messages behind is told how many it missed.
async fn live_feed(State(s): State<AppState>) -> impl IntoResponse {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    let rx = s.live.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(msg) => Event::default().data(&*msg),
            Err(RecvError::Lagged(n)) => {
                Event::default().data(json!({"type": "lagged", "missed": n}).to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(ev), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn dashboard() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("dashboard.html"),
    )
        .into_response()
}
