//! Supabase-style access tokens (HS256 with the project's JWT secret), as GoTrue issues
//! them, for test users and the anon key.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An access token for user `sub`, valid for `ttl_secs` (negative: already expired), of
/// a new session.
pub fn access_token(secret: &str, sub: &str, email: &str, ttl_secs: i64) -> String {
    let session = uuid::Uuid::new_v4().to_string();
    session_token(secret, sub, email, &session, now(), ttl_secs)
}

/// An access token of session `session` for user `sub`, issued at `iat` (seconds since
/// the epoch) and valid for `ttl_secs` from then.
pub fn session_token(
    secret: &str,
    sub: &str,
    email: &str,
    session: &str,
    iat: i64,
    ttl_secs: i64,
) -> String {
    let claims = json!({
        "iss": "http://127.0.0.1/auth/v1",
        "sub": sub,
        "aud": "authenticated",
        "exp": iat + ttl_secs,
        "iat": iat,
        "email": email,
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": iat}],
        "session_id": session,
        "is_anonymous": false,
    });
    sign(secret, &claims)
}

/// The project's anon key: a long-lived token with role `anon` and no subject.
pub fn anon_key(secret: &str) -> String {
    let iat = now();
    sign(
        secret,
        &json!({"iss": "supabase-demo", "role": "anon", "iat": iat, "exp": iat + 10 * 365 * 24 * 3600}),
    )
}

/// The project's service-role key: like the anon key, with role `service_role`.
pub fn service_role_key(secret: &str) -> String {
    let iat = now();
    sign(
        secret,
        &json!({"iss": "supabase-demo", "role": "service_role", "iat": iat, "exp": iat + 10 * 365 * 24 * 3600}),
    )
}

fn sign(secret: &str, claims: &serde_json::Value) -> String {
    // Signing a JSON value with an HMAC key cannot fail.
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}
