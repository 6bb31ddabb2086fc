//! Who is asking, for the sticky canary bucket.
//!
//! The bucket is Unleash's `normalizedNumber`: murmur3 (x86, 32-bit, seed 0) of
//! `"<group>:<user>"`, modulo 100, plus 1. Using the same function as the Unleash SDKs
//! means a percentage set in Unleash splits users exactly as the gateway does.

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The identity a request is bucketed by: the JWT `sub` of a bearer token when it carries
/// one, else the `apikey` header, else the client address.
pub fn request_identity<'a>(
    authorization: Option<&'a str>,
    apikey: Option<&'a str>,
    client_addr: Option<&'a str>,
) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(sub) = authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(jwt_subject)
    {
        return Some(sub.into());
    }
    apikey
        .filter(|key| !key.is_empty())
        .or(client_addr)
        .map(Into::into)
}

/// The `sub` claim of a JWT, read without verifying it (the upstreams verify tokens; the
/// gateway only needs a stable identity). Anon keys carry no `sub`.
fn jwt_subject(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 8 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    #[derive(serde::Deserialize)]
    struct Claims {
        sub: Option<String>,
    }
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    claims.sub.filter(|sub| !sub.is_empty())
}

/// Unleash's sticky bucket (1–100) of `user` within `group`.
pub fn bucket(group: &str, user: &str) -> u8 {
    let key = format!("{group}:{user}");
    let hash = murmur3::murmur3_32(&mut Cursor::new(key.as_bytes()), 0).unwrap_or(0);
    // `hash % 100` is below 100, so the sum always fits.
    (hash % 100) as u8 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_subject_wins_over_apikey_and_address() {
        // {"alg":"HS256"}.{"sub":"user-1","role":"authenticated"}.sig
        let token =
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJyb2xlIjoiYXV0aGVudGljYXRlZCJ9.c2ln";
        let auth = format!("Bearer {token}");
        assert_eq!(
            request_identity(Some(&auth), Some("key"), Some("1.2.3.4")).as_deref(),
            Some("user-1")
        );
    }

    #[test]
    fn tokens_without_subject_fall_back_to_apikey_then_address() {
        // {"alg":"HS256"}.{"role":"anon"}.sig
        let anon = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2ln";
        assert_eq!(
            request_identity(Some(anon), Some("key"), None).as_deref(),
            Some("key")
        );
        assert_eq!(
            request_identity(Some("Bearer junk"), None, Some("1.2.3.4")).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(request_identity(None, Some(""), None), None);
    }
}
