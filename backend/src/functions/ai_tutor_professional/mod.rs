//! `ai-tutor-professional`: the tutor the frontend calls today (DeepSeek). No
//! authentication; CORS *shared*; `options.stream` is ignored (never streams).
//!
//! The prompts come from `backend/prompts/ai-tutor-professional.jinja` ([`crate::prompts`]),
//! and the answer carries the deterministic [`quality`] score. Noise in the answer:
//! `metadata.processingTime`, `metadata.requestId`, `metadata.timestamp`.

pub mod quality;

use std::time::Instant;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use rand::Rng;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::{Entry, Invocation, behind_cors};
use crate::AppState;
use crate::cors::Cors;
use crate::js::errors::{cannot_read, get, get_opt, index_opt, not_a_function};
use crate::js::json::parse_body;
use crate::js::value::{or, truthy};
use crate::prompts::Prompts;
use crate::providers::chain::AiUse;
use crate::providers::{Endpoint, Provider};

const NAME: &str = "ai-tutor-professional";

pub fn router() -> Router<AppState> {
    behind_cors(NAME, |_, _| Cors::shared(), Entry::PostOnly, handle)
}

async fn handle(state: AppState, invocation: Invocation, cors: Cors) -> Response {
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
    let payload = payload(&state.prompts, message, &body)?;
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

/// The messages sent: the template's system message, each `context.history` item as
/// `{role, content}` (unless the template leaves history out), then its user message;
/// the error is the JavaScript one a bad history throws, or the template's.
pub fn conversation(
    prompts: &Prompts,
    function: &str,
    message: &str,
    context: &Value,
    options: Option<&Value>,
) -> Result<Vec<Value>, String> {
    let mut variables = Map::new();
    variables.insert("message".into(), json!(message));
    variables.insert("context".into(), context.clone());
    if let Some(options) = options {
        variables.insert("options".into(), options.clone());
    }
    let rendered = super::render_prompt(prompts, function, &Value::Object(variables))?;
    let mut messages = vec![json!({"role": "system", "content": rendered.system})];
    let history = get_opt(Some(context), "history");
    if rendered.include_history && truthy(history) {
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
    messages.push(json!({"role": "user", "content": rendered.user}));
    Ok(messages)
}

/// The provider request for a request body whose `message` was checked: model,
/// messages, temperature, max tokens.
pub fn payload(prompts: &Prompts, message: &str, body: &Value) -> Result<Value, String> {
    let empty = Value::Object(Map::new());
    let context = or(body.get("context"), &empty);
    let options = body.get("options");
    let messages = conversation(prompts, NAME, message, context, options)?;
    let model = if get_opt(options, "mode").and_then(Value::as_str) == Some("reasoning") {
        "deepseek-reasoner"
    } else {
        "deepseek-chat"
    };
    Ok(json!({
        "model": model,
        "messages": messages,
        "temperature": or(get_opt(options, "temperature"), &json!(0.7)),
        "max_tokens": or(get_opt(options, "maxTokens"), &json!(2000)),
        "stream": false,
    }))
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

    /// System and user messages of the shipped template for `message` and `context`.
    fn messages(message: &str, context: Value) -> (String, String) {
        let prompts = Prompts::shipped().expect("shipped prompts load");
        let sent = conversation(&prompts, NAME, message, &context, None).expect("renders");
        let text = |i: usize| sent[i]["content"].as_str().expect("text").to_owned();
        (text(0), text(sent.len() - 1))
    }

    #[test]
    fn the_shipped_template_gives_the_documented_prompts() {
        let both = json!({"subject": "Calculus", "difficulty": "advanced"});
        let (system, user) = messages("Explain x", both);
        assert_eq!(
            system,
            "You are an expert educational AI tutor. You specialize in Calculus. Adjust your explanations for advanced level understanding.\n\nGuidelines:\n1. Provide clear, well-structured responses using appropriate academic language\n2. Use concrete examples to illustrate concepts\n3. Highlight key concepts and important points\n4. Encourage critical thinking with thought-provoking questions\n5. Build on previous knowledge and make connections between ideas"
        );
        assert_eq!(
            user,
            "Explain x\n\n[Context: This is a Calculus question. Level: advanced Please provide a structured explanation with examples.]"
        );
        let (system, user) = messages("Please CALCULATE 2+2", json!({}));
        assert!(system.starts_with("You are an expert educational AI tutor.\n\nGuidelines:\n1."));
        assert_eq!(
            user,
            "Please CALCULATE 2+2\n\n[Please show step-by-step solution process.]"
        );
        assert_eq!(messages("hello", json!({"subject": ""})).1, "hello");
        assert_eq!(
            messages("hi", json!({"subject": ["a", null, 2.0]})).1,
            "hi\n\n[Context: This is a a,,2 question.]"
        );
        assert_eq!(
            messages("hi", json!({"subject": {"a": 1}, "difficulty": 0})).1,
            "hi\n\n[Context: This is a [object Object] question.]"
        );
    }

    #[test]
    fn history_goes_between_the_system_and_user_messages() {
        let prompts = Prompts::shipped().expect("shipped prompts load");
        let context = json!({"history": [{"role": "user", "content": "a", "timestamp": 1}, 5]});
        let sent = conversation(&prompts, NAME, "b", &context, None).expect("renders");
        assert_eq!(sent[1], json!({"role": "user", "content": "a"}));
        assert_eq!(sent[2], json!({}));
        assert_eq!(sent.len(), 4);
        let bad = json!({"history": "text"});
        assert!(conversation(&prompts, NAME, "b", &bad, None).is_err());
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
