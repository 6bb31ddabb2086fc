//! Errors: start-up failures ([`Error`]) and HTTP answers for anything the legacy contract
//! does not cover ([`ApiError`], in the design's `{code, message, details}` shape).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why the backend could not start or a dependency failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error answer outside the legacy contract. Internal detail is logged, never sent.
#[derive(Debug)]
pub enum ApiError {
    Validation(String),
    NotFound,
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Validation(message) => (StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "No such endpoint".to_owned(),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "Internal error".to_owned(),
            ),
        };
        (
            status,
            Json(json!({"code": code, "message": message, "details": null})),
        )
            .into_response()
    }
}

/// Fallback for paths no function serves.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
