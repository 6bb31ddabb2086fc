//! The new StudyFlow backend.
//!
//! Re-implements the legacy Supabase Edge Functions on axum, sqlx/Postgres and Redis,
//! answering each request exactly as the legacy function does (see the function modules
//! under [`functions`]). [`app`] builds the whole router from an [`AppState`], so tests
//! and the binary serve the very same application.

pub mod config;
pub mod cors;
pub mod db;
pub mod error;
pub mod functions;
pub mod health;
pub mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use config::BackendConfig;
pub use error::{ApiError, Error, Result};
pub use state::AppState;

/// The complete HTTP application.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .merge(health::router())
        .merge(functions::router())
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` completes, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
