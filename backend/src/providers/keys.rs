//! Where provider API keys come from: the key vault first ([`crate::vault`]), then the
//! configuration (`OPENAI_API_KEY`, …).
//!
//! The vault's keys are held in memory and swapped whole when the vault is re-read
//! ([`ProviderKeys::install_vault_keys`]), so a key lookup on a request path never waits
//! for the database and a rotation in progress never makes a lookup fail. Keys are
//! [`SecretString`]s: they never print, and only their fingerprints are logged.
//! [`Refresher`] re-reads the vault in the background.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::Provider;
use crate::config::BackendConfig;
use crate::security_audit::{EventType, SecurityEvent};
use crate::vault::{Vault, fingerprint};

/// Where a provider's key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Vault,
    Config,
}

impl KeySource {
    pub fn label(self) -> &'static str {
        match self {
            KeySource::Vault => "vault",
            KeySource::Config => "config",
        }
    }
}

/// The keys every provider client reads. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProviderKeys {
    config: Arc<BTreeMap<Provider, SecretString>>,
    vault: Arc<ArcSwap<BTreeMap<Provider, SecretString>>>,
}

impl ProviderKeys {
    pub fn new(config: &BackendConfig) -> Self {
        let mut keys = BTreeMap::new();
        for (provider, key) in [
            (Provider::OpenAi, config.providers.openai.api_key.as_ref()),
            (
                Provider::DeepSeek,
                config.providers.deepseek.api_key.as_ref(),
            ),
            (Provider::Anthropic, config.providers.anthropic_key()),
            (Provider::Gemini, config.providers.gemini.api_key.as_ref()),
        ] {
            if let Some(key) = key {
                keys.insert(provider, key.clone());
            }
        }
        Self {
            config: Arc::new(keys),
            vault: Arc::default(),
        }
    }

    /// The key of `provider`: the vault's, else the configured one.
    pub fn get(&self, provider: Provider) -> Option<SecretString> {
        self.lookup(provider).map(|(key, _)| key)
    }

    /// The key and where it came from.
    pub fn lookup(&self, provider: Provider) -> Option<(SecretString, KeySource)> {
        if let Some(key) = self.vault.load().get(&provider) {
            return Some((key.clone(), KeySource::Vault));
        }
        self.config
            .get(&provider)
            .map(|key| (key.clone(), KeySource::Config))
    }

    /// Replaces the vault's keys (all of them at once).
    pub fn install_vault_keys(&self, keys: BTreeMap<Provider, SecretString>) {
        self.vault.store(Arc::new(keys));
    }

    /// Which providers have a key in the vault right now.
    pub fn vault_providers(&self) -> Vec<Provider> {
        self.vault.load().keys().copied().collect()
    }
}

/// What one read of the vault gave: the fingerprints of the keys loaded, or why it failed.
type ReadOutcome = Result<Vec<(Provider, String)>, String>;

/// Keeps a running backend's [`ProviderKeys`] in step with the vault.
///
/// A read that fails keeps the keys already loaded (a rotation finished before this
/// server got the new master key must not take its providers away); failures and
/// changes of the loaded set are security events, steady re-reads are only counted.
#[derive(Debug)]
pub struct Refresher {
    vault: Vault,
    keys: ProviderKeys,
    last: Option<ReadOutcome>,
}

impl Refresher {
    pub fn new(vault: Vault, keys: ProviderKeys) -> Self {
        Self {
            vault,
            keys,
            last: None,
        }
    }

    /// Reads the vault once; `true` when the keys were loaded.
    pub async fn once(&mut self) -> bool {
        let outcome = self.read().await;
        let loaded = outcome.is_ok();
        if self.last.as_ref() != Some(&outcome) {
            self.vault.audit().record(self.event(&outcome));
            self.last = Some(outcome);
        }
        loaded
    }

    /// Reads every key and installs them; a failure leaves the installed keys alone.
    async fn read(&self) -> ReadOutcome {
        match self.vault.load_all().await {
            Ok(loaded) => {
                let prints = loaded
                    .iter()
                    .map(|(p, k)| (*p, fingerprint(k.expose_secret())))
                    .collect();
                self.keys.install_vault_keys(loaded);
                Ok(prints)
            }
            Err(error) => Err(error.to_string()),
        }
    }

    /// The security event of a read whose outcome differs from the one before, logged.
    fn event(&self, outcome: &ReadOutcome) -> SecurityEvent {
        let version = self.vault.key_version();
        match outcome {
            Ok(prints) => {
                let listed: serde_json::Map<String, serde_json::Value> = prints
                    .iter()
                    .map(|(p, f)| (p.label().to_owned(), json!(f)))
                    .collect();
                tracing::info!(
                    key_version = version,
                    providers = ?prints.iter().map(|(p, _)| p.label()).collect::<Vec<_>>(),
                    "provider keys loaded from the vault"
                );
                SecurityEvent::new(
                    EventType::VaultRead,
                    json!({"key_version": version, "fingerprints": listed}),
                )
            }
            Err(error) => {
                tracing::error!(%error, "reading the key vault failed; keeping the keys loaded before");
                SecurityEvent::new(
                    EventType::VaultReadFailed,
                    json!({"key_version": version, "error": error}),
                )
            }
        }
    }

    /// Re-reads the vault every `every`, until the process ends.
    pub async fn run(mut self, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            self.once().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vault_comes_before_the_configuration() {
        let mut config = BackendConfig::default();
        config.providers.openai.api_key = Some("from-config".into());
        let keys = ProviderKeys::new(&config);
        let (key, source) = keys.lookup(Provider::OpenAi).expect("configured");
        assert_eq!(
            (key.expose_secret(), source),
            ("from-config", KeySource::Config)
        );
        assert!(keys.get(Provider::Gemini).is_none());
        keys.install_vault_keys(BTreeMap::from([
            (Provider::OpenAi, SecretString::from("from-vault")),
            (Provider::Gemini, SecretString::from("gemini-vault")),
        ]));
        let (key, source) = keys.lookup(Provider::OpenAi).expect("in the vault");
        assert_eq!(
            (key.expose_secret(), source),
            ("from-vault", KeySource::Vault)
        );
        assert!(keys.get(Provider::Gemini).is_some());
        // A clone shares the vault's keys.
        let clone = keys.clone();
        keys.install_vault_keys(BTreeMap::new());
        assert_eq!(
            clone
                .get(Provider::OpenAi)
                .expect("config again")
                .expose_secret(),
            "from-config"
        );
    }
}
