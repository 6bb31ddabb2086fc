//! The vocabulary of the AI layer, shared by the configuration, the metrics, the key
//! vault and the providers: which providers exist ([`Provider`]), what the AI is asked for
//! ([`AiUse`]), one link of a provider chain ([`ChainEntry`]) and the tokens a call used
//! ([`Usage`]).
//!
//! Plain data with no dependency on the rest of the crate, so every layer may name these
//! types while the dependencies keep pointing one way: the configuration describes
//! chains with them, [`crate::providers`] builds on the configuration.

use serde::{Deserialize, Serialize};

/// The providers the functions talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    OpenAi,
    DeepSeek,
    Anthropic,
    Gemini,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::OpenAi,
        Provider::DeepSeek,
        Provider::Anthropic,
        Provider::Gemini,
    ];

    /// The metric label, also the name in chains and the vault.
    pub fn label(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::DeepSeek => "deepseek",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
        }
    }

    /// A provider by name (`claude` is accepted for Anthropic, as the legacy calls it).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(Provider::OpenAi),
            "deepseek" => Some(Provider::DeepSeek),
            "anthropic" | "claude" => Some(Provider::Anthropic),
            "gemini" => Some(Provider::Gemini),
            _ => None,
        }
    }

    /// The model a chain uses when its entry names none (the legacy's defaults).
    pub fn default_model(self) -> &'static str {
        match self {
            Provider::OpenAi => "gpt-4o-mini",
            Provider::DeepSeek => "deepseek-chat",
            Provider::Anthropic => "claude-3-haiku-20240307",
            Provider::Gemini => "gemini-1.5-flash",
        }
    }

    /// The real API's origin.
    pub fn real_origin(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com",
            Provider::DeepSeek => "https://api.deepseek.com",
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::Gemini => "https://generativelanguage.googleapis.com",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// What the AI is asked for: each use has its own chain (configured under its snake-case
/// name, `ai.chains.tutor_stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AiUse {
    /// `ai-tutor-stream`, the new streaming tutor.
    TutorStream,
    /// `ai-tutor-professional` (legacy: DeepSeek only).
    Tutor,
    /// `ai-study-analytics` (legacy: OpenAI only).
    Analytics,
    /// `ai-study-recommendations` (legacy: OpenAI only).
    Recommendations,
}

impl AiUse {
    pub const ALL: [AiUse; 4] = [
        AiUse::TutorStream,
        AiUse::Tutor,
        AiUse::Analytics,
        AiUse::Recommendations,
    ];

    /// The function name, used as the metric label.
    pub fn label(self) -> &'static str {
        match self {
            AiUse::TutorStream => "ai-tutor-stream",
            AiUse::Tutor => "ai-tutor-professional",
            AiUse::Analytics => "ai-study-analytics",
            AiUse::Recommendations => "ai-study-recommendations",
        }
    }

    /// The variable holding the chain.
    pub fn config_key(self) -> &'static str {
        match self {
            AiUse::TutorStream => "AI_CHAIN_TUTOR_STREAM",
            AiUse::Tutor => "AI_CHAIN_TUTOR",
            AiUse::Analytics => "AI_CHAIN_ANALYTICS",
            AiUse::Recommendations => "AI_CHAIN_RECOMMENDATIONS",
        }
    }

    /// The provider the legacy function calls, for the legacy uses.
    pub fn legacy_provider(self) -> Option<Provider> {
        match self {
            AiUse::TutorStream => None,
            AiUse::Tutor => Some(Provider::DeepSeek),
            AiUse::Analytics | AiUse::Recommendations => Some(Provider::OpenAi),
        }
    }
}

/// One link of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEntry {
    pub provider: Provider,
    pub model: String,
}

impl std::fmt::Display for ChainEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.provider, self.model)
    }
}

impl ChainEntry {
    /// A chain as it is configured: `provider:model`, comma-separated.
    pub fn list_text(chain: &[ChainEntry]) -> String {
        chain
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `provider[:model]`, comma-separated; the model defaults to the provider's.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let mut chain: Vec<ChainEntry> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let entry = Self::parse(item)?;
            if chain.iter().any(|e| e.provider == entry.provider) {
                return Err(format!("{} is listed twice", entry.provider));
            }
            chain.push(entry);
        }
        if chain.is_empty() {
            return Err("names no provider".into());
        }
        Ok(chain)
    }

    /// One `provider[:model]` item.
    fn parse(item: &str) -> Result<Self, String> {
        let (name, model) = match item.split_once(':') {
            Some((name, model)) => (name.trim(), Some(model.trim())),
            None => (item, None),
        };
        let provider = Provider::parse(name).ok_or_else(|| format!("unknown provider `{name}`"))?;
        let model = match model {
            Some("") => return Err(format!("`{item}` names an empty model")),
            Some(model) => model.to_owned(),
            None => provider.default_model().to_owned(),
        };
        Ok(ChainEntry { provider, model })
    }
}

/// Tokens a call used, as the provider counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_parse_with_default_models() {
        let chain = ChainEntry::parse_list("deepseek, openai:gpt-4o, claude").expect("valid");
        assert_eq!(
            chain,
            vec![
                ChainEntry {
                    provider: Provider::DeepSeek,
                    model: "deepseek-chat".into()
                },
                ChainEntry {
                    provider: Provider::OpenAi,
                    model: "gpt-4o".into()
                },
                ChainEntry {
                    provider: Provider::Anthropic,
                    model: "claude-3-haiku-20240307".into()
                },
            ]
        );
        assert!(ChainEntry::parse_list("").is_err());
        assert!(ChainEntry::parse_list("openai:").is_err());
    }
}
