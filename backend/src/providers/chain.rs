//! Provider chains: which providers answer a use, in which order, and how failures are
//! survived.
//!
//! Each use ([`AiUse`]) has an ordered chain (`AI_CHAIN_<USE>`, e.g.
//! `deepseek,openai:gpt-4o-mini,anthropic,gemini`). [`AiRouter`] walks it:
//! - a provider without a key, or whose circuit breaker is open, is skipped at once;
//! - each provider is retried on 408/429/5xx, timeouts and network errors, with
//!   exponential backoff and jitter, waiting what its `Retry-After` asks ([`super::retry`]);
//! - each attempt has `AI_ATTEMPT_TIMEOUT_MS` for its answer (streaming: for its first
//!   token), and the whole walk `AI_DEADLINE_MS`;
//! - a failure that is the provider's own (anything but a request it found invalid)
//!   moves on to the next provider.
//!
//! A stream falls back only until its first token: once text has reached the student, a
//! failure ends the stream with an error rather than restarting it elsewhere. Dropping a
//! call or a stream (the client went away) drops the upstream request, which closes its
//! connection.
//!
//! Whichever provider answers, the caller gets the same shape ([`ChatAnswer`],
//! [`StreamEvent`]s); which one it was is in [`Routed`], in the log line of the answer
//! and in [`crate::metrics::AI_ANSWERS_TOTAL`].
//!
//! The legacy functions keep calling their one provider exactly as the legacy does
//! ([`AiRouter::send_legacy`]); only when their chain lists more providers does a failure
//! of that call fall back, with the answer rebuilt in the format the function reads.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::Retryable;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::anthropic::AnthropicChat;
use super::breaker::{Breaker, BreakerSettings, Verdict};
use super::chat::{
    AiError, Availability, ChatAnswer, ChatMessage, ChatProvider, ChatRequest, StreamEvent,
    TokenStream,
};
use super::gemini::GeminiChat;
use super::keys::ProviderKeys;
use super::openai::OpenAiChat;
use super::retry::RetryPolicy;
use super::wire::Wire;
use super::{
    CallContext, Endpoint, Origins, Provider, ProviderClient, ProviderError, ProviderReply,
};
pub use crate::ai_types::{AiUse, ChainEntry};
use crate::config::BackendConfig;
use crate::js;
use crate::metrics::Metrics;

/// The time limits of a walk.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// One attempt: its whole answer, or its first token.
    pub attempt: Duration,
    /// The whole chain, until an answer or a first token.
    pub overall: Duration,
    /// Silence between two chunks of a stream.
    pub stream_idle: Duration,
}

/// The provider-neutral request: the chain picks provider and model.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
}

impl Prompt {
    fn for_entry(&self, entry: &ChainEntry) -> ChatRequest {
        ChatRequest {
            model: entry.model.clone(),
            messages: self.messages.clone(),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
        }
    }

    /// The prompt of a legacy chat-completions payload (`messages`, `temperature`,
    /// `max_tokens`); content that is not text is sent as its JSON text.
    pub fn from_chat_payload(payload: &Value) -> Self {
        let messages = payload["messages"]
            .as_array()
            .map(|items| items.iter().map(ChatMessage::from_json).collect())
            .unwrap_or_default();
        Self {
            messages,
            temperature: payload["temperature"].as_f64(),
            max_tokens: payload["max_tokens"].as_u64(),
        }
    }
}

/// An answer (or a stream) with who produced it.
#[derive(Debug)]
pub struct Routed<T> {
    pub value: T,
    pub provider: Provider,
    /// The model of the chain entry that answered.
    pub model: String,
    /// Calls made, retries included, over the whole chain.
    pub attempts: u32,
    /// Providers left behind before this one answered.
    pub fallbacks: u32,
}

/// Why a walk produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("no provider could answer ({})", summary(.failures))]
    Exhausted { failures: Vec<AiError> },
    #[error("no answer within the deadline ({})", summary(.failures))]
    Deadline { failures: Vec<AiError> },
    #[error("{0}")]
    Refused(AiError),
}

fn summary(failures: &[AiError]) -> String {
    if failures.is_empty() {
        return "no provider available".into();
    }
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The chains, the providers behind the trait, their breakers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AiRouter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    providers: BTreeMap<Provider, Arc<dyn ChatProvider>>,
    breakers: BTreeMap<Provider, Arc<Breaker>>,
    chains: BTreeMap<AiUse, Vec<ChainEntry>>,
    retry: RetryPolicy,
    deadlines: Deadlines,
    metrics: Arc<Metrics>,
    legacy: ProviderClient,
}

/// A stream's first event, and the rest of it.
type Primed = (StreamEvent, TokenStream);

impl AiRouter {
    /// Builds every provider client. `legacy` is the legacy functions' client (the first
    /// call of a legacy use goes through it).
    pub fn new(
        config: &BackendConfig,
        keys: ProviderKeys,
        legacy: ProviderClient,
        metrics: Arc<Metrics>,
    ) -> crate::Result<Self> {
        // No whole-request timeout: streams may run long; attempts time themselves.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        let origins = Origins::new(config);
        let settings = BreakerSettings::from_config(config);
        let mut providers: BTreeMap<Provider, Arc<dyn ChatProvider>> = BTreeMap::new();
        let mut breakers = BTreeMap::new();
        for provider in Provider::ALL {
            let breaker = Breaker::new(provider, settings, metrics.clone());
            let wire = Wire {
                provider,
                http: http.clone(),
                origins: origins.clone(),
                keys: keys.clone(),
                breaker: breaker.clone(),
            };
            let client: Arc<dyn ChatProvider> = match provider {
                Provider::OpenAi | Provider::DeepSeek => Arc::new(OpenAiChat::new(wire)),
                Provider::Anthropic => Arc::new(AnthropicChat::new(wire)),
                Provider::Gemini => Arc::new(GeminiChat::new(wire)),
            };
            providers.insert(provider, client);
            breakers.insert(provider, breaker);
        }
        let mut chains = BTreeMap::new();
        for ai_use in AiUse::ALL {
            chains.insert(ai_use, config.ai.chain(ai_use).to_vec());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                providers,
                breakers,
                chains,
                retry: RetryPolicy::from_config(config),
                deadlines: Deadlines {
                    attempt: Duration::from_millis(config.ai.attempt_timeout_ms),
                    overall: Duration::from_millis(config.ai.deadline_ms),
                    stream_idle: Duration::from_millis(config.ai.stream_idle_timeout_ms),
                },
                metrics,
                legacy,
            }),
        })
    }

    /// The chain of `ai_use`.
    pub fn chain(&self, ai_use: AiUse) -> &[ChainEntry] {
        self.inner.chains.get(&ai_use).map_or(&[], Vec::as_slice)
    }

    /// The client of one provider.
    pub fn provider(&self, provider: Provider) -> Option<&Arc<dyn ChatProvider>> {
        self.inner.providers.get(&provider)
    }

    /// Every provider's availability now.
    pub fn availability(&self) -> Vec<(Provider, Availability)> {
        self.inner
            .providers
            .iter()
            .map(|(provider, client)| (*provider, client.availability()))
            .collect()
    }

    fn breaker(&self, provider: Provider) -> &Arc<Breaker> {
        // Every provider gets a breaker in `new`.
        &self.inner.breakers[&provider]
    }

    /// One whole answer from the first provider of the chain that can give it.
    pub async fn generate(
        &self,
        ai_use: AiUse,
        prompt: &Prompt,
    ) -> Result<Routed<ChatAnswer>, ChainError> {
        self.generate_over(ai_use, self.chain(ai_use), prompt, 0)
            .await
    }

    async fn generate_over(
        &self,
        ai_use: AiUse,
        chain: &[ChainEntry],
        prompt: &Prompt,
        already_left: u32,
    ) -> Result<Routed<ChatAnswer>, ChainError> {
        let routed = self
            .walk(
                ai_use,
                chain,
                prompt,
                already_left,
                |client, request| async move { client.generate(&request).await },
            )
            .await?;
        if let Some(usage) = routed.value.usage {
            self.inner.metrics.ai_tokens(routed.provider.label(), usage);
        }
        Ok(routed)
    }

    /// The answer as it streams, from the first provider of the chain that produces a
    /// first token. The stream ends after [`StreamEvent::Done`] or an error; mid-stream
    /// failures (an error event, a broken connection, `AI_STREAM_IDLE_TIMEOUT_MS` of
    /// silence) count against the provider's breaker.
    pub async fn stream(
        &self,
        ai_use: AiUse,
        prompt: &Prompt,
    ) -> Result<Routed<TokenStream>, ChainError> {
        let started = Instant::now();
        let routed = self
            .walk(
                ai_use,
                self.chain(ai_use),
                prompt,
                0,
                |client, request| async move {
                    let mut stream = client.stream(&request).await?;
                    match stream.next().await {
                        Some(Ok(first)) => Ok::<Primed, AiError>((first, stream)),
                        Some(Err(error)) => Err(error),
                        None => Err(AiError::Interrupted {
                            provider: client.provider(),
                        }),
                    }
                },
            )
            .await?;
        let provider = routed.provider;
        self.inner
            .metrics
            .ai_first_token(provider.label(), started.elapsed());
        let (first, rest) = routed.value;
        let guarded = guard(
            first,
            rest,
            StreamWatch {
                provider,
                breaker: self.breaker(provider).clone(),
                metrics: self.inner.metrics.clone(),
                idle: self.inner.deadlines.stream_idle,
                finished: false,
            },
        );
        Ok(Routed {
            value: guarded,
            provider,
            model: routed.model,
            attempts: routed.attempts,
            fallbacks: routed.fallbacks,
        })
    }

    /// Walks `chain` with `call` until one provider succeeds.
    async fn walk<T, F, Fut>(
        &self,
        ai_use: AiUse,
        chain: &[ChainEntry],
        prompt: &Prompt,
        already_left: u32,
        call: F,
    ) -> Result<Routed<T>, ChainError>
    where
        F: Fn(Arc<dyn ChatProvider>, ChatRequest) -> Fut,
        Fut: Future<Output = Result<T, AiError>>,
    {
        let deadline = Instant::now() + self.inner.deadlines.overall;
        let metrics = &self.inner.metrics;
        let mut failures = Vec::new();
        let mut attempts = 0;
        let mut left = already_left;
        for entry in chain {
            let provider = entry.provider;
            let Some(client) = self.inner.providers.get(&provider) else {
                continue;
            };
            if Instant::now() >= deadline {
                metrics.ai_answer(ai_use.label(), "none", "deadline");
                return Err(ChainError::Deadline { failures });
            }
            let skip = match client.availability() {
                Availability::NoKey => Some(AiError::NoKey { provider }),
                Availability::CircuitOpen { .. } => Some(AiError::CircuitOpen { provider }),
                Availability::Available | Availability::Probing => None,
            };
            let result = match skip {
                Some(error) => {
                    metrics.ai_attempt(provider.label(), error.outcome(), Duration::ZERO);
                    Err(error)
                }
                None => {
                    let request = prompt.for_entry(entry);
                    let (result, made) = self
                        .try_provider(provider, deadline, || call(client.clone(), request.clone()))
                        .await;
                    attempts += made;
                    result
                }
            };
            match result {
                Ok(value) => {
                    let outcome = if left > 0 { "fallback" } else { "first_choice" };
                    metrics.ai_answer(ai_use.label(), provider.label(), outcome);
                    tracing::info!(
                        ai_use = ai_use.label(),
                        provider = provider.label(),
                        model = %entry.model,
                        attempts,
                        fallbacks = left,
                        "AI provider answered"
                    );
                    return Ok(Routed {
                        value,
                        provider,
                        model: entry.model.clone(),
                        attempts,
                        fallbacks: left,
                    });
                }
                Err(error) if error.falls_back() => {
                    tracing::warn!(
                        ai_use = ai_use.label(),
                        provider = provider.label(),
                        error = %error,
                        "AI provider failed; trying the next one of the chain"
                    );
                    metrics.ai_fallback(provider.label());
                    failures.push(error);
                    left += 1;
                }
                Err(error) => {
                    tracing::warn!(
                        ai_use = ai_use.label(),
                        provider = provider.label(),
                        error = %error,
                        "AI provider refused the request"
                    );
                    metrics.ai_answer(ai_use.label(), "none", "refused");
                    return Err(ChainError::Refused(error));
                }
            }
        }
        let timed_out = Instant::now() >= deadline;
        metrics.ai_answer(
            ai_use.label(),
            "none",
            if timed_out { "deadline" } else { "exhausted" },
        );
        if timed_out {
            Err(ChainError::Deadline { failures })
        } else {
            Err(ChainError::Exhausted { failures })
        }
    }

    /// One provider, retried: returns its result and the number of calls made.
    async fn try_provider<T, F, Fut>(
        &self,
        provider: Provider,
        deadline: Instant,
        call: F,
    ) -> (Result<T, AiError>, u32)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, AiError>>,
    {
        let breaker = self.breaker(provider);
        let metrics = &self.inner.metrics;
        let attempt_limit = self.inner.deadlines.attempt;
        let made = AtomicU32::new(0);
        let once = || async {
            let permit = breaker
                .try_acquire()
                .map_err(|_| AiError::CircuitOpen { provider })?;
            made.fetch_add(1, Ordering::Relaxed);
            let budget = attempt_limit.min(deadline.saturating_duration_since(Instant::now()));
            let started = Instant::now();
            let result = match tokio::time::timeout(budget, call()).await {
                Ok(result) => result,
                Err(_) => Err(AiError::Timeout {
                    provider,
                    after: budget,
                }),
            };
            let elapsed = started.elapsed();
            match &result {
                Ok(_) => {
                    permit.record(Verdict::Success);
                    metrics.ai_attempt(provider.label(), "ok", elapsed);
                }
                Err(error) => {
                    permit.record(if error.is_provider_failure() {
                        Verdict::Failure
                    } else {
                        Verdict::Neutral
                    });
                    if let Some(wait) = error.retry_after() {
                        breaker.hold_off(wait);
                    }
                    metrics.ai_attempt(provider.label(), error.outcome(), elapsed);
                }
            }
            result
        };
        let policy = self.inner.retry;
        let result = once
            .retry(policy.backoff())
            .sleep(tokio::time::sleep)
            .when(AiError::retryable)
            .adjust(|error, computed| policy.next_wait(computed, error.retry_after(), deadline))
            .notify(|error, wait| {
                metrics.ai_retry(provider.label());
                tracing::info!(
                    provider = provider.label(),
                    error = %error,
                    wait_ms = wait.as_millis() as u64,
                    "retrying the AI provider"
                );
            })
            .await;
        (result, made.load(Ordering::Relaxed))
    }

    /// The legacy functions' provider call. With a one-provider chain (the default), or
    /// for a dry run, it is exactly the legacy call ([`ProviderClient::send`]). With more,
    /// a failure of that call (network, timeout, 401/403/408/429/5xx, a body that is not
    /// JSON) falls back along the rest of the chain, and the fallback's answer is handed
    /// back as an OpenAI `chat.completion`, the format these functions read; if every
    /// fallback fails too, the first call's own result is returned, so the error the
    /// client sees is the legacy's.
    pub async fn send_legacy(
        &self,
        context: CallContext,
        ai_use: AiUse,
        endpoint: Endpoint,
        key: &str,
        payload: &Value,
    ) -> Result<ProviderReply, ProviderError> {
        let chain = self.chain(ai_use);
        let legacy = &self.inner.legacy;
        if context.skip || chain.len() <= 1 {
            return legacy.send(context, endpoint, key, payload).await;
        }
        let primary = endpoint.provider();
        let first = match self.breaker(primary).try_acquire() {
            Ok(permit) => {
                let result = legacy.send(context, endpoint, key, payload).await;
                let (verdict, fall_back) = legacy_outcome(&result);
                permit.record(verdict);
                if !fall_back {
                    return result;
                }
                tracing::warn!(
                    ai_use = ai_use.label(),
                    provider = primary.label(),
                    "legacy provider call failed; falling back along the chain"
                );
                self.inner.metrics.ai_fallback(primary.label());
                Some(result)
            }
            Err(_) => {
                tracing::info!(
                    ai_use = ai_use.label(),
                    provider = primary.label(),
                    "circuit breaker open; going straight to the fallbacks"
                );
                self.inner
                    .metrics
                    .ai_attempt(primary.label(), "circuit_open", Duration::ZERO);
                None
            }
        };
        let prompt = Prompt::from_chat_payload(payload);
        match self.generate_over(ai_use, &chain[1..], &prompt, 1).await {
            Ok(routed) => Ok(ProviderReply {
                status: 200,
                text: js::json::stringify(&chat_completion(&routed.value)),
            }),
            Err(error) => {
                tracing::warn!(ai_use = ai_use.label(), %error, "every fallback failed");
                match first {
                    Some(result) => result,
                    // The breaker kept the first provider out; ask it now, as the legacy
                    // would, so the answer is the legacy's.
                    None => legacy.send(context, endpoint, key, payload).await,
                }
            }
        }
    }
}

/// How a legacy call ended: its breaker verdict, and whether it calls for a fallback.
fn legacy_outcome(result: &Result<ProviderReply, ProviderError>) -> (Verdict, bool) {
    match result {
        Err(_) => (Verdict::Failure, true),
        Ok(reply) if reply.ok() => {
            if reply.json().is_ok() {
                (Verdict::Success, false)
            } else {
                (Verdict::Failure, true)
            }
        }
        Ok(reply) => match reply.status {
            429 | 408 => (Verdict::Failure, true),
            status if status >= 500 => (Verdict::Failure, true),
            401 | 403 => (Verdict::Neutral, true),
            _ => (Verdict::Neutral, false),
        },
    }
}

/// An answer as an OpenAI `chat.completion` object (what the legacy functions parse).
pub fn chat_completion(answer: &ChatAnswer) -> Value {
    let mut completion = json!({
        "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": answer.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text},
            "finish_reason": "stop"
        }],
    });
    if let Some(usage) = answer.usage {
        completion["usage"] = json!({
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        });
    }
    completion
}

/// Watches a stream after its first token: idle timeout, breaker, metrics, and what
/// happens when the client goes away (the stream is dropped unfinished).
#[derive(Debug)]
struct StreamWatch {
    provider: Provider,
    breaker: Arc<Breaker>,
    metrics: Arc<Metrics>,
    idle: Duration,
    finished: bool,
}

impl StreamWatch {
    fn finish(&mut self, outcome: &'static str) {
        self.finished = true;
        self.metrics.ai_stream(self.provider.label(), outcome);
    }
}

impl Drop for StreamWatch {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics.ai_stream(self.provider.label(), "cancelled");
            tracing::info!(
                provider = self.provider.label(),
                "stream abandoned by its client; upstream request cancelled"
            );
        }
    }
}

fn guard(first: StreamEvent, rest: TokenStream, watch: StreamWatch) -> TokenStream {
    struct Guarded {
        first: Option<StreamEvent>,
        rest: TokenStream,
        watch: StreamWatch,
    }
    fn seen(watch: &mut StreamWatch, event: &StreamEvent) {
        if let StreamEvent::Done { usage, .. } = event {
            if let Some(usage) = usage {
                watch.metrics.ai_tokens(watch.provider.label(), *usage);
            }
            watch.finish("completed");
        }
    }
    let start = Guarded {
        first: Some(first),
        rest,
        watch,
    };
    Box::pin(futures_util::stream::unfold(
        start,
        |mut state| async move {
            if state.watch.finished {
                return None;
            }
            if let Some(first) = state.first.take() {
                seen(&mut state.watch, &first);
                return Some((Ok(first), state));
            }
            match tokio::time::timeout(state.watch.idle, state.rest.next()).await {
                Ok(Some(Ok(event))) => {
                    seen(&mut state.watch, &event);
                    Some((Ok(event), state))
                }
                Ok(Some(Err(error))) => {
                    state.watch.breaker.record_failure();
                    state.watch.finish("error");
                    Some((Err(error), state))
                }
                Ok(None) => {
                    // Decoders end with Done or an error; an end without either is a break.
                    state.watch.breaker.record_failure();
                    state.watch.finish("error");
                    let provider = state.watch.provider;
                    Some((Err(AiError::Interrupted { provider }), state))
                }
                Err(_) => {
                    state.watch.breaker.record_failure();
                    state.watch.finish("error");
                    let error = AiError::Timeout {
                        provider: state.watch.provider,
                        after: state.watch.idle,
                    };
                    Some((Err(error), state))
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::chat::Role;

    #[test]
    fn legacy_payloads_become_prompts() {
        let payload = json!({"model": "deepseek-chat", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant"}], "temperature": 0.3, "max_tokens": 100, "stream": false});
        let prompt = Prompt::from_chat_payload(&payload);
        assert_eq!(prompt.messages.len(), 3);
        assert_eq!(prompt.messages[0], ChatMessage::new(Role::System, "s"));
        assert_eq!(prompt.messages[2].content, "");
        assert_eq!(prompt.temperature, Some(0.3));
        assert_eq!(prompt.max_tokens, Some(100));
        let odd = Prompt::from_chat_payload(&json!({"messages": [], "temperature": "hot"}));
        assert_eq!(odd.temperature, None);
    }

    #[test]
    fn fallback_answers_read_like_chat_completions() {
        let answer = ChatAnswer {
            provider: Provider::Gemini,
            model: "gemini-1.5-flash".into(),
            text: "hello".into(),
            usage: Some(crate::ai_types::Usage::new(2, 3)),
        };
        let completion = chat_completion(&answer);
        assert_eq!(completion["choices"][0]["message"]["content"], "hello");
        assert_eq!(completion["model"], "gemini-1.5-flash");
        assert_eq!(completion["usage"]["total_tokens"], 5);
    }

    #[test]
    fn legacy_failures_that_fall_back() {
        let reply = |status: u16, text: &str| {
            Ok(ProviderReply {
                status,
                text: text.into(),
            })
        };
        assert_eq!(legacy_outcome(&reply(200, "{}")), (Verdict::Success, false));
        assert_eq!(
            legacy_outcome(&reply(200, "{\"choices\": [oops")),
            (Verdict::Failure, true)
        );
        assert_eq!(legacy_outcome(&reply(429, "")), (Verdict::Failure, true));
        assert_eq!(legacy_outcome(&reply(503, "")), (Verdict::Failure, true));
        assert_eq!(legacy_outcome(&reply(401, "")), (Verdict::Neutral, true));
        assert_eq!(legacy_outcome(&reply(400, "")), (Verdict::Neutral, false));
        let network: Result<ProviderReply, ProviderError> =
            Err(ProviderError::Network { url: "u".into() });
        assert_eq!(legacy_outcome(&network), (Verdict::Failure, true));
    }
}
