//! Supabase access-token verification, in place of the legacy's `supabase.auth.getUser`.
//!
//! A token is accepted when:
//! - its header names HS256 and it verifies with the project's JWT secret, or names
//!   ES256/RS256 with a `kid` found in the project's JWKS (see [`crate::jwks`]); `none`
//!   and every other algorithm are refused, and a key is only ever used with its own
//!   algorithm family (no HS256-with-a-public-key confusion);
//! - `exp` is in the future and `nbf`, when present, is not (both with the configured
//!   leeway), `aud` is `authenticated`, `role` is `authenticated`, and `sub` is a uuid;
//! - the user exists in `auth.users`, as Supabase Auth requires;
//! - its session was not revoked (a sign-out, or an operator's revocation; see
//!   [`crate::sessions`]).
//!
//! Why a token failed is logged at debug level; functions answer every failure with
//! their own legacy message.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::config::BackendConfig;
use crate::jwks::JwksCache;
use crate::sessions::{Revocations, Standing, TokenSession};
use crate::store::RequestDb;

/// The audience and role of a signed-in user's token.
const AUTHENTICATED: &str = "authenticated";

/// The signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: uuid::Uuid,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("no key for this token: {0}")]
    NoKey(String),
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("role is not authenticated")]
    Role,
    #[error("subject is not a user id")]
    Subject,
    #[error("user does not exist")]
    UnknownUser,
    #[error("user lookup failed: {0}")]
    Lookup(#[from] sqlx::Error),
    #[error("the session was revoked")]
    Revoked,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    role: Option<String>,
    exp: i64,
    iat: Option<i64>,
    session_id: Option<String>,
}

impl Claims {
    /// The user and session a user's token names.
    fn session(&self) -> Result<TokenSession, AuthError> {
        Ok(TokenSession {
            user: self
                .sub
                .as_deref()
                .and_then(|sub| uuid::Uuid::parse_str(sub).ok())
                .ok_or(AuthError::Subject)?,
            // A session id that is not a uuid names no session Supabase issued.
            session: self
                .session_id
                .as_deref()
                .and_then(|id| uuid::Uuid::parse_str(id).ok()),
            issued_at: self.iat,
            expires_at: self.exp,
        })
    }
}

/// Who a Realtime token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// The signed-in user; `None` for the anon and service-role keys.
    pub user: Option<uuid::Uuid>,
    pub service_role: bool,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: i64,
}

/// Verifies access tokens; cheap to clone.
#[derive(Debug, Clone)]
pub struct Authenticator {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    leeway: u64,
    /// Revoked sessions; `None` in unit tests that check signatures alone.
    revocations: Option<Revocations>,
}

impl Authenticator {
    pub fn new(config: &BackendConfig, http: reqwest::Client) -> Self {
        Self {
            hs256: config
                .auth
                .jwt_secret
                .as_ref()
                .map(|secret| DecodingKey::from_secret(secret.expose_secret().as_bytes())),
            jwks: config
                .auth
                .jwks_url
                .as_ref()
                .map(|url| JwksCache::new(url.to_string(), http, config)),
            leeway: config.auth.jwt_leeway_secs,
            revocations: None,
        }
    }

    /// Refuses tokens of revoked sessions too.
    pub fn with_revocations(mut self, revocations: Revocations) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// The key that must have signed a token with this header.
    async fn key_for(&self, header: &jsonwebtoken::Header) -> Result<DecodingKey, AuthError> {
        match header.alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or_else(|| AuthError::NoKey("SUPABASE_JWT_SECRET is not set".into())),
            Algorithm::ES256 | Algorithm::RS256 => {
                let jwks = self
                    .jwks
                    .as_ref()
                    .ok_or_else(|| AuthError::NoKey("SUPABASE_JWKS_URL is not set".into()))?;
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| AuthError::NoKey("token has no kid".into()))?;
                jwks.key(kid, header.alg)
                    .await
                    .ok_or_else(|| AuthError::NoKey(format!("kid {kid} is not in the JWKS")))
            }
            other => Err(AuthError::Algorithm(format!("{other:?}"))),
        }
    }

    /// The time checks every token gets: `exp`, and `nbf` when the token has one, each
    /// with the configured leeway.
    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation
    }

    /// Verifies a Realtime token (a user's access token or the project's anon or
    /// service-role key): as [`Self::data_api_claims`]. Returns who it names and until
    /// when.
    pub async fn realtime_identity(&self, token: &str) -> Result<TokenIdentity, AuthError> {
        let (claims, _) = self.api_token(token).await?;
        let role = claims.role.as_deref().unwrap_or_default();
        Ok(TokenIdentity {
            user: (role == AUTHENTICATED)
                .then(|| {
                    claims
                        .sub
                        .as_deref()
                        .and_then(|s| uuid::Uuid::parse_str(s).ok())
                })
                .flatten(),
            service_role: role == "service_role",
            expires_at: claims.exp,
        })
    }

    /// Verifies a data API token (a user's access token, or the anon or service-role
    /// key) as PostgREST does. Returns the role and the whole claims object, which
    /// becomes `request.jwt.claims`.
    pub async fn data_api_claims(
        &self,
        token: &str,
    ) -> Result<(String, serde_json::Value), AuthError> {
        let (claims, raw) = self.api_token(token).await?;
        Ok((claims.role.unwrap_or_default(), raw))
    }

    /// An API token: signature and `exp` as for [`Self::verify`], no audience (API keys
    /// have none), a role Supabase issues, a user id for `authenticated`, and (for a
    /// user) a session that was not revoked.
    async fn api_token(&self, token: &str) -> Result<(Claims, serde_json::Value), AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let key = self.key_for(&header).await?;
        let mut validation = self.validation(header.alg);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let raw = decode::<serde_json::Value>(token, &key, &validation)?.claims;
        let claims = Claims::deserialize(&raw).map_err(|e| AuthError::Malformed(e.to_string()))?;
        match claims.role.as_deref() {
            Some(AUTHENTICATED) => {
                let session = claims.session()?;
                if let Some(revocations) = &self.revocations
                    && revocations.standing(&session).await == Standing::Revoked
                {
                    return Err(AuthError::Revoked);
                }
            }
            Some("anon" | "service_role") => {}
            _ => return Err(AuthError::Role),
        }
        Ok((claims, raw))
    }

    /// Verifies the token's signature and claims; returns the user and session it names.
    pub async fn verify(&self, token: &str) -> Result<TokenSession, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let key = self.key_for(&header).await?;
        let mut validation = self.validation(header.alg);
        validation.set_audience(&[AUTHENTICATED]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let claims = decode::<Claims>(token, &key, &validation)?.claims;
        if claims.role.as_deref() != Some(AUTHENTICATED) {
            return Err(AuthError::Role);
        }
        claims.session()
    }

    /// `supabase.auth.getUser(jwt)`: a valid token of an existing user.
    pub async fn user(&self, db: &mut RequestDb, token: &str) -> Result<User, AuthError> {
        let session = self.verify(token).await?;
        // The revocation check (Redis) and the user lookup (Postgres) are independent:
        // one round trip's time, not two. With Redis away the token stands (`Unknown`);
        // the Redis client has logged and counted that.
        let revoked = async {
            match &self.revocations {
                Some(revocations) => revocations.standing(&session).await == Standing::Revoked,
                None => false,
            }
        };
        let (revoked, exists) = tokio::join!(revoked, db.user_exists(session.user));
        if revoked {
            return Err(AuthError::Revoked);
        }
        if !exists? {
            return Err(AuthError::UnknownUser);
        }
        Ok(User { id: session.user })
    }

    /// The user behind an `Authorization` header value, with the legacy's parsing: the
    /// first `Bearer ` is removed, wherever it is, and nothing else.
    pub async fn user_from_header(
        &self,
        db: &mut RequestDb,
        header: &str,
    ) -> Result<User, AuthError> {
        let token = header.replacen("Bearer ", "", 1);
        let result = self.user(db, &token).await;
        if let Err(error) = &result {
            tracing::debug!(%error, "access token refused");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    const SECRET: &str = "unit-test-secret-with-at-least-32-characters";

    fn authenticator() -> Authenticator {
        let mut config = BackendConfig::default();
        config.auth.jwt_secret = Some(SECRET.into());
        Authenticator::new(&config, reqwest::Client::new())
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("signs")
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims(exp_in: i64) -> serde_json::Value {
        json!({"sub": "5f8c1a52-7c3e-4b6e-9a51-3d2f0c9b8e01", "aud": "authenticated", "role": "authenticated", "exp": now() + exp_in})
    }

    #[tokio::test]
    async fn accepts_a_valid_hs256_token() {
        let verified = authenticator()
            .verify(&token(claims(60), SECRET))
            .await
            .expect("valid");
        assert_eq!(
            verified.user.to_string(),
            "5f8c1a52-7c3e-4b6e-9a51-3d2f0c9b8e01"
        );
        assert_eq!(verified.session, None);
        let mut with_session = claims(60);
        with_session["session_id"] = json!("0b6f4c5e-2d1a-4f3b-8c9d-7e6a5b4c3d2e");
        with_session["iat"] = json!(now());
        let verified = authenticator()
            .verify(&token(with_session, SECRET))
            .await
            .expect("valid");
        assert_eq!(
            verified.session.map(|s| s.to_string()).as_deref(),
            Some("0b6f4c5e-2d1a-4f3b-8c9d-7e6a5b4c3d2e")
        );
        assert!(verified.issued_at.is_some());
    }

    #[tokio::test]
    async fn refuses_bad_tokens() {
        let auth = authenticator();
        assert!(
            auth.verify(&token(claims(-60), SECRET)).await.is_err(),
            "expired"
        );
        assert!(
            auth.verify(&token(claims(60), "another-secret-of-sufficient-length!!"))
                .await
                .is_err(),
            "wrong key"
        );
        let mut anon = claims(60);
        anon["role"] = json!("anon");
        assert!(matches!(
            auth.verify(&token(anon, SECRET)).await,
            Err(AuthError::Role)
        ));
        let mut other = claims(60);
        other["aud"] = json!("other");
        assert!(
            auth.verify(&token(other, SECRET)).await.is_err(),
            "audience"
        );
        let mut not_uuid = claims(60);
        not_uuid["sub"] = json!("admin");
        assert!(matches!(
            auth.verify(&token(not_uuid, SECRET)).await,
            Err(AuthError::Subject)
        ));
        assert!(auth.verify("not.a.jwt").await.is_err());
        // alg none: header {"alg":"none","typ":"JWT"}, no signature.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(claims(60).to_string())
        );
        assert!(auth.verify(&none).await.is_err(), "alg none");
        // An ES256 header without a configured JWKS finds no key.
        let es = format!(
            "{}.{}.c2ln",
            b64.encode(br#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#),
            b64.encode(claims(60).to_string())
        );
        assert!(matches!(auth.verify(&es).await, Err(AuthError::NoKey(_))));
    }

    #[tokio::test]
    async fn not_before_is_honoured_with_the_leeway() {
        // The configured leeway is 5 s (the default).
        let auth = authenticator();
        let with_nbf = |nbf_in: i64| {
            let mut claims = claims(3600);
            claims["nbf"] = json!(now() + nbf_in);
            token(claims, SECRET)
        };
        assert!(auth.verify(&with_nbf(-60)).await.is_ok(), "already valid");
        assert!(auth.verify(&with_nbf(2)).await.is_ok(), "within the leeway");
        assert!(matches!(
            auth.verify(&with_nbf(120)).await,
            Err(AuthError::Invalid(_))
        ));
        let mut realtime = claims(3600);
        realtime["nbf"] = json!(now() + 120);
        assert!(
            auth.realtime_identity(&token(realtime, SECRET))
                .await
                .is_err()
        );
    }
}
