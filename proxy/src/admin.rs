//! The admin API, on its own port: route table with live counters, phase changes,
//! rollback (one route or all), diff-gated promotion, audit log, routes-file reload,
//! readiness with the health of each flag source, diff reports (JSON, Markdown) and the
//! HTML pages of [`ui`](crate::ui).
//!
//! The flag sources ([`sources`](crate::sources)) and the rollback
//! [`guard`](crate::guard) are services of their own: they run even when this port is
//! not served.
//!
//! Health, readiness, `/metrics` and the route table are open to whoever reaches the
//! port (keep it private). Diff reports, samples and the audit log (also the `audit` of
//! `GET /routes/{name}`) hold user data and need `Authorization: Bearer <admin_token>`,
//! compared in constant time; so does every change, which also names the operator in
//! `x-operator` (default `admin`), carries a reason, and is audited.
//!
//! Inputs are checked before anything is done: a malformed or nonsensical query, path or
//! body (a duration reaching past what a date can hold, a limit out of range, an id that
//! is no id, a route name no route could have) gets a JSON 400 `{"error": …}`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use studyflow_diffing::report;
use studyflow_flags::{AuditEntry, Phase};

use crate::config::{GuardConfig, PromotionConfig};
use crate::console::{self, ConsoleAuth, ConsoleSettings, Sessions};
use crate::control::{Control, ControlError};
use crate::history::History;
use crate::metrics::Metrics;
use crate::promotion::{self, PhaseRefused, PhaseRequest};
use crate::routing::Route;

/// The control plane's settings the admin service runs with.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    pub guard: GuardConfig,
    pub promotion: PromotionConfig,
    /// How often fleet overrides are re-read besides announcements.
    pub resync: Duration,
}

/// What the admin service shares with its handlers (and the console's).
#[derive(Clone, Debug)]
pub(crate) struct AdminState {
    pub(crate) control: Arc<Control>,
    pub(crate) plane: Arc<ControlPlane>,
    /// SHA-256 of the admin token: compared digest to digest, never the token itself.
    token_digest: Option<[u8; 32]>,
    /// Read access to the diff store, once the service runs.
    pub(crate) diffs: Arc<OnceLock<PgPool>>,
    /// Records the diff store dropped.
    store_dropped: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    pub(crate) history: Arc<History>,
    sessions: Arc<Sessions>,
    pub(crate) console: Arc<ConsoleSettings>,
}

/// Everything the admin service is built from, besides its address, the route control
/// and the token.
#[derive(Debug)]
pub struct AdminParts {
    pub diff_database: Option<SecretString>,
    pub store_dropped: Arc<AtomicU64>,
    pub metrics: Arc<Metrics>,
    pub plane: ControlPlane,
    pub history: Arc<History>,
}

impl ConsoleAuth for AdminState {
    fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    fn token_matches(&self, token: &str) -> bool {
        self.token_digest.is_some_and(|expected| {
            same_digest(&Sha256::digest(token.as_bytes()).into(), &expected)
        })
    }

    fn secure_cookies(&self) -> bool {
        self.console.secure_cookies
    }
}

/// Whether two digests are equal, in time independent of where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let differing = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(differing) == 0
}

/// Whether two secrets are equal, in constant time (their digests are compared, so the
/// length of neither shows either).
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    same_digest(
        &Sha256::digest(a.as_bytes()).into(),
        &Sha256::digest(b.as_bytes()).into(),
    )
}

/// Serves the admin API until the gateway shuts down, and watches the routes file.
#[derive(Debug)]
pub struct AdminService {
    addr: SocketAddr,
    /// Bound by the server before start-up, so a port in use stops the gateway.
    listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    state: AdminState,
    diff_database: Option<SecretString>,
}

impl AdminService {
    pub fn new(
        listener: std::net::TcpListener,
        control: Arc<Control>,
        token: Option<&SecretString>,
        parts: AdminParts,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            addr,
            listener: std::sync::Mutex::new(Some(listener)),
            state: AdminState {
                control,
                plane: Arc::new(parts.plane),
                token_digest: token.map(|t| Sha256::digest(t.expose_secret().as_bytes()).into()),
                diffs: Arc::new(OnceLock::new()),
                store_dropped: parts.store_dropped,
                metrics: parts.metrics,
                history: parts.history,
                sessions: Arc::new(Sessions::default()),
                console: Arc::new(ConsoleSettings::default()),
            },
            diff_database: parts.diff_database,
        })
    }
}

impl AdminService {
    /// The console's settings (`console` section); the defaults otherwise.
    #[must_use]
    pub fn with_console(mut self, settings: ConsoleSettings) -> Self {
        self.state.console = Arc::new(settings);
        self
    }
}

fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready))
        .route("/routes", get(list_routes))
        .route("/routes/{name}", get(show_route).put(set_route))
        .route("/routes/{name}/rollback", post(rollback_route))
        .route("/routes/{name}/reset", post(reset_route))
        .route("/routes/{name}/promote", post(promote_route))
        .route("/rollback", post(rollback_all))
        .route("/audit", get(audit))
        .route("/reload", post(reload))
        .route("/metrics", get(metrics))
        .route("/diffs", get(diff_report))
        .route("/diffs/samples/{id}", get(diff_sample))
        .merge(console::router())
        .with_state(state)
}

/// An admin API error answer: `{"error": "..."}` with a status.
#[derive(Debug)]
pub(crate) struct AdminError(pub(crate) StatusCode, pub(crate) String);

impl AdminError {
    fn bad_input(message: String) -> Self {
        Self(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({"error": self.1}))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"studyflow-gateway admin\""),
            );
        }
        response
    }
}

/// An extractor (query string, path) whose rejection is a JSON 400.
#[derive(Debug)]
struct Api<E>(E);

impl<S, E> FromRequestParts<S> for Api<E>
where
    S: Send + Sync,
    E: FromRequestParts<S>,
    E::Rejection: std::fmt::Display,
{
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        E::from_request_parts(parts, state)
            .await
            .map(Self)
            .map_err(|e| AdminError::bad_input(format!("invalid request: {e}")))
    }
}

impl From<ControlError> for AdminError {
    fn from(error: ControlError) -> Self {
        let status = match &error {
            ControlError::UnknownRoute(_) => StatusCode::NOT_FOUND,
            ControlError::MissingReason | ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::NoLegacyTwin(_) => StatusCode::CONFLICT,
            ControlError::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ControlError::StoreDown(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self(status, error.to_string())
    }
}

/// Checks the bearer token of a change or of a read of private data.
fn check_token(state: &AdminState, headers: &HeaderMap) -> Result<(), AdminError> {
    let Some(expected) = state.token_digest else {
        return Err(AdminError(
            StatusCode::FORBIDDEN,
            "disabled: no admin_token is configured (it guards changes, diff reports, samples and the audit log)".into(),
        ));
    };
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())));
    if !given.is_some_and(|given| same_digest(&given, &expected)) {
        return Err(AdminError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token".into(),
        ));
    }
    Ok(())
}

/// Checks the bearer token and returns the operator's name.
fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<String, AdminError> {
    check_token(state, headers)?;
    let who = headers
        .get("x-operator")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|w| !w.is_empty() && w.len() <= 100)
        .unwrap_or("admin");
    Ok(who.to_owned())
}

fn route_json(control: &Control, plane: &ControlPlane, route: &Route) -> Value {
    let counters = route.stats.snapshot();
    let percent = route.phase.percent();
    let guard = plane.guard.for_route(&route.spec.name).map(|t| {
        json!({
            "window_secs": t.window_secs,
            "window": route.stats.window.totals(t.window_secs),
        })
    });
    json!({
        "name": route.spec.name,
        "path": route.spec.path.to_string(),
        "methods": route.spec.methods,
        "phase": route.phase.name(),
        "percent": percent,
        "source": route.source,
        "held": route.held,
        "file_phase": route.spec.phase.to_string(),
        "unleash_phase": control.unleash_phase(&route.spec.name).map(|p| p.to_string()),
        "override": control.override_of(&route.spec.name),
        "guard": guard,
        "since_phase_change": route.stats.since_phase_change(),
        "blocked": route.spec.blocked,
        "legacy_twin": route.spec.legacy_twin,
        "copies": route.spec.copies_in(route.phase),
        "shadow": route.spec.shadow,
        "counters": counters,
        "shadows_lost": counters.shadows_lost(),
        "losses": counters.losses().into_iter().collect::<BTreeMap<_, _>>(),
    })
}

async fn list_routes(State(state): State<AdminState>) -> Json<Value> {
    let table = state.control.table();
    let routes: Vec<Value> = table
        .routes()
        .iter()
        .map(|r| route_json(&state.control, &state.plane, r))
        .collect();
    Json(json!({
        "routes": routes,
        "sources": state.control.health.snapshot(),
        "passthrough": table.passthrough.snapshot(),
        "reload_error": state.control.reload_error(),
        "diff_store": {
            "configured": state.diffs.get().is_some(),
            "dropped": state.store_dropped.load(Ordering::Relaxed),
        },
    }))
}

/// One route; its audit entries only for callers with the admin token.
async fn show_route(
    State(state): State<AdminState>,
    Api(Path(name)): Api<Path<String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, AdminError> {
    let name = route_name(&name).map_err(AdminError::bad_input)?;
    let table = state.control.table();
    let route = table
        .find(name)
        .ok_or_else(|| AdminError(StatusCode::NOT_FOUND, format!("no route named `{name}`")))?;
    let mut body = route_json(&state.control, &state.plane, route);
    if check_token(&state, &headers).is_ok() {
        // The route's state is shown even when the audit log's store is down.
        match state.control.audit(Some(name), 50).await {
            Ok(audit) => body["audit"] = json!(audit),
            Err(error) => {
                tracing::warn!(%error, "override store query failed");
                body["audit_unavailable"] = json!("the audit log's store is unreachable");
            }
        }
    } else {
        body["audit_hidden"] = json!("the audit log needs the admin token");
    }
    Ok(Json(body))
}

fn store_unavailable(error: crate::Error) -> AdminError {
    tracing::warn!(%error, "override store query failed");
    AdminError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the override store is unavailable".into(),
    )
}

/// 200 with the health of every flag source while a flag set is in force (one always is
/// once the gateway serves: it does not start without a valid routes file); a failing
/// source is reported here, not by failing readiness, because serving goes on with its
/// last good state.
async fn ready(State(state): State<AdminState>) -> Response {
    let sources = state.control.health.snapshot();
    let routes = state.control.table().routes().len();
    let status = if routes > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let degraded = sources.values().any(|s| s.configured && !s.ok);
    (
        status,
        Json(json!({
            "ready": status == StatusCode::OK,
            "degraded": degraded,
            "routes": routes,
            "sources": sources,
        })),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Promote {
    percent: Option<u8>,
    #[serde(default)]
    force: bool,
    reason: String,
}

/// Moves a route one phase forward (or to a canary percentage) when its gate holds; 409
/// with the evidence when it does not, unless forced (the audit says so).
async fn promote_route(
    State(state): State<AdminState>,
    Api(Path(name)): Api<Path<String>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, AdminError> {
    let who = authorize(&state, &headers)?;
    let request: Promote = body(&bytes)?;
    if request.reason.trim().is_empty() {
        return Err(ControlError::MissingReason.into());
    }
    let table = state.control.table();
    let route = table
        .find(&name)
        .ok_or_else(|| AdminError(StatusCode::NOT_FOUND, format!("no route named `{name}`")))?;
    if route.spec.blocked {
        return Err(AdminError(
            StatusCode::BAD_REQUEST,
            format!("route `{name}` is blocked"),
        ));
    }
    let target = promotion::next_phase(
        route.phase,
        request.percent,
        &state.plane.promotion.canary_steps,
    )
    .map_err(|e| AdminError(StatusCode::BAD_REQUEST, e))?;
    let request = PhaseRequest {
        route: &name,
        to: target,
        who: &who,
        reason: &request.reason,
        force: request.force,
    };
    phase_answer(&name, change(&state, request).await)
}

/// Makes an operator's phase change through the one gate, waiting for the diff store
/// as long as the admin API does.
async fn change(
    state: &AdminState,
    request: PhaseRequest<'_>,
) -> Result<promotion::PhaseChanged, PhaseRefused> {
    promotion::change_phase(
        &state.control,
        state.diffs.get(),
        &state.plane.promotion,
        PROMOTION_STORE_WAIT,
        request,
    )
    .await
}

/// A phase change's answer: what changed and the gate's evidence, or 409 with the
/// evidence when the gate refused a move forward.
fn phase_answer(
    name: &str,
    result: Result<promotion::PhaseChanged, PhaseRefused>,
) -> Result<Response, AdminError> {
    match result {
        Ok(done) => Ok(Json(json!({
            "route": name,
            "from": done.from.to_string(),
            "to": done.to.to_string(),
            "action": done.action,
            "gate": done.gate,
            "changed": done.changed,
        }))
        .into_response()),
        Err(PhaseRefused::Gate { from, to, report }) => Ok((
            StatusCode::CONFLICT,
            Json(json!({
                "route": name,
                "from": from.to_string(),
                "to": to.to_string(),
                "gate": report,
                "error": format!(
                    "the promotion gate does not hold for `{name}` ({from} -> {to}): moving forward needs the evidence, or --force with a reason (audited as forced)"
                ),
            })),
        )
            .into_response()),
        Err(PhaseRefused::Control(error)) => Err(error.into()),
    }
}

/// How long `promote` waits for the diff store before judging on this instance's
/// counters (the console waits `console.store_timeout_ms`).
const PROMOTION_STORE_WAIT: Duration = Duration::from_secs(5);

/// How long the admin API's reports wait for the diff store (the console's pages wait
/// `console.store_timeout_ms`).
const REPORT_STORE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPhase {
    phase: String,
    percent: Option<u8>,
    reason: String,
    /// Move forward although the gate does not hold (audited as forced).
    #[serde(default)]
    force: bool,
}

/// Parses a JSON body, turning serde's rejection into a readable 400.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))
}

fn changed(entries: Vec<AuditEntry>) -> Json<Value> {
    Json(json!({ "changed": entries }))
}

/// Puts a route in a phase: back at once, forward through the gate (409 with the
/// evidence when it does not hold, unless forced).
async fn set_route(
    State(state): State<AdminState>,
    Api(Path(name)): Api<Path<String>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, AdminError> {
    let who = authorize(&state, &headers)?;
    let request: SetPhase = body(&bytes)?;
    let phase = Phase::from_parts(&request.phase, request.percent)
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, e))?;
    let change_request = PhaseRequest {
        route: &name,
        to: phase,
        who: &who,
        reason: &request.reason,
        force: request.force,
    };
    phase_answer(&name, change(&state, change_request).await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

async fn rollback_route(
    State(state): State<AdminState>,
    Api(Path(name)): Api<Path<String>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let who = authorize(&state, &headers)?;
    let Reason { reason } = body(&bytes)?;
    let entries = state.control.rollback(Some(&name), &who, &reason).await?;
    count_rollbacks(&state, &entries);
    Ok(rolled_back(&state, entries))
}

/// A rollback's answer: what changed, and whether the fleet has it yet (`pending`: in
/// force on this instance, written to the fleet store as soon as it answers).
fn rolled_back(state: &AdminState, entries: Vec<AuditEntry>) -> Json<Value> {
    let pending = state.control.pending_routes();
    Json(json!({
        "changed": entries,
        "fleet_sync": if pending.is_empty() { "done" } else { "pending" },
        "fleet_pending_routes": pending,
    }))
}

async fn rollback_all(
    State(state): State<AdminState>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let who = authorize(&state, &headers)?;
    let Reason { reason } = body(&bytes)?;
    let entries = state.control.rollback(None, &who, &reason).await?;
    count_rollbacks(&state, &entries);
    let mut answer = rolled_back(&state, entries);
    let table = state.control.table();
    let skipped = table.without_legacy();
    if !skipped.is_empty() {
        answer["skipped"] = json!(skipped);
        answer["skipped_why"] =
            json!("no legacy twin (`legacy: none`): the legacy would answer 404");
    }
    Ok(answer)
}

/// Counts operator rollbacks that changed something, for the rollback metric.
pub(crate) fn count_rollbacks(state: &AdminState, entries: &[AuditEntry]) {
    for entry in entries.iter().filter(|e| e.from != e.to) {
        state.metrics.rollback(&entry.route, "manual");
    }
}

async fn reset_route(
    State(state): State<AdminState>,
    Api(Path(name)): Api<Path<String>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let who = authorize(&state, &headers)?;
    let Reason { reason } = body(&bytes)?;
    Ok(changed(state.control.reset(&name, &who, &reason).await?))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    route: Option<String>,
    limit: Option<usize>,
}

/// Most audit entries one read returns.
const MAX_AUDIT_LIMIT: usize = 5000;

async fn audit(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Api(Query(query)): Api<Query<AuditQuery>>,
) -> Result<Json<Value>, AdminError> {
    check_token(&state, &headers)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(AdminError::bad_input(format!(
            "limit must be 1 to {MAX_AUDIT_LIMIT}, got {limit}"
        )));
    }
    let route = query
        .route
        .as_deref()
        .map(route_name)
        .transpose()
        .map_err(AdminError::bad_input)?;
    let entries = state
        .control
        .audit(route, limit)
        .await
        .map_err(store_unavailable)?;
    Ok(Json(json!({ "audit": entries })))
}

async fn reload(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AdminError> {
    authorize(&state, &headers)?;
    match state.control.reload().await {
        Ok(reloaded) => Ok(Json(json!({ "reloaded": reloaded }))),
        Err(error) => Err(AdminError(
            StatusCode::UNPROCESSABLE_ENTITY,
            error.to_string(),
        )),
    }
}

/// Prometheus exposition of the gateway's metrics.
async fn metrics(State(state): State<AdminState>) -> Response {
    for (source, health) in state.control.health.snapshot() {
        if health.configured {
            state.metrics.flag_source(source, health.ok);
        }
    }
    let text = state.metrics.render(
        &state.control.table(),
        state.store_dropped.load(Ordering::Relaxed),
    );
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

/// The query of a diff report, as sent (the console's report pages take the same).
#[derive(Debug, Deserialize)]
pub(crate) struct ReportQuery {
    since: Option<String>,
    pub(crate) route: Option<String>,
    format: Option<String>,
    top: Option<i64>,
}

/// A diff report's query, checked.
#[derive(Debug)]
pub(crate) struct ReportInput {
    pub(crate) since: DateTime<Utc>,
    /// `since` as given (shown and kept in links).
    pub(crate) since_text: String,
    pub(crate) route: Option<String>,
    /// Differing paths per route.
    pub(crate) top: i64,
    pub(crate) markdown: bool,
}

/// How far back a report may reach.
const MAX_REPORT_DAYS: i64 = 3660;
/// Most differing paths per route in a report.
const MAX_TOP: i64 = 200;

impl ReportInput {
    pub(crate) fn parse(query: &ReportQuery) -> Result<Self, String> {
        let since_text = query.since.clone().unwrap_or_else(|| "24h".into());
        let since = parse_since(&since_text, Utc::now())?;
        let top = query.top.unwrap_or(20);
        if !(1..=MAX_TOP).contains(&top) {
            return Err(format!("top must be 1 to {MAX_TOP}, got {top}"));
        }
        let route = query
            .route
            .as_deref()
            .map(|r| route_name(r).map(str::to_owned))
            .transpose()?;
        let markdown = match query.format.as_deref() {
            None | Some("json") => false,
            Some("md") => true,
            Some(_) => return Err("format must be `json` or `md`".into()),
        };
        Ok(Self {
            since,
            since_text,
            route,
            top,
            markdown,
        })
    }
}

/// `since` as a duration back from `now` (`90m`, `24h`, `7d`) or an RFC 3339 instant, at
/// most [`MAX_REPORT_DAYS`] back and not in the future.
fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if text.is_empty() || text.len() > 64 {
        return Err("since must be a duration like 24h or an RFC 3339 time".into());
    }
    let at = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => {
            let duration = humantime::parse_duration(text).map_err(|_| {
                format!("since `{text}` is neither a duration like 24h nor an RFC 3339 time")
            })?;
            TimeDelta::from_std(duration)
                .ok()
                .and_then(|back| now.checked_sub_signed(back))
                .ok_or_else(|| format!("since `{text}` reaches too far back"))?
        }
    };
    let earliest = TimeDelta::try_days(MAX_REPORT_DAYS).and_then(|d| now.checked_sub_signed(d));
    if earliest.is_none_or(|earliest| at < earliest) {
        return Err(format!(
            "since `{text}` reaches more than {MAX_REPORT_DAYS} days back"
        ));
    }
    if now
        .checked_add_signed(TimeDelta::minutes(1))
        .is_none_or(|latest| at > latest)
    {
        return Err(format!("since `{text}` is in the future"));
    }
    Ok(at)
}

/// A route name as given in a path or query: 1 to 100 letters, digits, `-`, `_`, `.` or
/// `~` (what Unleash toggle names allow). Whether such a route exists is another matter.
pub(crate) fn route_name(text: &str) -> Result<&str, String> {
    let valid = !text.is_empty()
        && text.len() <= 100
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if valid {
        Ok(text)
    } else {
        Err("a route name is 1 to 100 letters, digits, `-`, `_`, `.` or `~`".into())
    }
}

/// A sample id: a positive integer.
pub(crate) fn sample_id(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err("a sample id is a positive integer".into()),
    }
}

fn diff_pool(state: &AdminState) -> Result<&PgPool, AdminError> {
    state.diffs.get().ok_or_else(|| {
        AdminError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no diff store is configured (diff_store.database_url)".into(),
        )
    })
}

fn store_error(error: studyflow_diffing::store::StoreError) -> AdminError {
    tracing::warn!(%error, "diff store query failed");
    AdminError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the diff store is unavailable".into(),
    )
}

/// Runs a diff store query for at most `wait`: a store that does not answer costs one
/// wait and a 503, not the pool's own timeout.
async fn within<T>(
    wait: Duration,
    query: impl Future<Output = Result<T, studyflow_diffing::store::StoreError>>,
) -> Result<T, AdminError> {
    match tokio::time::timeout(wait, query).await {
        Ok(answer) => answer.map_err(store_error),
        Err(_) => Err(AdminError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the diff store did not answer within {} ms",
                wait.as_millis()
            ),
        )),
    }
}

/// The report of `input`, waiting at most `wait` for the diff store.
pub(crate) async fn load_overview(
    state: &AdminState,
    input: &ReportInput,
    wait: Duration,
) -> Result<report::Overview, AdminError> {
    let pool = diff_pool(state)?;
    within(
        wait,
        report::overview(pool, input.since, input.route.as_deref(), input.top),
    )
    .await
}

/// Sample `id`, waiting at most `wait` for the diff store.
pub(crate) async fn load_sample(
    state: &AdminState,
    id: i64,
    wait: Duration,
) -> Result<report::StoredSample, AdminError> {
    within(wait, report::sample(diff_pool(state)?, id))
        .await?
        .ok_or_else(|| AdminError(StatusCode::NOT_FOUND, format!("no sample #{id}")))
}

async fn diff_report(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Api(Query(query)): Api<Query<ReportQuery>>,
) -> Result<Response, AdminError> {
    check_token(&state, &headers)?;
    let input = ReportInput::parse(&query).map_err(AdminError::bad_input)?;
    let overview = load_overview(&state, &input, REPORT_STORE_WAIT).await?;
    Ok(if input.markdown {
        (
            [(http::header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report::markdown(&overview),
        )
            .into_response()
    } else {
        Json(overview).into_response()
    })
}

async fn diff_sample(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Api(Path(id)): Api<Path<String>>,
) -> Result<Json<report::StoredSample>, AdminError> {
    check_token(&state, &headers)?;
    let id = sample_id(&id).map_err(AdminError::bad_input)?;
    load_sample(&state, id, REPORT_STORE_WAIT).await.map(Json)
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if let Some(url) = &self.diff_database {
            match sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(3))
                .connect_lazy(url.expose_secret())
            {
                Ok(pool) => {
                    let _ = self.state.diffs.set(pool);
                }
                Err(error) => {
                    tracing::error!(%error, "diff store URL is invalid; reports are unavailable")
                }
            }
        }
        let taken = self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let listener = match taken.map(tokio::net::TcpListener::from_std) {
            Some(Ok(listener)) => listener,
            Some(Err(error)) => {
                tracing::error!(addr = %self.addr, %error, "admin API cannot listen");
                return;
            }
            None => return,
        };
        tracing::info!(addr = %self.addr, "admin API listening");
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(error) = axum::serve(listener, routes(self.state.clone()))
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "admin API stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_duration_or_a_time_within_reach() {
        let now = Utc::now();
        assert_eq!(parse_since("24h", now), Ok(now - TimeDelta::hours(24)));
        assert!(parse_since("2024-05-01T10:00:00Z", now).is_ok());
        let long = "9".repeat(100);
        for hostile in [
            "99999999999d",
            "18446744073709551615s",
            "3700d",
            "-1h",
            "",
            "soon",
            "2999-01-01T00:00:00Z",
            "1000-01-01T00:00:00Z",
            &long,
        ] {
            assert!(parse_since(hostile, now).is_err(), "{hostile}");
        }
    }

    #[test]
    fn route_names_and_ids_are_checked() {
        assert_eq!(route_name("ai-tutor_2.v1"), Ok("ai-tutor_2.v1"));
        let long = "a".repeat(101);
        for hostile in ["", "a/b", "a b", "\u{0}", "<script>", &long] {
            assert!(route_name(hostile).is_err(), "{hostile:?}");
        }
        assert_eq!(sample_id("12"), Ok(12));
        for hostile in ["0", "-3", "x", "99999999999999999999", "1e3", ""] {
            assert!(sample_id(hostile).is_err(), "{hostile}");
        }
    }

    #[test]
    fn report_queries_are_checked() {
        let query = |top: Option<i64>, format: Option<&str>| ReportQuery {
            since: None,
            route: None,
            format: format.map(str::to_owned),
            top,
        };
        assert!(ReportInput::parse(&query(None, None)).is_ok_and(|i| i.top == 20 && !i.markdown));
        assert!(ReportInput::parse(&query(None, Some("md"))).is_ok_and(|i| i.markdown));
        for (top, format) in [
            (Some(0), None),
            (Some(-1), None),
            (Some(201), None),
            (None, Some("xml")),
        ] {
            assert!(
                ReportInput::parse(&query(top, format)).is_err(),
                "{top:?} {format:?}"
            );
        }
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("token", "token"));
        assert!(!same_secret("token", "tokeN"));
        assert!(!same_secret("token", "token-longer"));
    }
}
