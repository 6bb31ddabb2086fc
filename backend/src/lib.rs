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

pub mod ai_types;
pub mod auth;
pub mod cli;
pub mod client_address;
pub mod config;
pub mod cors;
pub mod db;
pub mod embedding;
pub mod error;
pub mod functions;
pub mod health;
pub mod http;
pub mod js;
pub mod jwks;
pub mod metrics;
pub mod prompts;
pub mod providers;
pub mod rate_limit;
pub mod realtime;
pub mod redis_client;
pub mod rest;
pub mod security_audit;
pub mod sessions;
pub mod shadow;
pub mod state;
pub mod store;
#[cfg(feature = "test-hooks")]
pub mod test_switch;
pub mod vault;

pub use config::BackendConfig;
pub use error::{ApiError, Error, Result};
pub use http::{REQUEST_ID_HEADER, app};
pub use state::AppState;

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
    let mut background = realtime::spawn_background(&state);
    background.push(tokio::spawn(rest::schema::listen(
        state.db.clone(),
        state.schema.clone(),
    )));
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
