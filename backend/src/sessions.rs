//! Revoked sessions, shared by every instance through Redis.
//!
//! A Supabase access token stays valid until it expires, signed out or not; the backend
//! refuses it earlier. A token is refused on every function route when
//! - its `session_id` was revoked (a sign-out of that session), or
//! - its user's sessions were revoked after the token was issued (`iat`): a sign-out
//!   everywhere, or an operator's `studyflow-backend sessions revoke user <id>`.
//!
//! Keys, under the deployment's Redis key prefix:
//! - `revoked:session:<session_id>` → `1`, expiring when the revoked token would have
//!   (else after `auth.token_lifetime_secs`, the longest a token lives);
//! - `revoked:user:<user_id>` → the Unix time of the revocation, expiring after
//!   `auth.token_lifetime_secs`, when no token issued before it can still be valid.
//!
//! Both are read in one round trip per authenticated request. With Redis unreachable a
//! token is accepted as Supabase itself would accept it (until `exp`): an outage of
//! Redis does not sign every user out. Such checks are counted as Redis errors
//! (`operation="revocation_check"`) and logged.

use redis::AsyncCommands;
use uuid::Uuid;

use crate::redis_client::RedisClient;

/// What a verified token says about its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSession {
    pub user: Uuid,
    /// Supabase's `session_id` claim; tokens of API keys and older projects have none.
    pub session: Option<Uuid>,
    /// `iat`, seconds since the Unix epoch.
    pub issued_at: Option<i64>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: i64,
}

/// Whether a token's session is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Valid,
    Revoked,
    /// Redis did not answer: the token is accepted until it expires, as by Supabase.
    Unknown,
}

/// Revocations in Redis; cheap to clone.
#[derive(Debug, Clone)]
pub struct Revocations {
    redis: RedisClient,
    /// The longest a token lives, seconds: the lifetime of a user-wide revocation.
    token_lifetime_secs: u64,
}

impl Revocations {
    pub fn new(redis: RedisClient, token_lifetime_secs: u64) -> Self {
        Self {
            redis,
            token_lifetime_secs,
        }
    }

    fn session_key(&self, session: Uuid) -> String {
        self.redis.key(&format!("revoked:session:{session}"))
    }

    fn user_key(&self, user: Uuid) -> String {
        self.redis.key(&format!("revoked:user:{user}"))
    }

    /// Revokes one session until `expires_at` (its token's `exp`), or for the longest
    /// token lifetime when that is unknown. `false` when Redis did not take it.
    pub async fn revoke_session(&self, session: Uuid, expires_at: Option<i64>) -> bool {
        let now = chrono::Utc::now().timestamp();
        let ttl = match expires_at {
            Some(exp) => u64::try_from(exp - now).unwrap_or(0).max(1),
            None => self.token_lifetime_secs,
        };
        let key = self.session_key(session);
        self.redis
            .run("revoke_session", |mut connection| async move {
                connection.set_ex::<_, _, ()>(key, 1, ttl).await
            })
            .await
            .is_some()
    }

    /// Revokes every session of `user` issued until now. `false` when Redis did not
    /// take it.
    pub async fn revoke_user(&self, user: Uuid) -> bool {
        let now = chrono::Utc::now().timestamp();
        let key = self.user_key(user);
        let ttl = self.token_lifetime_secs;
        self.redis
            .run("revoke_user", |mut connection| async move {
                connection.set_ex::<_, _, ()>(key, now, ttl).await
            })
            .await
            .is_some()
    }

    /// Whether `token`'s session, or its user's sessions, were revoked.
    pub async fn standing(&self, token: &TokenSession) -> Standing {
        let session_key = token.session.map_or_else(
            || self.redis.key("revoked:session:-"),
            |s| self.session_key(s),
        );
        let user_key = self.user_key(token.user);
        let answer = self
            .redis
            .run("revocation_check", |mut connection| async move {
                connection
                    .mget::<_, (Option<i64>, Option<i64>)>(&[session_key, user_key])
                    .await
            })
            .await;
        match answer {
            None => Standing::Unknown,
            Some((session, user)) => {
                let session_revoked = token.session.is_some() && session.is_some();
                // A token issued in the second of the revocation is revoked with it; one
                // without `iat` cannot show it came after.
                let user_revoked =
                    user.is_some_and(|at| token.issued_at.is_none_or(|iat| iat <= at));
                if session_revoked || user_revoked {
                    Standing::Revoked
                } else {
                    Standing::Valid
                }
            }
        }
    }
}
