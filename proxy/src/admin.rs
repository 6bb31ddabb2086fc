//! The admin API, on its own port: route table with live counters, phase changes,
//! rollback (one route or all), audit log, routes-file reload, diff reports (JSON,
//! Markdown) and the HTML pages of [`ui`](crate::ui).
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

use crate::control::{Control, ControlError};
use crate::metrics::Metrics;
use crate::routing::Route;
use crate::ui;

/// How often the routes file is checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
struct AdminState {
    control: Arc<Control>,
    /// SHA-256 of the admin token: compared digest to digest, never the token itself.
    token_digest: Option<[u8; 32]>,
    /// Read access to the diff store, once the service runs.
    diffs: Arc<OnceLock<PgPool>>,
    /// Records the diff store dropped.
    store_dropped: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
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
        diff_database: Option<SecretString>,
        store_dropped: Arc<AtomicU64>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            addr,
            state: AdminState {
                control,
                token_digest: token.map(|t| Sha256::digest(t.expose_secret().as_bytes()).into()),
                diffs: Arc::new(OnceLock::new()),
                store_dropped,
                metrics,
            },
            diff_database,
        }
    }
}

fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/routes", get(list_routes))
        .route("/routes/{name}", get(show_route).put(set_route))
        .route("/routes/{name}/rollback", post(rollback_route))
        .route("/routes/{name}/reset", post(reset_route))
        .route("/rollback", post(rollback_all))
        .route("/audit", get(audit))
        .route("/reload", post(reload))
        .route("/metrics", get(metrics))
        .route("/diffs", get(diff_report))
        .route("/diffs/samples/{id}", get(diff_sample))
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

fn route_json(route: &Route) -> Value {
    let percent = match route.phase {
        Phase::Canary(percent) => Some(percent),
        _ => None,
    };
    json!({
        "name": route.spec.name,
        "path": route.spec.path.to_string(),
        "methods": route.spec.methods,
        "phase": route.phase.name(),
        "percent": percent,
        "source": route.source,
        "file_phase": route.spec.phase.to_string(),
        "blocked": route.spec.blocked,
        "shadow": route.spec.shadow,
        "counters": route.stats.snapshot(),
    })
}

async fn list_routes(State(state): State<AdminState>) -> Json<Value> {
    let table = state.control.table();
    let routes: Vec<Value> = table.routes().iter().map(route_json).collect();
    Json(json!({
        "routes": routes,
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
    let mut body = route_json(route);
    body["audit"] = json!(state.control.audit(Some(&name), 50));
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPhase {
    phase: String,
    percent: Option<u8>,
    reason: String,
}

fn parse_phase(phase: &str, percent: Option<u8>) -> Result<Phase, AdminError> {
    let bad = |m: String| AdminError(StatusCode::BAD_REQUEST, m);
    match (phase, percent) {
        ("canary", Some(p)) if p <= 100 => Ok(Phase::Canary(p)),
        ("canary", Some(p)) => Err(bad(format!("percent {p} is over 100"))),
        ("canary", None) => Err(bad("canary needs a percent".into())),
        (_, Some(_)) => Err(bad("percent goes only with canary".into())),
        ("legacy", None) => Ok(Phase::Legacy),
        ("shadow", None) => Ok(Phase::Shadow),
        ("primary", None) => Ok(Phase::Primary),
        ("decommissioned", None) => Ok(Phase::Decommissioned),
        (other, None) => Err(bad(format!(
            "unknown phase `{other}` (legacy, shadow, canary, primary, decommissioned)"
        ))),
    }
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
    let phase = parse_phase(&request.phase, request.percent)?;
    Ok(changed(state.control.set_phase(
        &name,
        phase,
        &who,
        &request.reason,
    )?))
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
    let entries = state.control.rollback(Some(&name), &who, &reason)?;
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
    let entries = state.control.rollback(None, &who, &reason)?;
    count_rollbacks(&state, &entries);
    Ok(changed(entries))
}

/// Counts operator rollbacks that changed something, for the rollback metric.
fn count_rollbacks(state: &AdminState, entries: &[AuditEntry]) {
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
    Ok(changed(state.control.reset(&name, &who, &reason)?))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    route: Option<String>,
    limit: Option<usize>,
}

async fn audit(State(state): State<AdminState>, Query(query): Query<AuditQuery>) -> Json<Value> {
    let limit = query.limit.unwrap_or(100).min(5000);
    Json(json!({ "audit": state.control.audit(query.route.as_deref(), limit) }))
}

async fn reload(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AdminError> {
    authorize(&state, &headers)?;
    match state.control.reload() {
        Ok(reloaded) => Ok(Json(json!({ "reloaded": reloaded }))),
        Err(error) => Err(AdminError(
            StatusCode::UNPROCESSABLE_ENTITY,
            error.to_string(),
        )),
    }
}

/// Prometheus exposition of the gateway's metrics.
async fn metrics(State(state): State<AdminState>) -> Response {
    state
        .metrics
        .flag_source("file", state.control.reload_error().is_none());
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
        let mut watch_stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(RELOAD_POLL) => control.reload_if_changed(),
                    _ = watch_stop.changed() => break,
                }
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
