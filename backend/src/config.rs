//! Typed backend configuration.
//!
//! Layers: defaults, then an optional YAML file (`STUDYFLOW_BACKEND_CONFIG`), then plain
//! environment variables named as in the README (`DATABASE_URL`, `REDIS_URL`, …), so the
//! backend runs from the environment alone. Secrets are wrapped so they never print.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use secrecy::SecretString;
use serde::Deserialize;

use crate::{Error, Result};

/// The origins the *allow-list* CORS variant accepts when `ALLOWED_ORIGINS` is unset.
pub const DEFAULT_ALLOWED_ORIGINS: &str = "http://localhost:5173,http://localhost:5174,http://localhost:3000,https://study-flow-ai.vercel.app,https://study-flow-ai-git-main.vercel.app,https://study-flow-ai-production.vercel.app";

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BackendConfig {
    /// `host:port` to listen on.
    pub listen_addr: String,
    pub database_url: SecretString,
    pub redis_url: SecretString,
    /// Comma-separated origins for the allow-list CORS variant.
    pub allowed_origins: String,
    /// HS256 secret of the Supabase project.
    pub supabase_jwt_secret: Option<SecretString>,
    pub db_max_connections: u32,
    pub db_acquire_timeout_secs: u64,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    pub json_logs: bool,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:8002".into(),
            database_url: "postgres://postgres@127.0.0.1:5432/studyflow".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            allowed_origins: DEFAULT_ALLOWED_ORIGINS.into(),
            supabase_jwt_secret: None,
            db_max_connections: 10,
            db_acquire_timeout_secs: 3,
            max_body_bytes: 1024 * 1024,
            json_logs: false,
        }
    }
}

const ENV_KEYS: [&str; 9] = [
    "listen_addr",
    "database_url",
    "redis_url",
    "allowed_origins",
    "supabase_jwt_secret",
    "db_max_connections",
    "db_acquire_timeout_secs",
    "max_body_bytes",
    "json_logs",
];

impl BackendConfig {
    /// Reads the layers and validates them; errors name the offending key.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Yaml::file(file));
        }
        let config: Self = figment
            .merge(Env::raw().only(&ENV_KEYS))
            .extract()
            .map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        self.listen_addr
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                Error::Config(format!(
                    "LISTEN_ADDR `{}` is not host:port",
                    self.listen_addr
                ))
            })?;
        if self.db_max_connections == 0 {
            return Err(Error::Config(
                "DB_MAX_CONNECTIONS must be at least 1".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(Error::Config("MAX_BODY_BYTES must be at least 1024".into()));
        }
        Ok(())
    }
}
