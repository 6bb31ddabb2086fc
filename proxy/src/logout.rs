//! Sign-outs passed through to Supabase Auth, recorded as revocations the backend reads.
//!
//! supabase-js's `signOut()` sends `POST /auth/v1/logout?scope=global|local|others` with
//! the session's access token, and Supabase Auth answers 204. A Supabase access token
//! stays valid until it expires all the same, so when Auth accepts a sign-out (any 2xx)
//! the gateway records it in the Redis the backend reads its revocations from (the
//! backend's `sessions` module; same URL and key prefix):
//! - `scope=local`: the token's session (`revoked:session:<session_id>`, until the
//!   token's `exp`);
//! - `scope=global` (the default): every session of the user issued until now
//!   (`revoked:user:<sub>` = now, for the longest token lifetime);
//! - `scope=others` is left to Supabase Auth: revoking every session but one would
//!   revoke the caller's too.
//!
//! The record is written before the answer goes back, within `timeout_ms`, so the
//! client's next request is already refused; a Redis that does not take it in time is
//! logged, and the answer is sent all the same. The token is read, not
//! verified: Supabase Auth accepted it, or nothing is recorded.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret;

use crate::config::SessionsConfig;
use crate::identity::unverified_claims;
use crate::{Error, Result};

/// The path Supabase Auth signs out on.
pub const LOGOUT_PATH: &str = "/auth/v1/logout";

/// What a sign-out revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One session, until its token would have expired (seconds since the epoch).
    Session { id: uuid::Uuid, expires_at: i64 },
    /// Every session of the user issued until now.
    User { id: uuid::Uuid },
}

/// A sign-out on its way to Supabase Auth: what to revoke once Auth accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogout(pub Revocation);

impl PendingLogout {
    /// The revocation a `POST /auth/v1/logout` asks for, read from its bearer token and
    /// its `scope`; `None` for `scope=others`, an unknown scope or a token that names no
    /// user (or, for `local`, no session).
    pub fn of(authorization: Option<&str>, query: Option<&str>) -> Option<Self> {
        let token = authorization?.strip_prefix("Bearer ")?;
        let claims: Claims = unverified_claims(token)?;
        let scope = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("scope="))
            .unwrap_or("global");
        let user = claims
            .sub
            .as_deref()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())?;
        let revocation = match scope {
            "global" => Revocation::User { id: user },
            "local" => Revocation::Session {
                id: claims
                    .session_id
                    .as_deref()
                    .and_then(|s| uuid::Uuid::parse_str(s).ok())?,
                expires_at: claims.exp?,
            },
            _ => return None,
        };
        Some(Self(revocation))
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: Option<String>,
    session_id: Option<String>,
    exp: Option<i64>,
}

/// Writes accepted sign-outs to the backend's Redis.
pub struct LogoutRecorder {
    client: redis::Client,
    /// Made on first use, on the serving runtime (the gateway is built before it runs);
    /// a Redis that is away leaves it unmade, to be tried again by the next sign-out.
    redis: tokio::sync::OnceCell<ConnectionManager>,
    prefix: String,
    token_lifetime_secs: u64,
    timeout: Duration,
}

/// The Redis client's address may hold a password: it is never printed.
impl std::fmt::Debug for LogoutRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogoutRecorder(prefix {:?})", self.prefix)
    }
}

impl LogoutRecorder {
    /// A recorder for `config`, when sign-outs are to be recorded (`redis_url` set).
    /// Nothing is connected yet: the gateway starts without Redis.
    pub fn new(config: &SessionsConfig) -> Result<Option<Self>> {
        let Some(url) = &config.redis_url else {
            return Ok(None);
        };
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| Error::Config(format!("`sessions.redis_url`: {e}")))?;
        let timeout = Duration::from_millis(config.timeout_ms);
        Ok(Some(Self {
            client,
            redis: tokio::sync::OnceCell::new(),
            prefix: config.key_prefix.clone(),
            token_lifetime_secs: config.token_lifetime_secs,
            timeout,
        }))
    }

    /// The connection, made when first needed.
    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let manager = self
            .redis
            .get_or_try_init(|| {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(0);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(manager.clone())
    }

    /// Records `revocation`; whether Redis took it in time.
    pub async fn record(&self, revocation: &Revocation) -> bool {
        let now = chrono::Utc::now().timestamp();
        let (key, value, ttl) = match revocation {
            Revocation::Session { id, expires_at } => (
                format!("{}revoked:session:{id}", self.prefix),
                1,
                u64::try_from(expires_at - now).unwrap_or(0).max(1),
            ),
            Revocation::User { id } => (
                format!("{}revoked:user:{id}", self.prefix),
                now,
                self.token_lifetime_secs,
            ),
        };
        let write = async {
            let mut redis = self.connection().await?;
            redis.set_ex::<_, _, ()>(key, value, ttl).await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(%error, "a sign-out could not be recorded in Redis");
                false
            }
            Err(_) => {
                tracing::warn!("a sign-out could not be recorded in Redis in time");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn token(claims: serde_json::Value) -> String {
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("Bearer eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln")
    }

    #[test]
    fn the_scope_decides_what_is_revoked() {
        let user = "5f8c1a52-7c3e-4b6e-9a51-3d2f0c9b8e01";
        let session = "0b6f4c5e-2d1a-4f3b-8c9d-7e6a5b4c3d2e";
        let bearer =
            token(serde_json::json!({"sub": user, "session_id": session, "exp": 2000000000}));
        let header = Some(bearer.as_str());
        let everywhere = Revocation::User {
            id: user.parse().expect("uuid"),
        };
        assert_eq!(
            PendingLogout::of(header, None),
            Some(PendingLogout(everywhere.clone()))
        );
        assert_eq!(
            PendingLogout::of(header, Some("scope=global")),
            Some(PendingLogout(everywhere))
        );
        assert_eq!(
            PendingLogout::of(header, Some("x=1&scope=local")),
            Some(PendingLogout(Revocation::Session {
                id: session.parse().expect("uuid"),
                expires_at: 2_000_000_000
            }))
        );
        assert_eq!(PendingLogout::of(header, Some("scope=others")), None);
        assert_eq!(PendingLogout::of(header, Some("scope=everything")), None);
        assert_eq!(PendingLogout::of(None, None), None);
        assert_eq!(PendingLogout::of(Some("Bearer not-a-jwt"), None), None);
        let anon = token(serde_json::json!({"role": "anon"}));
        assert_eq!(PendingLogout::of(Some(anon.as_str()), None), None);
    }
}
