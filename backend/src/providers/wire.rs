//! HTTP plumbing the three wire formats share: sending a JSON request, turning a non-2xx
//! answer into an [`AiError`] (with its `Retry-After`), reading a JSON body, and framing
//! a streamed body as server-sent events.
//!
//! Nothing here logs a URL: Gemini's key may travel in the query of the legacy calls, and
//! reqwest's error texts quote URLs. Keys are sent in headers by the new calls.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use secrecy::SecretString;
use serde_json::Value;

use super::breaker::Breaker;
use super::chat::{AiError, Availability, StreamEvent, TokenStream};
use super::keys::ProviderKeys;
use super::retry::parse_retry_after;
use super::{Origins, Provider};

/// What every wire format needs: the HTTP client, where the provider is, its key and
/// its breaker (for `availability`).
#[derive(Debug, Clone)]
pub struct Wire {
    pub provider: Provider,
    pub http: reqwest::Client,
    pub origins: Origins,
    pub keys: ProviderKeys,
    pub breaker: Arc<Breaker>,
}

impl Wire {
    /// `origin + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origins.of(self.provider))
    }

    /// The provider's key, or [`AiError::NoKey`].
    pub fn key(&self) -> Result<SecretString, AiError> {
        self.keys.get(self.provider).ok_or(AiError::NoKey {
            provider: self.provider,
        })
    }

    /// Key presence and breaker state.
    pub fn availability(&self) -> Availability {
        if self.keys.get(self.provider).is_none() {
            return Availability::NoKey;
        }
        self.breaker.availability()
    }

    /// Sends `request`; a non-2xx answer becomes [`AiError::Status`].
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AiError> {
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // The body is read (so the connection can be reused) but never logged: providers
        // echo parts of the request in their errors.
        let _ = response.bytes().await;
        Err(AiError::Status {
            provider: self.provider,
            status: status.as_u16(),
            retry_after,
        })
    }

    /// The answer's body as JSON.
    pub async fn json(&self, response: reqwest::Response) -> Result<Value, AiError> {
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| AiError::Malformed {
            provider: self.provider,
            detail: format!("body is not JSON ({e})"),
        })
    }

    /// The body as server-sent events (`\n` or `\r\n` framed).
    pub fn events(
        &self,
        response: reqwest::Response,
    ) -> impl Stream<Item = Result<eventsource_stream::Event, AiError>> + Send + use<> {
        let provider = self.provider;
        response
            .bytes_stream()
            .eventsource()
            .map(move |item| match item {
                Ok(event) => Ok(event),
                Err(eventsource_stream::EventStreamError::Transport(_)) => {
                    Err(AiError::Interrupted { provider })
                }
                Err(error) => Err(AiError::Malformed {
                    provider,
                    detail: format!("event stream does not parse ({error})"),
                }),
            })
    }

    /// A reqwest failure as an [`AiError`], without the URL.
    pub fn transport(&self, error: &reqwest::Error) -> AiError {
        if error.is_timeout() {
            AiError::Timeout {
                provider: self.provider,
                after: Duration::ZERO,
            }
        } else if error.is_decode() || error.is_body() {
            AiError::Interrupted {
                provider: self.provider,
            }
        } else {
            AiError::Network {
                provider: self.provider,
            }
        }
    }

    /// An event's data as JSON.
    pub fn event_json(&self, data: &str) -> Result<Value, AiError> {
        serde_json::from_str(data).map_err(|e| AiError::Malformed {
            provider: self.provider,
            detail: format!("event data is not JSON ({e})"),
        })
    }

    pub fn malformed(&self, detail: impl Into<String>) -> AiError {
        AiError::Malformed {
            provider: self.provider,
            detail: detail.into(),
        }
    }
}

/// A JSON number as `u64` (token counts), 0 when absent.
pub fn count(value: &Value) -> u64 {
    value
        .as_u64()
        .or_else(|| value.as_f64().map(|f| f.max(0.0) as u64))
        .unwrap_or(0)
}

/// Turns one wire format's events into [`StreamEvent`]s.
pub trait Decoder: Send + 'static {
    /// What one server-sent event carries (nothing, text, the end, or a failure).
    fn event(&mut self, event: eventsource_stream::Event) -> Result<Vec<StreamEvent>, AiError>;

    /// The body ended: the final event for formats whose end is the end of the body
    /// (Gemini), an [`AiError::Interrupted`] for those with an end marker that did not
    /// come (OpenAI's `[DONE]`, Anthropic's `message_stop`).
    fn end(&mut self) -> Result<Option<StreamEvent>, AiError>;
}

/// A [`TokenStream`] from a provider's event stream and its decoder. It ends after
/// [`StreamEvent::Done`] or the first error; dropping it drops the connection.
pub fn token_stream<D: Decoder>(
    events: impl Stream<Item = Result<eventsource_stream::Event, AiError>> + Send + 'static,
    decoder: D,
) -> TokenStream {
    struct Reading<D> {
        events: std::pin::Pin<
            Box<dyn Stream<Item = Result<eventsource_stream::Event, AiError>> + Send>,
        >,
        decoder: D,
        pending: VecDeque<StreamEvent>,
        finished: bool,
    }
    let start = Reading {
        events: Box::pin(events),
        decoder,
        pending: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures_util::stream::unfold(
        start,
        |mut reading| async move {
            loop {
                if let Some(event) = reading.pending.pop_front() {
                    if matches!(event, StreamEvent::Done { .. }) {
                        reading.pending.clear();
                        reading.finished = true;
                    }
                    return Some((Ok(event), reading));
                }
                if reading.finished {
                    return None;
                }
                let outcome = match reading.events.next().await {
                    Some(Ok(event)) => reading.decoder.event(event).map(|events| {
                        reading.pending.extend(events);
                        None
                    }),
                    Some(Err(error)) => Err(error),
                    None => {
                        reading.finished = true;
                        reading.decoder.end()
                    }
                };
                match outcome {
                    Ok(None) => {}
                    Ok(Some(last)) => {
                        reading.finished = true;
                        return Some((Ok(last), reading));
                    }
                    Err(error) => {
                        reading.finished = true;
                        return Some((Err(error), reading));
                    }
                }
            }
        },
    ))
}
