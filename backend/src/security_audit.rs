//! Security events of the backend itself, written to `security_audit_log` (the table the
//! legacy `security-monitor` writes to) and counted in
//! [`crate::metrics::SECURITY_EVENTS_TOTAL`]: failed authentication, rate-limit hits, key
//! vault access and rotation.
//!
//! On request paths ([`SecurityAudit::record`]) the row is written in the background so
//! an attacker's failed logins cost them, not the answer's latency; at most
//! [`MAX_PENDING_WRITES`] writes are in flight, further events are counted but not
//! written ([`crate::metrics::SECURITY_AUDIT_DROPPED_TOTAL`]), so a flood cannot exhaust
//! the database pool. The vault CLI waits for its rows ([`SecurityAudit::write`]).
//! Shadow dry runs record nothing. Details never hold a secret: at most a fingerprint.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// Background writes in flight at most.
pub const MAX_PENDING_WRITES: usize = 32;

/// The kinds of event, as `event_type` in the table and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    AuthFailed,
    RateLimitExceeded,
    VaultRead,
    VaultReadFailed,
    VaultWrite,
    VaultList,
    VaultKeyRejected,
    VaultRotationStarted,
    VaultRotationCompleted,
    VaultRotationFinished,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AuthFailed => "auth_failed",
            EventType::RateLimitExceeded => "rate_limit_exceeded",
            EventType::VaultRead => "vault_read",
            EventType::VaultReadFailed => "vault_read_failed",
            EventType::VaultWrite => "vault_write",
            EventType::VaultList => "vault_list",
            EventType::VaultKeyRejected => "vault_key_rejected",
            EventType::VaultRotationStarted => "vault_rotation_started",
            EventType::VaultRotationCompleted => "vault_rotation_completed",
            EventType::VaultRotationFinished => "vault_rotation_finished",
        }
    }

    /// The row's `severity`.
    pub fn severity(self) -> &'static str {
        match self {
            EventType::VaultRead | EventType::VaultList => "low",
            EventType::AuthFailed | EventType::RateLimitExceeded | EventType::VaultWrite => {
                "medium"
            }
            EventType::VaultRotationStarted
            | EventType::VaultRotationCompleted
            | EventType::VaultRotationFinished => "medium",
            EventType::VaultReadFailed | EventType::VaultKeyRejected => "high",
        }
    }
}

/// One event.
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    pub event_type: EventType,
    pub user_id: Option<uuid::Uuid>,
    pub details: Value,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl SecurityEvent {
    pub fn new(event_type: EventType, details: Value) -> Self {
        Self {
            event_type,
            user_id: None,
            details,
            ip_address: None,
            user_agent: None,
        }
    }

    pub fn user(mut self, user_id: uuid::Uuid) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// The client's address (as [`crate::client_address`] establishes it, never read
    /// from a header the client could forge) and the request's user agent.
    pub fn client(mut self, address: Option<IpAddr>, headers: &axum::http::HeaderMap) -> Self {
        self.ip_address = address.map(|a| a.to_string());
        self.user_agent = headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self
    }
}

/// Writes security events. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SecurityAudit {
    pool: PgPool,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
}

impl SecurityAudit {
    pub fn new(pool: PgPool, metrics: Arc<Metrics>) -> Self {
        Self {
            pool,
            metrics,
            slots: Arc::new(Semaphore::new(MAX_PENDING_WRITES)),
        }
    }

    /// Counts the event and writes its row in the background.
    pub fn record(&self, event: SecurityEvent) {
        self.metrics.security_event(event.event_type.as_str());
        tracing::info!(
            event_type = event.event_type.as_str(),
            user_id = ?event.user_id,
            details = %event.details,
            "security event"
        );
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            self.metrics.security_audit_dropped("queue_full");
            return;
        };
        let audit = self.clone();
        tokio::spawn(async move {
            if let Err(error) = audit.insert(&event).await {
                audit.metrics.security_audit_dropped("database");
                tracing::warn!(%error, "writing a security event failed");
            }
            drop(slot);
        });
    }

    /// Counts the event and writes its row now.
    pub async fn write(&self, event: SecurityEvent) -> Result<(), sqlx::Error> {
        self.metrics.security_event(event.event_type.as_str());
        tracing::info!(
            event_type = event.event_type.as_str(),
            details = %event.details,
            "security event"
        );
        let result = self.insert(&event).await;
        if result.is_err() {
            self.metrics.security_audit_dropped("database");
        }
        result
    }

    async fn insert(&self, event: &SecurityEvent) -> Result<(), sqlx::Error> {
        sqlx::query(
            "insert into public.security_audit_log \
             (user_id, event_type, details, severity, ip_address, user_agent) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event.user_id)
        .bind(event.event_type.as_str())
        .bind(&event.details)
        .bind(event.event_type.severity())
        .bind(event.ip_address.as_deref())
        .bind(event.user_agent.as_deref())
        .execute(&self.pool)
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};
    use serde_json::json;

    use super::*;

    #[test]
    fn the_client_is_the_given_address_not_a_header() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        headers.insert("x-real-ip", HeaderValue::from_static("10.0.0.2"));
        headers.insert("user-agent", HeaderValue::from_static("test"));
        let address = "198.51.100.3".parse().ok();
        let event = SecurityEvent::new(EventType::AuthFailed, json!({})).client(address, &headers);
        assert_eq!(event.ip_address.as_deref(), Some("198.51.100.3"));
        let event = SecurityEvent::new(EventType::AuthFailed, json!({})).client(None, &headers);
        assert_eq!(event.ip_address, None);
        assert_eq!(event.user_agent.as_deref(), Some("test"));
        assert_eq!(EventType::VaultKeyRejected.severity(), "high");
    }
}
