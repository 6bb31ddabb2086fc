//! The HTTP side of the application: [`app`] merges every router (health, `/metrics`,
//! the functions, realtime) and wraps it in the layers each request passes through:
//! request ids, tracing, panic recovery, the body limit and request metrics.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::config::FUNCTIONS;
use crate::error::{self, ApiError};
use crate::{AppState, functions, health, realtime, rest};

/// The header carrying the request id (kept when the caller sends one).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The complete HTTP application.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.server.max_body_bytes;
    let routes = Router::new()
        .merge(health::router())
        .route("/metrics", get(scrape))
        .merge(functions::router())
        .merge(rest::router())
        .merge(realtime::router())
        .fallback(error::not_found);
    let routes = with_test_hooks(routes, &state)
        .layer(from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    with_request_layers(routes)
}

/// The test-only answer switch ([`crate::test_switch`]), in builds with `test-hooks`.
#[cfg(feature = "test-hooks")]
fn with_test_hooks(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    routes.layer(from_fn_with_state(state.clone(), crate::test_switch::alter))
}

/// Without `test-hooks` (a production build) there is no switch.
#[cfg(not(feature = "test-hooks"))]
fn with_test_hooks(routes: Router<AppState>, _state: &AppState) -> Router<AppState> {
    routes
}

/// Request ids (kept, else made), the request's span, and a 500 instead of a dropped
/// connection when a handler panics.
fn with_request_layers(routes: Router) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    routes.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), RandomRequestId))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_request(())
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(CatchPanicLayer::custom(|_| {
                tracing::error!("handler panicked");
                ApiError::Internal.into_response()
            })),
    )
}

/// Request ids for requests that come without one: random (version 4) UUIDs from the
/// thread's generator. tower-http's `MakeRequestUuid` asks the kernel for every id, a
/// system call per request.
#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut buffer = uuid::Uuid::encode_buffer();
        let text = id.hyphenated().encode_lower(&mut buffer);
        axum::http::HeaderValue::from_str(text)
            .ok()
            .map(RequestId::new)
    }
}

/// The span every log line of a request is recorded in, with its request id.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}

/// The function a route path belongs to, as a bounded label (`rest` for the data API).
pub fn function_label(path: &str) -> &'static str {
    if path.starts_with("/rest/v1/") {
        return "rest";
    }
    let name = path
        .strip_prefix("/functions/v1/")
        .map(|rest| rest.split('/').next().unwrap_or(rest));
    match name {
        Some(name) => FUNCTIONS
            .iter()
            .find(|f| **f == name)
            .copied()
            .unwrap_or("other"),
        None => "other",
    }
}

/// Middleware counting and timing every request by function and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let function = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |path| function_label(path.as_str()));
    if state.shadow.is_dry_run(request.headers()) {
        state.metrics.shadow_request(function);
    }
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request(function, response.status(), started.elapsed());
    response
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(&state.db, state.config.database.max_connections);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(function_label("/functions/v1/ai-proxy"), "ai-proxy");
        assert_eq!(function_label("/functions/v1/ai-proxy/{*rest}"), "ai-proxy");
        assert_eq!(function_label("/functions/v1/unknown"), "other");
        assert_eq!(function_label("/health"), "other");
    }
}
