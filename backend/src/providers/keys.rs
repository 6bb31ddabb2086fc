//! Where provider API keys come from: the key vault first ([`crate::vault`]), then the
//! configuration (`OPENAI_API_KEY`, …).
//!
//! The vault's keys are held in memory and swapped whole when the vault is re-read
//! ([`ProviderKeys::install_vault_keys`]), so a key lookup on a request path never waits
//! for the database and a rotation in progress never makes a lookup fail. Keys are
//! [`SecretString`]s: they never print, and only their fingerprints are logged.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use secrecy::SecretString;

use super::Provider;
use crate::config::BackendConfig;

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
            (Provider::OpenAi, config.openai_api_key.as_ref()),
            (Provider::DeepSeek, config.deepseek_api_key.as_ref()),
            (Provider::Anthropic, config.anthropic_key()),
            (Provider::Gemini, config.gemini_api_key.as_ref()),
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

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn the_vault_comes_before_the_configuration() {
        let config = BackendConfig {
            openai_api_key: Some("from-config".into()),
            ..BackendConfig::default()
        };
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
