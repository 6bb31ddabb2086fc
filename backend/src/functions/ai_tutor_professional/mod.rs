//! `ai-tutor-professional`: the tutor the frontend calls today (DeepSeek). No
//! authentication; CORS *shared*; `options.stream` is ignored (never streams).
//!
//! The prompts are byte-identical to the legacy's (tests/legacy/README.md, "Prompts"),
//! and the answer carries the deterministic [`quality`] score. Noise in the answer:
//! `metadata.processingTime`, `metadata.requestId`, `metadata.timestamp`.

pub mod quality;

use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use rand::Rng;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::{Invocation, any_method};
use crate::AppState;
use crate::cors::Cors;
use crate::js::errors::{cannot_read, get, get_opt, index_opt, not_a_function};
use crate::js::json::parse_body;
use crate::js::value::{or, to_js_string, truthy};
use crate::providers::chain::AiUse;
use crate::providers::{Endpoint, Provider};

const NAME: &str = "ai-tutor-professional";

pub const BASE_PROMPT: &str = "You are an expert educational AI tutor.";

pub const GUIDELINES: &str = "Guidelines:\n\
1. Provide clear, well-structured responses using appropriate academic language\n\
2. Use concrete examples to illustrate concepts\n\
3. Highlight key concepts and important points\n\
4. Encourage critical thinking with thought-provoking questions\n\
5. Build on previous knowledge and make connections between ideas";

pub fn router() -> Router<AppState> {
    any_method(NAME, handle)
}

async fn handle(State(state): State<AppState>, invocation: Invocation) -> Response {
    let cors = Cors::shared();
    if let Some(early) = cors.post_only(&invocation.method) {
        return early;
    }
    let started = Instant::now();
    match answer(&state, &invocation, started).await {
        Ok((status, body)) => cors.json(status, body),
        Err(message) => cors.json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({
                "error": "Internal server error",
                "message": message,
                "timestamp": super::iso_now(),
            }),
        ),
    }
}

/// The answer, or the message of the error the legacy would throw.
async fn answer(
    state: &AppState,
    invocation: &Invocation,
    started: Instant,
) -> Result<(StatusCode, Value), String> {
    let body = parse_body(&invocation.body)?;
    let message = get(Some(&body), "message")?;
    let Some(Value::String(message)) = message.filter(|m| truthy(Some(m))) else {
        return Ok((
            StatusCode::BAD_REQUEST,
            json!({"error": "Message is required and must be a string"}),
        ));
    };
    let key = state
        .providers
        .key(Provider::DeepSeek)
        .ok_or("DEEPSEEK_API_KEY environment variable is required")?
        .expose_secret()
        .to_owned();
    let empty = Value::Object(Map::new());
    let context = or(body.get("context"), &empty);
    let messages = conversation(message, context)?;

    let options = body.get("options");
    let model = if get_opt(options, "mode").and_then(Value::as_str) == Some("reasoning") {
        "deepseek-reasoner"
    } else {
        "deepseek-chat"
    };
    let payload = json!({
        "model": model,
        "messages": messages,
        "temperature": or(get_opt(options, "temperature"), &json!(0.7)),
        "max_tokens": or(get_opt(options, "maxTokens"), &json!(2000)),
        "stream": false,
    });
    let context_call = state.provider_context(NAME, invocation.dry_run);
    let reply = state
        .ai
        .send_legacy(
            context_call,
            AiUse::Tutor,
            Endpoint::DeepSeekV1ChatCompletions,
            &key,
            &payload,
        )
        .await
        .map_err(|e| e.to_string())?;
    if !reply.ok() {
        return Err(format!(
            "DeepSeek API error: {} {}",
            reply.status, reply.text
        ));
    }
    let data = reply.json()?;
    if data.is_null() {
        return Err(cannot_read(Some(&data), "choices"));
    }
    let choice = index_opt(get_opt(Some(&data), "choices"), 0);
    let content = get_opt(get_opt(choice, "message"), "content");
    let content = match content.filter(|c| truthy(Some(c))) {
        None => String::new(),
        Some(Value::String(text)) => text.clone(),
        // assessQuality calls content.toLowerCase() on it.
        Some(_) => return Err(not_a_function("content.toLowerCase")),
    };
    let quality = quality::assess(&content, message);

    let mut metadata = Map::new();
    if let Some(model) = get_opt(Some(&data), "model") {
        metadata.insert("model".into(), model.clone());
    }
    metadata.insert(
        "processingTime".into(),
        json!(started.elapsed().as_millis() as u64),
    );
    metadata.insert(
        "enhancementsApplied".into(),
        json!(["prompt_optimization", "educational_formatting"]),
    );
    metadata.insert("cacheHit".into(), json!(false));
    metadata.insert("responseType".into(), json!("conversation"));
    metadata.insert("requestId".into(), json!(request_id()));
    metadata.insert("timestamp".into(), json!(super::iso_now()));

    let mut response = Map::new();
    response.insert("content".into(), json!(content));
    response.insert("metadata".into(), Value::Object(metadata));
    response.insert("quality".into(), quality);
    let usage = get_opt(Some(&data), "usage");
    if truthy(usage) {
        let mut out = Map::new();
        for (from, to) in [
            ("prompt_tokens", "promptTokens"),
            ("completion_tokens", "completionTokens"),
            ("total_tokens", "totalTokens"),
        ] {
            if let Some(value) = get_opt(usage, from) {
                out.insert(to.into(), value.clone());
            }
        }
        response.insert("usage".into(), Value::Object(out));
    }
    Ok((StatusCode::OK, Value::Object(response)))
}

/// The messages sent: the system prompt, each `context.history` item as `{role,
/// content}`, then the user message; the error is the JavaScript one a bad history throws.
pub fn conversation(message: &str, context: &Value) -> Result<Vec<Value>, String> {
    let mut messages = vec![json!({"role": "system", "content": system_prompt(context)})];
    let history = get_opt(Some(context), "history");
    if truthy(history) {
        let Some(Value::Array(items)) = history else {
            return Err(not_a_function("context.history.map"));
        };
        for item in items {
            let mut entry = Map::new();
            match item {
                Value::Null => return Err(cannot_read(Some(item), "role")),
                Value::Object(fields) => {
                    for key in ["role", "content"] {
                        if let Some(value) = fields.get(key) {
                            entry.insert(key.into(), value.clone());
                        }
                    }
                }
                // `(5).role` is undefined: JSON.stringify leaves both keys out.
                _ => {}
            }
            messages.push(Value::Object(entry));
        }
    }
    messages.push(json!({"role": "user", "content": user_prompt(message, context)}));
    Ok(messages)
}

/// The system message: base sentence, specialisation, level, then the guidelines.
pub fn system_prompt(context: &Value) -> String {
    let mut sentences = vec![BASE_PROMPT.to_owned()];
    let subject = get_opt(Some(context), "subject");
    if truthy(subject) {
        sentences.push(format!("You specialize in {}.", to_js_string(subject)));
    }
    let difficulty = get_opt(Some(context), "difficulty");
    if truthy(difficulty) {
        sentences.push(format!(
            "Adjust your explanations for {} level understanding.",
            to_js_string(difficulty)
        ));
    }
    format!("{}\n\n{GUIDELINES}", sentences.join(" "))
}

/// The user message with the bracketed enhancements, when any applies.
pub fn user_prompt(message: &str, context: &Value) -> String {
    let mut enhancements = Vec::new();
    let subject = get_opt(Some(context), "subject");
    if truthy(subject) {
        enhancements.push(format!(
            "Context: This is a {} question.",
            to_js_string(subject)
        ));
    }
    let difficulty = get_opt(Some(context), "difficulty");
    if truthy(difficulty) {
        enhancements.push(format!("Level: {}", to_js_string(difficulty)));
    }
    let lower = message.to_lowercase();
    if lower.contains("explain") || lower.contains("what is") {
        enhancements.push("Please provide a structured explanation with examples.".into());
    } else if lower.contains("solve") || lower.contains("calculate") {
        enhancements.push("Please show step-by-step solution process.".into());
    }
    if enhancements.is_empty() {
        message.to_owned()
    } else {
        format!("{message}\n\n[{}]", enhancements.join(" "))
    }
}

/// `req_<epoch ms>_<9 base-36 chars>`.
fn request_id() -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let suffix: String = (0..9)
        .map(|_| char::from(DIGITS[rng.random_range(0..DIGITS.len())]))
        .collect();
    format!("req_{}_{suffix}", chrono::Utc::now().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_match_the_legacy() {
        let both = json!({"subject": "Calculus", "difficulty": "advanced"});
        assert_eq!(
            system_prompt(&both),
            "You are an expert educational AI tutor. You specialize in Calculus. Adjust your explanations for advanced level understanding.\n\nGuidelines:\n1. Provide clear, well-structured responses using appropriate academic language\n2. Use concrete examples to illustrate concepts\n3. Highlight key concepts and important points\n4. Encourage critical thinking with thought-provoking questions\n5. Build on previous knowledge and make connections between ideas"
        );
        assert!(
            system_prompt(&json!({}))
                .starts_with("You are an expert educational AI tutor.\n\nGuidelines:\n1.")
        );
        assert_eq!(
            user_prompt("Explain x", &both),
            "Explain x\n\n[Context: This is a Calculus question. Level: advanced Please provide a structured explanation with examples.]"
        );
        assert_eq!(
            user_prompt("Please CALCULATE 2+2", &json!({})),
            "Please CALCULATE 2+2\n\n[Please show step-by-step solution process.]"
        );
        assert_eq!(user_prompt("hello", &json!({"subject": ""})), "hello");
        assert_eq!(
            user_prompt("hi", &json!({"subject": ["a", "b"]})),
            "hi\n\n[Context: This is a a,b question.]"
        );
    }

    #[test]
    fn request_ids_have_the_legacy_shape() {
        let id = request_id();
        let parts: Vec<&str> = id.split('_').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "req");
        assert!(parts[1].parse::<u64>().is_ok());
        assert_eq!(parts[2].len(), 9);
    }
}
