//! Gemini `generateContent`: the key travels in the `key` query parameter, appended as
//! the legacy does; the answer's text is `candidates[0].content.parts[0].text`.

use serde_json::{Value, json};

use super::PLACEHOLDER_TEXT;

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
