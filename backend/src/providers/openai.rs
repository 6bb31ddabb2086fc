//! OpenAI chat completions (`POST …/chat/completions`), also spoken by DeepSeek:
//! `Authorization: Bearer <key>`; the answer's text is `choices[0].message.content`.
//! The legacy functions' calls use [`authorize`] and [`placeholder`]; new uses go
//! through [`OpenAiChat`].

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::PLACEHOLDER_TEXT;
use super::Provider;
use super::chat::{
    AiError, Availability, ChatAnswer, ChatProvider, ChatRequest, StreamEvent, TokenStream, Usage,
};
use super::wire::{Decoder, Wire, count, token_stream};

pub fn authorize(request: reqwest::RequestBuilder, key: &str) -> reqwest::RequestBuilder {
    request.header(reqwest::header::AUTHORIZATION, format!("Bearer {key}"))
}

/// A `chat.completion` object carrying the placeholder text.
pub fn placeholder(model: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-shadow",
        "object": "chat.completion",
        "created": 0,
        "model": model.unwrap_or("shadow"),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": PLACEHOLDER_TEXT},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    })
}

/// OpenAI chat completions, and DeepSeek's copy of them, behind [`ChatProvider`].
///
/// Requests: `POST {origin}/v1/chat/completions` (DeepSeek: `/chat/completions`) with a
/// bearer key; streaming asks for `stream: true` and `stream_options.include_usage`, and
/// reads `data:` chunks (`choices[0].delta.content`) until `data: [DONE]`, the usage
/// coming in the last chunk before it.
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    wire: Wire,
}

impl OpenAiChat {
    /// `wire.provider` is [`Provider::OpenAi`] or [`Provider::DeepSeek`].
    pub fn new(wire: Wire) -> Self {
        Self { wire }
    }

    fn prefix(&self) -> &'static str {
        match self.wire.provider {
            Provider::DeepSeek => "",
            _ => "/v1",
        }
    }

    fn post(&self, body: &Value) -> Result<reqwest::RequestBuilder, AiError> {
        let key = self.wire.key()?;
        let url = self
            .wire
            .url(&format!("{}/chat/completions", self.prefix()));
        Ok(authorize(self.wire.http.post(url), key.expose_secret()).json(body))
    }
}

/// The request body.
pub fn chat_body(request: &ChatRequest, stream: bool) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
        .collect();
    let mut body = json!({"model": request.model, "messages": messages, "stream": stream});
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(max_tokens) = request.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn usage_of(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|u| u.is_object())?;
    Some(Usage::new(
        count(&usage["prompt_tokens"]),
        count(&usage["completion_tokens"]),
    ))
}

/// A `chat.completion` object as a [`ChatAnswer`].
pub fn parse_answer(
    provider: Provider,
    requested_model: &str,
    data: &Value,
) -> Result<ChatAnswer, AiError> {
    let text = data
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| AiError::Malformed {
            provider,
            detail: "no choices[0].message.content".into(),
        })?;
    Ok(ChatAnswer {
        provider,
        model: data["model"].as_str().unwrap_or(requested_model).to_owned(),
        text: text.to_owned(),
        usage: usage_of(data),
    })
}

/// Reads `chat.completion.chunk` events.
#[derive(Debug)]
pub struct ChunkDecoder {
    provider: Provider,
    model: String,
    usage: Option<Usage>,
}

impl ChunkDecoder {
    pub fn new(provider: Provider, requested_model: &str) -> Self {
        Self {
            provider,
            model: requested_model.to_owned(),
            usage: None,
        }
    }
}

impl Decoder for ChunkDecoder {
    fn event(&mut self, event: eventsource_stream::Event) -> Result<Vec<StreamEvent>, AiError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(vec![StreamEvent::Done {
                model: self.model.clone(),
                usage: self.usage,
            }]);
        }
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| AiError::Malformed {
            provider: self.provider,
            detail: format!("chunk is not JSON ({e})"),
        })?;
        if let Some(error) = chunk.get("error") {
            return Err(AiError::StreamError {
                provider: self.provider,
                kind: error["type"].as_str().unwrap_or("error").to_owned(),
            });
        }
        if let Some(model) = chunk["model"].as_str() {
            model.clone_into(&mut self.model);
        }
        if let Some(usage) = usage_of(&chunk) {
            self.usage = Some(usage);
        }
        match chunk
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            Some(text) if !text.is_empty() => Ok(vec![StreamEvent::Delta(text.to_owned())]),
            _ => Ok(Vec::new()),
        }
    }

    fn end(&mut self) -> Result<Option<StreamEvent>, AiError> {
        Err(AiError::Interrupted {
            provider: self.provider,
        })
    }
}

#[async_trait::async_trait]
impl ChatProvider for OpenAiChat {
    fn provider(&self) -> Provider {
        self.wire.provider
    }

    async fn generate(&self, request: &ChatRequest) -> Result<ChatAnswer, AiError> {
        let response = self
            .wire
            .send(self.post(&chat_body(request, false))?)
            .await?;
        let data = self.wire.json(response).await?;
        parse_answer(self.wire.provider, &request.model, &data)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<TokenStream, AiError> {
        let response = self
            .wire
            .send(self.post(&chat_body(request, true))?)
            .await?;
        Ok(token_stream(
            self.wire.events(response),
            ChunkDecoder::new(self.wire.provider, &request.model),
        ))
    }

    async fn models(&self) -> Result<Vec<String>, AiError> {
        let key = self.wire.key()?;
        let url = self.wire.url(&format!("{}/models", self.prefix()));
        let response = self
            .wire
            .send(authorize(self.wire.http.get(url), key.expose_secret()))
            .await?;
        let data = self.wire.json(response).await?;
        model_ids(&self.wire, &data["data"], "id")
    }

    fn availability(&self) -> Availability {
        self.wire.availability()
    }
}

/// The `field` of every item of a model list.
pub fn model_ids(wire: &Wire, list: &Value, field: &str) -> Result<Vec<String>, AiError> {
    let items = list
        .as_array()
        .ok_or_else(|| wire.malformed("the model list is not an array"))?;
    Ok(items
        .iter()
        .filter_map(|m| m[field].as_str())
        .map(|id| id.trim_start_matches("models/").to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::chat::{ChatMessage, Role};

    fn event(data: &str) -> eventsource_stream::Event {
        eventsource_stream::Event {
            event: "message".into(),
            data: data.into(),
            id: String::new(),
            retry: None,
        }
    }

    #[test]
    fn bodies_follow_the_wire_format() {
        let request = ChatRequest {
            model: "gpt-4o-mini".into(),
            messages: vec![
                ChatMessage::new(Role::System, "s"),
                ChatMessage::new(Role::User, "u"),
            ],
            temperature: Some(0.5),
            max_tokens: None,
        };
        assert_eq!(
            chat_body(&request, true),
            json!({"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "stream": true, "temperature": 0.5, "stream_options": {"include_usage": true}})
        );
        assert!(chat_body(&request, false).get("stream_options").is_none());
    }

    #[test]
    fn chunks_decode_to_deltas_then_done_with_usage() {
        let mut decoder = ChunkDecoder::new(Provider::OpenAi, "asked");
        let role = r#"{"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
        assert_eq!(decoder.event(event(role)).expect("ok"), vec![]);
        let text = r#"{"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi "}}]}"#;
        assert_eq!(
            decoder.event(event(text)).expect("ok"),
            vec![StreamEvent::Delta("Hi ".into())]
        );
        let usage =
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        assert_eq!(decoder.event(event(usage)).expect("ok"), vec![]);
        assert_eq!(
            decoder.event(event("[DONE]")).expect("ok"),
            vec![StreamEvent::Done {
                model: "gpt-4o-mini".into(),
                usage: Some(Usage::new(3, 2))
            }]
        );
        assert!(matches!(decoder.end(), Err(AiError::Interrupted { .. })));
        assert!(matches!(
            decoder.event(event("{oops")),
            Err(AiError::Malformed { .. })
        ));
    }

    #[test]
    fn answers_parse_or_are_malformed() {
        let data = json!({"model": "m", "choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 2}});
        let answer = parse_answer(Provider::DeepSeek, "asked", &data).expect("parses");
        assert_eq!((answer.text.as_str(), answer.model.as_str()), ("x", "m"));
        assert_eq!(answer.usage, Some(Usage::new(1, 2)));
        assert!(parse_answer(Provider::DeepSeek, "asked", &json!({"choices": []})).is_err());
    }
}
