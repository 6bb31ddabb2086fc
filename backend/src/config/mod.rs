//! Typed backend configuration.
//!
//! Layers: defaults, then an optional YAML file (`STUDYFLOW_BACKEND_CONFIG`, keys in lower
//! case), then plain environment variables named as in the README (`DATABASE_URL`,
//! `REDIS_URL`, `OPENAI_API_KEY`, …), so the backend runs from the environment alone.
//! [`BackendConfig::load`] validates everything once; a bad value stops start-up with a
//! message naming the variable. Secrets are [`SecretString`]s: they never print.

use std::collections::BTreeMap;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use secrecy::SecretString;
use serde::Deserialize;

use crate::ai_types::{AiUse, ChainEntry};
use crate::client_address::TrustedProxies;
use crate::{Error, Result};

/// The origins the *allow-list* CORS variant accepts when `ALLOWED_ORIGINS` is unset.
pub const DEFAULT_ALLOWED_ORIGINS: &str = "http://localhost:5173,http://localhost:5174,http://localhost:3000,https://study-flow-ai.vercel.app,https://study-flow-ai-git-main.vercel.app,https://study-flow-ai-production.vercel.app";

/// The proxies trusted to name the client when `TRUSTED_PROXIES` is unset: a gateway on
/// the same host.
pub const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.1/32,::1/128";

/// The shortest accepted `SHADOW_SECRET`.
pub const MIN_SHADOW_SECRET_CHARS: usize = 16;

/// The functions the backend serves: the legacy ones by their legacy names, then the new
/// routes that have no legacy twin (`ai-tutor-stream`).
pub const FUNCTIONS: [&str; 9] = [
    "ai-tutor-professional",
    "ai-proxy",
    "ai-proxy-secure",
    "ai-study-analytics",
    "ai-study-recommendations",
    "auth-validation",
    "encryption",
    "security-monitor",
    "ai-tutor-stream",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BackendConfig {
    /// `host:port` to listen on.
    pub listen_addr: String,
    pub database_url: SecretString,
    pub redis_url: SecretString,
    /// Prepended to every Redis key, so several deployments (or tests) share a server.
    pub redis_key_prefix: String,
    /// Comma-separated origins for the allow-list CORS variant.
    pub allowed_origins: String,

    /// HS256 secret of the Supabase project (legacy projects sign access tokens with it).
    pub supabase_jwt_secret: Option<SecretString>,
    /// `https://<ref>.supabase.co/auth/v1/.well-known/jwks.json` for ES256/RS256 tokens.
    pub supabase_jwks_url: Option<String>,
    /// Clock skew tolerated on `exp`, seconds.
    pub jwt_leeway_secs: u64,
    /// How long fetched signing keys are used before they are refreshed.
    pub jwks_cache_secs: u64,
    /// Least time between two JWKS fetches caused by unknown key ids.
    pub jwks_min_refetch_secs: u64,

    /// Password and salt of the encryption function's PBKDF2 key.
    pub encryption_key: Option<SecretString>,
    pub encryption_salt: Option<SecretString>,

    pub deepseek_api_key: Option<SecretString>,
    pub deepseek_base_url: Option<String>,
    pub openai_api_key: Option<SecretString>,
    pub openai_base_url: Option<String>,
    pub anthropic_api_key: Option<SecretString>,
    /// The legacy name of `ANTHROPIC_API_KEY`; used when that one is unset.
    pub claude_api_key: Option<SecretString>,
    pub anthropic_base_url: Option<String>,
    pub gemini_api_key: Option<SecretString>,
    pub gemini_base_url: Option<String>,
    /// Whole-request timeout of one provider call, seconds.
    pub provider_timeout_secs: u64,

    /// Provider chains, one per use: `provider[:model]`, comma-separated, tried in order
    /// (see [`crate::providers::chain`]). The legacy functions' chains start with the
    /// provider the legacy calls; with that one alone (the default) they call it exactly
    /// as the legacy does, with no retry and no fallback.
    pub ai_chain_tutor_stream: String,
    pub ai_chain_tutor: String,
    pub ai_chain_analytics: String,
    pub ai_chain_recommendations: String,
    /// Retries of one provider after a 429, a 5xx, a timeout or a network error.
    pub ai_retry_max: u32,
    /// First backoff delay; it doubles with each retry, with jitter.
    pub ai_retry_base_ms: u64,
    /// Longest wait before a retry; a longer `Retry-After` moves on to the next provider.
    pub ai_retry_max_delay_ms: u64,
    /// Time one attempt has for its answer (or, streaming, its first token).
    pub ai_attempt_timeout_ms: u64,
    /// Time the whole chain has (retries, waits and fallbacks included) for an answer or
    /// a first token.
    pub ai_deadline_ms: u64,
    /// Longest silence between two streamed chunks before the stream is ended in error.
    pub ai_stream_idle_timeout_ms: u64,
    /// Circuit breaker: consecutive failures that open it.
    pub ai_breaker_failures: u32,
    /// Circuit breaker: failure share over the window that opens it (0–1) …
    pub ai_breaker_error_rate: f64,
    /// … once the window holds at least this many calls.
    pub ai_breaker_min_calls: u32,
    pub ai_breaker_window_secs: u64,
    /// How long an open breaker refuses calls before it lets probes through.
    pub ai_breaker_open_secs: u64,
    /// Probe calls let through at once while half-open.
    pub ai_breaker_half_open_probes: u32,

    /// Master key of the provider key vault: base64 of 32 random bytes.
    pub vault_master_key: Option<SecretString>,
    /// The version number of `vault_master_key`, recorded with every ciphertext.
    pub vault_key_version: u32,
    /// How often a running backend re-reads the vault.
    pub vault_refresh_secs: u64,

    /// The secret the gateway sends as `x-studyflow-shadow` on its shadow copies; only a
    /// request carrying it runs as a dry run (see [`crate::shadow`]). Unset: the marker is
    /// never honoured. At least 16 characters.
    pub shadow_secret: Option<SecretString>,
    /// Provider calls of shadowed requests (dry runs): `live` or `skip`.
    pub shadow_provider_calls: ShadowProviderMode,
    /// Per-function exceptions, `ai-proxy=live,ai-tutor-professional=skip`.
    pub shadow_provider_overrides: String,
    /// `live` provider calls of shadowed requests allowed per function and minute, and
    /// per function and UTC day, on this instance; past either, the call is skipped.
    pub shadow_live_per_minute: u32,
    pub shadow_live_per_day: u32,

    /// A directory of prompt templates (`<function>.jinja`) replacing the shipped ones
    /// of `backend/prompts` ([`crate::prompts`]).
    pub prompts_dir: Option<std::path::PathBuf>,

    /// all-MiniLM-L6-v2's files for `semantic-search` (`scripts/setup.sh` installs them);
    /// unset, the function answers 503 and `/ready` says so.
    pub embedding_model_dir: Option<std::path::PathBuf>,
    /// Queued `semantic-search` requests computed in one forward pass, at most.
    pub embedding_max_batch: usize,
    /// Longest `semantic-search` query, in characters (longer: 413).
    pub embedding_max_query_chars: usize,

    pub db_max_connections: u32,
    pub db_min_connections: u32,
    pub db_acquire_timeout_secs: u64,
    pub db_idle_timeout_secs: u64,
    /// Statement timeout set on every pooled connection, milliseconds (0: none).
    pub db_statement_timeout_ms: u64,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Comma-separated addresses and CIDR ranges of the proxies (the gateway) whose
    /// `X-Forwarded-For` names the client (see [`crate::client_address`]); empty: none.
    pub trusted_proxies: String,
    pub json_logs: bool,

    /// Realtime: a connection that sends nothing (not even a heartbeat) for this long is
    /// closed and its presence removed, seconds.
    pub realtime_heartbeat_timeout_secs: u64,
    /// Realtime: largest accepted WebSocket message, bytes (larger ones close the socket).
    pub realtime_max_message_bytes: usize,
    /// Realtime: messages one connection may send per second before it is closed.
    pub realtime_max_events_per_sec: u32,
    /// Realtime: frames queued for one connection before it counts as too slow and is
    /// disconnected (a slow client never slows its room).
    pub realtime_send_queue: usize,
    /// Realtime: comma-separated `public` tables clients may follow with
    /// `postgres_changes` (each needs the `studyflow_realtime_notify` trigger).
    pub realtime_tables: String,
    /// TEST ONLY: `<function>:<json pointer>` makes that function's JSON answers differ
    /// from the legacy at that field, so diffing can be exercised end to end
    /// ([`crate::test_switch`]). Exists only in builds with the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub test_alter_field: Option<String>,
}

/// What a shadowed request does where the function would call an AI provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShadowProviderMode {
    /// Call the provider as a served request would (costs money, compares content).
    Live,
    /// Answer with a placeholder in the provider's format (diff rules compare shape).
    Skip,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:8002".into(),
            database_url: "postgres://postgres@127.0.0.1:5432/studyflow".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_key_prefix: "studyflow:".into(),
            allowed_origins: DEFAULT_ALLOWED_ORIGINS.into(),
            supabase_jwt_secret: None,
            supabase_jwks_url: None,
            jwt_leeway_secs: 5,
            jwks_cache_secs: 600,
            jwks_min_refetch_secs: 10,
            encryption_key: None,
            encryption_salt: None,
            deepseek_api_key: None,
            deepseek_base_url: None,
            openai_api_key: None,
            openai_base_url: None,
            anthropic_api_key: None,
            claude_api_key: None,
            anthropic_base_url: None,
            gemini_api_key: None,
            gemini_base_url: None,
            provider_timeout_secs: 120,
            ai_chain_tutor_stream: "deepseek,openai,anthropic,gemini".into(),
            ai_chain_tutor: "deepseek".into(),
            ai_chain_analytics: "openai".into(),
            ai_chain_recommendations: "openai".into(),
            ai_retry_max: 2,
            ai_retry_base_ms: 200,
            ai_retry_max_delay_ms: 5_000,
            ai_attempt_timeout_ms: 30_000,
            ai_deadline_ms: 60_000,
            ai_stream_idle_timeout_ms: 30_000,
            ai_breaker_failures: 5,
            ai_breaker_error_rate: 0.5,
            ai_breaker_min_calls: 10,
            ai_breaker_window_secs: 60,
            ai_breaker_open_secs: 30,
            ai_breaker_half_open_probes: 1,
            vault_master_key: None,
            vault_key_version: 1,
            vault_refresh_secs: 60,
            shadow_secret: None,
            shadow_provider_calls: ShadowProviderMode::Skip,
            shadow_provider_overrides: String::new(),
            shadow_live_per_minute: 30,
            shadow_live_per_day: 2_000,
            prompts_dir: None,
            embedding_model_dir: None,
            embedding_max_batch: 16,
            embedding_max_query_chars: 10_000,
            db_max_connections: 10,
            db_min_connections: 0,
            db_acquire_timeout_secs: 3,
            db_idle_timeout_secs: 600,
            db_statement_timeout_ms: 30_000,
            max_body_bytes: 1024 * 1024,
            trusted_proxies: DEFAULT_TRUSTED_PROXIES.into(),
            json_logs: false,
            realtime_heartbeat_timeout_secs: 60,
            realtime_max_message_bytes: 64 * 1024,
            realtime_max_events_per_sec: 100,
            realtime_send_queue: 256,
            realtime_tables: "notifications".into(),
            #[cfg(feature = "test-hooks")]
            test_alter_field: None,
        }
    }
}

/// Every key, read from the environment under its upper-case name.
const ENV_KEYS: &[&str] = &[
    "listen_addr",
    "database_url",
    "redis_url",
    "redis_key_prefix",
    "allowed_origins",
    "supabase_jwt_secret",
    "supabase_jwks_url",
    "jwt_leeway_secs",
    "jwks_cache_secs",
    "jwks_min_refetch_secs",
    "encryption_key",
    "encryption_salt",
    "deepseek_api_key",
    "deepseek_base_url",
    "openai_api_key",
    "openai_base_url",
    "anthropic_api_key",
    "claude_api_key",
    "anthropic_base_url",
    "gemini_api_key",
    "gemini_base_url",
    "provider_timeout_secs",
    "ai_chain_tutor_stream",
    "ai_chain_tutor",
    "ai_chain_analytics",
    "ai_chain_recommendations",
    "ai_retry_max",
    "ai_retry_base_ms",
    "ai_retry_max_delay_ms",
    "ai_attempt_timeout_ms",
    "ai_deadline_ms",
    "ai_stream_idle_timeout_ms",
    "ai_breaker_failures",
    "ai_breaker_error_rate",
    "ai_breaker_min_calls",
    "ai_breaker_window_secs",
    "ai_breaker_open_secs",
    "ai_breaker_half_open_probes",
    "vault_master_key",
    "vault_key_version",
    "vault_refresh_secs",
    "shadow_secret",
    "shadow_provider_calls",
    "shadow_provider_overrides",
    "shadow_live_per_minute",
    "shadow_live_per_day",
    "prompts_dir",
    "embedding_model_dir",
    "embedding_max_batch",
    "embedding_max_query_chars",
    "db_max_connections",
    "db_min_connections",
    "db_acquire_timeout_secs",
    "db_idle_timeout_secs",
    "db_statement_timeout_ms",
    "max_body_bytes",
    "trusted_proxies",
    "json_logs",
    "realtime_heartbeat_timeout_secs",
    "realtime_max_message_bytes",
    "realtime_max_events_per_sec",
    "realtime_send_queue",
    "realtime_tables",
    #[cfg(feature = "test-hooks")]
    "test_alter_field",
];

impl BackendConfig {
    /// Reads the layers and validates them; errors name the offending key.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                return Err(Error::Config(format!(
                    "configuration file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Yaml::file(file));
        }
        Self::from_figment(figment.merge(Env::raw().only(ENV_KEYS)))
    }

    /// Extracts and validates a configuration from any figment (tests build their own).
    pub fn from_figment(figment: Figment) -> Result<Self> {
        let mut config: Self = figment.extract().map_err(|e| {
            let key = e
                .path
                .last()
                .map(|k| k.to_uppercase())
                .unwrap_or_else(|| "configuration".into());
            Error::Config(format!("{key}: {}", e.kind))
        })?;
        config.normalise();
        config.validate()?;
        Ok(config)
    }

    /// Empty strings from the environment mean "unset", as they do for the legacy.
    fn normalise(&mut self) {
        fn secret(value: &mut Option<SecretString>) {
            use secrecy::ExposeSecret;
            if value.as_ref().is_some_and(|s| s.expose_secret().is_empty()) {
                *value = None;
            }
        }
        fn text(value: &mut Option<String>) {
            if value.as_ref().is_some_and(|s| s.trim().is_empty()) {
                *value = None;
            }
        }
        for value in [
            &mut self.supabase_jwt_secret,
            &mut self.encryption_key,
            &mut self.encryption_salt,
            &mut self.deepseek_api_key,
            &mut self.openai_api_key,
            &mut self.anthropic_api_key,
            &mut self.claude_api_key,
            &mut self.gemini_api_key,
            &mut self.vault_master_key,
            &mut self.shadow_secret,
        ] {
            secret(value);
        }
        for value in [
            &mut self.supabase_jwks_url,
            &mut self.deepseek_base_url,
            &mut self.openai_base_url,
            &mut self.anthropic_base_url,
            &mut self.gemini_base_url,
        ] {
            text(value);
        }
    }

    /// Checks every value at start, by area, so a mistake is named before anything
    /// serves.
    fn validate(&self) -> Result<()> {
        self.validate_server()?;
        self.validate_database()?;
        self.validate_realtime()?;
        self.validate_ai()?;
        self.validate_vault()
    }

    fn validate_server(&self) -> Result<()> {
        if self.listen_addr.parse::<std::net::SocketAddr>().is_err() {
            return bad(
                "LISTEN_ADDR",
                format!("`{}` is not host:port", self.listen_addr),
            );
        }
        for (key, url) in [
            ("SUPABASE_JWKS_URL", &self.supabase_jwks_url),
            ("DEEPSEEK_BASE_URL", &self.deepseek_base_url),
            ("OPENAI_BASE_URL", &self.openai_base_url),
            ("ANTHROPIC_BASE_URL", &self.anthropic_base_url),
            ("GEMINI_BASE_URL", &self.gemini_base_url),
        ] {
            if let Some(url) = url {
                match url::Url::parse(url) {
                    Ok(parsed)
                        if matches!(parsed.scheme(), "http" | "https")
                            && parsed.host_str().is_some() => {}
                    _ => return bad(key, format!("`{url}` is not an http(s) URL")),
                }
            }
        }
        if self.max_body_bytes < 1024 {
            return bad("MAX_BODY_BYTES", "must be at least 1024".into());
        }
        if let Some(secret) = &self.shadow_secret {
            use secrecy::ExposeSecret;
            if secret.expose_secret().chars().count() < MIN_SHADOW_SECRET_CHARS {
                return bad(
                    "SHADOW_SECRET",
                    format!("must be at least {MIN_SHADOW_SECRET_CHARS} characters"),
                );
            }
        }
        self.shadow_overrides()
            .map_err(|why| Error::Config(format!("SHADOW_PROVIDER_OVERRIDES: {why}")))?;
        self.trusted_proxy_list()
            .map_err(|why| Error::Config(format!("TRUSTED_PROXIES: {why}")))?;
        Ok(())
    }

    fn validate_database(&self) -> Result<()> {
        at_least_one(&[
            ("DB_MAX_CONNECTIONS", u64::from(self.db_max_connections)),
            ("DB_ACQUIRE_TIMEOUT_SECS", self.db_acquire_timeout_secs),
        ])?;
        if self.db_min_connections > self.db_max_connections {
            return bad(
                "DB_MIN_CONNECTIONS",
                "must not exceed DB_MAX_CONNECTIONS".into(),
            );
        }
        if self.redis_key_prefix.contains(char::is_whitespace) {
            return bad("REDIS_KEY_PREFIX", "must not contain whitespace".into());
        }
        Ok(())
    }

    fn validate_realtime(&self) -> Result<()> {
        at_least_one(&[
            (
                "REALTIME_HEARTBEAT_TIMEOUT_SECS",
                self.realtime_heartbeat_timeout_secs,
            ),
            (
                "REALTIME_MAX_EVENTS_PER_SEC",
                u64::from(self.realtime_max_events_per_sec),
            ),
            ("REALTIME_SEND_QUEUE", self.realtime_send_queue as u64),
        ])?;
        if self.realtime_max_message_bytes < 1024 {
            return bad("REALTIME_MAX_MESSAGE_BYTES", "must be at least 1024".into());
        }
        for table in self.realtime_table_list() {
            if !table
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return bad(
                    "REALTIME_TABLES",
                    format!("`{table}` is not a plain table name"),
                );
            }
        }
        Ok(())
    }

    fn validate_ai(&self) -> Result<()> {
        for ai_use in AiUse::ALL {
            self.chain(ai_use)
                .map_err(|why| Error::Config(format!("{}: {why}", ai_use.config_key())))?;
        }
        at_least_one(&[
            ("PROVIDER_TIMEOUT_SECS", self.provider_timeout_secs),
            ("AI_ATTEMPT_TIMEOUT_MS", self.ai_attempt_timeout_ms),
            ("AI_DEADLINE_MS", self.ai_deadline_ms),
            ("AI_STREAM_IDLE_TIMEOUT_MS", self.ai_stream_idle_timeout_ms),
            ("AI_RETRY_BASE_MS", self.ai_retry_base_ms),
            ("AI_BREAKER_WINDOW_SECS", self.ai_breaker_window_secs),
            ("AI_BREAKER_OPEN_SECS", self.ai_breaker_open_secs),
            ("AI_BREAKER_FAILURES", u64::from(self.ai_breaker_failures)),
            (
                "AI_BREAKER_HALF_OPEN_PROBES",
                u64::from(self.ai_breaker_half_open_probes),
            ),
        ])?;
        if self.ai_retry_max_delay_ms < self.ai_retry_base_ms {
            return bad(
                "AI_RETRY_MAX_DELAY_MS",
                "must not be below AI_RETRY_BASE_MS".into(),
            );
        }
        if !(self.ai_breaker_error_rate > 0.0 && self.ai_breaker_error_rate <= 1.0) {
            return bad(
                "AI_BREAKER_ERROR_RATE",
                "must be above 0 and at most 1".into(),
            );
        }
        Ok(())
    }

    fn validate_vault(&self) -> Result<()> {
        at_least_one(&[
            ("VAULT_REFRESH_SECS", self.vault_refresh_secs),
            ("VAULT_KEY_VERSION", u64::from(self.vault_key_version)),
        ])?;
        if let Some(key) = &self.vault_master_key {
            crate::vault::MasterKey::from_base64(key, self.vault_key_version)
                .map_err(|why| Error::Config(format!("VAULT_MASTER_KEY: {why}")))?;
        }
        Ok(())
    }

    /// The provider chain configured for `ai_use`, checked: known providers, no
    /// repeats, and a legacy function's chain starts with the provider the legacy calls.
    pub fn chain(&self, ai_use: AiUse) -> std::result::Result<Vec<ChainEntry>, String> {
        let text = match ai_use {
            AiUse::TutorStream => &self.ai_chain_tutor_stream,
            AiUse::Tutor => &self.ai_chain_tutor,
            AiUse::Analytics => &self.ai_chain_analytics,
            AiUse::Recommendations => &self.ai_chain_recommendations,
        };
        let chain = ChainEntry::parse_list(text)?;
        if let Some(legacy) = ai_use.legacy_provider()
            && chain.first().map(|e| e.provider) != Some(legacy)
        {
            return Err(format!(
                "must start with {}, the provider the legacy function calls",
                legacy.label()
            ));
        }
        Ok(chain)
    }

    /// The parsed `trusted_proxies`.
    pub fn trusted_proxy_list(&self) -> std::result::Result<TrustedProxies, String> {
        TrustedProxies::parse(&self.trusted_proxies)
    }

    /// The tables of `realtime_tables`, trimmed, empty items dropped.
    pub fn realtime_table_list(&self) -> Vec<&str> {
        self.realtime_tables
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// The per-function shadow provider modes of `shadow_provider_overrides`.
    pub fn shadow_overrides(
        &self,
    ) -> std::result::Result<BTreeMap<String, ShadowProviderMode>, String> {
        let mut modes = BTreeMap::new();
        for item in self
            .shadow_provider_overrides
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let Some((function, mode)) = item.split_once('=') else {
                return Err(format!("`{item}` is not function=mode"));
            };
            let function = function.trim();
            if !FUNCTIONS.contains(&function) {
                return Err(format!("unknown function `{function}`"));
            }
            let mode = match mode.trim() {
                "live" => ShadowProviderMode::Live,
                "skip" => ShadowProviderMode::Skip,
                other => return Err(format!("mode `{other}` is neither live nor skip")),
            };
            modes.insert(function.to_owned(), mode);
        }
        Ok(modes)
    }

    /// The Anthropic key: `ANTHROPIC_API_KEY`, else the legacy `CLAUDE_API_KEY`.
    pub fn anthropic_key(&self) -> Option<&SecretString> {
        self.anthropic_api_key
            .as_ref()
            .or(self.claude_api_key.as_ref())
    }
}

/// A configuration error naming the variable.
fn bad(key: &str, why: String) -> Result<()> {
    Err(Error::Config(format!("{key}: {why}")))
}

/// Fails on the first of `values` that is 0, naming its variable.
fn at_least_one(values: &[(&str, u64)]) -> Result<()> {
    match values.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => bad(key, "must be at least 1".into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::Serialized;

    use super::*;
    use crate::ai_types::Provider;

    fn with(pairs: &[(&str, &str)]) -> Result<BackendConfig> {
        let mut figment = Figment::new();
        for (key, value) in pairs {
            figment = figment.merge(Serialized::default(key, value));
        }
        BackendConfig::from_figment(figment)
    }

    #[test]
    fn defaults_are_valid() {
        let config = with(&[]).expect("defaults validate");
        assert_eq!(config.listen_addr, "127.0.0.1:8002");
        assert_eq!(config.shadow_provider_calls, ShadowProviderMode::Skip);
        assert!(config.supabase_jwt_secret.is_none());
    }

    #[test]
    fn bad_values_name_their_key() {
        let error = with(&[("listen_addr", "nowhere")]).expect_err("rejected");
        assert!(error.to_string().contains("LISTEN_ADDR"), "{error}");
        let error = with(&[("openai_base_url", "ftp://x")]).expect_err("rejected");
        assert!(error.to_string().contains("OPENAI_BASE_URL"), "{error}");
        let error = with(&[("db_max_connections", "many")]).expect_err("rejected");
        assert!(error.to_string().contains("DB_MAX_CONNECTIONS"), "{error}");
        let error = with(&[("shadow_provider_overrides", "ai-proxy=maybe")]).expect_err("rejected");
        assert!(
            error.to_string().contains("SHADOW_PROVIDER_OVERRIDES"),
            "{error}"
        );
        let error = with(&[("shadow_provider_overrides", "nope=live")]).expect_err("rejected");
        assert!(error.to_string().contains("unknown function"), "{error}");
    }

    #[test]
    fn empty_secrets_are_unset_and_claude_key_is_accepted() {
        let config = with(&[("openai_api_key", ""), ("claude_api_key", "k")]).expect("valid");
        assert!(config.openai_api_key.is_none());
        assert!(config.anthropic_key().is_some());
        let overrides = with(&[(
            "shadow_provider_overrides",
            "ai-proxy=live, encryption=skip",
        )])
        .expect("valid")
        .shadow_overrides()
        .expect("parsed");
        assert_eq!(overrides["ai-proxy"], ShadowProviderMode::Live);
    }

    #[test]
    fn chains_are_checked() {
        let config =
            with(&[("ai_chain_tutor_stream", "gemini:gemini-2.0-flash, claude")]).expect("valid");
        let chain = config.chain(AiUse::TutorStream).expect("chain");
        assert_eq!(chain[0].provider, Provider::Gemini);
        assert_eq!(chain[0].model, "gemini-2.0-flash");
        assert_eq!(chain[1].provider, Provider::Anthropic);
        assert_eq!(chain[1].model, Provider::Anthropic.default_model());
        let error = with(&[("ai_chain_tutor", "openai,deepseek")]).expect_err("rejected");
        assert!(error.to_string().contains("AI_CHAIN_TUTOR"), "{error}");
        let error = with(&[("ai_chain_tutor_stream", "openai,mistral")]).expect_err("rejected");
        assert!(error.to_string().contains("unknown provider"), "{error}");
        let error = with(&[("ai_chain_tutor_stream", "openai,openai")]).expect_err("rejected");
        assert!(error.to_string().contains("twice"), "{error}");
        let error = with(&[("ai_breaker_error_rate", "1.5")]).expect_err("rejected");
        assert!(
            error.to_string().contains("AI_BREAKER_ERROR_RATE"),
            "{error}"
        );
        let error = with(&[("vault_master_key", "c2hvcnQ=")]).expect_err("rejected");
        assert!(error.to_string().contains("VAULT_MASTER_KEY"), "{error}");
        assert!(!error.to_string().contains("c2hvcnQ"), "{error}");
    }

    #[test]
    fn secrets_do_not_print() {
        let config = with(&[
            ("supabase_jwt_secret", "hunter2-secret"),
            ("shadow_secret", "hunter3-shadow-secret"),
        ])
        .expect("valid");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter3"));
    }

    #[test]
    fn shadow_secret_and_trusted_proxies_are_checked() {
        let config = with(&[]).expect("defaults");
        assert!(config.shadow_secret.is_none());
        let trusted = config.trusted_proxy_list().expect("default list");
        assert!(trusted.contains("127.0.0.1".parse().expect("ip")));
        assert!(trusted.contains("::1".parse().expect("ip")));
        assert!(
            with(&[("shadow_secret", "")])
                .expect("valid")
                .shadow_secret
                .is_none()
        );
        let error = with(&[("shadow_secret", "short-hunter4")]).expect_err("rejected");
        assert!(error.to_string().contains("SHADOW_SECRET"), "{error}");
        assert!(!error.to_string().contains("hunter4"), "{error}");
        let error = with(&[("trusted_proxies", "10.0.0.0/8,gateway")]).expect_err("rejected");
        assert!(error.to_string().contains("TRUSTED_PROXIES"), "{error}");
        let nobody = with(&[("trusted_proxies", "")]).expect("valid");
        assert!(
            !nobody
                .trusted_proxy_list()
                .expect("empty list")
                .contains("127.0.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn the_sample_configuration_validates() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
        let config = BackendConfig::from_figment(Figment::new().merge(Yaml::file(&sample)))
            .expect("backend/config.example.yaml validates");
        assert!(config.supabase_jwks_url.is_some());
    }
}
