//! `encryption`: server-side AES-256-GCM with a PBKDF2-derived key. Authenticated; CORS
//! *allow-list*.
//!
//! Format, byte-compatible with the legacy: key = PBKDF2-HMAC-SHA256(password = UTF-8 of
//! `ENCRYPTION_KEY`, salt = UTF-8 of `ENCRYPTION_SALT`, 100 000 iterations, 32 bytes);
//! result = standard base64 of IV (12 random bytes) ‖ ciphertext ‖ 16-byte tag. The key
//! is derived once, on first use. Noise: `result` of `encrypt`.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use rand::RngCore;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Entry, Invocation, behind_cors};
use crate::AppState;
use crate::cors::Cors;
use crate::js::errors::get_opt;
use crate::js::json::parse_body;
use crate::js::value::{to_js_string, truthy};

const NAME: &str = "encryption";

const PBKDF2_ITERATIONS: u32 = 100_000;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

pub fn router() -> Router<AppState> {
    behind_cors(
        NAME,
        |state, invocation| Cors::allow_list(&state.origins, &invocation.headers),
        Entry::Preflight,
        handle,
    )
}

/// The derived AES-256-GCM key.
pub struct Cipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

/// Why an operation failed (all answer "Encryption operation failed").
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("not base64")]
    Base64,
    #[error("too short")]
    TooShort,
    #[error("authentication failed")]
    Crypto,
}

impl Cipher {
    /// PBKDF2-HMAC-SHA256 of the password and salt (deliberately slow: run it once).
    pub fn derive(password: &[u8], salt: &[u8]) -> Result<Self, CipherError> {
        let mut bytes = [0u8; KEY_LEN];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, PBKDF2_ITERATIONS, &mut bytes);
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| CipherError::Crypto)?;
        Ok(Self { cipher })
    }

    /// base64(IV ‖ ciphertext ‖ tag) of the UTF-8 plaintext, under a fresh random IV.
    pub fn encrypt(&self, plaintext: &str) -> Result<String, CipherError> {
        let mut iv = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut iv);
        self.encrypt_with_iv(iv, plaintext)
    }

    /// [`Cipher::encrypt`] under the given IV (tests pin it to check known vectors).
    fn encrypt_with_iv(&self, iv: [u8; NONCE_LEN], plaintext: &str) -> Result<String, CipherError> {
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(iv), plaintext.as_bytes())
            .map_err(|_| CipherError::Crypto)?;
        let mut combined = iv.to_vec();
        combined.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(combined))
    }

    /// The plaintext of `encoded`, decoded like `atob` and `TextDecoder` do.
    pub fn decrypt(&self, encoded: &str) -> Result<String, CipherError> {
        let combined = forgiving_base64(encoded).ok_or(CipherError::Base64)?;
        if combined.len() < NONCE_LEN + TAG_LEN {
            return Err(CipherError::TooShort);
        }
        let (iv, sealed) = combined.split_at(NONCE_LEN);
        let iv: [u8; NONCE_LEN] = iv.try_into().map_err(|_| CipherError::Crypto)?;
        let plain = self
            .cipher
            .decrypt(&Nonce::from(iv), sealed)
            .map_err(|_| CipherError::Crypto)?;
        // TextDecoder: replacement characters for invalid UTF-8, a leading BOM dropped.
        let text = String::from_utf8_lossy(&plain);
        Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned())
    }
}

/// `atob`'s forgiving base64: ASCII whitespace ignored, padding optional.
pub fn forgiving_base64(input: &str) -> Option<Vec<u8>> {
    if !input.is_ascii() {
        return None;
    }
    let mut data: Vec<u8> = input
        .bytes()
        .filter(|b| !matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' '))
        .collect();
    if data.len().is_multiple_of(4) {
        for _ in 0..2 {
            if data.last() == Some(&b'=') {
                data.pop();
            }
        }
    }
    if data.len() % 4 == 1 {
        return None;
    }
    if !data
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
    {
        return None;
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    engine.decode(&data).ok()
}

/// The key, derived on first use; `None` when `ENCRYPTION_KEY` or `ENCRYPTION_SALT` is unset.
async fn cipher(state: &AppState) -> Option<Arc<Cipher>> {
    state
        .cipher
        .get_or_init(|| async {
            let (Some(key), Some(salt)) = (
                state.config.encryption.key.clone(),
                state.config.encryption.salt.clone(),
            ) else {
                return None;
            };
            tokio::task::spawn_blocking(move || {
                Cipher::derive(
                    key.expose_secret().as_bytes(),
                    salt.expose_secret().as_bytes(),
                )
            })
            .await
            .ok()
            .and_then(Result::ok)
            .map(Arc::new)
        })
        .await
        .clone()
}

async fn handle(state: AppState, invocation: Invocation, cors: Cors) -> Response {
    let (status, body) = operate(&state, &invocation).await;
    cors.json(status, body)
}

fn error(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (status, json!({"error": message}))
}

async fn operate(state: &AppState, invocation: &Invocation) -> (StatusCode, Value) {
    let failed = || {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Encryption operation failed",
        )
    };
    let Some(header) = invocation.non_empty_header("authorization") else {
        invocation.auth_failed(state, NAME, None);
        return error(StatusCode::UNAUTHORIZED, "Missing authorization header");
    };
    let user = match state.request_db(invocation.dry_run).await {
        Ok(mut db) => {
            let user = state.auth.user_from_header(&mut db, &header).await;
            db.finish().await;
            user
        }
        Err(error) => {
            tracing::error!(%error, "database unavailable");
            return failed();
        }
    };
    if let Err(refused) = &user {
        invocation.auth_failed(state, NAME, Some(refused));
        return error(StatusCode::UNAUTHORIZED, "Invalid authentication token");
    }
    let Ok(body) = parse_body(&invocation.body) else {
        return failed();
    };
    if body.is_null() {
        // Destructuring null throws; the catch answers the generic failure.
        return failed();
    }
    let action = get_opt(Some(&body), "action");
    let data = get_opt(Some(&body), "data");
    if !truthy(action) || !truthy(data) {
        return error(StatusCode::BAD_REQUEST, "Missing required parameters");
    }
    let Some(cipher) = cipher(state).await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Encryption service not configured",
        );
    };
    // TextEncoder.encode and atob both convert their argument to a string.
    let data = to_js_string(data);
    let result = match action.and_then(Value::as_str) {
        Some("encrypt") => cipher.encrypt(&data),
        Some("decrypt") => cipher.decrypt(&data),
        _ => return error(StatusCode::BAD_REQUEST, "Invalid action"),
    };
    match result {
        Ok(text) => (StatusCode::OK, json!({"result": text})),
        Err(reason) => {
            tracing::debug!(%reason, "encryption operation failed");
            failed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_format() {
        let cipher = Cipher::derive(b"key", b"salt").expect("derives");
        let sealed = cipher.encrypt("héllo").expect("encrypts");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .expect("standard base64");
        assert_eq!(raw.len(), 12 + "héllo".len() + 16);
        assert_eq!(cipher.decrypt(&sealed).expect("decrypts"), "héllo");
        // atob ignores whitespace and missing padding.
        let spaced = format!(" {}\n", sealed.trim_end_matches('='));
        assert_eq!(cipher.decrypt(&spaced).expect("decrypts"), "héllo");
        assert!(cipher.decrypt("not base64!").is_err());
        assert!(cipher.decrypt("AAAA").is_err());
        assert!(
            Cipher::derive(b"other", b"salt")
                .expect("derives")
                .decrypt(&sealed)
                .is_err()
        );
    }

    /// A ciphertext made by the legacy stand-in (WebCrypto) with key "key", salt "salt".
    #[test]
    fn decrypts_webcrypto_output() {
        let cipher = Cipher::derive(b"key", b"salt").expect("derives");
        assert_eq!(
            cipher.decrypt(WEBCRYPTO_SAMPLE).expect("decrypts"),
            "StudyFlow ✓"
        );
    }

    /// Vectors of the format (IV ‖ ciphertext ‖ tag, standard base64) under key "key",
    /// salt "salt": the output must stay byte for byte what the legacy reads and writes.
    const KNOWN_VECTORS: [([u8; 12], &str, &str); 2] = [
        (
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            "StudyFlow ✓",
            "AAECAwQFBgcICQoLpczrTyAx8wwX+0xNYW6xoZTjvEAYmXiemDKqSGY=",
        ),
        ([0xa5; 12], "", "paWlpaWlpaWlpaWlCRqziz9JHrN8Z0Xpb+gy+A=="),
    ];

    #[test]
    fn known_vectors_encrypt_and_decrypt() {
        let cipher = Cipher::derive(b"key", b"salt").expect("derives");
        for (iv, plaintext, encoded) in KNOWN_VECTORS {
            assert_eq!(
                cipher.encrypt_with_iv(iv, plaintext).expect("encrypts"),
                encoded
            );
            assert_eq!(cipher.decrypt(encoded).expect("decrypts"), plaintext);
        }
    }

    const WEBCRYPTO_SAMPLE: &str = "AqPZHeH2fB+kW0GbwsJG0gihMHYVL/WPuAMb4TmxSzSma+ReItTvN6Y=";

    #[test]
    fn forgiving_base64_rules() {
        assert_eq!(forgiving_base64("QQ==").as_deref(), Some(&b"A"[..]));
        assert_eq!(forgiving_base64("QQ").as_deref(), Some(&b"A"[..]));
        assert_eq!(forgiving_base64("QR==").as_deref(), Some(&b"A"[..]));
        assert!(forgiving_base64("QQ=").is_none());
        assert!(forgiving_base64("Q").is_none());
        assert!(forgiving_base64("Q=Q=").is_none());
        assert!(forgiving_base64("QQ-_").is_none());
    }
}
