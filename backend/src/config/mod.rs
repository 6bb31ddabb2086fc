//! Typed backend configuration, in sections (`server`, `database`, `redis`, `auth`,
//! `providers`, `ai`, `vault`, `shadow`, `realtime`, …).
//!
//! Layers: defaults, then an optional YAML file (`STUDYFLOW_BACKEND_CONFIG`, nested by
//! section; an unknown key is an error), then the environment: the variable names of the
//! README (`DATABASE_URL`, `OPENAI_API_KEY`, `AI_CHAIN_TUTOR`, …, see [`ENV_ALIASES`]) and,
//! for every key, `STUDYFLOW_BACKEND__<SECTION>__<KEY>`. Each value is parsed once, into
//! its type ([`values`]); [`BackendConfig::load`] then checks each section
//! ([`sections`]). A bad value stops start-up with a message naming the variable. Secrets
//! are [`SecretString`]s: they never print.

mod sections;
mod values;

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use serde::Deserialize;

pub use sections::*;

use crate::{Error, Result};

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

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub encryption: EncryptionConfig,
    pub providers: ProvidersConfig,
    pub ai: AiConfig,
    pub vault: VaultConfig,
    pub shadow: ShadowConfig,
    pub prompts: PromptsConfig,
    pub embedding: EmbeddingConfig,
    pub realtime: RealtimeConfig,
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

/// The environment variables the backend has always read, and the key each sets.
pub const ENV_ALIASES: &[(&str, &str)] = &[
    ("LISTEN_ADDR", "server.listen_addr"),
    ("ALLOWED_ORIGINS", "server.allowed_origins"),
    ("MAX_BODY_BYTES", "server.max_body_bytes"),
    ("TRUSTED_PROXIES", "server.trusted_proxies"),
    ("JSON_LOGS", "server.json_logs"),
    ("DATABASE_URL", "database.url"),
    ("DB_MAX_CONNECTIONS", "database.max_connections"),
    ("DB_MIN_CONNECTIONS", "database.min_connections"),
    ("DB_ACQUIRE_TIMEOUT_SECS", "database.acquire_timeout_secs"),
    ("DB_IDLE_TIMEOUT_SECS", "database.idle_timeout_secs"),
    ("DB_STATEMENT_TIMEOUT_MS", "database.statement_timeout_ms"),
    ("REDIS_URL", "redis.url"),
    ("REDIS_KEY_PREFIX", "redis.key_prefix"),
    ("SUPABASE_JWT_SECRET", "auth.jwt_secret"),
    ("SUPABASE_JWKS_URL", "auth.jwks_url"),
    ("JWT_LEEWAY_SECS", "auth.jwt_leeway_secs"),
    ("JWKS_CACHE_SECS", "auth.jwks_cache_secs"),
    ("JWKS_MIN_REFETCH_SECS", "auth.jwks_min_refetch_secs"),
    ("JWT_EXPIRY_SECS", "auth.token_lifetime_secs"),
    ("ENCRYPTION_KEY", "encryption.key"),
    ("ENCRYPTION_SALT", "encryption.salt"),
    ("DEEPSEEK_API_KEY", "providers.deepseek.api_key"),
    ("DEEPSEEK_BASE_URL", "providers.deepseek.base_url"),
    ("OPENAI_API_KEY", "providers.openai.api_key"),
    ("OPENAI_BASE_URL", "providers.openai.base_url"),
    ("ANTHROPIC_API_KEY", "providers.anthropic.api_key"),
    ("ANTHROPIC_BASE_URL", "providers.anthropic.base_url"),
    ("CLAUDE_API_KEY", "providers.claude_api_key"),
    ("GEMINI_API_KEY", "providers.gemini.api_key"),
    ("GEMINI_BASE_URL", "providers.gemini.base_url"),
    ("PROVIDER_TIMEOUT_SECS", "providers.timeout_secs"),
    ("AI_CHAIN_TUTOR_STREAM", "ai.chains.tutor_stream"),
    ("AI_CHAIN_TUTOR", "ai.chains.tutor"),
    ("AI_CHAIN_ANALYTICS", "ai.chains.analytics"),
    ("AI_CHAIN_RECOMMENDATIONS", "ai.chains.recommendations"),
    ("AI_RETRY_MAX", "ai.retry.max"),
    ("AI_RETRY_BASE_MS", "ai.retry.base_ms"),
    ("AI_RETRY_MAX_DELAY_MS", "ai.retry.max_delay_ms"),
    ("AI_ATTEMPT_TIMEOUT_MS", "ai.attempt_timeout_ms"),
    ("AI_DEADLINE_MS", "ai.deadline_ms"),
    ("AI_STREAM_IDLE_TIMEOUT_MS", "ai.stream_idle_timeout_ms"),
    ("AI_BREAKER_FAILURES", "ai.breaker.failures"),
    ("AI_BREAKER_ERROR_RATE", "ai.breaker.error_rate"),
    ("AI_BREAKER_MIN_CALLS", "ai.breaker.min_calls"),
    ("AI_BREAKER_WINDOW_SECS", "ai.breaker.window_secs"),
    ("AI_BREAKER_OPEN_SECS", "ai.breaker.open_secs"),
    ("AI_BREAKER_HALF_OPEN_PROBES", "ai.breaker.half_open_probes"),
    ("VAULT_MASTER_KEY", "vault.master_key"),
    ("VAULT_KEY_VERSION", "vault.key_version"),
    ("VAULT_REFRESH_SECS", "vault.refresh_secs"),
    ("SHADOW_SECRET", "shadow.secret"),
    ("SHADOW_PROVIDER_CALLS", "shadow.provider_calls"),
    ("SHADOW_PROVIDER_OVERRIDES", "shadow.provider_overrides"),
    ("SHADOW_LIVE_PER_MINUTE", "shadow.live_per_minute"),
    ("SHADOW_LIVE_PER_DAY", "shadow.live_per_day"),
    ("PROMPTS_DIR", "prompts.dir"),
    ("EMBEDDING_MODEL_DIR", "embedding.model_dir"),
    ("EMBEDDING_MAX_BATCH", "embedding.max_batch"),
    ("EMBEDDING_MAX_QUERY_CHARS", "embedding.max_query_chars"),
    (
        "REALTIME_HEARTBEAT_TIMEOUT_SECS",
        "realtime.heartbeat_timeout_secs",
    ),
    ("REALTIME_MAX_MESSAGE_BYTES", "realtime.max_message_bytes"),
    ("REALTIME_MAX_EVENTS_PER_SEC", "realtime.max_events_per_sec"),
    ("REALTIME_SEND_QUEUE", "realtime.send_queue"),
    ("REALTIME_TABLES", "realtime.tables"),
    #[cfg(feature = "test-hooks")]
    ("TEST_ALTER_FIELD", "test_alter_field"),
];

/// The prefix of the systematic variable names (`STUDYFLOW_BACKEND__AI__RETRY__MAX`).
pub const ENV_PREFIX: &str = "STUDYFLOW_BACKEND__";

impl BackendConfig {
    /// Reads the layers and checks them; errors name the offending variable.
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
        Self::from_figment(figment.merge(Self::environment()))
    }

    /// The environment as a figment layer: the aliases, then the systematic names.
    fn environment() -> Figment {
        let aliases = Env::raw().filter_map(|name| {
            ENV_ALIASES
                .iter()
                .find(|(alias, _)| name == *alias)
                .map(|(_, key)| (*key).into())
        });
        Figment::new()
            .merge(aliases)
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
    }

    /// Extracts and checks a configuration from any figment (tests build their own).
    pub fn from_figment(figment: Figment) -> Result<Self> {
        let mut config: Self = figment
            .extract()
            .map_err(|e| Error::Config(format!("{}: {}", variable_of(&e.path), e.kind)))?;
        config.check_sections()?;
        Ok(config)
    }

    /// The shadow provider mode of `function`: its override, else the general one.
    pub fn shadow_mode(&self, function: &str) -> ShadowProviderMode {
        self.shadow
            .provider_overrides
            .get(function)
            .copied()
            .unwrap_or(self.shadow.provider_calls)
    }
}

/// How an error names a key: its variable (and its key path), or the path alone.
fn variable_of(path: &[String]) -> String {
    if path.is_empty() {
        return "configuration".into();
    }
    let key = path.join(".");
    match ENV_ALIASES.iter().find(|(_, k)| *k == key) {
        Some((variable, _)) => format!("{variable} ({key})"),
        None => key,
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
    use secrecy::ExposeSecret;

    use super::*;
    use crate::ai_types::{AiUse, Provider};

    /// A configuration from variables, each read as the environment layer reads it.
    fn with(variables: &[(&str, &str)]) -> Result<BackendConfig> {
        let mut figment = Figment::new();
        for (variable, text) in variables {
            let (_, key) = ENV_ALIASES
                .iter()
                .find(|(alias, _)| alias == variable)
                .expect("a known variable");
            let value: figment::value::Value = text.parse().expect("infallible");
            figment = figment.merge(Serialized::default(key, value));
        }
        BackendConfig::from_figment(figment)
    }

    fn rejected(variables: &[(&str, &str)]) -> String {
        with(variables).expect_err("rejected").to_string()
    }

    #[test]
    fn defaults_are_valid() {
        let config = with(&[]).expect("defaults validate");
        assert_eq!(config.server.listen_addr.to_string(), "127.0.0.1:8002");
        assert_eq!(config.shadow.provider_calls, ShadowProviderMode::Skip);
        assert!(config.auth.jwt_secret.is_none());
        assert_eq!(config.realtime.tables, ["notifications"]);
        assert_eq!(
            config.ai.chain(AiUse::Tutor)[0].provider,
            Provider::DeepSeek
        );
        assert_eq!(config.ai.chain(AiUse::TutorStream).len(), 4);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, text) in [
            ("LISTEN_ADDR", "nowhere"),
            ("OPENAI_BASE_URL", "ftp://x"),
            ("SUPABASE_JWKS_URL", "not a url"),
            ("DB_MAX_CONNECTIONS", "many"),
            ("DB_MAX_CONNECTIONS", "0"),
            ("SHADOW_PROVIDER_OVERRIDES", "ai-proxy=maybe"),
            ("SHADOW_PROVIDER_CALLS", "sometimes"),
            ("REALTIME_TABLES", "notifications, tasks; drop"),
            ("TRUSTED_PROXIES", "10.0.0.0/8,gateway"),
            ("MAX_BODY_BYTES", "12"),
        ] {
            let error = rejected(&[(variable, text)]);
            assert!(error.contains(variable), "{variable}={text}: {error}");
        }
        let error = rejected(&[("SHADOW_PROVIDER_OVERRIDES", "nope=live")]);
        assert!(error.contains("unknown function"), "{error}");
    }

    #[test]
    fn values_are_parsed_into_their_types() {
        let config = with(&[
            ("OPENAI_API_KEY", ""),
            ("CLAUDE_API_KEY", "k"),
            (
                "SHADOW_PROVIDER_OVERRIDES",
                "ai-proxy=live, encryption=skip",
            ),
            ("REALTIME_TABLES", " notifications, tasks ,"),
            ("ALLOWED_ORIGINS", "https://a.example, https://b.example"),
            ("DEEPSEEK_BASE_URL", "http://127.0.0.1:9/v1"),
            ("GEMINI_BASE_URL", ""),
        ])
        .expect("valid");
        assert!(config.providers.openai.api_key.is_none());
        assert!(config.providers.anthropic_key().is_some());
        assert_eq!(config.shadow_mode("ai-proxy"), ShadowProviderMode::Live);
        assert_eq!(config.shadow_mode("encryption"), ShadowProviderMode::Skip);
        assert_eq!(
            config.shadow_mode("ai-study-analytics"),
            ShadowProviderMode::Skip
        );
        assert_eq!(config.realtime.tables, ["notifications", "tasks"]);
        assert_eq!(
            config.server.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        let deepseek = config.providers.deepseek.base_url.as_ref().expect("set");
        assert_eq!(deepseek.port(), Some(9));
        assert!(config.providers.gemini.base_url.is_none());
    }

    #[test]
    fn chains_are_parsed_once_and_checked() {
        let config =
            with(&[("AI_CHAIN_TUTOR_STREAM", "gemini:gemini-2.0-flash, claude")]).expect("valid");
        let chain = config.ai.chain(AiUse::TutorStream);
        assert_eq!(chain[0].provider, Provider::Gemini);
        assert_eq!(chain[0].model, "gemini-2.0-flash");
        assert_eq!(chain[1].provider, Provider::Anthropic);
        assert_eq!(chain[1].model, Provider::Anthropic.default_model());
        assert_eq!(
            config.ai.chain(AiUse::Analytics)[0].provider,
            Provider::OpenAi
        );
        assert!(rejected(&[("AI_CHAIN_TUTOR", "openai,deepseek")]).contains("AI_CHAIN_TUTOR"));
        assert!(
            rejected(&[("AI_CHAIN_TUTOR_STREAM", "openai,mistral")]).contains("unknown provider")
        );
        assert!(rejected(&[("AI_CHAIN_TUTOR_STREAM", "openai,openai")]).contains("twice"));
        assert!(rejected(&[("AI_BREAKER_ERROR_RATE", "1.5")]).contains("AI_BREAKER_ERROR_RATE"));
        let error = rejected(&[("VAULT_MASTER_KEY", "c2hvcnQ=")]);
        assert!(error.contains("VAULT_MASTER_KEY"), "{error}");
        assert!(!error.contains("c2hvcnQ"), "{error}");
    }

    #[test]
    fn the_vault_key_is_decoded_at_load() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let config = with(&[("VAULT_MASTER_KEY", key), ("VAULT_KEY_VERSION", "3")]).expect("valid");
        let master = config.vault.master_key().expect("decoded");
        assert_eq!(master.version(), 3);
        assert!(with(&[]).expect("valid").vault.master_key().is_none());
    }

    #[test]
    fn secrets_do_not_print() {
        let config = with(&[
            ("SUPABASE_JWT_SECRET", "hunter2-secret"),
            ("SHADOW_SECRET", "hunter3-shadow-secret"),
        ])
        .expect("valid");
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter3"));
        assert_eq!(
            config
                .auth
                .jwt_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            Some("hunter2-secret".to_owned())
        );
    }

    #[test]
    fn shadow_secret_and_trusted_proxies_are_checked() {
        let config = with(&[]).expect("defaults");
        assert!(config.shadow.secret.is_none());
        let trusted = &config.server.trusted_proxies;
        assert!(trusted.contains("127.0.0.1".parse().expect("ip")));
        assert!(trusted.contains("::1".parse().expect("ip")));
        assert!(
            with(&[("SHADOW_SECRET", "")])
                .expect("valid")
                .shadow
                .secret
                .is_none()
        );
        let error = rejected(&[("SHADOW_SECRET", "short-hunter4")]);
        assert!(error.contains("SHADOW_SECRET"), "{error}");
        assert!(!error.contains("hunter4"), "{error}");
        let nobody = with(&[("TRUSTED_PROXIES", "")]).expect("valid");
        assert!(
            !nobody
                .server
                .trusted_proxies
                .contains("127.0.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn a_mistyped_key_in_the_file_is_refused() {
        let yaml = "database:\n  max_conections: 4\n";
        let error = BackendConfig::from_figment(Figment::new().merge(Yaml::string(yaml)))
            .expect_err("unknown key");
        assert!(error.to_string().contains("max_conections"), "{error}");
        let yaml = "listen_addr: 127.0.0.1:1\n";
        let error = BackendConfig::from_figment(Figment::new().merge(Yaml::string(yaml)))
            .expect_err("flat keys belong to sections");
        assert!(error.to_string().contains("listen_addr"), "{error}");
    }

    #[test]
    fn the_file_takes_lists_and_maps_too() {
        let yaml = "ai:\n  chains:\n    tutor_stream: [openai, gemini]\nshadow:\n  provider_overrides:\n    ai-proxy: live\nrealtime:\n  tables: [notifications, tasks]\n";
        let config =
            BackendConfig::from_figment(Figment::new().merge(Yaml::string(yaml))).expect("valid");
        assert_eq!(config.ai.chain(AiUse::TutorStream).len(), 2);
        assert_eq!(
            config.ai.chain(AiUse::Tutor)[0].provider,
            Provider::DeepSeek
        );
        assert_eq!(config.shadow_mode("ai-proxy"), ShadowProviderMode::Live);
        assert_eq!(config.realtime.tables, ["notifications", "tasks"]);
    }

    #[test]
    fn every_alias_names_a_key() {
        for (variable, key) in ENV_ALIASES {
            let error = BackendConfig::from_figment(
                Figment::new().merge(Serialized::default(key, vec![vec![1u8]])),
            )
            .expect_err("a nested list fits no key");
            let error = error.to_string();
            assert!(
                error.contains(variable) && !error.contains("unknown field"),
                "{variable}: {error}"
            );
        }
    }

    #[test]
    fn the_sample_configuration_validates() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
        let config = BackendConfig::from_figment(Figment::new().merge(Yaml::file(&sample)))
            .expect("backend/config.example.yaml validates");
        assert!(config.auth.jwks_url.is_some());
    }
}
