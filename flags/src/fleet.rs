//! Overrides shared by a fleet of gateways through Redis.
//!
//! Every gateway instance behind the load balancer points at the same Redis and key
//! prefix. The overrides are one hash (`<prefix>:overrides`, route → override JSON), the
//! audit log one list (`<prefix>:audit`, newest first, trimmed), and every change is
//! announced on the channel `<prefix>:changes`. A change is written (hash and audit in one
//! `MULTI`) before it is announced, so an instance that hears the announcement, or that
//! reconnects after missing some, only has to re-read the hash: the stored state is the
//! truth and the message is only a nudge. Parallel fleets (or tests) use distinct
//! prefixes.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::{Mutex, Notify};

use crate::source::{FlagSource, Layer, SourceKind};
use crate::state::{Change, OverrideStore, override_layer};
use crate::{AuditEntry, Error, Override, Result};

/// How many audit entries the fleet keeps (oldest dropped first).
const AUDIT_KEPT: isize = 5000;

/// Overrides and audit in Redis, with change announcements.
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    conn: Mutex<Option<ConnectionManager>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: only the prefix is shown.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn fleet_error(context: &str, source: redis::RedisError) -> Error {
    Error::Fleet {
        context: context.to_owned(),
        source,
    }
}

impl RedisStore {
    /// A store at `url` under `prefix`. Nothing is connected yet: a Redis that is down at
    /// start is an error of the first call, not of start-up.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| fleet_error("redis_url", e))?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            timeout,
            conn: Mutex::new(None),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// The channel change announcements go to.
    pub fn channel(&self) -> String {
        self.key("changes")
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(|e| fleet_error("connecting to redis", e))?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the cached connection; the next call connects again (on the caller's
    /// runtime).
    pub async fn disconnect(&self) {
        *self.conn.lock().await = None;
    }

    /// Announces a change to every instance (this one included).
    async fn announce(&self, routes: &[String]) -> Result<()> {
        let mut conn = self.connection().await?;
        let message = serde_json::json!({ "routes": routes }).to_string();
        let _: i64 = conn
            .publish(self.channel(), message)
            .await
            .map_err(|e| fleet_error("announcing the change", e))?;
        Ok(())
    }

    /// Listens for announcements until the connection drops, and returns why it stopped.
    /// `wake` is notified once subscribed (the caller then re-reads the stored state,
    /// which covers whatever was missed while disconnected) and on every announcement.
    pub async fn listen(&self, wake: &Notify) -> Error {
        let pubsub = match tokio::time::timeout(self.timeout, self.client.get_async_pubsub()).await
        {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => return fleet_error("subscribing", e),
            Err(_) => return Error::FleetSubscription("subscribing: timed out"),
        };
        let (mut sink, mut stream) = pubsub.split();
        if let Err(e) = sink.subscribe(self.channel()).await {
            return fleet_error("subscribing", e);
        }
        wake.notify_one();
        while stream.next().await.is_some() {
            wake.notify_one();
        }
        Error::FleetSubscription("subscription connection closed")
    }
}

#[async_trait]
impl OverrideStore for RedisStore {
    async fn load(&self) -> Result<BTreeMap<String, Override>> {
        let mut conn = self.connection().await?;
        let raw: BTreeMap<String, String> = conn
            .hgetall(self.key("overrides"))
            .await
            .map_err(|e| fleet_error("reading overrides", e))?;
        raw.into_iter()
            .map(|(route, text)| {
                serde_json::from_str(&text)
                    .map(|o| (route.clone(), o))
                    .map_err(|source| Error::FleetEntry {
                        route: route.clone(),
                        source,
                    })
            })
            .collect()
    }

    async fn apply(&self, changes: Vec<Change>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut conn = self.connection().await?;
        let (overrides, audit) = (self.key("overrides"), self.key("audit"));
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut routes = Vec::with_capacity(changes.len());
        for (route, change, entry) in &changes {
            match change {
                Some(o) => {
                    let text = serde_json::to_string(o).map_err(Error::Encode)?;
                    pipe.hset(&overrides, route, text).ignore();
                }
                None => {
                    pipe.hdel(&overrides, route).ignore();
                }
            }
            let text = serde_json::to_string(entry).map_err(Error::Encode)?;
            pipe.lpush(&audit, text).ignore();
            routes.push(route.clone());
        }
        pipe.ltrim(&audit, 0, AUDIT_KEPT - 1).ignore();
        let () = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| fleet_error("writing the change", e))?;
        self.announce(&routes).await
    }

    async fn audit(&self, route: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut conn = self.connection().await?;
        let raw: Vec<String> = conn
            .lrange(self.key("audit"), 0, AUDIT_KEPT - 1)
            .await
            .map_err(|e| fleet_error("reading the audit log", e))?;
        Ok(raw
            .iter()
            .filter_map(|text| serde_json::from_str::<AuditEntry>(text).ok())
            .filter(|e| route.is_none_or(|r| e.route == r))
            .take(limit)
            .collect())
    }
}

#[async_trait]
impl FlagSource for RedisStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Override
    }

    async fn fetch(&self) -> Result<Layer> {
        Ok(override_layer(&OverrideStore::load(self).await?))
    }
}
