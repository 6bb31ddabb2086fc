//! Anthropic messages (`POST /v1/messages`): `x-api-key` and `anthropic-version:
//! 2023-06-01`; the answer's text is `content[0].text`.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::PLACEHOLDER_TEXT;
use super::Provider;
use super::chat::{
    AiError, Availability, ChatAnswer, ChatProvider, ChatRequest, Role, StreamEvent, TokenStream,
    Usage,
};
use super::wire::{Decoder, Wire, count, token_stream};

/// The API version the legacy pins.
pub const API_VERSION: &str = "2023-06-01";

pub fn authorize(request: reqwest::RequestBuilder, key: &str) -> reqwest::RequestBuilder {
    request
        .header("x-api-key", key)
        .header("anthropic-version", API_VERSION)
}

/// A `message` object carrying the placeholder text.
pub fn placeholder(model: Option<&str>) -> Value {
    json!({
        "id": "msg_shadow",
        "type": "message",
        "role": "assistant",
        "model": model.unwrap_or("shadow"),
        "content": [{"type": "text", "text": PLACEHOLDER_TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 0, "output_tokens": 0}
    })
}

/// Anthropic messages behind [`ChatProvider`]: `POST {origin}/v1/messages` with
/// `x-api-key`; the system prompt travels apart (`system`), `max_tokens` is required
/// (1024 when the request sets none). Streaming reads the named events
/// `message_start` (model, input tokens), `content_block_delta` (`text_delta`),
/// `message_delta` (output tokens) and `message_stop`; an `error` event ends it.
#[derive(Debug, Clone)]
pub struct AnthropicChat {
    wire: Wire,
}

/// `max_tokens` when the request names none (the legacy's value).
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

impl AnthropicChat {
    pub fn new(wire: Wire) -> Self {
        Self { wire }
    }

    fn request(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, AiError> {
        let key = self.wire.key()?;
        Ok(authorize(request, key.expose_secret()))
    }
}

/// The request body.
pub fn messages_body(request: &ChatRequest, stream: bool) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
    });
    if let Some(system) = request.system_text() {
        body["system"] = json!(system);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// A `message` object as a [`ChatAnswer`]: its text blocks joined.
pub fn parse_answer(requested_model: &str, data: &Value) -> Result<ChatAnswer, AiError> {
    let blocks = data["content"]
        .as_array()
        .ok_or_else(|| AiError::Malformed {
            provider: Provider::Anthropic,
            detail: "no content array".into(),
        })?;
    let text: String = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    let usage = data
        .get("usage")
        .filter(|u| u.is_object())
        .map(|u| Usage::new(count(&u["input_tokens"]), count(&u["output_tokens"])));
    Ok(ChatAnswer {
        provider: Provider::Anthropic,
        model: data["model"].as_str().unwrap_or(requested_model).to_owned(),
        text,
        usage,
    })
}

/// Reads the messages stream.
#[derive(Debug)]
pub struct EventDecoder {
    model: String,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

impl EventDecoder {
    pub fn new(requested_model: &str) -> Self {
        Self {
            model: requested_model.to_owned(),
            input_tokens: None,
            output_tokens: None,
        }
    }

    fn malformed(detail: String) -> AiError {
        AiError::Malformed {
            provider: Provider::Anthropic,
            detail,
        }
    }
}

impl Decoder for EventDecoder {
    fn event(&mut self, event: eventsource_stream::Event) -> Result<Vec<StreamEvent>, AiError> {
        if event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| Self::malformed(format!("event data is not JSON ({e})")))?;
        // The event name and the data's `type` agree; the data is authoritative.
        let kind = data["type"].as_str().unwrap_or(event.event.as_str());
        match kind {
            "message_start" => {
                let message = &data["message"];
                if let Some(model) = message["model"].as_str() {
                    model.clone_into(&mut self.model);
                }
                if let Some(usage) = message.get("usage") {
                    self.input_tokens = usage["input_tokens"].as_u64();
                    self.output_tokens = usage["output_tokens"].as_u64();
                }
                Ok(Vec::new())
            }
            "content_block_delta" => match data["delta"]["text"].as_str() {
                Some(text) if data["delta"]["type"] == "text_delta" && !text.is_empty() => {
                    Ok(vec![StreamEvent::Delta(text.to_owned())])
                }
                _ => Ok(Vec::new()),
            },
            "message_delta" => {
                if let Some(tokens) = data["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = Some(tokens);
                }
                Ok(Vec::new())
            }
            "message_stop" => {
                let usage = match (self.input_tokens, self.output_tokens) {
                    (None, None) => None,
                    (input, output) => Some(Usage::new(input.unwrap_or(0), output.unwrap_or(0))),
                };
                Ok(vec![StreamEvent::Done {
                    model: self.model.clone(),
                    usage,
                }])
            }
            "error" => Err(AiError::StreamError {
                provider: Provider::Anthropic,
                kind: data["error"]["type"].as_str().unwrap_or("error").to_owned(),
            }),
            // ping, content_block_start, content_block_stop, and future event types.
            _ => Ok(Vec::new()),
        }
    }

    fn end(&mut self) -> Result<Option<StreamEvent>, AiError> {
        Err(AiError::Interrupted {
            provider: Provider::Anthropic,
        })
    }
}

#[async_trait::async_trait]
impl ChatProvider for AnthropicChat {
    fn provider(&self) -> Provider {
        Provider::Anthropic
    }

    async fn generate(&self, request: &ChatRequest) -> Result<ChatAnswer, AiError> {
        let post = self.wire.http.post(self.wire.url("/v1/messages"));
        let post = self.request(post)?.json(&messages_body(request, false));
        let response = self.wire.send(post).await?;
        let data = self.wire.json(response).await?;
        parse_answer(&request.model, &data)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<TokenStream, AiError> {
        let post = self.wire.http.post(self.wire.url("/v1/messages"));
        let post = self.request(post)?.json(&messages_body(request, true));
        let response = self.wire.send(post).await?;
        Ok(token_stream(
            self.wire.events(response),
            EventDecoder::new(&request.model),
        ))
    }

    async fn models(&self) -> Result<Vec<String>, AiError> {
        let get = self.request(self.wire.http.get(self.wire.url("/v1/models")))?;
        let response = self.wire.send(get).await?;
        let data = self.wire.json(response).await?;
        super::openai::model_ids(&self.wire, &data["data"], "id")
    }

    fn availability(&self) -> Availability {
        self.wire.availability()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::chat::ChatMessage;

    fn event(name: &str, data: Value) -> eventsource_stream::Event {
        eventsource_stream::Event {
            event: name.into(),
            data: data.to_string(),
            id: String::new(),
            retry: None,
        }
    }

    #[test]
    fn the_system_prompt_travels_apart() {
        let request = ChatRequest {
            model: "claude-3-haiku-20240307".into(),
            messages: vec![
                ChatMessage::new(Role::System, "be brief"),
                ChatMessage::new(Role::User, "hi"),
            ],
            temperature: None,
            max_tokens: None,
        };
        assert_eq!(
            messages_body(&request, true),
            json!({"model": "claude-3-haiku-20240307", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}], "system": "be brief", "stream": true})
        );
    }

    #[test]
    fn events_decode_to_deltas_then_done_with_usage() {
        let mut decoder = EventDecoder::new("asked");
        let start = json!({"type": "message_start", "message": {"model": "claude-3-haiku-20240307", "usage": {"input_tokens": 7, "output_tokens": 1}}});
        assert!(
            decoder
                .event(event("message_start", start))
                .expect("ok")
                .is_empty()
        );
        let ping = json!({"type": "ping"});
        assert!(decoder.event(event("ping", ping)).expect("ok").is_empty());
        let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}});
        assert_eq!(
            decoder
                .event(event("content_block_delta", delta))
                .expect("ok"),
            vec![StreamEvent::Delta("Hello".into())]
        );
        let end = json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 12}});
        assert!(
            decoder
                .event(event("message_delta", end))
                .expect("ok")
                .is_empty()
        );
        assert_eq!(
            decoder
                .event(event("message_stop", json!({"type": "message_stop"})))
                .expect("ok"),
            vec![StreamEvent::Done {
                model: "claude-3-haiku-20240307".into(),
                usage: Some(Usage::new(7, 12))
            }]
        );
        let overloaded =
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "x"}});
        assert!(matches!(
            decoder.event(event("error", overloaded)),
            Err(AiError::StreamError { kind, .. }) if kind == "overloaded_error"
        ));
    }
}
