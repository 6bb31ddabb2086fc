//! The configuration's sections, each with its defaults and its own checks of what one
//! value alone cannot say (a minimum below a maximum, a key that must decode).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{ShadowProviderMode, at_least_one, bad, values};
use crate::ai_types::{AiUse, ChainEntry};
use crate::client_address::TrustedProxies;
use crate::vault::MasterKey;
use crate::{Error, Result};

/// The origins the *allow-list* CORS variant accepts when `ALLOWED_ORIGINS` is unset.
pub const DEFAULT_ALLOWED_ORIGINS: &str = "http://localhost:5173,http://localhost:5174,http://localhost:3000,https://study-flow-ai.vercel.app,https://study-flow-ai-git-main.vercel.app,https://study-flow-ai-production.vercel.app";

/// The proxies trusted to name the client when `TRUSTED_PROXIES` is unset: a gateway on
/// the same host.
pub const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.1/32,::1/128";

/// The shortest accepted `SHADOW_SECRET`.
pub const MIN_SHADOW_SECRET_CHARS: usize = 16;

fn comma_list(text: &str) -> Vec<String> {
    text.split(',').map(str::to_owned).collect()
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port` to listen on (port 0: any free port, announced on stdout).
    pub listen_addr: SocketAddr,
    /// Origins the allow-list CORS variant accepts.
    #[serde(deserialize_with = "values::list")]
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Addresses and CIDR ranges of the proxies (the gateway) whose `X-Forwarded-For`
    /// names the client (see [`crate::client_address`]); empty: none.
    #[serde(deserialize_with = "values::trusted_proxies")]
    pub trusted_proxies: TrustedProxies,
    pub json_logs: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8002)),
            allowed_origins: comma_list(DEFAULT_ALLOWED_ORIGINS),
            max_body_bytes: 1024 * 1024,
            trusted_proxies: TrustedProxies::parse(DEFAULT_TRUSTED_PROXIES)
                .expect("the default trusted proxies parse"),
            json_logs: false,
        }
    }
}

impl ServerConfig {
    fn check(&self) -> Result<()> {
        if self.max_body_bytes < 1024 {
            return bad("MAX_BODY_BYTES", "must be at least 1024".into());
        }
        Ok(())
    }
}

/// The Postgres pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    /// Statement timeout set on every pooled connection, milliseconds (0: none).
    pub statement_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/studyflow".into(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout_secs: 3,
            idle_timeout_secs: 600,
            statement_timeout_ms: 30_000,
        }
    }
}

impl DatabaseConfig {
    fn check(&self) -> Result<()> {
        at_least_one(&[
            ("DB_MAX_CONNECTIONS", u64::from(self.max_connections)),
            ("DB_ACQUIRE_TIMEOUT_SECS", self.acquire_timeout_secs),
        ])?;
        if self.min_connections > self.max_connections {
            return bad(
                "DB_MIN_CONNECTIONS",
                "must not exceed DB_MAX_CONNECTIONS".into(),
            );
        }
        Ok(())
    }
}

/// Redis (rate limits, realtime bus, revocations).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub url: SecretString,
    /// Prepended to every Redis key, so several deployments (or tests) share a server.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "studyflow:".into(),
        }
    }
}

impl RedisConfig {
    fn check(&self) -> Result<()> {
        if self.key_prefix.contains(char::is_whitespace) {
            return bad("REDIS_KEY_PREFIX", "must not contain whitespace".into());
        }
        Ok(())
    }
}

/// Verifying Supabase access tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret of the Supabase project (legacy projects sign access tokens with it).
    #[serde(deserialize_with = "values::optional_secret")]
    pub jwt_secret: Option<SecretString>,
    /// `https://<ref>.supabase.co/auth/v1/.well-known/jwks.json` for ES256/RS256 tokens.
    #[serde(deserialize_with = "values::optional_http_url")]
    pub jwks_url: Option<url::Url>,
    /// Clock skew tolerated on `exp`, seconds.
    pub jwt_leeway_secs: u64,
    /// How long fetched signing keys are used before they are refreshed.
    pub jwks_cache_secs: u64,
    /// Least time between two JWKS fetches caused by unknown key ids.
    pub jwks_min_refetch_secs: u64,
    /// The longest an access token lives (the project's JWT expiry), seconds: how long
    /// a revocation of all of a user's sessions is kept (see [`crate::sessions`]).
    pub token_lifetime_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwks_url: None,
            jwt_leeway_secs: 5,
            jwks_cache_secs: 600,
            jwks_min_refetch_secs: 10,
            token_lifetime_secs: 3600,
        }
    }
}

impl AuthConfig {
    fn check(&self) -> Result<()> {
        at_least_one(&[("JWT_EXPIRY_SECS", self.token_lifetime_secs)])
    }
}

/// Password and salt of the `encryption` function's PBKDF2 key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    #[serde(deserialize_with = "values::optional_secret")]
    pub key: Option<SecretString>,
    #[serde(deserialize_with = "values::optional_secret")]
    pub salt: Option<SecretString>,
}

/// One AI provider's key and, for tests and private deployments, its address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderAccess {
    #[serde(deserialize_with = "values::optional_secret")]
    pub api_key: Option<SecretString>,
    /// Replaces scheme, host and port of the real endpoints (the path is ignored, as by
    /// the legacy's `new URL(base).origin`).
    #[serde(deserialize_with = "values::optional_http_url")]
    pub base_url: Option<url::Url>,
}

/// The AI providers' accounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    pub deepseek: ProviderAccess,
    pub openai: ProviderAccess,
    pub anthropic: ProviderAccess,
    pub gemini: ProviderAccess,
    /// The legacy name of `ANTHROPIC_API_KEY`; used when that one is unset.
    #[serde(deserialize_with = "values::optional_secret")]
    pub claude_api_key: Option<SecretString>,
    /// Whole-request timeout of one provider call, seconds.
    pub timeout_secs: u64,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self {
            deepseek: ProviderAccess::default(),
            openai: ProviderAccess::default(),
            anthropic: ProviderAccess::default(),
            gemini: ProviderAccess::default(),
            claude_api_key: None,
            timeout_secs: 120,
        }
    }
}

impl ProvidersConfig {
    /// The Anthropic key: `ANTHROPIC_API_KEY`, else the legacy `CLAUDE_API_KEY`.
    pub fn anthropic_key(&self) -> Option<&SecretString> {
        self.anthropic
            .api_key
            .as_ref()
            .or(self.claude_api_key.as_ref())
    }

    fn check(&self) -> Result<()> {
        at_least_one(&[("PROVIDER_TIMEOUT_SECS", self.timeout_secs)])
    }
}

/// Retries of one provider after a 429, a 5xx, a timeout or a network error.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    pub max: u32,
    /// First backoff delay; it doubles with each retry, with jitter.
    pub base_ms: u64,
    /// Longest wait before a retry; a longer `Retry-After` moves on to the next provider.
    pub max_delay_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max: 2,
            base_ms: 200,
            max_delay_ms: 5_000,
        }
    }
}

/// The circuit breaker each provider has.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open it.
    pub failures: u32,
    /// Failure share over the window that opens it (0–1) …
    pub error_rate: f64,
    /// … once the window holds at least this many calls.
    pub min_calls: u32,
    pub window_secs: u64,
    /// How long an open breaker refuses calls before it lets probes through.
    pub open_secs: u64,
    /// Probe calls let through at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            error_rate: 0.5,
            min_calls: 10,
            window_secs: 60,
            open_secs: 30,
            half_open_probes: 1,
        }
    }
}

/// How the AI functions use the providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// Provider chains, one per use, tried in order (see [`crate::providers::chain`]).
    /// The legacy functions' chains start with the provider the legacy calls; with that
    /// one alone (the default) they call it exactly as the legacy does, with no retry
    /// and no fallback. A use left out keeps its default chain.
    #[serde(deserialize_with = "values::chains")]
    pub chains: BTreeMap<AiUse, Vec<ChainEntry>>,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
    /// Time one attempt has for its answer (or, streaming, its first token).
    pub attempt_timeout_ms: u64,
    /// Time the whole chain has (retries, waits and fallbacks included) for an answer or
    /// a first token.
    pub deadline_ms: u64,
    /// Longest silence between two streamed chunks before the stream is ended in error.
    pub stream_idle_timeout_ms: u64,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            chains: AiUse::ALL
                .into_iter()
                .map(|ai_use| (ai_use, Self::default_chain(ai_use)))
                .collect(),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            attempt_timeout_ms: 30_000,
            deadline_ms: 60_000,
            stream_idle_timeout_ms: 30_000,
        }
    }
}

impl AiConfig {
    /// The chain a use has when none is configured.
    pub fn default_chain(ai_use: AiUse) -> Vec<ChainEntry> {
        let text = match ai_use {
            AiUse::TutorStream => "deepseek,openai,anthropic,gemini",
            AiUse::Tutor => "deepseek",
            AiUse::Analytics | AiUse::Recommendations => "openai",
        };
        ChainEntry::parse_list(text).expect("the default chains parse")
    }

    /// The chain of `ai_use` (every use has one once the configuration is loaded).
    pub fn chain(&self, ai_use: AiUse) -> &[ChainEntry] {
        self.chains.get(&ai_use).map_or(&[], Vec::as_slice)
    }

    /// Gives each use left out of the file and the environment its default chain.
    pub(super) fn complete_chains(&mut self) {
        for ai_use in AiUse::ALL {
            self.chains
                .entry(ai_use)
                .or_insert_with(|| Self::default_chain(ai_use));
        }
    }

    fn check(&self) -> Result<()> {
        for ai_use in AiUse::ALL {
            if let Some(legacy) = ai_use.legacy_provider()
                && self.chain(ai_use).first().map(|e| e.provider) != Some(legacy)
            {
                return bad(
                    ai_use.config_key(),
                    format!(
                        "must start with {}, the provider the legacy function calls",
                        legacy.label()
                    ),
                );
            }
        }
        at_least_one(&[
            ("AI_ATTEMPT_TIMEOUT_MS", self.attempt_timeout_ms),
            ("AI_DEADLINE_MS", self.deadline_ms),
            ("AI_STREAM_IDLE_TIMEOUT_MS", self.stream_idle_timeout_ms),
            ("AI_RETRY_BASE_MS", self.retry.base_ms),
            ("AI_BREAKER_WINDOW_SECS", self.breaker.window_secs),
            ("AI_BREAKER_OPEN_SECS", self.breaker.open_secs),
            ("AI_BREAKER_FAILURES", u64::from(self.breaker.failures)),
            (
                "AI_BREAKER_HALF_OPEN_PROBES",
                u64::from(self.breaker.half_open_probes),
            ),
        ])?;
        if self.retry.max_delay_ms < self.retry.base_ms {
            return bad(
                "AI_RETRY_MAX_DELAY_MS",
                "must not be below AI_RETRY_BASE_MS".into(),
            );
        }
        if !(self.breaker.error_rate > 0.0 && self.breaker.error_rate <= 1.0) {
            return bad(
                "AI_BREAKER_ERROR_RATE",
                "must be above 0 and at most 1".into(),
            );
        }
        Ok(())
    }
}

/// The provider key vault.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    /// Master key: base64 of 32 random bytes (belongs in the environment).
    #[serde(rename = "master_key", deserialize_with = "values::optional_secret")]
    master_key_text: Option<SecretString>,
    /// The version number of the master key, recorded with every ciphertext.
    pub key_version: u32,
    /// How often a running backend re-reads the vault.
    pub refresh_secs: u64,
    /// The master key, decoded once when the configuration is loaded.
    #[serde(skip)]
    master_key: Option<MasterKey>,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            master_key_text: None,
            key_version: 1,
            refresh_secs: 60,
            master_key: None,
        }
    }
}

impl VaultConfig {
    /// The master key, if one is configured.
    pub fn master_key(&self) -> Option<&MasterKey> {
        self.master_key.as_ref()
    }

    /// Sets the master key (base64 text) as if configured; checked like a loaded one.
    pub fn set_master_key(&mut self, text: Option<SecretString>) -> Result<()> {
        self.master_key_text = text;
        self.decode()
    }

    /// Decodes the configured key with its version.
    pub(super) fn decode(&mut self) -> Result<()> {
        at_least_one(&[
            ("VAULT_REFRESH_SECS", self.refresh_secs),
            ("VAULT_KEY_VERSION", u64::from(self.key_version)),
        ])?;
        self.master_key = match &self.master_key_text {
            Some(text) => Some(
                MasterKey::from_base64(text, self.key_version)
                    .map_err(|why| Error::Config(format!("VAULT_MASTER_KEY: {why}")))?,
            ),
            None => None,
        };
        Ok(())
    }
}

/// Dry runs: the gateway's shadow copies.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShadowConfig {
    /// The secret the gateway sends as `x-studyflow-shadow` on its shadow copies; only a
    /// request carrying it runs as a dry run (see [`crate::shadow`]). Unset: the marker is
    /// never honoured. At least 16 characters.
    #[serde(deserialize_with = "values::optional_secret")]
    pub secret: Option<SecretString>,
    /// Provider calls of shadowed requests (dry runs): `live` or `skip`.
    pub provider_calls: ShadowProviderMode,
    /// Per-function exceptions, `ai-proxy=live,ai-tutor-professional=skip`.
    #[serde(deserialize_with = "values::shadow_overrides")]
    pub provider_overrides: BTreeMap<String, ShadowProviderMode>,
    /// `live` provider calls of shadowed requests allowed per function and minute, and
    /// per function and UTC day, on this instance; past either, the call is skipped.
    pub live_per_minute: u32,
    pub live_per_day: u32,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            secret: None,
            provider_calls: ShadowProviderMode::Skip,
            provider_overrides: BTreeMap::new(),
            live_per_minute: 30,
            live_per_day: 2_000,
        }
    }
}

impl ShadowConfig {
    fn check(&self) -> Result<()> {
        if let Some(secret) = &self.secret
            && secret.expose_secret().chars().count() < MIN_SHADOW_SECRET_CHARS
        {
            return bad(
                "SHADOW_SECRET",
                format!("must be at least {MIN_SHADOW_SECRET_CHARS} characters"),
            );
        }
        Ok(())
    }
}

/// Prompt templates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptsConfig {
    /// A directory of templates (`<function>.jinja`) replacing the shipped ones of
    /// `backend/prompts` ([`crate::prompts`]).
    pub dir: Option<PathBuf>,
}

/// `semantic-search`'s embedding model.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// all-MiniLM-L6-v2's files (`scripts/setup.sh` installs them); unset, the function
    /// answers 503 and `/ready` says so.
    pub model_dir: Option<PathBuf>,
    /// Queued requests computed in one forward pass, at most.
    pub max_batch: usize,
    /// Longest query, in characters (longer: 413).
    pub max_query_chars: usize,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self {
            model_dir: None,
            max_batch: 16,
            max_query_chars: 10_000,
        }
    }
}

/// WebSocket study rooms.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// A connection that sends nothing (not even a heartbeat) for this long is closed and
    /// its presence removed, seconds.
    pub heartbeat_timeout_secs: u64,
    /// Largest accepted WebSocket message, bytes (larger ones close the socket).
    pub max_message_bytes: usize,
    /// Messages one connection may send per second before it is closed.
    pub max_events_per_sec: u32,
    /// Frames queued for one connection before it counts as too slow and is disconnected
    /// (a slow client never slows its room).
    pub send_queue: usize,
    /// `public` tables clients may follow with `postgres_changes` (each needs the
    /// `studyflow_realtime_notify` trigger).
    #[serde(deserialize_with = "values::table_names")]
    pub tables: Vec<String>,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout_secs: 60,
            max_message_bytes: 64 * 1024,
            max_events_per_sec: 100,
            send_queue: 256,
            tables: vec!["notifications".into()],
        }
    }
}

impl RealtimeConfig {
    fn check(&self) -> Result<()> {
        at_least_one(&[
            (
                "REALTIME_HEARTBEAT_TIMEOUT_SECS",
                self.heartbeat_timeout_secs,
            ),
            (
                "REALTIME_MAX_EVENTS_PER_SEC",
                u64::from(self.max_events_per_sec),
            ),
            ("REALTIME_SEND_QUEUE", self.send_queue as u64),
        ])?;
        if self.max_message_bytes < 1024 {
            return bad("REALTIME_MAX_MESSAGE_BYTES", "must be at least 1024".into());
        }
        Ok(())
    }
}

impl super::BackendConfig {
    /// Checks what single values cannot: every section in turn, so a mistake is named
    /// before anything serves.
    pub(super) fn check_sections(&mut self) -> Result<()> {
        self.ai.complete_chains();
        self.server.check()?;
        self.database.check()?;
        self.redis.check()?;
        self.auth.check()?;
        self.providers.check()?;
        self.ai.check()?;
        self.vault.decode()?;
        self.shadow.check()?;
        self.realtime.check()
    }
}
