//! The project's signing keys (`GET /auth/v1/.well-known/jwks.json`), cached.
//!
//! Keys are fetched on first use and refreshed after `JWKS_CACHE_SECS`. A token whose
//! `kid` is unknown triggers one refetch (at most one per `JWKS_MIN_REFETCH_SECS`, so
//! made-up key ids cannot hammer Supabase); concurrent requests share that fetch. When
//! a fetch fails the cached keys stay in use: a JWKS outage does not lock users out.
//! Keys that do not parse, or whose type does not fit their `alg`, are skipped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::BackendConfig;

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct CachedKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, CachedKey>,
    fetched_at: Option<Instant>,
    /// Last fetch attempt, successful or not (for the refetch interval).
    attempted_at: Option<Instant>,
}

/// Cached JWKS of one URL.
#[derive(Clone)]
pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    ttl: Duration,
    min_refetch: Duration,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(url: String, http: reqwest::Client, config: &BackendConfig) -> Self {
        Self {
            url,
            http,
            ttl: Duration::from_secs(config.auth.jwks_cache_secs),
            min_refetch: Duration::from_secs(config.auth.jwks_min_refetch_secs),
            state: Arc::default(),
        }
    }

    /// The key with id `kid` for `algorithm`, fetching the set when needed.
    pub async fn key(&self, kid: &str, algorithm: Algorithm) -> Option<DecodingKey> {
        // Holding the lock across the fetch makes concurrent misses share one fetch.
        let mut state = self.state.lock().await;
        let stale = state.fetched_at.is_none_or(|at| at.elapsed() >= self.ttl);
        let unknown = !state.keys.contains_key(kid);
        let may_fetch = state
            .attempted_at
            .is_none_or(|at| at.elapsed() >= self.min_refetch);
        if (stale || unknown) && may_fetch {
            state.attempted_at = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    state.keys = keys;
                    state.fetched_at = Some(Instant::now());
                }
                Err(error) => {
                    tracing::warn!(url = %self.url, %error, "JWKS fetch failed; keeping cached keys");
                }
            }
        }
        state
            .keys
            .get(kid)
            .filter(|cached| cached.algorithm == algorithm)
            .map(|cached| cached.key.clone())
    }

    async fn fetch(&self) -> Result<HashMap<String, CachedKey>, String> {
        let response = self
            .http
            .get(&self.url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        let keys = body
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("no keys array")?;
        let mut parsed = HashMap::new();
        for raw in keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            if let Some((kid, cached)) = usable(&jwk) {
                parsed.insert(kid, cached);
            }
        }
        tracing::info!(url = %self.url, keys = parsed.len(), "JWKS fetched");
        Ok(parsed)
    }
}

/// A JWK with a `kid`, an ES256 or RS256 algorithm that fits its key type, and a key
/// that loads.
fn usable(jwk: &Jwk) -> Option<(String, CachedKey)> {
    let kid = jwk.common.key_id.clone()?;
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::EllipticCurve(_), Some(KeyAlgorithm::ES256) | None) => {
            Algorithm::ES256
        }
        (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS256) | None) => Algorithm::RS256,
        _ => return None,
    };
    if let AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm
        && ec.curve != jsonwebtoken::jwk::EllipticCurve::P256
    {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, CachedKey { algorithm, key }))
}
