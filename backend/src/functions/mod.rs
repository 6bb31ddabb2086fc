//! The legacy Edge Functions, one module each, served at `/functions/v1/<name>` (and any
//! sub-path, with any method, as Supabase's edge runtime routes them).
//!
//! Every handler takes an [`Invocation`]: method, headers, the body bytes (bounded by
//! `MAX_BODY_BYTES`, a larger body is refused with a JSON 413), whether the request is
//! the gateway's shadow copy, a dry run (`x-studyflow-shadow` with the shared secret, see
//! [`crate::shadow`]), and the TCP peer it came from.

pub mod ai_proxy;
pub mod ai_proxy_secure;
pub mod ai_study_analytics;
pub mod ai_study_recommendations;
pub mod ai_tutor_professional;
pub mod ai_tutor_stream;
pub mod auth_validation;
pub mod encryption;
pub mod model_json;
pub mod proxy_providers;
pub mod security_monitor;
pub mod semantic_search;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{MethodRouter, any};

use crate::auth::{AuthError, User};
use crate::cors::Cors;
use crate::security_audit::{EventType, SecurityEvent};
use crate::store::RequestDb;
use crate::{ApiError, AppState};

pub use crate::shadow::SHADOW_HEADER;

pub fn router() -> Router<AppState> {
    Router::new().nest(
        "/functions/v1",
        Router::new()
            .merge(ai_tutor_professional::router())
            .merge(ai_tutor_stream::router())
            .merge(ai_proxy::router())
            .merge(ai_proxy_secure::router())
            .merge(ai_study_analytics::router())
            .merge(ai_study_recommendations::router())
            .merge(auth_validation::router())
            .merge(encryption::router())
            .merge(security_monitor::router())
            .merge(semantic_search::router()),
    )
}

/// `/<name>` and `/<name>/*` with every method, served by `handler`.
/// The messages of `function`'s prompt template for `variables`; a template that fails
/// is logged, and its error is the text the function answers with.
pub(crate) fn render_prompt(
    prompts: &crate::prompts::Prompts,
    function: &str,
    variables: &serde_json::Value,
) -> Result<crate::prompts::Rendered, String> {
    prompts.render(function, variables).map_err(|error| {
        tracing::error!(function, %error, "prompt template failed");
        error.to_string()
    })
}

/// The OpenAI request of the study functions (analytics, recommendations): the
/// template's system and user messages to `gpt-4o-mini`, temperature 0.7, 2000 tokens.
pub(crate) fn study_request(
    prompts: &crate::prompts::Prompts,
    function: &str,
    variables: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let rendered = render_prompt(prompts, function, variables)?;
    Ok(serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": rendered.system},
            {"role": "user", "content": rendered.user},
        ],
        "temperature": 0.7,
        "max_tokens": 2000,
    }))
}

pub(crate) fn function_routes(name: &str, handler: MethodRouter<AppState>) -> Router<AppState> {
    Router::new()
        .route(&format!("/{name}"), handler.clone())
        .route(&format!("/{name}/{{*rest}}"), handler)
        .layer(axum::middleware::from_fn(mark_skipped_provider_calls))
}

/// Marks the answer of a request whose provider call was skipped (a dry run in
/// `SHADOW_PROVIDER_CALLS=skip`) with [`crate::providers::PROVIDER_SKIPPED_HEADER`], so
/// the gateway does not compare a placeholder with the legacy's real answer. Answers
/// given before any provider call (validation errors, CORS) carry no mark and are
/// compared as usual.
async fn mark_skipped_provider_calls(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (mut response, skipped) = crate::providers::tracking_skips(next.run(request)).await;
    if skipped {
        response.headers_mut().insert(
            crate::providers::PROVIDER_SKIPPED_HEADER,
            axum::http::HeaderValue::from_static("skipped"),
        );
    }
    response
}

/// Shorthand for [`function_routes`] with an async handler taking an [`Invocation`].
pub(crate) fn any_method<H, T>(name: &str, handler: H) -> Router<AppState>
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    function_routes(name, any(handler))
}

/// What a function answers before its work, whatever the function.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Entry {
    /// `OPTIONS` gets the CORS preflight; every other method reaches the function.
    Preflight,
    /// `OPTIONS` gets the preflight, a method other than POST its refusal
    /// ([`Cors::post_only`]).
    PostOnly,
}

/// A function behind its CORS variant (`cors` picks it for the call): what comes
/// before the function's work is answered here ([`Entry`]); the function gets the
/// state, the call and the CORS headers its answers carry.
pub(crate) fn behind_cors<F, Fut>(
    name: &str,
    cors: fn(&AppState, &Invocation) -> Cors,
    entry: Entry,
    function: F,
) -> Router<AppState>
where
    F: Fn(AppState, Invocation, Cors) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    any_method(
        name,
        move |State(state): State<AppState>, invocation: Invocation| {
            let function = function.clone();
            async move {
                let headers = cors(&state, &invocation);
                let early = match entry {
                    Entry::Preflight => {
                        (invocation.method == Method::OPTIONS).then(|| headers.clone().preflight())
                    }
                    Entry::PostOnly => headers.post_only(&invocation.method),
                };
                match early {
                    Some(answer) => answer,
                    None => function(state, invocation, headers).await,
                }
            }
        },
    )
}

/// One call of a function.
#[derive(Debug)]
pub struct Invocation {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// A shadow copy: database work is rolled back, nothing else lasts.
    pub dry_run: bool,
    /// The TCP peer (the gateway, or the client itself); `None` when the server was not
    /// started with connection info.
    pub peer: Option<IpAddr>,
}

impl Invocation {
    /// `req.headers.get(name)`: every value of the header joined by `, `, or `None`.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// Records a refused authentication as a security event (`error` is `None` when the
    /// header was missing). Dry runs record nothing; a failed user lookup (database
    /// trouble) is not the caller's doing and is not recorded.
    pub fn auth_failed(&self, state: &AppState, function: &'static str, error: Option<&AuthError>) {
        if self.dry_run {
            return;
        }
        let reason = match error {
            None => "missing_header",
            Some(AuthError::Lookup(_)) => return,
            Some(AuthError::UnknownUser) => "unknown_user",
            Some(AuthError::Revoked) => "revoked_session",
            Some(_) => "invalid_token",
        };
        let event = SecurityEvent::new(
            EventType::AuthFailed,
            serde_json::json!({"function": function, "reason": reason}),
        )
        .client(self.client_address(state), &self.headers);
        state.audit.record(event);
    }

    /// The client's address as the backend records it: `X-Forwarded-For` when the peer
    /// is a trusted proxy, else the peer (see [`crate::client_address`]).
    pub fn client_address(&self, state: &AppState) -> Option<IpAddr> {
        state
            .config
            .server
            .trusted_proxies
            .client_address(self.peer, &self.headers)
    }

    /// `req.headers.get(name)` where the legacy tests it for truthiness (`""` is absent).
    pub fn non_empty_header(&self, name: &str) -> Option<String> {
        self.header(name).filter(|v| !v.is_empty())
    }

    /// The caller: the user of the `Authorization` header's token, verified. Either
    /// failure is recorded as a security event, as the legacy does; the function answers
    /// it in its own words.
    pub async fn authenticate(
        &self,
        state: &AppState,
        db: &mut RequestDb,
        function: &'static str,
    ) -> Result<User, Unauthenticated> {
        let Some(header) = self.non_empty_header("authorization") else {
            self.auth_failed(state, function, None);
            return Err(Unauthenticated::Missing);
        };
        state
            .auth
            .user_from_header(db, &header)
            .await
            .map_err(|error| {
                self.auth_failed(state, function, Some(&error));
                Unauthenticated::Invalid
            })
    }

    /// Runs `work` with this request's database handle (a transaction rolled back at the
    /// end for a dry run) and finishes the handle; when the database cannot be reached,
    /// logs it and answers `unavailable()`.
    pub async fn with_db<T>(
        &self,
        state: &AppState,
        unavailable: impl FnOnce() -> T,
        work: impl AsyncFnOnce(&mut RequestDb) -> T,
    ) -> T {
        match state.request_db(self.dry_run).await {
            Ok(mut db) => {
                let result = work(&mut db).await;
                db.finish().await;
                result
            }
            Err(error) => {
                tracing::error!(%error, "database unavailable");
                unavailable()
            }
        }
    }
}

/// Why a request has no verified user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    /// No `Authorization` header, or an empty one.
    Missing,
    /// A token that does not verify, or whose user is gone.
    Invalid,
}

impl Unauthenticated {
    /// The function's text for this failure: `missing` or `invalid`.
    pub fn say(self, missing: &str, invalid: &str) -> String {
        match self {
            Unauthenticated::Missing => missing.to_owned(),
            Unauthenticated::Invalid => invalid.to_owned(),
        }
    }
}

impl FromRequest<AppState> for Invocation {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let method = request.method().clone();
        let headers = request.headers().clone();
        let dry_run = state.shadow.is_dry_run(&headers);
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        limit: state.config.server.max_body_bytes,
                    }
                } else {
                    ApiError::Validation("The request body could not be read".into())
                }
            })?;
        Ok(Self {
            method,
            headers,
            body,
            dry_run,
            peer,
        })
    }
}

/// `new Date().toISOString()`: UTC with milliseconds.
pub fn iso_now() -> String {
    iso(chrono::Utc::now())
}

/// `date.toISOString()` of a timestamp (milliseconds, truncated as `Date` keeps them).
pub fn iso(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
