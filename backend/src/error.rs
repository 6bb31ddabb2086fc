//! Errors: start-up and dependency failures ([`Error`]) and HTTP answers for anything the
//! legacy contract does not cover ([`ApiError`], in the design's `{code, message, details}`
//! shape). Contract answers are built by the function modules themselves.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("key vault: {0}")]
    Vault(#[from] crate::vault::VaultError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error answer outside the legacy contract. Internal detail is logged where it
/// happens, never sent.
#[derive(Debug)]
pub enum ApiError {
    Validation(String),
    PayloadTooLarge { limit: usize },
    Auth(String),
    Authz(String),
    NotFound(String),
    RateLimit(String),
    AiProvider(String),
    Internal,
}

impl ApiError {
    /// Status and design code, in one place.
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Validation(_) => (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
            ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "VALIDATION_ERROR"),
            ApiError::Auth(_) => (StatusCode::UNAUTHORIZED, "AUTH_ERROR"),
            ApiError::Authz(_) => (StatusCode::FORBIDDEN, "AUTHZ_ERROR"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::RateLimit(_) => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT"),
            ApiError::AiProvider(_) => (StatusCode::BAD_GATEWAY, "AI_PROVIDER_ERROR"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        }
    }

    fn message_and_details(self) -> (String, Value) {
        match self {
            ApiError::PayloadTooLarge { limit } => (
                "Request body too large".into(),
                json!({"limit_bytes": limit}),
            ),
            ApiError::Validation(m)
            | ApiError::Auth(m)
            | ApiError::Authz(m)
            | ApiError::NotFound(m)
            | ApiError::RateLimit(m)
            | ApiError::AiProvider(m) => (m, Value::Null),
            ApiError::Internal => ("Internal error".into(), Value::Null),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let (message, details) = self.message_and_details();
        (
            status,
            Json(json!({"code": code, "message": message, "details": details})),
        )
            .into_response()
    }
}

/// Fallback for paths no function serves.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    if uri.path().starts_with("/functions/v1/") {
        ApiError::NotFound("Requested function was not found".into())
    } else {
        ApiError::NotFound("No such endpoint".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_have_the_design_shape() {
        let response = ApiError::PayloadTooLarge { limit: 2048 }.into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let value: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(value["code"], "VALIDATION_ERROR");
        assert_eq!(value["details"]["limit_bytes"], 2048);
        assert_eq!(
            ApiError::AiProvider("x".into()).parts(),
            (StatusCode::BAD_GATEWAY, "AI_PROVIDER_ERROR")
        );
    }
}
