//! Typed gateway configuration: defaults, then an optional YAML file, then
//! `STUDYFLOW_GATEWAY__<KEY>` environment variables (nested keys joined by `__`, e.g.
//! `STUDYFLOW_GATEWAY__SHADOW__TIMEOUT_MS`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use secrecy::SecretString;
use serde::Deserialize;

use crate::shadow::ShadowLimits;
use crate::{Error, Result};

/// Everything the gateway needs to start. Validated once by [`GatewayConfig::load`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address the frontend connects to.
    pub listen: String,
    /// Address of the admin API. Keep it private.
    pub admin_listen: String,
    /// Bearer token of the admin API's changes; without it the admin API is read-only.
    pub admin_token: Option<SecretString>,
    /// Routes file; the table shipped in `flags/routes.yaml` when unset.
    pub routes_file: Option<PathBuf>,
    /// Where operator overrides and the audit log are kept; memory only when unset.
    pub state_file: Option<PathBuf>,
    /// Base URL of the legacy side: the Supabase project (Edge Functions, auth, REST…).
    pub legacy_url: String,
    /// Base URL of the new backend.
    pub new_url: String,
    /// Further upstreams, by name, that routes may name for either side.
    pub upstreams: BTreeMap<String, String>,
    /// Seconds to wait for an upstream connection.
    pub connect_timeout_secs: u64,
    /// Seconds an upstream may stay silent while answering.
    pub read_timeout_secs: u64,
    /// Worker threads of the proxy service.
    pub threads: usize,
    pub shadow: ShadowConfig,
    /// Where compared pairs are counted and sampled; counters only when unset.
    pub diff_store: DiffStoreConfig,
    /// Extra regular expressions masked in stored samples (credentials are always masked).
    pub redact_patterns: Vec<String>,
    /// Log as JSON lines instead of text.
    pub json_logs: bool,
}

/// Bounds of shadow traffic.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowConfig {
    pub max_concurrency: usize,
    pub queue_size: usize,
    pub timeout_ms: u64,
    pub max_body_bytes: usize,
    pub compare_queue_size: usize,
    /// Capture and compare the two answers (diffing). Off: copies are sent, not compared.
    pub compare: bool,
}

/// The diff store (Postgres).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffStoreConfig {
    pub database_url: Option<SecretString>,
    pub queue_size: usize,
    pub flush_interval_ms: u64,
    pub samples_per_shape: u32,
    pub retention_hours: u64,
}

impl Default for DiffStoreConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            queue_size: 10_000,
            flush_interval_ms: 1000,
            samples_per_shape: 20,
            retention_hours: 14 * 24,
        }
    }
}

impl DiffStoreConfig {
    pub fn settings(&self) -> studyflow_diffing::store::StoreSettings {
        studyflow_diffing::store::StoreSettings {
            queue_size: self.queue_size,
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            samples_per_shape: i64::from(self.samples_per_shape),
            retention: Duration::from_secs(self.retention_hours * 3600),
        }
    }
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 64,
            queue_size: 1024,
            timeout_ms: 10_000,
            max_body_bytes: 1024 * 1024,
            compare_queue_size: 4096,
            compare: true,
        }
    }
}

impl ShadowConfig {
    pub fn limits(&self) -> ShadowLimits {
        ShadowLimits {
            max_concurrency: self.max_concurrency,
            queue_size: self.queue_size,
            timeout: Duration::from_millis(self.timeout_ms),
            max_body_bytes: self.max_body_bytes,
            compare_queue_size: self.compare_queue_size,
            compare: self.compare,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".into(),
            admin_listen: "127.0.0.1:8001".into(),
            admin_token: None,
            routes_file: None,
            state_file: None,
            legacy_url: "http://127.0.0.1:54321".into(),
            new_url: "http://127.0.0.1:8002".into(),
            upstreams: BTreeMap::new(),
            connect_timeout_secs: 5,
            read_timeout_secs: 60,
            threads: 2,
            shadow: ShadowConfig::default(),
            diff_store: DiffStoreConfig::default(),
            redact_patterns: Vec::new(),
            json_logs: false,
        }
    }
}

impl GatewayConfig {
    /// Layers defaults, the file at `path` (if given) and the environment, then validates.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            if !path.exists() {
                return Err(Error::Config(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Yaml::file(path));
        }
        let config: Self = figment
            .merge(Env::prefixed("STUDYFLOW_GATEWAY__").split("__"))
            .extract()
            .map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("listen", &self.listen),
            ("admin_listen", &self.admin_listen),
        ] {
            value.parse::<std::net::SocketAddr>().map_err(|_| {
                Error::Config(format!(
                    "`{key}` must be an address like 127.0.0.1:8000, got `{value}`"
                ))
            })?;
        }
        let positive = [
            ("threads", self.threads as u64),
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("read_timeout_secs", self.read_timeout_secs),
            ("shadow.max_concurrency", self.shadow.max_concurrency as u64),
            ("shadow.queue_size", self.shadow.queue_size as u64),
            ("shadow.timeout_ms", self.shadow.timeout_ms),
            (
                "shadow.compare_queue_size",
                self.shadow.compare_queue_size as u64,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(Error::Config(format!("`{key}` must be at least 1")));
            }
        }
        studyflow_diffing::Redactor::new(&self.redact_patterns)
            .map_err(|e| Error::Config(format!("`redact_patterns`: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_configuration_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.example.yaml");
        let config = GatewayConfig::load(Some(&path)).expect("sample config loads");
        assert!(config.admin_token.is_some());
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = std::env::temp_dir().join(format!("sf-gw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("bad.yaml");
        std::fs::write(&path, "listen: nowhere\n").expect("write");
        let err = GatewayConfig::load(Some(&path))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("`listen`"), "{err}");
        std::fs::write(&path, "shadow:\n  queue_size: 0\n").expect("write");
        let err = GatewayConfig::load(Some(&path))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("shadow.queue_size"), "{err}");
        std::fs::write(&path, "lisen: 1\n").expect("write");
        assert!(GatewayConfig::load(Some(&path)).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
