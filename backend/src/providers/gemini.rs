//! Gemini `generateContent`: the key travels in the `key` query parameter, appended as
//! the legacy does; the answer's text is `candidates[0].content.parts[0].text`.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::PLACEHOLDER_TEXT;
use super::Provider;
use super::chat::{
    AiError, Availability, ChatAnswer, ChatProvider, ChatRequest, Role, StreamEvent, TokenStream,
    Usage,
};
use super::wire::{Decoder, Wire, count, token_stream};

pub fn authorize(request: reqwest::RequestBuilder, key: &str) -> reqwest::RequestBuilder {
    request.query(&[("key", key)])
}

/// A `GenerateContentResponse` carrying the placeholder text.
pub fn placeholder() -> Value {
    json!({
        "candidates": [{
            "content": {"parts": [{"text": PLACEHOLDER_TEXT}], "role": "model"},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0}
    })
}

/// Gemini behind [`ChatProvider`]: `POST {origin}/v1beta/models/{model}:generateContent`,
/// streaming `:streamGenerateContent?alt=sse`, the key in `x-goog-api-key` (never in the
/// URL). Messages become `contents` (`user`/`model` roles), the system prompt
/// `systemInstruction`. A stream is a series of `data:` chunks, each a partial
/// `GenerateContentResponse`; the usage comes with the last one, and the end of the body
/// is the end of the answer.
#[derive(Debug, Clone)]
pub struct GeminiChat {
    wire: Wire,
}

impl GeminiChat {
    pub fn new(wire: Wire) -> Self {
        Self { wire }
    }

    fn post(
        &self,
        model: &str,
        action: &str,
        body: &Value,
    ) -> Result<reqwest::RequestBuilder, AiError> {
        let key = self.wire.key()?;
        let url = self.wire.url(&format!("/v1beta/models/{model}:{action}"));
        Ok(self
            .wire
            .http
            .post(url)
            .header("x-goog-api-key", key.expose_secret())
            .json(body))
    }
}

/// The request body.
pub fn content_body(request: &ChatRequest) -> Value {
    let contents: Vec<Value> = request
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| {
            let role = if m.role == Role::Assistant {
                "model"
            } else {
                "user"
            };
            json!({"role": role, "parts": [{"text": m.content}]})
        })
        .collect();
    let mut body = json!({"contents": contents});
    if let Some(system) = request.system_text() {
        body["systemInstruction"] = json!({"parts": [{"text": system}]});
    }
    let mut generation = serde_json::Map::new();
    if let Some(temperature) = request.temperature {
        generation.insert("temperature".into(), json!(temperature));
    }
    if let Some(max_tokens) = request.max_tokens {
        generation.insert("maxOutputTokens".into(), json!(max_tokens));
    }
    if !generation.is_empty() {
        body["generationConfig"] = Value::Object(generation);
    }
    body
}

/// The text of a (partial) `GenerateContentResponse`: its first candidate's parts.
fn text_of(data: &Value) -> Option<String> {
    let parts = data.pointer("/candidates/0/content/parts")?.as_array()?;
    Some(parts.iter().filter_map(|p| p["text"].as_str()).collect())
}

fn usage_of(data: &Value) -> Option<Usage> {
    let usage = data.get("usageMetadata").filter(|u| u.is_object())?;
    Some(Usage::new(
        count(&usage["promptTokenCount"]),
        count(&usage["candidatesTokenCount"]),
    ))
}

/// A `GenerateContentResponse` as a [`ChatAnswer`].
pub fn parse_answer(requested_model: &str, data: &Value) -> Result<ChatAnswer, AiError> {
    let text = text_of(data).ok_or_else(|| AiError::Malformed {
        provider: Provider::Gemini,
        detail: "no candidates[0].content.parts".into(),
    })?;
    Ok(ChatAnswer {
        provider: Provider::Gemini,
        model: data["modelVersion"]
            .as_str()
            .unwrap_or(requested_model)
            .to_owned(),
        text,
        usage: usage_of(data),
    })
}

/// Reads the `alt=sse` stream.
#[derive(Debug)]
pub struct ChunkDecoder {
    model: String,
    usage: Option<Usage>,
    /// At least one chunk came: an empty body is not an answer.
    seen: bool,
}

impl ChunkDecoder {
    pub fn new(requested_model: &str) -> Self {
        Self {
            model: requested_model.to_owned(),
            usage: None,
            seen: false,
        }
    }
}

impl Decoder for ChunkDecoder {
    fn event(&mut self, event: eventsource_stream::Event) -> Result<Vec<StreamEvent>, AiError> {
        if event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let data: Value = serde_json::from_str(&event.data).map_err(|e| AiError::Malformed {
            provider: Provider::Gemini,
            detail: format!("chunk is not JSON ({e})"),
        })?;
        if let Some(error) = data.get("error") {
            return Err(AiError::StreamError {
                provider: Provider::Gemini,
                kind: error["status"].as_str().unwrap_or("error").to_owned(),
            });
        }
        self.seen = true;
        if let Some(model) = data["modelVersion"].as_str() {
            model.clone_into(&mut self.model);
        }
        if let Some(usage) = usage_of(&data) {
            self.usage = Some(usage);
        }
        match text_of(&data) {
            Some(text) if !text.is_empty() => Ok(vec![StreamEvent::Delta(text)]),
            _ => Ok(Vec::new()),
        }
    }

    fn end(&mut self) -> Result<Option<StreamEvent>, AiError> {
        if !self.seen {
            return Err(AiError::Malformed {
                provider: Provider::Gemini,
                detail: "the stream carried no chunk".into(),
            });
        }
        Ok(Some(StreamEvent::Done {
            model: self.model.clone(),
            usage: self.usage,
        }))
    }
}

#[async_trait::async_trait]
impl ChatProvider for GeminiChat {
    fn provider(&self) -> Provider {
        Provider::Gemini
    }

    async fn generate(&self, request: &ChatRequest) -> Result<ChatAnswer, AiError> {
        let post = self.post(&request.model, "generateContent", &content_body(request))?;
        let response = self.wire.send(post).await?;
        let data = self.wire.json(response).await?;
        parse_answer(&request.model, &data)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<TokenStream, AiError> {
        let post = self
            .post(
                &request.model,
                "streamGenerateContent",
                &content_body(request),
            )?
            .query(&[("alt", "sse")]);
        let response = self.wire.send(post).await?;
        Ok(token_stream(
            self.wire.events(response),
            ChunkDecoder::new(&request.model),
        ))
    }

    async fn models(&self) -> Result<Vec<String>, AiError> {
        let key = self.wire.key()?;
        let get = self
            .wire
            .http
            .get(self.wire.url("/v1beta/models"))
            .header("x-goog-api-key", key.expose_secret());
        let response = self.wire.send(get).await?;
        let data = self.wire.json(response).await?;
        super::openai::model_ids(&self.wire, &data["models"], "name")
    }

    fn availability(&self) -> Availability {
        self.wire.availability()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::chat::ChatMessage;

    fn event(data: Value) -> eventsource_stream::Event {
        eventsource_stream::Event {
            event: "message".into(),
            data: data.to_string(),
            id: String::new(),
            retry: None,
        }
    }

    #[test]
    fn roles_and_settings_follow_the_wire_format() {
        let request = ChatRequest {
            model: "gemini-1.5-flash".into(),
            messages: vec![
                ChatMessage::new(Role::System, "s"),
                ChatMessage::new(Role::User, "u"),
                ChatMessage::new(Role::Assistant, "a"),
            ],
            temperature: Some(0.2),
            max_tokens: Some(50),
        };
        assert_eq!(
            content_body(&request),
            json!({
                "contents": [{"role": "user", "parts": [{"text": "u"}]}, {"role": "model", "parts": [{"text": "a"}]}],
                "systemInstruction": {"parts": [{"text": "s"}]},
                "generationConfig": {"temperature": 0.2, "maxOutputTokens": 50}
            })
        );
    }

    #[test]
    fn chunks_decode_and_the_end_of_the_body_is_done() {
        let mut decoder = ChunkDecoder::new("gemini-1.5-flash");
        assert!(matches!(decoder.end(), Err(AiError::Malformed { .. })));
        let chunk = json!({"candidates": [{"content": {"parts": [{"text": "Hi "}], "role": "model"}}], "modelVersion": "gemini-1.5-flash-002"});
        assert_eq!(
            decoder.event(event(chunk)).expect("ok"),
            vec![StreamEvent::Delta("Hi ".into())]
        );
        let last = json!({"candidates": [{"content": {"parts": [{"text": "there"}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6}});
        assert_eq!(
            decoder.event(event(last)).expect("ok"),
            vec![StreamEvent::Delta("there".into())]
        );
        assert_eq!(
            decoder.end().expect("done"),
            Some(StreamEvent::Done {
                model: "gemini-1.5-flash-002".into(),
                usage: Some(Usage::new(4, 2))
            })
        );
    }
}
