//! The new StudyFlow backend.
//!
//! Re-implements the legacy Supabase Edge Functions on axum, sqlx/Postgres and Redis,
//! answering each request exactly as the legacy function does (see the function modules
//! under [`functions`], and [`js`] for the JavaScript semantics they reproduce). [`app`]
//! builds the whole router from an [`AppState`], so tests and the binary serve the very
//! same application:
//!
//! ```no_run
//! # async fn run() -> studyflow_backend::Result<()> {
//! let config = studyflow_backend::BackendConfig::load(None)?;
//! let state = studyflow_backend::AppState::new(config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| studyflow_backend::Error::Config(e.to_string()))?;
//! studyflow_backend::serve(listener, state, std::future::pending()).await.ok();
//! # Ok(()) }
//! ```

pub mod auth;
pub mod client_address;
pub mod config;
pub mod cors;
pub mod db;
pub mod embedding;
pub mod error;
pub mod functions;
pub mod health;
pub mod js;
pub mod jwks;
pub mod metrics;
pub mod prompts;
pub mod providers;
pub mod rate_limit;
pub mod realtime;
pub mod redis_client;
pub mod security_audit;
pub mod shadow;
pub mod state;
pub mod store;
pub mod test_switch;
pub mod vault;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use config::BackendConfig;
pub use error::{ApiError, Error, Result};
pub use state::AppState;

/// The header carrying the request id (kept when the caller sends one).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The complete HTTP application.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    Router::new()
        .merge(health::router())
        .route("/metrics", get(metrics::scrape))
        .merge(functions::router())
        .merge(realtime::router())
        .fallback(error::not_found)
        .layer(from_fn_with_state(state.clone(), test_switch::alter))
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
        .layer(
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

/// Serves [`app`] on `listener` until `shutdown` completes, then closes realtime sockets
/// with a close frame and lets in-flight requests finish. Each request knows the address
/// it came from (`ConnectInfo<SocketAddr>`, see [`client_address`]).
///
/// Connections are `TCP_NODELAY`: a streamed answer writes small pieces (one event per
/// token) after the headers, and Nagle's algorithm would hold each back until the client
/// acknowledges the previous one, which a client delays by up to 40 ms.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let background = realtime::spawn_background(&state);
    let hub = state.realtime.clone();
    let shutdown = async move {
        shutdown.await;
        hub.close_all(std::time::Duration::from_secs(3)).await;
    };
    let app = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    for task in background {
        task.abort();
    }
    served
}
