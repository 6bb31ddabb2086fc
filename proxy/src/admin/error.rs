//! The admin API's refusals: a status and `{"error": …}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::control::ControlError;
use crate::operations::api::ErrorAnswer;

/// An admin API error answer: `{"error": "..."}` with a status.
#[derive(Debug)]
pub(crate) struct AdminError(pub(crate) StatusCode, pub(crate) String);

impl AdminError {
    pub(crate) fn bad_input(message: String) -> Self {
        Self(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(ErrorAnswer { error: self.1 })).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"studyflow-gateway admin\""),
            );
        }
        response
    }
}

impl From<ControlError> for AdminError {
    fn from(error: ControlError) -> Self {
        let status = match &error {
            ControlError::UnknownRoute(_) => StatusCode::NOT_FOUND,
            ControlError::MissingReason | ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::NoLegacyTwin(_) => StatusCode::CONFLICT,
            ControlError::Persist(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ControlError::StoreDown(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self(status, error.to_string())
    }
}
