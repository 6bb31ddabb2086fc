//! Typed gateway configuration: defaults, then an optional YAML file, then
//! `STUDYFLOW_GATEWAY__<KEY>` environment variables (nested keys joined by `__`).

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Yaml};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Everything the gateway needs to start. Validated once by [`GatewayConfig::load`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address the frontend connects to.
    pub listen: String,
    /// Address of the admin API (health, route table). Keep it private.
    pub admin_listen: String,
    /// Routes file; the table shipped in `flags/routes.yaml` when unset.
    pub routes_file: Option<PathBuf>,
    /// Base URL of the legacy side: the Supabase project (Edge Functions, auth, REST…).
    pub legacy_url: String,
    /// Base URL of the new backend.
    pub new_url: String,
    /// Seconds to wait for an upstream connection.
    pub connect_timeout_secs: u64,
    /// Seconds an upstream may stay silent while answering.
    pub read_timeout_secs: u64,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Log as JSON lines instead of text.
    pub json_logs: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".into(),
            admin_listen: "127.0.0.1:8001".into(),
            routes_file: None,
            legacy_url: "http://127.0.0.1:54321".into(),
            new_url: "http://127.0.0.1:8002".into(),
            connect_timeout_secs: 5,
            read_timeout_secs: 60,
            threads: 2,
            json_logs: false,
        }
    }
}

impl GatewayConfig {
    /// Layers defaults, the file at `path` (if given) and the environment, then validates.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
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
        if self.threads == 0 {
            return Err(Error::Config("`threads` must be at least 1".into()));
        }
        if self.connect_timeout_secs == 0 || self.read_timeout_secs == 0 {
            return Err(Error::Config("timeouts must be at least 1 second".into()));
        }
        Ok(())
    }
}
