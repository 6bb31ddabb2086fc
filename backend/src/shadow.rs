//! The gateway's dry-run marker.
//!
//! The gateway sends its shadow copies with `x-studyflow-shadow: <SHADOW_SECRET>`; such a
//! request runs as a dry run (database work rolled back, no rate-limit count, no security
//! events, provider calls as `SHADOW_PROVIDER_CALLS` says). A dry run writes nothing, so
//! a client able to ask for one could hide its own traffic: the marker is honoured only
//! when its value equals the secret the gateway and the backend share, compared in
//! constant time. Any other value, and every value when no secret is configured, is
//! ignored and the request is served for real.

use axum::http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// The header the gateway puts on shadow copies.
pub const SHADOW_HEADER: &str = "x-studyflow-shadow";

/// Decides whether a request is one of the gateway's shadow copies. Cheap to clone.
#[derive(Clone)]
pub struct ShadowMarker {
    secret: Option<SecretString>,
}

impl std::fmt::Debug for ShadowMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShadowMarker")
            .field("configured", &self.secret.is_some())
            .finish()
    }
}

impl ShadowMarker {
    /// A marker checked against `secret`; `None` honours no request.
    pub fn new(secret: Option<SecretString>) -> Self {
        Self { secret }
    }

    /// Whether a secret is configured (without one no request is ever a dry run).
    pub fn is_configured(&self) -> bool {
        self.secret.is_some()
    }

    /// Whether the request carries the marker with the shared secret. A request with
    /// several marker headers is not a dry run: the gateway sends exactly one.
    pub fn is_dry_run(&self, headers: &HeaderMap) -> bool {
        let Some(secret) = &self.secret else {
            return false;
        };
        let mut values = headers.get_all(SHADOW_HEADER).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        value
            .as_bytes()
            .ct_eq(secret.expose_secret().as_bytes())
            .into()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(SHADOW_HEADER, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_the_secret_marks_a_dry_run() {
        let marker = ShadowMarker::new(Some("a-shared-secret-of-some-length".into()));
        assert!(marker.is_dry_run(&headers(&["a-shared-secret-of-some-length"])));
        for refused in [
            &[][..],
            &["1"],
            &["true"],
            &[""],
            &["a-shared-secret-of-some-lengtH"],
            &["a-shared-secret-of-some-length "],
            &["a-shared-secret"],
            &[
                "a-shared-secret-of-some-length",
                "a-shared-secret-of-some-length",
            ],
        ] {
            assert!(!marker.is_dry_run(&headers(refused)), "{refused:?}");
        }
    }

    #[test]
    fn without_a_secret_nothing_is_a_dry_run() {
        let marker = ShadowMarker::new(None);
        assert!(!marker.is_configured());
        assert!(!marker.is_dry_run(&headers(&["1"])));
        assert!(!marker.is_dry_run(&headers(&[""])));
        assert!(!format!("{marker:?}").contains("secret-of"));
    }
}
