//! TEST ONLY: makes one function's JSON answers differ from the legacy at one field
//! (`TEST_ALTER_FIELD=<function>:<json pointer>`), so the diff pipeline can be shown a
//! real regression end to end. Off unless configured; a warning is logged at start.
//!
//! Compiled only with the `test-hooks` feature, which only the end-to-end harness
//! (`tests/Cargo.toml`) enables: a build of `studyflow-backend` alone has neither this
//! layer nor the `TEST_ALTER_FIELD` setting.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use crate::AppState;

/// Largest answer the switch rewrites.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// `(path prefix, pointer)` from the configured `<function>:<pointer>`.
pub fn parse(spec: &str) -> Option<(String, String)> {
    let (function, pointer) = spec.split_once(':')?;
    (!function.is_empty() && pointer.starts_with('/'))
        .then(|| (format!("/functions/v1/{function}"), pointer.to_owned()))
}

/// The middleware: rewrites the field in matching JSON answers.
pub async fn alter(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let target = state.config.test_alter_field.as_deref().and_then(parse);
    let matches = target
        .as_ref()
        .is_some_and(|(path, _)| request.uri().path() == path);
    let response = next.run(request).await;
    let Some((_, pointer)) = target.filter(|_| matches) else {
        return response;
    };
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let altered = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|mut value| {
            let field = value.pointer_mut(&pointer)?;
            *field = match field.take() {
                Value::String(text) => Value::String(format!("{text} (altered)")),
                Value::Number(n) => Value::from(n.as_f64().unwrap_or(0.0) + 1.0),
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::from("altered"),
            };
            serde_json::to_vec(&value).ok()
        });
    let body = altered.unwrap_or_else(|| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_a_function_and_a_pointer() {
        assert_eq!(
            parse("auth-validation:/message"),
            Some(("/functions/v1/auth-validation".into(), "/message".into()))
        );
        assert_eq!(parse("auth-validation"), None);
        assert_eq!(parse("x:message"), None);
    }
}
