//! The admin API, on its own port: route table with live counters, phase changes,
//! rollback (one route or all), diff-gated promotion, audit log, routes-file reload,
//! readiness with the health of each flag source, diff reports (JSON, Markdown) and the
//! HTML pages of [`ui`](crate::ui).
//!
//! The service also runs the control plane's background loops on its runtime: the flag
//! sources ([`sources`](crate::sources)) and the rollback [`guard`](crate::guard).
//!
//! Reads are open to whoever reaches the port (keep it private); every change needs
//! `Authorization: Bearer <admin_token>`, names the operator in `x-operator` (default
//! `admin`) and carries a reason, and is audited.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use maud::Markup;
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
use crate::console::{self, ConsoleAuth, Sessions, Viewer};
use crate::control::{Control, ControlError};
use crate::history::History;
use crate::metrics::Metrics;
use crate::routing::Route;
use crate::{guard, promotion, sources, ui};

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
        self.token_digest
            .is_some_and(|expected| <[u8; 32]>::from(Sha256::digest(token.as_bytes())) == expected)
    }
}

/// Serves the admin API until the gateway shuts down, and watches the routes file.
#[derive(Debug)]
pub struct AdminService {
    addr: SocketAddr,
    state: AdminState,
    diff_database: Option<SecretString>,
}

impl AdminService {
    pub fn new(
        addr: SocketAddr,
        control: Arc<Control>,
        token: Option<&SecretString>,
        parts: AdminParts,
    ) -> Self {
        Self {
            addr,
            state: AdminState {
                control,
                plane: Arc::new(parts.plane),
                token_digest: token.map(|t| Sha256::digest(t.expose_secret().as_bytes()).into()),
                diffs: Arc::new(OnceLock::new()),
                store_dropped: parts.store_dropped,
                metrics: parts.metrics,
                history: parts.history,
                sessions: Arc::new(Sessions::default()),
            },
            diff_database: parts.diff_database,
        }
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
        .route("/ui", get(console::routes_page))
        .route(
            "/ui/login",
            get(console::login_get).post(console::login_post),
        )
        .route("/ui/logout", post(console::logout_post))
        .route("/ui/progress", get(console::progress))
        .route("/ui/rollback", post(console::rollback_all))
        .route("/ui/routes/{name}", get(console::route_page))
        .route("/ui/routes/{name}/phase", post(console::set_phase))
        .route("/ui/routes/{name}/rollback", post(console::rollback_route))
        .route("/ui/diffs", get(ui_overview))
        .route("/ui/diffs/{route}", get(ui_route))
        .route("/ui/samples/{id}", get(ui_sample))
        .with_state(state)
}

/// An admin API error answer: `{"error": "..."}` with a status.
struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<ControlError> for AdminError {
    fn from(error: ControlError) -> Self {
        let status = match &error {
            ControlError::UnknownRoute(_) => StatusCode::NOT_FOUND,
            ControlError::MissingReason | ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, error.to_string())
    }
}

/// Checks the bearer token and returns the operator's name.
fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<String, AdminError> {
    let Some(expected) = state.token_digest else {
        return Err(AdminError(
            StatusCode::FORBIDDEN,
            "changes are disabled: no admin_token is configured".into(),
        ));
    };
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| <[u8; 32]>::from(Sha256::digest(t.as_bytes())));
    if given != Some(expected) {
        return Err(AdminError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token".into(),
        ));
    }
    let who = headers
        .get("x-operator")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|w| !w.is_empty() && w.len() <= 100)
        .unwrap_or("admin");
    Ok(who.to_owned())
}

fn route_json(control: &Control, plane: &ControlPlane, route: &Route) -> Value {
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
        "shadow": route.spec.shadow,
        "counters": route.stats.snapshot(),
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

async fn show_route(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let table = state.control.table();
    let route = table
        .find(&name)
        .ok_or_else(|| AdminError(StatusCode::NOT_FOUND, format!("no route named `{name}`")))?;
    let mut body = route_json(&state.control, &state.plane, route);
    body["audit"] = json!(
        state
            .control
            .audit(Some(&name), 50)
            .await
            .map_err(store_unavailable)?
    );
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
    Path(name): Path<String>,
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
    let gate = promotion::gate(route, state.diffs.get(), &state.plane.promotion).await;
    let mut answer = json!({
        "route": name,
        "from": route.phase.to_string(),
        "to": target.to_string(),
        "gate": gate,
    });
    if !gate.holds && !request.force {
        answer["error"] = json!(format!(
            "the promotion gate does not hold for `{name}` ({} -> {target}); see the evidence, or pass --force with a reason",
            route.phase
        ));
        return Ok((StatusCode::CONFLICT, Json(answer)).into_response());
    }
    let (action, reason) = if gate.holds {
        ("promote", request.reason)
    } else {
        let failed: Vec<String> = gate
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} {} (required {})", c.name, c.observed, c.required))
            .collect();
        (
            "promote_forced",
            format!(
                "{} [forced past the gate: {}]",
                request.reason,
                failed.join("; ")
            ),
        )
    };
    let changed = state
        .control
        .set_phase(&name, target, &who, &reason, action)
        .await?;
    answer["changed"] = json!(changed);
    Ok(Json(answer).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPhase {
    phase: String,
    percent: Option<u8>,
    reason: String,
}

/// Parses a JSON body, turning serde's rejection into a readable 400.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))
}

fn changed(entries: Vec<AuditEntry>) -> Json<Value> {
    Json(json!({ "changed": entries }))
}

async fn set_route(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let who = authorize(&state, &headers)?;
    let request: SetPhase = body(&bytes)?;
    let phase = Phase::from_parts(&request.phase, request.percent)
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, e))?;
    Ok(changed(
        state
            .control
            .set_phase(&name, phase, &who, &request.reason, "set")
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

async fn rollback_route(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let who = authorize(&state, &headers)?;
    let Reason { reason } = body(&bytes)?;
    let entries = state.control.rollback(Some(&name), &who, &reason).await?;
    count_rollbacks(&state, &entries);
    Ok(changed(entries))
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
    Ok(changed(entries))
}

/// Counts operator rollbacks that changed something, for the rollback metric.
pub(crate) fn count_rollbacks(state: &AdminState, entries: &[AuditEntry]) {
    for entry in entries.iter().filter(|e| e.from != e.to) {
        state.metrics.rollback(&entry.route, "manual");
    }
}

async fn reset_route(
    State(state): State<AdminState>,
    Path(name): Path<String>,
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

async fn audit(
    State(state): State<AdminState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, AdminError> {
    let limit = query.limit.unwrap_or(100).min(5000);
    let entries = state
        .control
        .audit(query.route.as_deref(), limit)
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

#[derive(Debug, Deserialize)]
struct ReportQuery {
    since: Option<String>,
    route: Option<String>,
    format: Option<String>,
    top: Option<i64>,
}

/// `since` as a duration back from now (`90m`, `24h`, `7d`) or an RFC 3339 instant.
fn parse_since(text: Option<&str>) -> Result<DateTime<Utc>, AdminError> {
    let text = text.unwrap_or("24h");
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let duration = humantime::parse_duration(text).map_err(|_| {
        AdminError(
            StatusCode::BAD_REQUEST,
            format!("since `{text}` is neither a duration like 24h nor an RFC 3339 time"),
        )
    })?;
    Ok(Utc::now() - chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::days(1)))
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

async fn load_overview(
    state: &AdminState,
    query: &ReportQuery,
) -> Result<report::Overview, AdminError> {
    let since = parse_since(query.since.as_deref())?;
    let top = query.top.unwrap_or(20).clamp(1, 200);
    report::overview(diff_pool(state)?, since, query.route.as_deref(), top)
        .await
        .map_err(store_error)
}

async fn diff_report(
    State(state): State<AdminState>,
    Query(query): Query<ReportQuery>,
) -> Result<Response, AdminError> {
    let overview = load_overview(&state, &query).await?;
    Ok(match query.format.as_deref() {
        Some("md") => (
            [(http::header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report::markdown(&overview),
        )
            .into_response(),
        _ => Json(overview).into_response(),
    })
}

async fn diff_sample(
    State(state): State<AdminState>,
    Path(id): Path<i64>,
) -> Result<Json<report::StoredSample>, AdminError> {
    report::sample(diff_pool(&state)?, id)
        .await
        .map_err(store_error)?
        .map(Json)
        .ok_or_else(|| AdminError(StatusCode::NOT_FOUND, format!("no sample #{id}")))
}

async fn ui_overview(
    _viewer: Viewer,
    State(state): State<AdminState>,
    Query(query): Query<ReportQuery>,
) -> Result<Markup, AdminError> {
    let overview = load_overview(&state, &query).await?;
    Ok(ui::overview(
        &overview,
        query.since.as_deref().unwrap_or("24h"),
    ))
}

async fn ui_route(
    _viewer: Viewer,
    State(state): State<AdminState>,
    Path(route): Path<String>,
    Query(mut query): Query<ReportQuery>,
) -> Result<Markup, AdminError> {
    query.route = Some(route.clone());
    let overview = load_overview(&state, &query).await?;
    let summary = overview
        .routes
        .iter()
        .find(|r| r.route == route)
        .ok_or_else(|| {
            AdminError(
                StatusCode::NOT_FOUND,
                format!("no compared pairs for route `{route}` in this window"),
            )
        })?;
    Ok(ui::route(summary, query.since.as_deref().unwrap_or("24h")))
}

async fn ui_sample(
    _viewer: Viewer,
    State(state): State<AdminState>,
    Path(id): Path<i64>,
) -> Result<Markup, AdminError> {
    let Json(sample) = diff_sample(State(state), Path(id)).await?;
    Ok(ui::sample(&sample))
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
        let listener = match tokio::net::TcpListener::bind(self.addr).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(addr = %self.addr, %error, "admin API cannot listen");
                return;
            }
        };
        tracing::info!(addr = %self.addr, "admin API listening");
        let control = Arc::clone(&self.state.control);
        let plane = Arc::clone(&self.state.plane);
        sources::spawn(&control, plane.resync, &shutdown);
        let mut guard_stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = guard::run(control, plane.guard.clone()) => {}
                _ = guard_stop.changed() => {}
            }
        });
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
