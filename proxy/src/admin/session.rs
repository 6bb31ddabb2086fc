//! The console's sessions: sign-in with the admin token opens one (cookie `HttpOnly`,
//! `SameSite=Strict`, and `Secure` when `console.secure_cookies` is on), every change is
//! a form carrying the session's CSRF token, and the forms an operator sends.
//!
//! Nothing here renders a page; [`console`](super::console) does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use studyflow_flags::Phase;

use super::auth::same_secret;

/// Name of the session cookie.
pub const COOKIE: &str = "sf_session";
/// How long a session lasts without sign-in.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// The console's Content-Security-Policy: its own stylesheet, no script, no framing,
/// forms posting to itself only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One signed-in operator.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) who: String,
    pub(crate) csrf: String,
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

    pub(crate) fn get(&self, id: &str) -> Option<Session> {
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
    pub(crate) session: Option<String>,
}

impl Viewer {
    /// Checks a form's CSRF token (in constant time).
    pub fn check(&self, given: &str) -> Result<(), CsrfRefused> {
        match &self.csrf {
            None => Ok(()),
            Some(expected) if same_secret(expected, given) => Ok(()),
            Some(_) => Err(CsrfRefused),
        }
    }
}

/// A change whose form did not carry the session's CSRF token.
#[derive(Debug)]
pub struct CsrfRefused;

pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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

pub(crate) fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A path inside the console, so `next` cannot send anyone elsewhere.
pub(crate) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/ui",
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    pub(crate) next: Option<String>,
    pub(crate) error: Option<String>,
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
        // The form sends its percentage field with every phase: only a canary reads it.
        match Phase::named(&self.phase)? {
            Phase::Canary(_) => Phase::from_parts(&self.phase, percent)
                .map_err(|_| "canary needs a percent from 0 to 100".into()),
            phase => Ok(phase),
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
