//! The three CORS variants of the legacy functions, and answers that carry them.
//!
//! - *basic*: any origin, the four supabase-js headers; preflight 200.
//! - *shared*: basic plus credentials, methods and max-age; preflight 200.
//! - *allow-list*: the request's origin when it is allowed, else `null`; preflight 204.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use regex::Regex;
use serde_json::Value;

const BASIC_HEADERS: &str = "authorization, x-client-info, apikey, content-type";

/// Vercel preview deployments of the frontend.
static PREVIEW_HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^study-flow-ai-[a-z0-9]+-[a-z0-9]+\.vercel\.app$").expect("valid regex")
});

/// Origins accepted by the allow-list variant, compared by scheme, host and port.
#[derive(Debug, Clone)]
pub struct AllowedOrigins {
    origins: Vec<(String, String, u16)>,
}

impl AllowedOrigins {
    /// Parses a comma-separated list; entries that are not URLs are skipped.
    pub fn parse(list: &str) -> Self {
        Self::from_list(list.split(','))
    }

    /// The origins of a list, each trimmed; unparsable ones are left out.
    pub fn from_list<S: AsRef<str>>(list: impl IntoIterator<Item = S>) -> Self {
        let origins = list
            .into_iter()
            .filter_map(|origin| origin_parts(origin.as_ref().trim()))
            .collect();
        Self { origins }
    }

    pub fn allows(&self, origin: &str) -> bool {
        let Some(parts) = origin_parts(origin) else {
            return false;
        };
        self.origins.contains(&parts) || PREVIEW_HOST.is_match(&parts.1)
    }
}

fn origin_parts(origin: &str) -> Option<(String, String, u16)> {
    let url = url::Url::parse(origin).ok()?;
    let host = url.host_str()?.to_owned();
    let port = url.port_or_known_default()?;
    Some((url.scheme().to_owned(), host, port))
}

/// The CORS headers one answer carries.
#[derive(Debug, Clone)]
pub struct Cors {
    headers: HeaderMap,
    preflight_status: StatusCode,
}

impl Cors {
    /// No CORS headers at all (`semantic-search`, as the legacy).
    pub fn none() -> Self {
        Self {
            headers: HeaderMap::new(),
            preflight_status: StatusCode::OK,
        }
    }

    pub fn basic() -> Self {
        Self::with_allow_headers(BASIC_HEADERS)
    }

    /// Basic, with extra names appended to `Access-Control-Allow-Headers`.
    pub fn with_allow_headers(allow_headers: &'static str) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(allow_headers),
        );
        Self {
            headers,
            preflight_status: StatusCode::OK,
        }
    }

    pub fn shared() -> Self {
        let mut cors = Self::with_allow_headers(
            "authorization, x-client-info, apikey, content-type, x-supabase-auth, x-request-id",
        );
        cors.add(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "POST, GET, OPTIONS, PUT, DELETE",
        );
        cors.add(header::ACCESS_CONTROL_MAX_AGE, "86400");
        cors.add(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        cors
    }

    pub fn allow_list(origins: &AllowedOrigins, request: &HeaderMap) -> Self {
        let origin = request
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .filter(|origin| origins.allows(origin))
            .and_then(|origin| HeaderValue::from_str(origin).ok())
            .unwrap_or(HeaderValue::from_static("null"));
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        let mut cors = Self {
            headers,
            preflight_status: StatusCode::NO_CONTENT,
        };
        cors.add(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        cors.add(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "authorization, x-client-info, apikey, content-type, x-request-id",
        );
        cors.add(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, POST, PUT, DELETE, OPTIONS",
        );
        cors.add(header::ACCESS_CONTROL_MAX_AGE, "86400");
        cors
    }

    fn add(&mut self, name: HeaderName, value: &'static str) {
        self.headers.insert(name, HeaderValue::from_static(value));
    }

    /// The answer to an `OPTIONS` preflight: empty body, the variant's status.
    pub fn preflight(self) -> Response {
        (self.preflight_status, self.headers).into_response()
    }

    /// For a function that only takes `POST`: the preflight answer to `OPTIONS`, a 405
    /// `{"error": "Method not allowed"}` to any other method but `POST`, else `None`.
    pub fn post_only(&self, method: &axum::http::Method) -> Option<Response> {
        use axum::http::Method;
        match *method {
            Method::POST => None,
            Method::OPTIONS => Some(self.clone().preflight()),
            _ => Some(self.clone().json(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({"error": "Method not allowed"}),
            )),
        }
    }

    /// Any answer (a stream, say) with these CORS headers added.
    pub fn apply(self, response: impl IntoResponse) -> Response {
        (self.headers, response).into_response()
    }

    /// A JSON answer with these CORS headers (`Content-Type: application/json`), the
    /// body written as `JSON.stringify` writes it.
    pub fn json(self, status: StatusCode, body: Value) -> Response {
        let mut headers = self.headers;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (status, headers, crate::js::json::stringify(&body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_ALLOWED_ORIGINS;

    #[test]
    fn default_origins_and_previews_are_allowed() {
        let origins = AllowedOrigins::parse(DEFAULT_ALLOWED_ORIGINS);
        assert!(origins.allows("http://localhost:5173"));
        assert!(origins.allows("https://study-flow-ai.vercel.app"));
        assert!(origins.allows("https://study-flow-ai.vercel.app:443"));
        assert!(origins.allows("https://study-flow-ai-abc123-team9.vercel.app"));
        assert!(!origins.allows("http://localhost:5175"));
        assert!(!origins.allows("https://localhost:5173"));
        assert!(!origins.allows("https://evil.example"));
        assert!(!origins.allows("https://study-flow-ai-x.vercel.app"));
        assert!(!origins.allows("null"));
    }

    #[test]
    fn disallowed_origins_get_the_string_null() {
        let origins = AllowedOrigins::parse("https://app.example");
        let mut request = HeaderMap::new();
        request.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        let response = Cors::allow_list(&origins, &request).preflight();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "null"
        );
    }
}
