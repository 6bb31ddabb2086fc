//! The admin JSON API: the route table with live counters, phase changes through the
//! [control plane](crate::operations), the audit log, routes-file reload, readiness,
//! `/metrics`, diff reports and samples. Requests and answers are the types of
//! [`operations::api`](crate::operations::api), which the CLI reads back.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use studyflow_diffing::report;
use studyflow_flags::Phase;

use super::AdminState;
use super::auth::{authorize, check_token};
use super::error::AdminError;
use super::reports::{ReportInput, ReportQuery, load_overview, load_sample, route_name, sample_id};
use crate::control::ControlError;
use crate::operations::api::{
    AuditAnswer, ChangedAnswer, DiffStoreStatus, GateRefusal, GuardWindow, PhaseChangeAnswer,
    PromoteRequest, ReasonRequest, ReloadAnswer, RollbackAnswer, RouteView, RoutesAnswer,
    SetPhaseRequest,
};
use crate::operations::{PhaseChanged, PhaseRefused, PhaseRequest};
use crate::routing::Route;

/// How long `promote` and `set` wait for the diff store before judging on this
/// instance's counters (the console waits `console.store_timeout_ms`).
const PROMOTION_STORE_WAIT: Duration = Duration::from_secs(5);

/// How long the admin API's reports wait for the diff store (the console's pages wait
/// `console.store_timeout_ms`).
const REPORT_STORE_WAIT: Duration = Duration::from_secs(5);

/// Most audit entries one read returns.
const MAX_AUDIT_LIMIT: usize = 5000;

/// The JSON API's routes.
pub(crate) fn router() -> Router<AdminState> {
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

/// Parses a JSON body, turning serde's rejection into a readable 400.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))
}

fn route_view(state: &AdminState, route: &Route) -> RouteView {
    let control = state.ops.control();
    let counters = route.stats.snapshot();
    let guard = state
        .guard
        .for_route(&route.spec.name)
        .map(|t| GuardWindow {
            window_secs: t.window_secs,
            window: route.stats.window.totals(t.window_secs),
            checks: route.stats.guard_checks(),
        });
    RouteView {
        name: route.spec.name.clone(),
        path: route.spec.path.to_string(),
        methods: route.spec.methods.clone(),
        phase: route.phase.name().to_owned(),
        percent: route.phase.percent(),
        source: route.source,
        held: route.held,
        file_phase: route.spec.phase.to_string(),
        unleash_phase: control
            .unleash_phase(&route.spec.name)
            .map(|p| p.to_string()),
        override_: control.override_of(&route.spec.name),
        guard,
        since_phase_change: route.stats.since_phase_change(),
        blocked: route.spec.blocked,
        legacy_twin: route.spec.legacy_twin,
        copies: route.spec.copies_in(route.phase),
        shadow: route.spec.shadow,
        counters,
        shadows_lost: counters.shadows_lost(),
        losses: counters
            .losses()
            .into_iter()
            .map(|(why, n)| (why.to_owned(), n))
            .collect(),
        audit: None,
        audit_hidden: None,
        audit_unavailable: None,
    }
}

async fn list_routes(State(state): State<AdminState>) -> Json<RoutesAnswer> {
    let control = state.ops.control();
    let table = control.table();
    Json(RoutesAnswer {
        routes: table
            .routes()
            .iter()
            .map(|r| route_view(&state, r))
            .collect(),
        sources: control
            .health
            .snapshot()
            .into_iter()
            .map(|(name, health)| (name.to_owned(), health))
            .collect(),
        passthrough: table.passthrough.snapshot(),
        reload_error: control.reload_error(),
        diff_store: DiffStoreStatus {
            configured: state.ops.diffs().is_some(),
            dropped: state.store_dropped.load(Ordering::Relaxed),
        },
    })
}

/// One route; its audit entries only for callers with the admin token.
async fn show_route(
    State(state): State<AdminState>,
    Api(Path(name)): Api<Path<String>>,
    headers: HeaderMap,
) -> Result<Json<RouteView>, AdminError> {
    let name = route_name(&name).map_err(AdminError::bad_input)?;
    let table = state.ops.control().table();
    let route = table
        .find(name)
        .ok_or_else(|| AdminError::from(ControlError::UnknownRoute(name.into())))?;
    let mut view = route_view(&state, route);
    if check_token(&state, &headers).is_ok() {
        // The route's state is shown even when the audit log's store is down.
        match state.ops.control().audit(Some(name), 50).await {
            Ok(audit) => view.audit = Some(audit),
            Err(error) => {
                tracing::warn!(%error, "override store query failed");
                view.audit_unavailable = Some("the audit log's store is unreachable".into());
            }
        }
    } else {
        view.audit_hidden = Some("the audit log needs the admin token".into());
    }
    Ok(Json(view))
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
    let sources = state.ops.control().health.snapshot();
    let routes = state.ops.control().table().routes().len();
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

/// Moves a route one phase forward (or to a canary percentage) when its gate holds; 409
/// with the evidence when it does not, unless forced (the audit says so).
async fn promote_route(
    State(state): State<AdminState>,
    Api(Path(name)): Api<Path<String>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, AdminError> {
    let who = authorize(&state, &headers)?;
    let request: PromoteRequest = body(&bytes)?;
    let change = PhaseRequest {
        route: &name,
        // Worked out from the route's phase and `percent`.
        to: Phase::Legacy,
        who: &who,
        reason: &request.reason,
        force: request.force,
    };
    let result = state
        .ops
        .promote(request.percent, change, PROMOTION_STORE_WAIT)
        .await;
    phase_answer(&name, result)
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
    let request: SetPhaseRequest = body(&bytes)?;
    let to = Phase::from_parts(&request.phase, request.percent).map_err(AdminError::bad_input)?;
    let change = PhaseRequest {
        route: &name,
        to,
        who: &who,
        reason: &request.reason,
        force: request.force,
    };
    phase_answer(&name, state.ops.set(change, PROMOTION_STORE_WAIT).await)
}

/// A phase change's answer: what changed and the gate's evidence, or 409 with the
/// evidence when the gate refused a move forward.
fn phase_answer(
    name: &str,
    result: Result<PhaseChanged, PhaseRefused>,
) -> Result<Response, AdminError> {
    match result {
        Ok(done) => Ok(Json(PhaseChangeAnswer {
            route: name.to_owned(),
            from: done.from,
            to: done.to,
            action: done.action,
            gate: done.gate,
            changed: done.changed,
        })
        .into_response()),
        Err(PhaseRefused::Gate { from, to, report }) => Ok((
            StatusCode::CONFLICT,
            Json(GateRefusal {
                route: name.to_owned(),
                from,
                to,
                gate: *report,
                error: format!(
                    "the promotion gate does not hold for `{name}` ({from} -> {to}): moving forward needs the evidence, or --force with a reason (audited as forced)"
                ),
            }),
        )
            .into_response()),
        Err(PhaseRefused::Control(error)) => Err(error.into()),
    }
}

async fn rollback_route(
    State(state): State<AdminState>,
    Api(Path(name)): Api<Path<String>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<RollbackAnswer>, AdminError> {
    let who = authorize(&state, &headers)?;
    let ReasonRequest { reason } = body(&bytes)?;
    Ok(Json(state.ops.rollback(Some(&name), &who, &reason).await?))
}

async fn rollback_all(
    State(state): State<AdminState>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<RollbackAnswer>, AdminError> {
    let who = authorize(&state, &headers)?;
    let ReasonRequest { reason } = body(&bytes)?;
    Ok(Json(state.ops.rollback(None, &who, &reason).await?))
}

async fn reset_route(
    State(state): State<AdminState>,
    Api(Path(name)): Api<Path<String>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<ChangedAnswer>, AdminError> {
    let who = authorize(&state, &headers)?;
    let ReasonRequest { reason } = body(&bytes)?;
    let changed = state.ops.reset(&name, &who, &reason).await?;
    Ok(Json(ChangedAnswer { changed }))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    route: Option<String>,
    limit: Option<usize>,
}

async fn audit(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Api(Query(query)): Api<Query<AuditQuery>>,
) -> Result<Json<AuditAnswer>, AdminError> {
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
    let audit = state
        .ops
        .control()
        .audit(route, limit)
        .await
        .map_err(store_unavailable)?;
    Ok(Json(AuditAnswer { audit }))
}

async fn reload(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<ReloadAnswer>, AdminError> {
    authorize(&state, &headers)?;
    match state.ops.control().reload().await {
        Ok(reloaded) => Ok(Json(ReloadAnswer { reloaded })),
        Err(error) => Err(AdminError(
            StatusCode::UNPROCESSABLE_ENTITY,
            error.to_string(),
        )),
    }
}

/// Prometheus exposition of the gateway's metrics.
async fn metrics(State(state): State<AdminState>) -> Response {
    let control = state.ops.control();
    for (source, health) in control.health.snapshot() {
        if health.configured {
            state.metrics.flag_source(source, health.ok);
        }
    }
    let text = state.metrics.render(
        &control.table(),
        state.store_dropped.load(Ordering::Relaxed),
    );
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
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
