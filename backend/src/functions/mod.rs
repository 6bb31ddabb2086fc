//! The legacy Edge Functions, one module each, served at `/functions/v1/<name>`.

pub mod auth_validation;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().nest(
        "/functions/v1",
        Router::new().merge(auth_validation::router()),
    )
}
