//! The per-user AI rate limit: at most [`LIMIT`] requests in any [`WINDOW`] (sliding),
//! the contract's intentional fix of ai-proxy's limit that never triggered.
//!
//! The count lives in Redis, in one sorted set per user updated by a Lua script, so
//! concurrent requests on any number of backend instances are counted atomically. When
//! Redis is away the backend keeps answering with an in-process sliding window (per
//! instance, so a little more permissive) and reports itself degraded on `/ready`.
//! A dry run (shadowed request) only reads the count: it never adds to it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::redis_client::RedisClient;

/// Requests allowed per user within [`WINDOW`].
pub const LIMIT: u32 = 60;
/// The sliding window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// In-process windows kept before stale ones are swept.
const MEMORY_SWEEP_AT: usize = 10_000;

/// KEYS[1] the user's set; ARGV: window ms, limit, unique member, dry run (0/1).
/// Uses the server's clock so every instance counts on the same time line.
const SCRIPT: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if ARGV[4] == '1' then
  local count = redis.call('ZCOUNT', KEYS[1], '(' .. (now_ms - window), '+inf')
  if count >= limit then return 0 end
  return 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window)
if redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now_ms, now_ms .. '-' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 1
";

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused by the named limiter (`redis` or `memory`).
    Limited(&'static str),
}

/// The shared limiter.
#[derive(Debug, Clone)]
pub struct AiRateLimiter {
    redis: RedisClient,
    script: Arc<redis::Script>,
    memory: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl AiRateLimiter {
    pub fn new(redis: RedisClient) -> Self {
        Self {
            redis,
            script: Arc::new(redis::Script::new(SCRIPT)),
            memory: Arc::default(),
        }
    }

    /// Counts one request of `user` (only checks when `dry_run`).
    pub async fn check(&self, user: &str, dry_run: bool) -> Decision {
        let key = self.redis.key(&format!("ratelimit:ai:{user}"));
        let member = uuid::Uuid::new_v4().simple().to_string();
        let script = self.script.clone();
        let answer = self
            .redis
            .run("rate_limit", |mut connection| async move {
                script
                    .key(&key)
                    .arg(WINDOW.as_millis() as u64)
                    .arg(LIMIT)
                    .arg(member)
                    .arg(if dry_run { "1" } else { "0" })
                    .invoke_async::<i64>(&mut connection)
                    .await
            })
            .await;
        match answer {
            Some(1) => Decision::Allowed,
            Some(_) => Decision::Limited("redis"),
            None => self.check_in_memory(user, dry_run),
        }
    }

    /// The fallback window, per process.
    fn check_in_memory(&self, user: &str, dry_run: bool) -> Decision {
        let now = Instant::now();
        let Ok(mut windows) = self.memory.lock() else {
            // A poisoned lock only means another request panicked mid-update; allow.
            return Decision::Allowed;
        };
        if windows.len() >= MEMORY_SWEEP_AT {
            windows.retain(|_, hits| {
                hits.back()
                    .is_some_and(|last| now.duration_since(*last) < WINDOW)
            });
        }
        let hits = windows.entry(user.to_owned()).or_default();
        while hits
            .front()
            .is_some_and(|first| now.duration_since(*first) >= WINDOW)
        {
            hits.pop_front();
        }
        if hits.len() >= LIMIT as usize {
            return Decision::Limited("memory");
        }
        if !dry_run {
            hits.push_back(now);
        }
        Decision::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendConfig;
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn without_redis_the_in_process_window_limits() {
        let mut config = BackendConfig::default();
        // Nothing listens on port 1.
        config.redis.url = "redis://127.0.0.1:1".into();
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let limiter = AiRateLimiter::new(RedisClient::new(&config, metrics).expect("client"));
        for _ in 0..LIMIT {
            assert_eq!(limiter.check("u1", false).await, Decision::Allowed);
        }
        assert_eq!(
            limiter.check("u1", false).await,
            Decision::Limited("memory")
        );
        assert_eq!(limiter.check("u1", true).await, Decision::Limited("memory"));
        // Other users have their own window; a dry run does not count.
        for _ in 0..LIMIT + 5 {
            assert_eq!(limiter.check("u2", true).await, Decision::Allowed);
        }
        assert_eq!(limiter.check("u2", false).await, Decision::Allowed);
    }
}
