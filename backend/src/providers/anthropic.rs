//! Anthropic messages (`POST /v1/messages`): `x-api-key` and `anthropic-version:
//! 2023-06-01`; the answer's text is `content[0].text`.

use serde_json::{Value, json};

use super::PLACEHOLDER_TEXT;

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
