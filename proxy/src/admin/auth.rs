//! Who may do what on the admin port: the admin token (kept as its SHA-256 digest and
//! compared in constant time) guards every change and every read of private data; a
//! change names its operator in `x-operator`.

use axum::http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

use super::AdminState;
use super::error::AdminError;

/// Checks the bearer token of a change or of a read of private data.
pub(crate) fn check_token(state: &AdminState, headers: &HeaderMap) -> Result<(), AdminError> {
    let Some(expected) = state.token_digest else {
        return Err(AdminError(
            StatusCode::FORBIDDEN,
            "disabled: no admin_token is configured (it guards changes, diff reports, samples and the audit log)".into(),
        ));
    };
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(digest);
    if !given.is_some_and(|given| same_digest(&given, &expected)) {
        return Err(AdminError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token".into(),
        ));
    }
    Ok(())
}

/// Checks the bearer token and returns the operator's name.
pub(crate) fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<String, AdminError> {
    check_token(state, headers)?;
    Ok(operator(headers))
}

/// The operator named in `x-operator` (1 to 100 characters), else `admin`.
pub(crate) fn operator(headers: &HeaderMap) -> String {
    headers
        .get("x-operator")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|w| !w.is_empty() && w.len() <= 100)
        .unwrap_or("admin")
        .to_owned()
}

/// SHA-256 of a token: what the admin state keeps instead of the token.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two digests are equal, in time independent of where they differ.
pub(crate) fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let differing = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(differing) == 0
}

/// Whether two secrets are equal, in constant time (their digests are compared, so the
/// length of neither shows either).
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    same_digest(&digest(a), &digest(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("token", "token"));
        assert!(!same_secret("token", "tokeN"));
        assert!(!same_secret("token", "token-longer"));
    }
}
