//! The AI provider layer: OpenAI, DeepSeek, Anthropic and Gemini, each on its own wire
//! format ([`openai`] for OpenAI and DeepSeek, [`anthropic`], [`gemini`]).
//!
//! Two ways in:
//! - [`ProviderClient::send`], the legacy functions' call: posts the exact JSON body the
//!   legacy sends to one of the endpoints the legacy uses ([`Endpoint`]) and hands back
//!   the provider's answer as received, so those functions answer byte for byte like
//!   the legacy.
//! - [`chain::AiRouter`], for new uses (the streaming tutor) and, when configured, as
//!   fallback behind the legacy call: every provider behind one trait
//!   ([`chat::ChatProvider`]: generate, stream, models, availability) with a
//!   provider-neutral request and answer, an ordered chain per use, retries with backoff
//!   ([`retry`]), a circuit breaker per provider ([`breaker`]) and deadlines.
//!
//! A configured base URL (`<P>_BASE_URL`) replaces only the scheme, host and port of the
//! real endpoint; paths and queries stay as the contract gives them. Keys come from the
//! key vault, else the configuration ([`keys`]), and are never logged or returned.
//!
//! Shadowed requests may skip the call ([`crate::config::ShadowProviderMode::Skip`]): the
//! client then answers with a placeholder in the provider's own format, so the function
//! builds its answer as usual and a diff rule compares its shape only.
//!
//! Each call is counted in [`crate::metrics::PROVIDER_CALLS_TOTAL`] by provider and outcome.

pub mod anthropic;
pub mod breaker;
pub mod budget;
pub mod chain;
pub mod chat;
pub mod gemini;
pub mod keys;
pub mod openai;
pub mod retry;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub use crate::ai_types::Provider;
use crate::config::BackendConfig;
use crate::js;
use crate::metrics::Metrics;
use keys::ProviderKeys;

/// An endpoint as the legacy functions call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `https://api.deepseek.com/v1/chat/completions` (ai-tutor-professional).
    DeepSeekV1ChatCompletions,
    /// `https://api.deepseek.com/chat/completions` (ai-proxy, ai-proxy-secure).
    DeepSeekChatCompletions,
    /// `https://api.openai.com/v1/chat/completions`.
    OpenAiChatCompletions,
    /// `https://api.anthropic.com/v1/messages`.
    AnthropicMessages,
    /// `https://generativelanguage.googleapis.com/v1beta/models/gemini-1.5-flash:generateContent`.
    GeminiGenerateContent,
}

impl Endpoint {
    pub fn provider(self) -> Provider {
        match self {
            Endpoint::DeepSeekV1ChatCompletions | Endpoint::DeepSeekChatCompletions => {
                Provider::DeepSeek
            }
            Endpoint::OpenAiChatCompletions => Provider::OpenAi,
            Endpoint::AnthropicMessages => Provider::Anthropic,
            Endpoint::GeminiGenerateContent => Provider::Gemini,
        }
    }

    /// The path (and fixed query) of the real URL.
    fn path(self) -> &'static str {
        match self {
            Endpoint::DeepSeekV1ChatCompletions => "/v1/chat/completions",
            Endpoint::DeepSeekChatCompletions => "/chat/completions",
            Endpoint::OpenAiChatCompletions => "/v1/chat/completions",
            Endpoint::AnthropicMessages => "/v1/messages",
            Endpoint::GeminiGenerateContent => "/v1beta/models/gemini-1.5-flash:generateContent",
        }
    }
}

/// A provider's HTTP answer: status and body text (decoded as UTF-8, lossily).
#[derive(Debug, Clone)]
pub struct ProviderReply {
    pub status: u16,
    pub text: String,
}

impl ProviderReply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `await response.json()`; the error is V8's `SyntaxError` text.
    pub fn json(&self) -> Result<Value, String> {
        js::json::parse(&self.text)
    }
}

/// Why no answer came back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Connection refused, reset, DNS… (the text names the URL without its query).
    #[error("error sending request for url ({url})")]
    Network { url: String },
    #[error("provider request timed out after {seconds} s ({url})")]
    Timeout { url: String, seconds: u64 },
}

/// The answer header saying that a dry run skipped its provider call, so its AI content
/// is a placeholder. Only the gateway reads it (it removes every `x-studyflow-*` header
/// from answers to clients): a pair carrying it is counted as not compared.
pub const PROVIDER_SKIPPED_HEADER: &str = "x-studyflow-provider";

tokio::task_local! {
    /// Set when a provider call of the current request was skipped.
    static PROVIDER_SKIPPED: std::cell::Cell<bool>;
}

/// Runs `request` and says whether it skipped a provider call (a dry run's placeholder).
pub async fn tracking_skips<F: std::future::Future>(request: F) -> (F::Output, bool) {
    PROVIDER_SKIPPED
        .scope(std::cell::Cell::new(false), async {
            let output = request.await;
            (output, PROVIDER_SKIPPED.with(std::cell::Cell::get))
        })
        .await
}

/// Who is calling: decides whether a shadowed call is skipped.
#[derive(Debug, Clone, Copy)]
pub struct CallContext {
    pub function: &'static str,
    /// The call is made for a dry run and must be answered by a placeholder.
    pub skip: bool,
}

/// The configured origin of each provider (`<P>_BASE_URL`), else the real one.
#[derive(Debug, Clone)]
pub struct Origins {
    configured: Arc<BTreeMap<Provider, String>>,
}

impl Origins {
    pub fn new(config: &BackendConfig) -> Self {
        let mut configured = BTreeMap::new();
        for (provider, base) in [
            (Provider::OpenAi, &config.providers.openai.base_url),
            (Provider::DeepSeek, &config.providers.deepseek.base_url),
            (Provider::Anthropic, &config.providers.anthropic.base_url),
            (Provider::Gemini, &config.providers.gemini.base_url),
        ] {
            if let Some(base) = base {
                // `new URL(base).origin`: the base URL's path is ignored, as by the legacy.
                configured.insert(provider, base.origin().ascii_serialization());
            }
        }
        Self {
            configured: Arc::new(configured),
        }
    }

    /// `scheme://host[:port]` to send `provider`'s requests to.
    pub fn of(&self, provider: Provider) -> &str {
        self.configured
            .get(&provider)
            .map_or(provider.real_origin(), String::as_str)
    }
}

/// The legacy functions' provider client.
#[derive(Debug, Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    origins: Origins,
    keys: ProviderKeys,
    timeout_secs: u64,
    metrics: Arc<Metrics>,
}

impl ProviderClient {
    pub fn new(
        config: &BackendConfig,
        keys: ProviderKeys,
        metrics: Arc<Metrics>,
    ) -> crate::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.providers.timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            http,
            origins: Origins::new(config),
            keys,
            timeout_secs: config.providers.timeout_secs,
            metrics,
        })
    }

    /// The key of `provider` (vault, else configuration), if any.
    pub fn key(&self, provider: Provider) -> Option<SecretString> {
        self.keys.get(provider)
    }

    /// The keys this client reads.
    pub fn keys(&self) -> &ProviderKeys {
        &self.keys
    }

    /// The endpoint's URL with the configured origin (no key in it).
    pub fn url(&self, endpoint: Endpoint) -> String {
        format!(
            "{}{}",
            self.origins.of(endpoint.provider()),
            endpoint.path()
        )
    }

    /// Posts `body` (serialised like `JSON.stringify`) to `endpoint` with `key`.
    ///
    /// `key` is passed by the caller because some legacy paths send whatever the
    /// environment held, even nothing (see the function modules).
    pub async fn send(
        &self,
        context: CallContext,
        endpoint: Endpoint,
        key: &str,
        body: &Value,
    ) -> Result<ProviderReply, ProviderError> {
        let provider = endpoint.provider();
        if context.skip {
            // Outside a tracked request (a background task) there is no answer to mark.
            let _ = PROVIDER_SKIPPED.try_with(|skipped| skipped.set(true));
            self.metrics
                .provider_call(provider.label(), "skipped", Duration::ZERO);
            tracing::debug!(
                function = context.function,
                provider = provider.label(),
                "shadow: provider call skipped"
            );
            return Ok(placeholder(endpoint, body));
        }
        let url = self.url(endpoint);
        let request = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(js::json::stringify(body));
        let request = match provider {
            Provider::OpenAi | Provider::DeepSeek => openai::authorize(request, key),
            Provider::Anthropic => anthropic::authorize(request, key),
            Provider::Gemini => gemini::authorize(request, key),
        };
        let started = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>(ProviderReply {
                status,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            })
        }
        .await;
        let elapsed = started.elapsed();
        match result {
            Ok(reply) => {
                let outcome = if reply.ok() { "ok" } else { "http_error" };
                self.metrics
                    .provider_call(provider.label(), outcome, elapsed);
                tracing::info!(
                    function = context.function,
                    provider = provider.label(),
                    status = reply.status,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "provider call"
                );
                Ok(reply)
            }
            Err(error) => {
                self.metrics
                    .provider_call(provider.label(), "network_error", elapsed);
                // reqwest's error text may quote the URL with its query (the Gemini key).
                tracing::warn!(
                    function = context.function,
                    provider = provider.label(),
                    timeout = error.is_timeout(),
                    "provider call failed"
                );
                if error.is_timeout() {
                    Err(ProviderError::Timeout {
                        url,
                        seconds: self.timeout_secs,
                    })
                } else {
                    Err(ProviderError::Network { url })
                }
            }
        }
    }

    /// `key` as the legacy would send it: the configured key, or the text `undefined`
    /// where the legacy interpolates an unset variable.
    pub fn key_or_undefined(&self, provider: Provider) -> String {
        self.key(provider)
            .map_or_else(|| "undefined".to_owned(), |k| k.expose_secret().to_owned())
    }
}

/// The placeholder answer of a skipped call, in the endpoint's own format.
fn placeholder(endpoint: Endpoint, body: &Value) -> ProviderReply {
    let model = body.get("model").and_then(Value::as_str);
    let value = match endpoint.provider() {
        Provider::OpenAi | Provider::DeepSeek => openai::placeholder(model),
        Provider::Anthropic => anthropic::placeholder(model),
        Provider::Gemini => gemini::placeholder(),
    };
    ProviderReply {
        status: 200,
        text: js::json::stringify(&value),
    }
}

/// The text of a skipped call's placeholder answer.
pub const PLACEHOLDER_TEXT: &str = "[shadow dry run: provider call skipped]";

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: Option<&str>) -> ProviderClient {
        let base = base.map(|text| url::Url::parse(text).expect("a URL"));
        let mut config = BackendConfig::default();
        config.providers.deepseek.base_url = base.clone();
        config.providers.gemini.base_url = base;
        ProviderClient::new(
            &config,
            ProviderKeys::new(&config),
            Arc::new(Metrics::new().expect("metrics")),
        )
        .expect("client")
    }

    #[test]
    fn base_urls_replace_only_the_origin() {
        let real = client(None);
        assert_eq!(
            real.url(Endpoint::DeepSeekV1ChatCompletions),
            "https://api.deepseek.com/v1/chat/completions"
        );
        let local = client(Some("http://127.0.0.1:7000/ignored/path"));
        assert_eq!(
            local.url(Endpoint::DeepSeekChatCompletions),
            "http://127.0.0.1:7000/chat/completions"
        );
        assert_eq!(
            local.url(Endpoint::GeminiGenerateContent),
            "http://127.0.0.1:7000/v1beta/models/gemini-1.5-flash:generateContent"
        );
        assert_eq!(
            local.url(Endpoint::OpenAiChatCompletions),
            "https://api.openai.com/v1/chat/completions"
        );
    }

    #[test]
    fn placeholders_speak_each_format() {
        let body = serde_json::json!({"model": "gpt-4o-mini"});
        let openai = placeholder(Endpoint::OpenAiChatCompletions, &body)
            .json()
            .expect("json");
        assert_eq!(openai["choices"][0]["message"]["content"], PLACEHOLDER_TEXT);
        assert_eq!(openai["model"], "gpt-4o-mini");
        let claude = placeholder(Endpoint::AnthropicMessages, &body)
            .json()
            .expect("json");
        assert_eq!(claude["content"][0]["text"], PLACEHOLDER_TEXT);
        let gemini = placeholder(Endpoint::GeminiGenerateContent, &body)
            .json()
            .expect("json");
        assert_eq!(
            gemini["candidates"][0]["content"]["parts"][0]["text"],
            PLACEHOLDER_TEXT
        );
    }
}
