//! The HTTP surface: ingestion (`POST /v1/events`), Okta Event Hooks
//! (`GET`/`POST /v1/hooks/okta`), health (`/healthz`, `/readyz`),
//! `/metrics`, and the admin routes (`admin`, and the web console under
//! `/console/`, `console`).
//!
//! Bodies are bounded while they are read (never buffered past
//! `max_body_bytes`) and normalized here, before queueing: a malformed
//! body never reaches a rule, and a request is all-or-nothing — either
//! every event in it is queued, or none is and the answer says which
//! element is wrong. Every 4xx/5xx answer is a JSON `{"error": …}`.
//!
//! An ingestion endpoint without a credential (only possible on a loopback
//! listener, see [`Access::Open`]) is guarded against browsers: a web page
//! can make a browser POST to `127.0.0.1` with a CORS-safelisted content
//! type (`text/plain`, forms, or none), and DNS rebinding can make such a
//! request same-origin under the attacker's host name. So such an endpoint
//! takes only requests whose `Host` (and absolute URI, if any) is a
//! loopback name and, for POSTs, whose `Content-Type` is JSON or NDJSON
//! (403 / 415 otherwise, before the body is read). With a credential
//! configured none of this applies: the credential is the guard.

// The `Err` of the helpers here is the HTTP answer itself, built once per
// refused request; boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::admin::{self, AdminState, bearer};
pub use super::body::{error, read_body};
use super::hooks::{Dedup, secret_matches};
use super::metrics::Metrics;
use super::watchdog::Health;
use crate::model::Event;
use crate::normalize::{NormalizeError, Normalizer};
use crate::secret::Secret;
use crate::sources::queue::{Batch, QueueSender, SendError};

/// The `source` names of the HTTP endpoints' batches.
pub const SOURCES: [&str; 2] = ["http", "okta-hook"];

/// Who may use an ingestion endpoint.
pub enum Access {
    /// A credential is required (`Authorization` compared in constant time).
    Secret(Secret),
    /// No credential configured and the listener is on loopback: only
    /// requests addressed to a loopback name, and JSON POSTs (see the
    /// module documentation). `key` is the credential that would lift this.
    Open { key: &'static str },
    /// No credential configured on a non-loopback listener: the endpoint
    /// answers 404 naming the key to set.
    Disabled { key: &'static str },
}

/// Everything the handlers share.
pub struct AppState {
    pub queue: QueueSender,
    pub normalizer: Normalizer,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub ingest: Access,
    pub okta_hook: Access,
    /// The admin routes' share (`admin::AdminState`).
    pub admin: AdminState,
    /// The web console (on the admin listener, with the admin routes).
    pub console: Arc<super::console::Console>,
    /// An async lock: it is held across the delivery's spool write.
    pub dedup: tokio::sync::Mutex<Dedup>,
    /// Deliveries are written here before they are answered 2xx.
    pub spool: Arc<super::spool::Spool>,
    /// In a cluster, deliveries are published to JetStream instead (and
    /// judged by whichever replica owns their shards).
    pub cluster: Option<crate::cluster::ingest::Publisher>,
    pub max_body_bytes: usize,
    pub max_events: usize,
    /// Decisions from Slack and signed links (`[approvals.slack]`,
    /// `[approvals.links]`), served on the ingest listener.
    pub chat: Option<Arc<super::chat::ChatState>>,
}

impl axum::extract::FromRef<Arc<AppState>> for AdminState {
    fn from_ref(state: &Arc<AppState>) -> AdminState {
        state.admin.clone()
    }
}

/// Which routes a listener serves.
#[derive(Clone, Copy)]
pub struct Routes {
    pub ingest: bool,
    pub admin: bool,
    /// The listener is on a loopback address: `/readyz` and `/metrics`
    /// then answer only requests addressed to a loopback name (see
    /// [`loopback_host_guard`]).
    pub loopback: bool,
}

/// The router of one listener.
pub fn router(state: Arc<AppState>, routes: Routes) -> Router {
    let probe = |route: MethodRouter<Arc<AppState>>| {
        if routes.loopback {
            route.route_layer(middleware::from_fn(loopback_host_guard))
        } else {
            route
        }
    };
    let mut r = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", probe(get(readyz)));
    if routes.ingest {
        let events = guard_if_open(&state, &state.ingest, "http", post(post_events));
        let hook = guard_if_open(
            &state,
            &state.okta_hook,
            "okta-hook",
            get(verify_hook).post(post_hook),
        );
        r = r.route("/v1/events", events).route("/v1/hooks/okta", hook);
        if let Some(chat) = &state.chat {
            r = r.merge(super::chat::router(chat.clone()));
        }
    }
    if routes.admin {
        r = r
            .route("/metrics", probe(get(metrics)))
            .route("/v1/admin/rules", get(admin::list_rules))
            .route("/v1/admin/rules/{id}/mode", post(admin::set_mode))
            .route("/v1/admin/reload", post(admin::reload))
            .route("/v1/admin/approvals", get(admin::list_approvals))
            .route("/v1/admin/approvals/{id}/approve", post(admin::approve))
            .route("/v1/admin/approvals/{id}/reject", post(admin::reject))
            .route(
                "/v1/admin/breakers/{rule}/reset",
                post(admin::reset_breaker),
            )
            .merge(super::console::router(state.console.clone()));
    }
    r.fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

/// Puts [`open_endpoint_guard`] in front of an endpoint whose access is
/// [`Access::Open`]; other endpoints are left as they are.
fn guard_if_open(
    state: &Arc<AppState>,
    access: &Access,
    source: &'static str,
    route: MethodRouter<Arc<AppState>>,
) -> MethodRouter<Arc<AppState>> {
    let Access::Open { key } = access else {
        return route;
    };
    let guard = OpenGuard {
        metrics: state.metrics.clone(),
        source,
        key,
    };
    route.route_layer(middleware::from_fn_with_state(guard, open_endpoint_guard))
}

/// What [`open_endpoint_guard`] needs: where to count a refusal and which
/// key would lift the restriction.
#[derive(Clone)]
struct OpenGuard {
    metrics: Arc<Metrics>,
    source: &'static str,
    key: &'static str,
}

/// Refuses (403) a request to an open loopback endpoint not addressed to a
/// loopback name, and (415) a POST to it that is not JSON or NDJSON; see
/// the module documentation.
async fn open_endpoint_guard(
    State(guard): State<OpenGuard>,
    request: Request,
    next: Next,
) -> Response {
    let refuse = |status, reason: &'static str, message: String| {
        guard.metrics.rejected(guard.source, reason, 1);
        tracing::warn!(source = guard.source, reason, "refused: {message}");
        error_with(status, json!({ "error": message, "reason": reason }))
    };
    if let Err(why) = loopback_addressed(&request) {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden-host",
            format!(
                "{why}; without a credential this endpoint only takes requests addressed to localhost, 127.0.0.1 or [::1] (a web page must not be able to post events); set server.{key}_env or server.{key}_file to accept other host names",
                key = guard.key
            ),
        );
    }
    if request.method() == Method::POST {
        let ct = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let json = ct
            .as_deref()
            .is_some_and(|ct| !media_essence(ct).is_empty() && json_media(ct).is_some());
        if !json {
            let got = match &ct {
                Some(ct) => format!("Content-Type {ct:?}"),
                None => "no Content-Type".to_owned(),
            };
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                format!(
                    "{got}: without a credential this endpoint only takes application/json or application/x-ndjson (types a web page cannot send without the browser asking first); set server.{key}_env or server.{key}_file to accept others",
                    key = guard.key
                ),
            );
        }
    }
    next.run(request).await
}

/// Refuses (403) a request to `/readyz` or `/metrics` on a loopback
/// listener that is not addressed to a loopback name. They need no
/// credential (probes and Prometheus scrape them), so on 127.0.0.1 a web
/// page could otherwise read them through DNS rebinding: rule names, what
/// the rules did, which rule is stuck. `/healthz` says only `ok` and stays
/// open. A listener on another address is reached by its own address
/// (a pod IP, a service name) and is not guarded this way.
async fn loopback_host_guard(request: Request, next: Next) -> Response {
    if let Err(why) = loopback_addressed(&request) {
        tracing::warn!(path = %request.uri().path(), reason = "forbidden-host", "refused: {why}");
        return error_with(
            StatusCode::FORBIDDEN,
            json!({
                "error": format!(
                    "{why}; on a loopback listener this endpoint only answers requests addressed to localhost, 127.0.0.1 or [::1]"
                ),
                "reason": "forbidden-host",
            }),
        );
    }
    next.run(request).await
}

/// `Ok` when the request's `Host` header (and the authority of an
/// absolute-form URI, if any) names the loopback interface; else why not.
fn loopback_addressed(request: &Request) -> Result<(), String> {
    if let Some(authority) = request.uri().authority()
        && !is_loopback_host(authority.as_str())
    {
        return Err(format!(
            "the request URI names {:?}, not a loopback address",
            authority.as_str()
        ));
    }
    match request.headers().get(header::HOST) {
        None if request.uri().authority().is_some() => Ok(()),
        None => Err("the request has no Host header".to_owned()),
        Some(host) => {
            let host = String::from_utf8_lossy(host.as_bytes());
            if is_loopback_host(&host) {
                Ok(())
            } else {
                Err(format!("the Host header {host:?} is not a loopback name"))
            }
        }
    }
}

/// `localhost`, a loopback IPv4 address or `[::1]`, with or without a
/// port. Anything a DNS rebinding could put there (a host name that later
/// resolves to 127.0.0.1) is not.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6] or [v6]:port
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || valid_port(port) => v6,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn valid_port(port: &str) -> bool {
    port.strip_prefix(':')
        .unwrap_or(port)
        .parse::<u16>()
        .is_ok()
}

fn error_with(status: StatusCode, mut body: Value) -> Response {
    if let Some(o) = body.as_object_mut() {
        o.entry("error").or_insert(Value::from("error"));
    }
    (status, Json(body)).into_response()
}

impl Access {
    /// `Ok` when the request may proceed, else the answer.
    fn check(&self, headers: &HeaderMap, bearer_token: bool) -> Result<(), Response> {
        match self {
            Access::Open { .. } => Ok(()),
            Access::Disabled { key } => Err(error(
                StatusCode::NOT_FOUND,
                format!(
                    "this endpoint is disabled on a non-loopback listener without a credential: set server.{key}_env or server.{key}_file"
                ),
            )),
            Access::Secret(s) => {
                let presented = if bearer_token {
                    bearer(headers)
                } else {
                    headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())
                };
                if secret_matches(s, presented) {
                    Ok(())
                } else {
                    let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong Authorization");
                    if bearer_token {
                        r.headers_mut()
                            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    }
                    Err(r)
                }
            }
        }
    }
}

/// A refused ingestion request.
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    body: Value,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            reason,
            body: json!({ "error": message.into(), "reason": reason }),
        }
    }

    fn at(mut self, index: usize, line: Option<usize>) -> Self {
        self.body["index"] = index.into();
        if let Some(l) = line {
            self.body["line"] = l.into();
        }
        self
    }
}

pub(crate) fn reject_reason(e: &NormalizeError) -> &'static str {
    e.reason()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// `application/json` or no content type: one value, an array, or
    /// concatenated values.
    Json,
    /// `application/x-ndjson` (or jsonl): one value per line.
    Ndjson,
}

/// The media type of a `Content-Type` value, lower-cased, without
/// parameters.
fn media_essence(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The body kind of a JSON or NDJSON media type (an empty one counts as
/// JSON); `None` for anything else.
fn json_media(ct: &str) -> Option<BodyKind> {
    match media_essence(ct).as_str() {
        "application/json" | "text/json" | "" => Some(BodyKind::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines" => Some(BodyKind::Ndjson),
        _ => None,
    }
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, Refusal> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Json);
    };
    let ct = ct.to_str().unwrap_or("");
    match json_media(ct) {
        Some(kind) => Ok(kind),
        None => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!(
                "content type {:?} is not accepted; send application/json (an event or an array of events) or application/x-ndjson",
                media_essence(ct)
            ),
        )),
    }
}

/// Splits a body into elements and normalizes each; all or nothing.
fn normalize_body(
    normalizer: &Normalizer,
    text: &str,
    kind: BodyKind,
    max_events: usize,
) -> Result<Vec<Event>, Refusal> {
    let too_many = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-events",
            format!("more than server.max_events_per_request = {max_events} events in one request"),
        )
    };
    let mut events = Vec::new();
    let mut push = |index: usize, line: Option<usize>, element: &str| -> Result<(), Refusal> {
        if index >= max_events {
            return Err(too_many());
        }
        normalizer
            .normalize_line(element, &mut events)
            .map_err(|e| {
                Refusal::new(StatusCode::BAD_REQUEST, reject_reason(&e), e.to_string())
                    .at(index, line)
            })?;
        if events.len() > max_events {
            return Err(too_many());
        }
        Ok(())
    };
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if kind == BodyKind::Ndjson {
        let mut index = 0;
        for (n, line) in trimmed.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            push(index, Some(n + 1), line)?;
            index += 1;
        }
    } else if trimmed.starts_with('[') {
        let elements: Vec<&RawValue> = serde_json::from_str(trimmed).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid-json",
                format!("invalid JSON: {e}"),
            )
        })?;
        for (index, element) in elements.iter().enumerate() {
            push(index, None, element.get())?;
        }
    } else {
        let stream = serde_json::Deserializer::from_str(trimmed).into_iter::<&RawValue>();
        for (index, element) in stream.enumerate() {
            let element = element.map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-json",
                    format!("invalid JSON: {e}"),
                )
                .at(index, None)
            })?;
            push(index, None, element.get())?;
        }
    }
    Ok(events)
}

/// Runs CPU-bound parsing on the blocking pool, so a large body does not
/// hold up the two HTTP workers (and the health probes behind them).
async fn off_the_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("parsing the body failed: {e}"),
        ))
    })
}

/// The events of a spooled delivery, normalized again (`kind` as written
/// by [`spool_kind`]).
pub(crate) fn spooled_events(
    normalizer: &Normalizer,
    kind: &str,
    body: &str,
    max_events: usize,
) -> Result<Vec<Event>, String> {
    match kind {
        "hook" => {
            let mut events = Vec::new();
            let mut report = crate::normalize::LineReport::default();
            normalizer
                .normalize_line_report(body, &mut events, &mut report)
                .map_err(|e| e.to_string())?;
            Ok(events)
        }
        "ndjson" | "json" => {
            let kind = if kind == "ndjson" {
                BodyKind::Ndjson
            } else {
                BodyKind::Json
            };
            normalize_body(normalizer, body, kind, max_events).map_err(|r| r.body.to_string())
        }
        other => Err(format!("unknown spool kind {other:?}")),
    }
}

fn spool_kind(kind: BodyKind) -> &'static str {
    match kind {
        BodyKind::Json => "json",
        BodyKind::Ndjson => "ndjson",
    }
}

/// Writes a delivery to the spool (on the blocking pool: it fsyncs);
/// a failure is a 503 naming the cause.
async fn spool(
    state: &Arc<AppState>,
    source: &'static str,
    kind: &'static str,
    body: String,
    n: usize,
) -> Result<i64, Response> {
    let st = state.clone();
    let written =
        tokio::task::spawn_blocking(move || st.spool.write(&st.metrics, source, kind, &body))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(|r| r);
    written.map_err(|e| {
        tracing::error!(source, "cannot spool a delivery: {e:#}");
        state.metrics.rejected(source, "spool-failed", n);
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot store the delivery durably, so it is not accepted: {e:#}"),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    })
}

/// Makes an accepted delivery durable and hands it on, before the 2xx: in a
/// cluster it is published to JetStream (answered once every publish is
/// acknowledged); otherwise it is spooled, then queued.
async fn accept(
    state: &Arc<AppState>,
    source: &'static str,
    spool_kind: &'static str,
    text: String,
    events: Vec<Event>,
) -> Result<(), Response> {
    let n = events.len();
    let Some(publisher) = &state.cluster else {
        let id = spool(state, source, spool_kind, text, n).await?;
        return enqueue(state, source, events, id);
    };
    match publisher.publish(&events).await {
        Ok(()) => {
            state.metrics.received(source, n);
            Ok(())
        }
        Err(e @ crate::cluster::ingest::PublishError::Event { .. }) => {
            state.metrics.rejected(source, "too-large", n);
            Err(error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))
        }
        Err(e) => {
            tracing::warn!(source, "cannot publish a delivery: {e}");
            state.metrics.rejected(source, "jetstream-unavailable", n);
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{e}, so it is not accepted; send it again later"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            Err(r)
        }
    }
}

/// Queues a batch (spooled as row `spool_id`), observing ingest-to-decision
/// latency when it is done. A refused batch's spool row is removed: the
/// client is told to send it again.
fn enqueue(
    state: &AppState,
    source: &'static str,
    events: Vec<Event>,
    spool_id: i64,
) -> Result<(), Response> {
    let n = events.len();
    let metrics = state.metrics.clone();
    let queued = Instant::now();
    let mut batch =
        Batch::new(source, events).on_done(move || metrics.ingest_to_decision(queued.elapsed()));
    batch.spool_id = Some(spool_id);
    match state.queue.try_send(batch) {
        Ok(()) => {
            state.metrics.received(source, n);
            Ok(())
        }
        Err(e) => {
            if let Err(e) = state.spool.remove(&[spool_id]) {
                // Left in the spool: replayed at the next start, where the
                // rules skip what they judge twice.
                tracing::warn!("cannot remove a refused delivery from the spool: {e:#}");
            }
            state.metrics.rejected(source, "queue-full", n);
            let message = match e {
                SendError::Full => "the event queue is full; retry after a second",
                SendError::Closed => {
                    "Vigil is shutting down; retry against another instance or later"
                }
            };
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, message);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Err(r)
        }
    }
}

/// `POST /v1/events`: one event, an array, or NDJSON → 202 `{"accepted": n}`.
async fn post_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const SOURCE: &str = "http";
    if let Err(r) = state.ingest.check(&headers, true) {
        state.metrics.rejected(SOURCE, "unauthorized", 1);
        return r;
    }
    let refuse = |state: &AppState, r: Refusal| {
        state.metrics.rejected(SOURCE, r.reason, 1);
        error_with(r.status, r.body)
    };
    let kind = match body_kind(&headers) {
        Ok(k) => k,
        Err(r) => return refuse(&state, r),
    };
    let bytes = match read_body(body, &headers, state.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => {
            state.metrics.rejected(SOURCE, "too-large", 1);
            return r;
        }
    };
    let (normalizer, max) = (state.normalizer.clone(), state.max_events);
    let parsed = off_the_runtime(move || {
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
            Refusal::new(StatusCode::BAD_REQUEST, "not-utf8", "the body is not UTF-8")
        })?;
        let events = normalize_body(&normalizer, &text, kind, max)?;
        Ok((events, text))
    })
    .await;
    let (events, text) = match parsed {
        Ok(e) => e,
        Err(r) => return refuse(&state, r),
    };
    let n = events.len();
    if n > 0 {
        // Durable before the 2xx.
        if let Err(r) = accept(&state, SOURCE, spool_kind(kind), text, events).await {
            return r;
        }
    }
    (StatusCode::ACCEPTED, Json(json!({ "accepted": n }))).into_response()
}

/// `GET /v1/hooks/okta`: Okta's one-time verification.
async fn verify_hook(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = state.okta_hook.check(&headers, false) {
        return r;
    }
    match headers
        .get("x-okta-verification-challenge")
        .and_then(|v| v.to_str().ok())
    {
        Some(challenge) => Json(json!({ "verification": challenge })).into_response(),
        None => error(
            StatusCode::BAD_REQUEST,
            "missing the X-Okta-Verification-Challenge header",
        ),
    }
}

/// `POST /v1/hooks/okta`: an Event Hook delivery → 200 once queued.
async fn post_hook(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    const SOURCE: &str = "okta-hook";
    if let Err(r) = state.okta_hook.check(&headers, false) {
        state.metrics.rejected(SOURCE, "unauthorized", 1);
        tracing::warn!("okta hook delivery refused: wrong or missing Authorization");
        return r;
    }
    let bytes = match read_body(body, &headers, state.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => {
            state.metrics.rejected(SOURCE, "too-large", 1);
            return r;
        }
    };
    let refuse = |r: Refusal| {
        state.metrics.rejected(SOURCE, r.reason, 1);
        error_with(r.status, r.body)
    };
    let normalizer = state.normalizer.clone();
    let parsed = off_the_runtime(move || {
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
            Refusal::new(StatusCode::BAD_REQUEST, "not-utf8", "the body is not UTF-8")
        })?;
        // Per event: one bad LogEvent costs only itself (a retry by Okta
        // would not fix it), and is reported by index in the answer.
        let mut events = Vec::new();
        let mut report = crate::normalize::LineReport::default();
        normalizer
            .normalize_line_report(&text, &mut events, &mut report)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, reject_reason(&e), e.to_string()))?;
        Ok((events, report, text))
    })
    .await;
    let (mut events, report, text) = match parsed {
        Ok(e) => e,
        Err(r) => return refuse(r),
    };
    let mut rejected = Vec::new();
    for e in &report.rejected {
        state.metrics.rejected(SOURCE, e.reason(), 1);
        tracing::warn!(source = SOURCE, index = ?e.element_index(), reason = e.reason(), "rejected: {e}");
        rejected.push(json!({
            "index": e.element_index(),
            "reason": e.reason(),
            "error": e.to_string(),
        }));
    }
    for d in &report.dropped {
        tracing::warn!(source = SOURCE, field = %d.path, "dropped a field: {}", d.message);
    }
    if events.len() > state.max_events {
        return refuse(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-events",
            format!(
                "{} events in one delivery; server.max_events_per_request = {}",
                events.len(),
                state.max_events
            ),
        ));
    }
    // Check, queue and record under one lock, so two concurrent copies of
    // a delivery cannot both pass; an id is recorded only once queued, so
    // a 503'd delivery is processed when Okta retries it.
    let now = Instant::now();
    let mut dedup = state.dedup.lock().await;
    let mut in_request = HashSet::new();
    let total = events.len();
    events.retain(|e| !dedup.contains(&e.id, now) && in_request.insert(e.id.clone()));
    let duplicates = total - events.len();
    if duplicates > 0 {
        state.metrics.hook_duplicates(duplicates);
        tracing::debug!(duplicates, "okta hook: dropped events already received");
    }
    let accepted = events.len();
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    if accepted > 0 {
        // Durable before the 2xx, under the dedup lock (an async one: a
        // concurrent copy of the delivery waits without holding a worker).
        // On replay the whole body is read again; events judged already
        // are skipped there.
        if let Err(r) = accept(&state, SOURCE, "hook", text, events).await {
            return r;
        }
        for id in &ids {
            dedup.insert(id, now);
        }
    }
    drop(dedup);
    let mut answer = json!({ "accepted": accepted, "duplicates": duplicates });
    if !rejected.is_empty() {
        answer["rejected"] = Value::Array(rejected);
    }
    Json(answer).into_response()
}

/// `GET /readyz`: 200 when the rules are loaded, the audit log writable,
/// the pipeline thread running and not stuck (the watchdog); else 503
/// saying what is not.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let h = &state.health;
    let mut not_ready: Vec<String> = Vec::new();
    let rules = h.rules.load(Ordering::SeqCst);
    if rules == 0 {
        not_ready.push("no rules loaded".into());
    }
    if !h.pipeline_alive.load(Ordering::SeqCst) {
        not_ready.push("the pipeline thread is not running".into());
    }
    if !h.audit_ok.load(Ordering::SeqCst) {
        not_ready.push("the audit log cannot be written".into());
    }
    if h.stopping.load(Ordering::SeqCst) {
        not_ready.push("shutting down".into());
    }
    if state.cluster.as_ref().is_some_and(|c| !c.connected()) {
        not_ready.push("JetStream is unreachable: events cannot be accepted".into());
    }
    let depth = state.queue.depth();
    let pipeline = h.watchdog.status(depth);
    if let Some(reason) = pipeline.reason() {
        not_ready.push(reason);
    }
    let body = json!({
        "ready": not_ready.is_empty(),
        "not_ready": not_ready,
        "rules": rules,
        "queue_depth": depth,
        "pipeline": {
            "stalled": pipeline.stalled,
            "last_progress_secs": pipeline.since_progress.as_secs_f64(),
            "rule": pipeline.in_call.as_ref().map(|(rule, _)| rule),
            "rule_running_secs": pipeline.in_call.as_ref().map(|(_, d)| d.as_secs_f64()),
        },
        "connectors": state.metrics.connectors(),
    });
    let status = if not_ready.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = body;
    if status != StatusCode::OK {
        body["error"] = Value::from("not ready");
    }
    (status, Json(body)).into_response()
}

/// `GET /metrics`: OpenMetrics text.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let depth = state.queue.depth();
    let text = state
        .metrics
        .encode(depth, &state.health.watchdog.status(depth));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn okta(uuid: &str) -> String {
        format!(
            r#"{{"uuid":"{uuid}","published":"2026-03-01T10:00:00Z","eventType":"user.session.start","actor":{{"id":"00u1","type":"User"}}}}"#
        )
    }

    // An array, concatenated objects and NDJSON all yield every event.
    #[test]
    fn body_shapes() {
        let n = Normalizer::default();
        let arr = format!("[{},{}]", okta("a"), okta("b"));
        assert_eq!(
            normalize_body(&n, &arr, BodyKind::Json, 10)
                .ok()
                .unwrap()
                .len(),
            2
        );
        let one = okta("a");
        assert_eq!(
            normalize_body(&n, &one, BodyKind::Json, 10)
                .ok()
                .unwrap()
                .len(),
            1
        );
        let nd = format!("{}\n\n{}\n", okta("a"), okta("b"));
        assert_eq!(
            normalize_body(&n, &nd, BodyKind::Ndjson, 10)
                .ok()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            normalize_body(&n, &nd, BodyKind::Json, 10)
                .ok()
                .unwrap()
                .len(),
            2
        );
    }

    // A bad element is named by index (and line for NDJSON).
    #[test]
    fn bad_element_is_located() {
        let n = Normalizer::default();
        let nd = format!("{}\n{{\"x\":1}}\n", okta("a"));
        let Err(r) = normalize_body(&n, &nd, BodyKind::Ndjson, 10) else {
            panic!()
        };
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["index"], 1);
        assert_eq!(r.body["line"], 2);
        assert_eq!(r.reason, "unknown-format");
    }

    // Loopback names with any port pass; names a DNS rebinding could use,
    // malformed ports and bare IPv6 do not.
    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "LOCALHOST:8787",
            "127.0.0.1",
            "127.0.0.1:1",
            "127.1.2.3:65535",
            "[::1]",
            "[::1]:8787",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8787",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:80",
            "localhost:99999",
            "localhost:",
            "[::1]x",
            "::1",
            "[::2]:80",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    // Only JSON and NDJSON media types are JSON (an empty one counts as
    // JSON for the handlers; the open-endpoint guard refuses it apart).
    #[test]
    fn json_media_types() {
        assert!(json_media("application/json; charset=utf-8") == Some(BodyKind::Json));
        assert!(json_media("Application/X-NDJSON") == Some(BodyKind::Ndjson));
        assert!(json_media("text/plain").is_none());
        assert!(json_media("application/x-www-form-urlencoded").is_none());
        assert!(json_media("multipart/form-data; boundary=x").is_none());
    }

    // More events than allowed is refused.
    #[test]
    fn too_many_events() {
        let n = Normalizer::default();
        let arr = format!("[{},{},{}]", okta("a"), okta("b"), okta("c"));
        let Err(r) = normalize_body(&n, &arr, BodyKind::Json, 2) else {
            panic!()
        };
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
