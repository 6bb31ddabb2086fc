//! The backend's Redis connection: one multiplexed connection that (re)connects lazily,
//! with short timeouts so a Redis outage degrades the service instead of stalling it.
//!
//! Callers treat every error as "Redis is away" and fall back (see [`crate::rate_limit`]);
//! errors are counted in [`crate::metrics::REDIS_ERRORS_TOTAL`].

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;

use crate::Result;
use crate::config::BackendConfig;
use crate::metrics::Metrics;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Upper bound of one operation, reconnection attempts included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(1);

/// Shared Redis access with the deployment's key prefix.
#[derive(Clone)]
pub struct RedisClient {
    manager: ConnectionManager,
    prefix: Arc<str>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// Prepares the connection without connecting: the backend starts without Redis.
    pub fn new(config: &BackendConfig, metrics: Arc<Metrics>) -> Result<Self> {
        let client = redis::Client::open(config.redis.url.expose_secret())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self {
            manager,
            prefix: config.redis.key_prefix.as_str().into(),
            metrics,
        })
    }

    /// `<prefix><name>`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs one operation with the bounded timeout; failures are counted under
    /// `operation` and returned as `None`.
    pub async fn run<T, F, Fut>(&self, operation: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(OPERATION_TIMEOUT, f(self.manager.clone())).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                tracing::warn!(operation, %error, "redis operation failed");
                self.metrics.redis_error(operation);
                None
            }
            Err(_) => {
                tracing::warn!(operation, "redis operation timed out");
                self.metrics.redis_error(operation);
                None
            }
        }
    }

    /// Whether Redis answers `PING` now.
    pub async fn ping(&self) -> bool {
        self.run("ping", |mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .is_some()
    }
}
