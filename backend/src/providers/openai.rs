//! OpenAI chat completions (`POST …/chat/completions`), also spoken by DeepSeek:
//! `Authorization: Bearer <key>`; the answer's text is `choices[0].message.content`.

use serde_json::{Value, json};

use super::PLACEHOLDER_TEXT;

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
