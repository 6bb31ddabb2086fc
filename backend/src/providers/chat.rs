//! The provider-neutral side of the AI layer: one request, answer and stream shape for
//! every provider, and the [`ChatProvider`] trait each wire format implements
//! ([`super::openai::OpenAiChat`] for OpenAI and DeepSeek, [`super::anthropic::AnthropicChat`],
//! [`super::gemini::GeminiChat`]).
//!
//! Whatever provider answers, callers see the same [`ChatAnswer`] or the same sequence of
//! [`StreamEvent`]s, so a fallback never changes the shape of what a client receives.

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;

use super::Provider;
pub use crate::ai_types::Usage;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// `assistant` is the assistant, `system` the system; any other role is the user's.
    pub fn parse(role: &str) -> Self {
        match role {
            "system" => Role::System,
            "assistant" | "model" => Role::Assistant,
            _ => Role::User,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }

    /// A `{role, content}` JSON message: a missing role is the user's, missing content is
    /// empty, and content that is not text is sent as its JSON text.
    pub fn from_json(message: &serde_json::Value) -> Self {
        let content = match &message["content"] {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        Self::new(
            Role::parse(message["role"].as_str().unwrap_or("user")),
            content,
        )
    }
}

/// One request to one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
}

impl ChatRequest {
    /// The system messages joined (for the formats that take the system prompt apart).
    pub fn system_text(&self) -> Option<String> {
        let parts: Vec<&str> = self
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatAnswer {
    pub provider: Provider,
    /// The model the provider says answered.
    pub model: String,
    pub text: String,
    pub usage: Option<Usage>,
}

/// What a stream delivers: text as it comes, then one `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A piece of the answer's text (never empty).
    Delta(String),
    /// The end of the answer.
    Done { model: String, usage: Option<Usage> },
}

/// A provider's answer as it streams. Dropping it closes the upstream connection.
pub type TokenStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, AiError>> + Send>>;

/// Whether a provider can be called right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// No key in the vault or the configuration.
    NoKey,
    /// The circuit breaker is open (or the provider asked us to wait, `Retry-After`).
    CircuitOpen {
        retry_in: Duration,
    },
    /// The breaker lets a few probe calls through to see whether the provider is back.
    Probing,
}

/// Why one call to one provider failed. Never carries a key or the provider's body.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AiError {
    #[error("{provider} answered HTTP {status}")]
    Status {
        provider: Provider,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{provider} did not answer within {} ms", after.as_millis())]
    Timeout { provider: Provider, after: Duration },
    #[error("{provider} could not be reached")]
    Network { provider: Provider },
    #[error("{provider} sent an answer that does not parse: {detail}")]
    Malformed { provider: Provider, detail: String },
    #[error("{provider}'s stream broke off before its end")]
    Interrupted { provider: Provider },
    #[error("{provider} reported an error mid-stream: {kind}")]
    StreamError { provider: Provider, kind: String },
    #[error("{provider} has no API key")]
    NoKey { provider: Provider },
    #[error("{provider} is not called: its circuit breaker is open")]
    CircuitOpen { provider: Provider },
}

impl AiError {
    pub fn provider(&self) -> Provider {
        match self {
            AiError::Status { provider, .. }
            | AiError::Timeout { provider, .. }
            | AiError::Network { provider }
            | AiError::Malformed { provider, .. }
            | AiError::Interrupted { provider }
            | AiError::StreamError { provider, .. }
            | AiError::NoKey { provider }
            | AiError::CircuitOpen { provider } => *provider,
        }
    }

    /// The bounded metric label of this failure.
    pub fn outcome(&self) -> &'static str {
        match self {
            AiError::Status { status: 429, .. } => "http_429",
            AiError::Status { status, .. } if *status >= 500 => "http_5xx",
            AiError::Status { .. } => "http_4xx",
            AiError::Timeout { .. } => "timeout",
            AiError::Network { .. } => "network_error",
            AiError::Malformed { .. } => "malformed",
            AiError::Interrupted { .. } | AiError::StreamError { .. } => "interrupted",
            AiError::NoKey { .. } => "no_key",
            AiError::CircuitOpen { .. } => "circuit_open",
        }
    }

    /// Worth calling the same provider again after a pause: 408, 429, 5xx, timeouts and
    /// network errors. A malformed answer is not retried (it tends to repeat) but falls
    /// back.
    pub fn retryable(&self) -> bool {
        match self {
            AiError::Status { status, .. } => matches!(status, 408 | 429) || *status >= 500,
            AiError::Timeout { .. } | AiError::Network { .. } | AiError::Interrupted { .. } => true,
            _ => false,
        }
    }

    /// Worth trying the next provider of the chain: everything but a request the
    /// provider found invalid (400, 404, 413, 422 would fail the same elsewhere).
    pub fn falls_back(&self) -> bool {
        match self {
            AiError::Status { status, .. } => !matches!(status, 400 | 404 | 413 | 422),
            _ => true,
        }
    }

    /// Counts against the provider's circuit breaker (its own trouble, not ours).
    pub fn is_provider_failure(&self) -> bool {
        match self {
            AiError::Status { status, .. } => *status == 429 || *status >= 500,
            AiError::Timeout { .. }
            | AiError::Network { .. }
            | AiError::Malformed { .. }
            | AiError::Interrupted { .. }
            | AiError::StreamError { .. } => true,
            AiError::NoKey { .. } | AiError::CircuitOpen { .. } => false,
        }
    }

    /// The wait the provider asked for (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// One AI provider on its real wire format.
#[async_trait::async_trait]
pub trait ChatProvider: Send + Sync + std::fmt::Debug {
    fn provider(&self) -> Provider;

    /// One whole answer.
    async fn generate(&self, request: &ChatRequest) -> Result<ChatAnswer, AiError>;

    /// The answer as it is produced. Errors before the first byte of the answer (status,
    /// connection) come back as `Err`; later ones as an `Err` item of the stream.
    async fn stream(&self, request: &ChatRequest) -> Result<TokenStream, AiError>;

    /// The models the provider offers (ids as its API names them).
    async fn models(&self) -> Result<Vec<String>, AiError>;

    /// Whether it can be called now (key present, breaker closed).
    fn availability(&self) -> Availability;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified() {
        let status = |status| AiError::Status {
            provider: Provider::OpenAi,
            status,
            retry_after: None,
        };
        assert!(status(429).retryable() && status(429).falls_back());
        assert!(status(503).retryable() && status(503).is_provider_failure());
        assert!(!status(401).retryable() && status(401).falls_back());
        assert!(!status(401).is_provider_failure());
        assert!(!status(400).falls_back());
        let malformed = AiError::Malformed {
            provider: Provider::Gemini,
            detail: "x".into(),
        };
        assert!(!malformed.retryable() && malformed.falls_back());
        assert_eq!(status(429).outcome(), "http_429");
        assert_eq!(status(502).outcome(), "http_5xx");
        assert_eq!(Role::parse("model"), Role::Assistant);
        assert_eq!(Role::parse("teacher"), Role::User);
    }
}
