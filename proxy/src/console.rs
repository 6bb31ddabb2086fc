//! The operator console on the admin port: one place to see every route's phase and
//! health, flip or roll back routes, and review diffs.
//!
//! Sign-in takes the admin token and the operator's name and opens a session (cookie
//! `HttpOnly`, `SameSite=Strict`); every change is a form POST carrying the session's
//! CSRF token, needs a reason, and is audited under the operator's name. Pages are
//! server-rendered HTML that work without JavaScript; scripts may also read them with
//! `Authorization: Bearer <admin token>`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use studyflow_flags::Phase;

/// Name of the session cookie.
pub const COOKIE: &str = "sf_session";
/// How long a session lasts without sign-in.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

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
    /// Checks a form's CSRF token.
    pub fn check(&self, given: &str) -> Result<(), CsrfRefused> {
        match &self.csrf {
            None => Ok(()),
            Some(expected) if Sha256::digest(expected) == Sha256::digest(given) => Ok(()),
            Some(_) => Err(CsrfRefused),
        }
    }
}

/// A change whose form did not carry the session's CSRF token.
#[derive(Debug)]
pub struct CsrfRefused;

impl IntoResponse for CsrfRefused {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            "The form is stale or forged (CSRF check failed). Reload the page and try again.",
        )
            .into_response()
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
        Err((StatusCode::UNAUTHORIZED, "Sign in first.").into_response())
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A path inside the console, so `next` cannot send anyone elsewhere.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") => n,
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

/// Handles the sign-in form: a session cookie on success.
pub fn login<S: ConsoleAuth>(state: &S, form: &LoginForm) -> Response {
    let name = form.name.trim();
    if name.is_empty() || name.len() > 100 || !state.token_matches(&form.token) {
        let next = urlencode(safe_next(form.next.as_deref()));
        return Redirect::to(&format!("/ui/login?error=1&next={next}")).into_response();
    }
    let id = state.sessions().open(name);
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    );
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
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sf_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
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

/// Paging of long lists.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub page: Option<usize>,
    pub since: Option<String>,
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

use crate::admin::{AdminState, count_rollbacks};
use crate::promotion;
use crate::ui::{self, RouteRow};

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

pub(crate) async fn login_get(Query(query): Query<LoginQuery>) -> Markup {
    login_page(&query)
}

pub(crate) async fn login_post(
    State(state): State<AdminState>,
    Form(form): Form<LoginForm>,
) -> Response {
    login(&state, &form)
}

pub(crate) async fn logout_post(
    viewer: Viewer,
    State(state): State<AdminState>,
    Form(form): Form<CsrfForm>,
) -> Response {
    logout(&state, &viewer, &form)
}

/// The order of phases, for telling promotions (gated) from steps back (never gated).
fn rank(phase: Phase) -> u32 {
    match phase {
        Phase::Legacy => 0,
        Phase::Shadow => 1,
        Phase::Canary(percent) => 2 + u32::from(percent),
        Phase::Primary => 200,
        Phase::Decommissioned => 300,
    }
}

async fn row(state: &AdminState, route: &crate::routing::Route) -> RouteRow {
    let gate = if route.spec.blocked {
        None
    } else {
        let report = promotion::gate(route, state.diffs.get(), &state.plane.promotion).await;
        let why = report
            .checks
            .iter()
            .map(|c| format!("{}: {} (needs {})", c.name, c.observed, c.required))
            .collect::<Vec<_>>()
            .join("; ");
        Some((
            report.holds,
            if why.is_empty() {
                "no checks for this step".into()
            } else {
                why
            },
        ))
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
    }
}

pub(crate) async fn routes_page(
    viewer: Viewer,
    State(state): State<AdminState>,
    Query(query): Query<FlashQuery>,
) -> Markup {
    let table = state.control.table();
    let mut rows = Vec::new();
    for route in table.routes() {
        rows.push(row(&state, route).await);
    }
    ui::routes_page(&viewer, &rows, flash_text(query.done.as_deref()))
}

const AUDIT_PER_PAGE: usize = 20;

pub(crate) async fn route_page(
    viewer: Viewer,
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(query): Query<FlashQuery>,
) -> Response {
    let table = state.control.table();
    let Some(route) = table.find(&name) else {
        return (StatusCode::NOT_FOUND, format!("No route named {name}.")).into_response();
    };
    let row = row(&state, route).await;
    let history = state.history.rates(&name, 180);
    let audit = state
        .control
        .audit(Some(&name), 1000)
        .await
        .unwrap_or_default();
    let pages = audit.len().div_ceil(AUDIT_PER_PAGE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let shown: Vec<_> = audit
        .into_iter()
        .skip((page - 1) * AUDIT_PER_PAGE)
        .take(AUDIT_PER_PAGE)
        .collect();
    let since = chrono::Utc::now() - chrono::TimeDelta::hours(24);
    let diffs = match state.diffs.get() {
        Some(pool) => studyflow_diffing::report::overview(pool, since, Some(&name), 50)
            .await
            .ok()
            .and_then(|o| o.routes.into_iter().next()),
        None => None,
    };
    ui::route_page(
        &viewer,
        &row,
        &history,
        &shown,
        page,
        pages,
        diffs.as_ref(),
        flash_text(query.done.as_deref()),
    )
    .into_response()
}

pub(crate) async fn set_phase(
    viewer: Viewer,
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Form(form): Form<PhaseForm>,
) -> Response {
    if let Err(refused) = viewer.check(&form.csrf) {
        return refused.into_response();
    }
    let back = |code: &str| {
        Redirect::to(&format!("/ui/routes/{}?done={code}", urlencode(&name))).into_response()
    };
    let (Ok(target), false) = (form.phase(), form.reason.trim().is_empty()) else {
        return back("invalid");
    };
    let table = state.control.table();
    let Some(route) = table.find(&name) else {
        return (StatusCode::NOT_FOUND, format!("No route named {name}.")).into_response();
    };
    let mut reason = form.reason.trim().to_owned();
    let mut action = "set";
    if rank(target) > rank(route.phase) {
        let report = promotion::gate(route, state.diffs.get(), &state.plane.promotion).await;
        if !report.holds {
            if !form.forced() {
                return back("gate");
            }
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{} {}", c.name, c.observed))
                .collect();
            reason = format!("{reason} [forced past the gate: {}]", failed.join("; "));
            action = "promote_forced";
        } else {
            action = "promote";
        }
    }
    match state
        .control
        .set_phase(&name, target, &viewer.who, &reason, action)
        .await
    {
        Ok(_) => back("phase"),
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    }
}

pub(crate) async fn rollback_route(
    viewer: Viewer,
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Form(form): Form<RollbackForm>,
) -> Response {
    if let Err(refused) = viewer.check(&form.csrf) {
        return refused.into_response();
    }
    if form.reason.trim().is_empty() {
        return Redirect::to("/ui?done=invalid").into_response();
    }
    match state
        .control
        .rollback(Some(&name), &viewer.who, form.reason.trim())
        .await
    {
        Ok(entries) => {
            count_rollbacks(&state, &entries);
            Redirect::to("/ui?done=rollback").into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    }
}

pub(crate) async fn rollback_all(
    viewer: Viewer,
    State(state): State<AdminState>,
    Form(form): Form<RollbackForm>,
) -> Response {
    if let Err(refused) = viewer.check(&form.csrf) {
        return refused.into_response();
    }
    if form.confirm.as_deref() != Some("yes") {
        return Redirect::to("/ui?done=confirm").into_response();
    }
    if form.reason.trim().is_empty() {
        return Redirect::to("/ui?done=invalid").into_response();
    }
    match state
        .control
        .rollback(None, &viewer.who, form.reason.trim())
        .await
    {
        Ok(entries) => {
            count_rollbacks(&state, &entries);
            Redirect::to("/ui?done=rollback-all").into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    }
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
