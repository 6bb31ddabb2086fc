//! The operator console on the admin port: one place to see every route's phase and
//! health, flip or roll back routes, and review diffs.
//!
//! Sign-in takes the admin token and the operator's name and opens a session (cookie
//! `HttpOnly`, `SameSite=Strict`, and `Secure` when `console.secure_cookies` is on, by
//! default behind an `https` `console.public_url`); every change is a form POST carrying
//! the session's CSRF token, needs a reason, and is audited under the operator's name.
//! Pages are server-rendered HTML without any script; scripts may also read them with
//! `Authorization: Bearer <admin token>`.
//!
//! Every console answer carries a Content-Security-Policy that allows no script and
//! only the console's own stylesheet, `X-Frame-Options: DENY` and `Cache-Control:
//! no-store` (pages show samples and CSRF tokens). Malformed input (a page number, a
//! duration, an id, a route name, a form) gets a 400 error page. The diff store is waited
//! for at most `console.store_timeout_ms` per page, every route's promotion gate checked
//! in parallel, so the rollback buttons stay at hand when the store is down.

use axum::Router;
use axum::extract::{Form, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use studyflow_flags::Phase;

use super::AdminState;
use super::auth::operator;
use super::error::AdminError;
use super::reports::{self, ReportInput, ReportQuery, route_name};
use super::session::{
    CONTENT_SECURITY_POLICY, COOKIE, ConsoleAuth, CsrfForm, CsrfRefused, LoginForm, LoginQuery,
    PhaseForm, RollbackForm, Viewer, cookie_value, login, logout, urlencode,
};
use super::views::{self, DiffSection, GateView, RouteRow};
use crate::control::ControlError;
use crate::operations::{PhaseRefused, PhaseRequest};

impl IntoResponse for CsrfRefused {
    fn into_response(self) -> Response {
        ErrorPage::new(
            StatusCode::FORBIDDEN,
            "The form is stale or forged (CSRF check failed). Reload the page and try again.",
        )
        .into_response()
    }
}

/// A console request that cannot be served, answered with an HTML page saying why.
#[derive(Debug)]
pub struct ErrorPage {
    status: StatusCode,
    message: String,
}

impl ErrorPage {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// Malformed or nonsensical input: 400.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<AdminError> for ErrorPage {
    fn from(error: AdminError) -> Self {
        Self::new(error.0, error.1)
    }
}

impl From<ControlError> for ErrorPage {
    fn from(error: ControlError) -> Self {
        let AdminError(status, message) = error.into();
        if status.is_server_error() {
            // The detail is in the log (the admin API logs it too); the page says what to do.
            tracing::warn!(%message, "console change failed");
            return Self::new(
                status,
                "The change could not be made now; see the gateway's log, or retry.",
            );
        }
        Self::new(status, message)
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        (self.status, views::error_page(self.status, &self.message)).into_response()
    }
}

/// An extractor (query string, path) whose rejection is a 400 error page.
#[derive(Debug)]
pub struct Checked<E>(pub E);

impl<S, E> FromRequestParts<S> for Checked<E>
where
    S: Send + Sync,
    E: FromRequestParts<S>,
    E::Rejection: std::fmt::Display,
{
    type Rejection = ErrorPage;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        E::from_request_parts(parts, state)
            .await
            .map(Self)
            .map_err(|e| ErrorPage::bad_input(format!("The address is malformed: {e}")))
    }
}

/// A form whose rejection (missing fields, not a form) is a 400 error page.
#[derive(Debug)]
pub struct CheckedForm<T>(pub T);

impl<S, T> FromRequest<S> for CheckedForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ErrorPage;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Form::<T>::from_request(request, state)
            .await
            .map(|Form(form)| Self(form))
            .map_err(|e| ErrorPage::bad_input(format!("The form is incomplete or malformed: {e}")))
    }
}

/// Who is asking: a signed-in operator (session cookie), or a script with the admin
/// token (`Authorization: Bearer`, operator in `x-operator`).
impl<S: ConsoleAuth + Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(id) = cookie_value(&parts.headers, COOKIE)
            && let Some(session) = state.sessions().get(id)
        {
            return Ok(Viewer {
                who: session.who,
                csrf: Some(session.csrf),
                session: Some(id.to_owned()),
            });
        }
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|t| state.token_matches(t)) {
            return Ok(Viewer {
                who: operator(&parts.headers),
                csrf: None,
                session: None,
            });
        }
        // Reading pages needs a session too; send people to the sign-in page.
        if parts.method == axum::http::Method::GET {
            let next = parts.uri.path_and_query().map_or("/ui", |p| p.as_str());
            let target = format!("/ui/login?next={}", urlencode(next));
            return Err(Redirect::to(&target).into_response());
        }
        Err(ErrorPage::new(StatusCode::UNAUTHORIZED, "Sign in first.").into_response())
    }
}

/// The console's pages and forms, each answer with the console's security headers.
pub(crate) fn router() -> Router<AdminState> {
    Router::new()
        .route("/ui", get(routes_page))
        .route("/ui/style.css", get(stylesheet))
        .route("/ui/login", get(login_get).post(login_post))
        .route("/ui/logout", post(logout_post))
        .route("/ui/progress", get(progress))
        .route("/ui/rollback", post(rollback_all))
        .route("/ui/routes/{name}", get(route_page))
        .route("/ui/routes/{name}/phase", post(set_phase))
        .route("/ui/routes/{name}/rollback", post(rollback_route))
        .route("/ui/diffs", get(diffs_overview))
        .route("/ui/diffs/{route}", get(diffs_route))
        .route("/ui/samples/{id}", get(sample_page))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        views::STYLE,
    )
        .into_response()
}

/// Results shown after a change, by code (free text in a URL could be abused).
fn flash_text(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "phase" => Some("Phase changed."),
        "rollback" => Some("Rolled back to legacy."),
        "rollback-all" => Some("Every route rolled back to legacy."),
        "gate" => Some(
            "Not changed: the promotion gate does not hold. Tick “force” and give a reason to go ahead anyway.",
        ),
        "invalid" => {
            Some("Not changed: the form was incomplete or invalid (a reason is required).")
        }
        "confirm" => Some("Not rolled back: tick the confirmation box to roll every route back."),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
pub struct FlashQuery {
    done: Option<String>,
    page: Option<usize>,
}

pub(crate) async fn login_get(Checked(Query(query)): Checked<Query<LoginQuery>>) -> Markup {
    views::login_page(&query)
}

pub(crate) async fn login_post(
    State(state): State<AdminState>,
    CheckedForm(form): CheckedForm<LoginForm>,
) -> Response {
    login(&state, &form)
}

pub(crate) async fn logout_post(
    viewer: Viewer,
    State(state): State<AdminState>,
    CheckedForm(form): CheckedForm<CsrfForm>,
) -> Response {
    logout(&state, &viewer, &form)
}

/// A route's row, its gate checked within the console's wait for the diff store.
async fn row(state: &AdminState, route: &crate::routing::Route) -> RouteRow {
    let next = state.ops.next_phase(route);
    // No verdict where there is no step forward.
    let gate = if let Some(next) = next {
        let report = state
            .ops
            .gate(route, next, state.console.store_timeout)
            .await;
        let why = report
            .checks
            .iter()
            .map(|c| format!("{}: {} (needs {})", c.name, c.observed, c.required))
            .collect::<Vec<_>>()
            .join("; ");
        Some(if !report.required {
            GateView::Ready("no evidence needed for this step".into())
        } else if report.diff_store_unavailable {
            GateView::StoreUnavailable(format!("this instance's counters: {why}"))
        } else if report.holds {
            GateView::Ready(why)
        } else {
            GateView::NotYet(why)
        })
    } else {
        None
    };
    RouteRow {
        name: route.spec.name.clone(),
        path: route.spec.path.to_string(),
        phase: if route.spec.blocked {
            "blocked".into()
        } else {
            route.phase.to_string()
        },
        source: format!("{:?}", route.source).to_lowercase(),
        blocked: route.spec.blocked,
        rates: state.history.latest(&route.spec.name),
        gate,
        counters: route.stats.snapshot(),
        legacy_twin: route.spec.legacy_twin,
        next,
        copies: route.spec.copies_in(route.phase),
        held: route.held,
    }
}

pub(crate) async fn routes_page(
    viewer: Viewer,
    State(state): State<AdminState>,
    Checked(Query(query)): Checked<Query<FlashQuery>>,
) -> Markup {
    let table = state.ops.control().table();
    // In parallel: a diff store that does not answer costs the page one wait, not one
    // per route.
    let rows =
        futures_util::future::join_all(table.routes().iter().map(|route| row(&state, route))).await;
    views::routes_page(&viewer, &rows, flash_text(query.done.as_deref()))
}

const AUDIT_PER_PAGE: usize = 20;

/// A route name from the address, checked.
fn named(name: &str) -> Result<&str, ErrorPage> {
    route_name(name).map_err(ErrorPage::bad_input)
}

fn no_route(name: &str) -> ErrorPage {
    ErrorPage::new(StatusCode::NOT_FOUND, format!("No route named {name}."))
}

pub(crate) async fn route_page(
    viewer: Viewer,
    State(state): State<AdminState>,
    Checked(Path(name)): Checked<Path<String>>,
    Checked(Query(query)): Checked<Query<FlashQuery>>,
) -> Result<Markup, ErrorPage> {
    let name = named(&name)?;
    let table = state.ops.control().table();
    let route = table.find(name).ok_or_else(|| no_route(name))?;
    let wait = state.console.store_timeout;
    let diffs = async {
        let Some(pool) = state.ops.diffs() else {
            return DiffSection::NotConfigured;
        };
        let Some(since) = chrono::Utc::now().checked_sub_signed(chrono::TimeDelta::hours(24))
        else {
            return DiffSection::Unavailable;
        };
        let overview = studyflow_diffing::report::overview(pool, since, Some(name), 50);
        match tokio::time::timeout(wait, overview).await {
            Ok(Ok(overview)) => overview
                .routes
                .into_iter()
                .next()
                .map_or(DiffSection::NoPairs, DiffSection::Pairs),
            Ok(Err(error)) => {
                tracing::warn!(%error, "diff store query failed");
                DiffSection::Unavailable
            }
            Err(_) => DiffSection::Unavailable,
        }
    };
    let (row, diffs) = tokio::join!(row(&state, route), diffs);
    let history = state.history.rates(name, 180);
    let audit = state
        .ops
        .control()
        .audit(Some(name), 1000)
        .await
        .unwrap_or_default();
    let pages = audit.len().div_ceil(AUDIT_PER_PAGE).max(1);
    let page = match query.page {
        None => 1,
        Some(page) if (1..=pages).contains(&page) => page,
        Some(page) => {
            return Err(ErrorPage::bad_input(format!(
                "There is no page {page} of the phase history (pages 1 to {pages})."
            )));
        }
    };
    let shown: Vec<_> = audit
        .into_iter()
        .skip((page - 1) * AUDIT_PER_PAGE)
        .take(AUDIT_PER_PAGE)
        .collect();
    Ok(views::route_page(
        &viewer,
        &row,
        &history,
        &shown,
        page,
        pages,
        &diffs,
        flash_text(query.done.as_deref()),
    ))
}

pub(crate) async fn set_phase(
    viewer: Viewer,
    State(state): State<AdminState>,
    Checked(Path(name)): Checked<Path<String>>,
    CheckedForm(form): CheckedForm<PhaseForm>,
) -> Result<Response, ErrorPage> {
    if let Err(refused) = viewer.check(&form.csrf) {
        return Ok(refused.into_response());
    }
    let name = named(&name)?;
    let back = |code: &str| {
        Redirect::to(&format!("/ui/routes/{}?done={code}", urlencode(name))).into_response()
    };
    let (Ok(target), false) = (form.phase(), form.reason.trim().is_empty()) else {
        return Ok(back("invalid"));
    };
    let request = PhaseRequest {
        route: name,
        to: target,
        who: &viewer.who,
        reason: &form.reason,
        force: form.forced(),
    };
    let changed = state.ops.set(request, state.console.store_timeout).await;
    match changed {
        Ok(_) => Ok(back("phase")),
        Err(PhaseRefused::Gate { .. }) => Ok(back("gate")),
        Err(PhaseRefused::Control(error)) => Err(error.into()),
    }
}

pub(crate) async fn rollback_route(
    viewer: Viewer,
    State(state): State<AdminState>,
    Checked(Path(name)): Checked<Path<String>>,
    CheckedForm(form): CheckedForm<RollbackForm>,
) -> Result<Response, ErrorPage> {
    if let Err(refused) = viewer.check(&form.csrf) {
        return Ok(refused.into_response());
    }
    let name = named(&name)?;
    if form.reason.trim().is_empty() {
        return Ok(Redirect::to("/ui?done=invalid").into_response());
    }
    state
        .ops
        .rollback(Some(name), &viewer.who, form.reason.trim())
        .await?;
    Ok(Redirect::to("/ui?done=rollback").into_response())
}

pub(crate) async fn rollback_all(
    viewer: Viewer,
    State(state): State<AdminState>,
    CheckedForm(form): CheckedForm<RollbackForm>,
) -> Result<Response, ErrorPage> {
    if let Err(refused) = viewer.check(&form.csrf) {
        return Ok(refused.into_response());
    }
    if form.confirm.as_deref() != Some("yes") {
        return Ok(Redirect::to("/ui?done=confirm").into_response());
    }
    if form.reason.trim().is_empty() {
        return Ok(Redirect::to("/ui?done=invalid").into_response());
    }
    state
        .ops
        .rollback(None, &viewer.who, form.reason.trim())
        .await?;
    Ok(Redirect::to("/ui?done=rollback-all").into_response())
}

pub(crate) async fn progress(viewer: Viewer, State(state): State<AdminState>) -> Markup {
    let table = state.ops.control().table();
    let per_phase: Vec<(&str, usize)> = Phase::NAMES
        .iter()
        .map(|p| {
            (
                *p,
                table
                    .routes()
                    .iter()
                    .filter(|r| !r.spec.blocked && r.phase.name() == *p)
                    .count(),
            )
        })
        .collect();
    views::progress_page(&viewer, &per_phase, &state.history.overall_share(180))
}

pub(crate) async fn diffs_overview(
    _viewer: Viewer,
    State(state): State<AdminState>,
    Checked(Query(query)): Checked<Query<ReportQuery>>,
) -> Result<Markup, ErrorPage> {
    let input = ReportInput::parse(&query).map_err(ErrorPage::bad_input)?;
    let overview = reports::load_overview(&state, &input, state.console.store_timeout).await?;
    Ok(views::overview(&overview, &input.since_text))
}

pub(crate) async fn diffs_route(
    _viewer: Viewer,
    State(state): State<AdminState>,
    Checked(Path(route)): Checked<Path<String>>,
    Checked(Query(mut query)): Checked<Query<ReportQuery>>,
) -> Result<Markup, ErrorPage> {
    query.route = Some(route);
    let input = ReportInput::parse(&query).map_err(ErrorPage::bad_input)?;
    let overview = reports::load_overview(&state, &input, state.console.store_timeout).await?;
    let summary = overview
        .routes
        .iter()
        .find(|r| Some(&r.route) == input.route.as_ref())
        .ok_or_else(|| {
            ErrorPage::new(
                StatusCode::NOT_FOUND,
                "No compared pairs for this route in this window.",
            )
        })?;
    Ok(views::route(summary, &input.since_text))
}

pub(crate) async fn sample_page(
    _viewer: Viewer,
    State(state): State<AdminState>,
    Checked(Path(id)): Checked<Path<String>>,
) -> Result<Markup, ErrorPage> {
    let id = reports::sample_id(&id).map_err(ErrorPage::bad_input)?;
    let sample = reports::load_sample(&state, id, state.console.store_timeout).await?;
    Ok(views::sample(&sample))
}
