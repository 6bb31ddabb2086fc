//! `auth-validation`: checks an email address before sign-up. CORS *allow-list*; no
//! authentication.
//!
//! Answers `{valid, error}` or `{valid, message}`. The checks run in the legacy order:
//! presence, format, allowed domain, then (signup only) disposable provider and length.

use std::sync::LazyLock;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use regex::Regex;
use serde_json::{Value, json};

use super::{Entry, Invocation, behind_cors};
use crate::AppState;
use crate::cors::Cors;
use crate::js::json::parse_body;
use crate::js::value::{to_js_string, truthy};

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$").expect("valid regex")
});

const ALLOWED_DOMAINS: [&str; 6] = [
    "@gmail.com",
    "@hotmail.com",
    "@outlook.com",
    "@yahoo.com",
    "@protonmail.com",
    "@icloud.com",
];

const DISPOSABLE: [&str; 5] = [
    "tempmail",
    "guerrillamail",
    "10minutemail",
    "mailinator",
    "throwaway",
];

/// Why no caching: the answer is a pure function of the request (and the configured
/// origins), but computing it is a few string checks, cheaper than a Redis round trip.
pub fn router() -> Router<AppState> {
    behind_cors(
        "auth-validation",
        |state, invocation| Cors::allow_list(&state.origins, &invocation.headers),
        Entry::Preflight,
        handle,
    )
}

async fn handle(_: AppState, invocation: Invocation, cors: Cors) -> Response {
    let (status, answer) = match parse_body(&invocation.body) {
        Ok(request) => validate(&request),
        Err(_) => service_error(),
    };
    cors.json(status, answer)
}

fn invalid(message: impl Into<String>) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({"valid": false, "error": message.into()}),
    )
}

fn service_error() -> (StatusCode, Value) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"valid": false, "error": "Validation service error"}),
    )
}

fn validate(request: &Value) -> (StatusCode, Value) {
    // `const { email, action } = await req.json()` throws on `null`.
    if request.is_null() {
        return service_error();
    }
    let email = request.get("email");
    let action = request.get("action").unwrap_or(&Value::Null);
    if !truthy(email) || !truthy(Some(action)) {
        return invalid("Missing required parameters");
    }
    // Anything but a string fails the format test (`RegExp.test` stringifies it) or, for
    // values that stringify to an address, throws at `toLowerCase` in the legacy.
    let Some(Value::String(email)) = email else {
        return if EMAIL.is_match(&to_js_string(email)) {
            service_error()
        } else {
            invalid("Invalid email format")
        };
    };
    if !EMAIL.is_match(email) {
        return invalid("Invalid email format");
    }
    let lower = email.to_lowercase();
    if !ALLOWED_DOMAINS.iter().any(|domain| lower.ends_with(domain)) {
        return invalid(format!(
            "Email domain not allowed. Please use one of: {}",
            ALLOWED_DOMAINS.join(", ")
        ));
    }
    if action == "signup" {
        if DISPOSABLE.iter().any(|word| lower.contains(word)) {
            return invalid("Disposable email addresses are not allowed");
        }
        if email.len() > 254 {
            return invalid("Email address is too long");
        }
    }
    (
        StatusCode::OK,
        json!({"valid": true, "message": "Email validation successful"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(request: Value) -> (u16, Value) {
        let (status, body) = validate(&request);
        (status.as_u16(), body)
    }

    #[test]
    fn follows_the_legacy_order_of_checks() {
        assert_eq!(
            check(json!({"email": "ada@gmail.com", "action": "validate"})).0,
            200
        );
        assert_eq!(
            check(json!({"email": "ada@gmail.com"})).1["error"],
            "Missing required parameters"
        );
        assert_eq!(
            check(json!({"email": "", "action": "signup"})).1["error"],
            "Missing required parameters"
        );
        assert_eq!(
            check(json!({"email": "not-an-email", "action": "validate"})).1["error"],
            "Invalid email format"
        );
        assert!(
            check(json!({"email": "ada@example.com", "action": "validate"})).1["error"]
                .as_str()
                .is_some_and(|e| e.starts_with(
                    "Email domain not allowed. Please use one of: @gmail.com, @hotmail.com"
                ))
        );
        // Disposable words only matter on signup.
        assert_eq!(
            check(json!({"email": "mailinator.fan@gmail.com", "action": "validate"})).0,
            200
        );
        assert_eq!(
            check(json!({"email": "mailinator.fan@gmail.com", "action": "signup"})).1["error"],
            "Disposable email addresses are not allowed"
        );
        let long = format!("{}@gmail.com", "a".repeat(250));
        assert_eq!(
            check(json!({"email": long, "action": "signup"})).1["error"],
            "Email address is too long"
        );
        assert_eq!(check(json!({"email": long, "action": "validate"})).0, 200);
        assert_eq!(check(Value::Null).0, 500);
        assert_eq!(
            check(json!({"email": 5, "action": "validate"})).1["error"],
            "Invalid email format"
        );
    }
}
