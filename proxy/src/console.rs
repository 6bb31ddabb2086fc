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

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use studyflow_flags::Phase;

/// Name of the session cookie.
pub const COOKIE: &str = "sf_session";
/// How long a session lasts without sign-in.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// The console's Content-Security-Policy: its own stylesheet, no script, no framing,
/// forms posting to itself only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// How the console behaves, from the `console` section of the configuration.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// Session cookies carry `Secure`.
    pub secure_cookies: bool,
    /// The longest a page waits for the diff store.
    pub store_timeout: Duration,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            store_timeout: Duration::from_millis(300),
        }
    }
}

/// One signed-in operator.
#[derive(Debug, Clone)]
struct Session {
    who: String,
    csrf: String,
    expires: Instant,
}

/// Open sessions, in memory (signing in again after a restart is acceptable).
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

fn secret_token() -> String {
    // Two v4 UUIDs: 244 random bits from the operating system's generator.
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `who`; returns its id.
    pub fn open(&self, who: &str) -> String {
        let id = secret_token();
        let mut open = self.lock();
        open.retain(|_, s| s.expires > Instant::now());
        open.insert(
            id.clone(),
            Session {
                who: who.to_owned(),
                csrf: secret_token(),
                expires: Instant::now() + SESSION_TTL,
            },
        );
        id
    }

    fn get(&self, id: &str) -> Option<Session> {
        self.lock()
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Who is looking at a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub who: String,
    /// The CSRF token forms must carry; `None` for bearer-token callers (no cookie, so
    /// no cross-site request can ride on their credentials).
    pub csrf: Option<String>,
    session: Option<String>,
}

impl Viewer {
    /// Checks a form's CSRF token (in constant time).
    pub fn check(&self, given: &str) -> Result<(), CsrfRefused> {
        match &self.csrf {
            None => Ok(()),
            Some(expected) if crate::admin::same_secret(expected, given) => Ok(()),
            Some(_) => Err(CsrfRefused),
        }
    }
}

/// A change whose form did not carry the session's CSRF token.
#[derive(Debug)]
pub struct CsrfRefused;

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

impl From<crate::admin::AdminError> for ErrorPage {
    fn from(error: crate::admin::AdminError) -> Self {
        Self::new(error.0, error.1)
    }
}

impl From<crate::control::ControlError> for ErrorPage {
    fn from(error: crate::control::ControlError) -> Self {
        let crate::admin::AdminError(status, message) = error.into();
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
        (
            self.status,
            crate::ui::error_page(self.status, &self.message),
        )
            .into_response()
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

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// What the console needs from the admin state to authenticate.
pub trait ConsoleAuth {
    fn sessions(&self) -> &Sessions;
    /// Whether `token` is the admin token.
    fn token_matches(&self, token: &str) -> bool;
    /// Whether session cookies carry `Secure`.
    fn secure_cookies(&self) -> bool;
}

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
            let who = parts
                .headers
                .get("x-operator")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|w| !w.is_empty() && w.len() <= 100)
                .unwrap_or("admin")
                .to_owned();
            return Ok(Viewer {
                who,
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

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A path inside the console, so `next` cannot send anyone elsewhere.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/ui",
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    error: Option<String>,
}

/// The sign-in page.
pub fn login_page(query: &LoginQuery) -> Markup {
    crate::ui::page(
        "Sign in",
        html! {
            @if query.error.is_some() { p.regression role="alert" { "That token is not the admin token." } }
            form method="post" action="/ui/login" {
                input type="hidden" name="next" value=(safe_next(query.next.as_deref()));
                p { label for="name" { "Your name (recorded in the audit log)" } br; input id="name" name="name" required autocomplete="username"; }
                p { label for="token" { "Admin token" } br; input id="token" name="token" type="password" required autocomplete="current-password"; }
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    name: String,
    token: String,
    next: Option<String>,
}

/// The `Set-Cookie` value of a session (`id`), or of its removal (`None`).
fn session_cookie(id: Option<&str>, secure: bool) -> String {
    let (value, max_age) = match id {
        Some(id) => (id, SESSION_TTL.as_secs()),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
}

/// Handles the sign-in form: a session cookie on success.
pub fn login<S: ConsoleAuth>(state: &S, form: &LoginForm) -> Response {
    let name = form.name.trim();
    if name.is_empty() || name.len() > 100 || !state.token_matches(&form.token) {
        let next = urlencode(safe_next(form.next.as_deref()));
        return Redirect::to(&format!("/ui/login?error=1&next={next}")).into_response();
    }
    let id = state.sessions().open(name);
    let cookie = session_cookie(Some(&id), state.secure_cookies());
    let mut response = Redirect::to(safe_next(form.next.as_deref())).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// Signs out: closes the session and clears the cookie.
pub fn logout<S: ConsoleAuth>(state: &S, viewer: &Viewer, form: &CsrfForm) -> Response {
    if let Err(refused) = viewer.check(&form.csrf) {
        return refused.into_response();
    }
    if let Some(id) = &viewer.session {
        state.sessions().close(id);
    }
    let mut response = Redirect::to("/ui/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&session_cookie(None, state.secure_cookies())) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A phase change from the console.
#[derive(Debug, Deserialize)]
pub struct PhaseForm {
    pub csrf: String,
    pub phase: String,
    #[serde(default)]
    pub percent: String,
    pub reason: String,
    #[serde(default)]
    pub force: Option<String>,
}

impl PhaseForm {
    /// The phase asked for, or a message saying what is wrong.
    pub fn phase(&self) -> Result<Phase, String> {
        let percent = match self.percent.trim() {
            "" => None,
            text => Some(
                text.parse::<u8>()
                    .map_err(|_| format!("percent `{text}` is not a number from 0 to 100"))?,
            ),
        };
        match (self.phase.as_str(), percent) {
            ("canary", Some(p)) if p <= 100 => Ok(Phase::Canary(p)),
            ("canary", _) => Err("canary needs a percent from 0 to 100".into()),
            ("legacy", _) => Ok(Phase::Legacy),
            ("shadow", _) => Ok(Phase::Shadow),
            ("primary", _) => Ok(Phase::Primary),
            ("decommissioned", _) => Ok(Phase::Decommissioned),
            (other, _) => Err(format!("unknown phase `{other}`")),
        }
    }

    pub fn forced(&self) -> bool {
        self.force.is_some()
    }
}

/// A rollback from the console.
#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    pub csrf: String,
    pub reason: String,
    /// The global rollback asks for an explicit confirmation.
    #[serde(default)]
    pub confirm: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_and_close() {
        let sessions = Sessions::default();
        let id = sessions.open("ada");
        assert_eq!(sessions.get(&id).map(|s| s.who), Some("ada".to_owned()));
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn csrf_tokens_must_match() {
        let viewer = Viewer {
            who: "ada".into(),
            csrf: Some("abc".into()),
            session: None,
        };
        assert!(viewer.check("abc").is_ok());
        assert!(viewer.check("abd").is_err());
        assert!(viewer.check("").is_err());
        let bearer = Viewer {
            who: "ops".into(),
            csrf: None,
            session: None,
        };
        assert!(bearer.check("").is_ok());
    }

    #[test]
    fn next_stays_inside_the_console() {
        assert_eq!(safe_next(Some("/ui/routes/a")), "/ui/routes/a");
        assert_eq!(safe_next(Some("https://evil.example")), "/ui");
        assert_eq!(safe_next(Some("//evil.example")), "/ui");
        assert_eq!(safe_next(Some("/ui\\@evil.example")), "/ui");
    }

    #[test]
    fn session_cookies_are_secure_when_configured() {
        let plain = session_cookie(Some("id"), false);
        assert!(plain.contains("HttpOnly; SameSite=Strict") && !plain.contains("Secure"));
        assert!(session_cookie(Some("id"), true).ends_with("; Secure"));
        assert!(session_cookie(None, true).contains("Max-Age=0; Secure"));
    }

    #[test]
    fn phase_forms_are_checked() {
        let form = |phase: &str, percent: &str| PhaseForm {
            csrf: String::new(),
            phase: phase.into(),
            percent: percent.into(),
            reason: "r".into(),
            force: None,
        };
        assert_eq!(form("canary", "25").phase(), Ok(Phase::Canary(25)));
        assert!(form("canary", "").phase().is_err());
        assert!(form("canary", "120").phase().is_err());
        assert_eq!(form("primary", "").phase(), Ok(Phase::Primary));
    }
}

// ---------------------------------------------------------------------------------------
// Handlers, served by the admin service.

use axum::extract::{Form, Path, Query, State};

use crate::admin::{AdminState, ReportInput, ReportQuery, count_rollbacks, route_name};
use crate::promotion::{self, PhaseRefused, PhaseRequest};
use crate::ui::{self, DiffSection, GateView, RouteRow};

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
        ui::STYLE,
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
    login_page(&query)
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
    let next = (!route.spec.blocked && route.spec.legacy_twin)
        .then(|| promotion::next_phase(route.phase, None, &state.plane.promotion.canary_steps).ok())
        .flatten();
    // No verdict where there is no step forward.
    let gate = if let Some(next) = next {
        let report = promotion::gate(
            route,
            next,
            state.diffs.get(),
            &state.plane.promotion,
            state.console.store_timeout,
        )
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
    let table = state.control.table();
    // In parallel: a diff store that does not answer costs the page one wait, not one
    // per route.
    let rows =
        futures_util::future::join_all(table.routes().iter().map(|route| row(&state, route))).await;
    ui::routes_page(&viewer, &rows, flash_text(query.done.as_deref()))
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
    let table = state.control.table();
    let route = table.find(name).ok_or_else(|| no_route(name))?;
    let wait = state.console.store_timeout;
    let diffs = async {
        let Some(pool) = state.diffs.get() else {
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
        .control
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
    Ok(ui::route_page(
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
    let changed = promotion::change_phase(
        &state.control,
        state.diffs.get(),
        &state.plane.promotion,
        state.console.store_timeout,
        request,
    )
    .await;
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
    let entries = state
        .control
        .rollback(Some(name), &viewer.who, form.reason.trim())
        .await?;
    count_rollbacks(&state, &entries);
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
    let entries = state
        .control
        .rollback(None, &viewer.who, form.reason.trim())
        .await?;
    count_rollbacks(&state, &entries);
    Ok(Redirect::to("/ui?done=rollback-all").into_response())
}

pub(crate) async fn progress(viewer: Viewer, State(state): State<AdminState>) -> Markup {
    let table = state.control.table();
    let per_phase: Vec<(&str, usize)> = ["legacy", "shadow", "canary", "primary", "decommissioned"]
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
    ui::progress_page(&viewer, &per_phase, &state.history.overall_share(180))
}

pub(crate) async fn diffs_overview(
    _viewer: Viewer,
    State(state): State<AdminState>,
    Checked(Query(query)): Checked<Query<ReportQuery>>,
) -> Result<Markup, ErrorPage> {
    let input = ReportInput::parse(&query).map_err(ErrorPage::bad_input)?;
    let overview = crate::admin::load_overview(&state, &input, state.console.store_timeout).await?;
    Ok(ui::overview(&overview, &input.since_text))
}

pub(crate) async fn diffs_route(
    _viewer: Viewer,
    State(state): State<AdminState>,
    Checked(Path(route)): Checked<Path<String>>,
    Checked(Query(mut query)): Checked<Query<ReportQuery>>,
) -> Result<Markup, ErrorPage> {
    query.route = Some(route);
    let input = ReportInput::parse(&query).map_err(ErrorPage::bad_input)?;
    let overview = crate::admin::load_overview(&state, &input, state.console.store_timeout).await?;
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
    Ok(ui::route(summary, &input.since_text))
}

pub(crate) async fn sample_page(
    _viewer: Viewer,
    State(state): State<AdminState>,
    Checked(Path(id)): Checked<Path<String>>,
) -> Result<Markup, ErrorPage> {
    let id = crate::admin::sample_id(&id).map_err(ErrorPage::bad_input)?;
    let sample = crate::admin::load_sample(&state, id, state.console.store_timeout).await?;
    Ok(ui::sample(&sample))
}
