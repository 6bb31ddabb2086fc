//! Wire-compatible fake AI providers: OpenAI chat completions, DeepSeek (same format),
//! Anthropic messages and Gemini generateContent, each also streaming in its own event
//! format. They are the only fakes in the stack: everything else is real.
//!
//! Answers are deterministic: the same request always gets the same answer, different
//! prompts get different answers, and `usage` is filled in. A prompt that mentions JSON
//! gets a JSON object embedded in prose, as real models answer.
//!
//! Faults on demand, through the `x-fake-fault` header or a `[[fake:…]]` directive
//! anywhere in the prompt (the directive reaches the fake through functions that do not
//! forward headers). `[[fake@deepseek:…]]` (or `@openai`, `@anthropic`, `@gemini`)
//! applies to that provider only, so a chain's first provider can fail while the next
//! answers. Comma-separated:
//! - `status=503` answer that status with the provider's error shape
//! - `retry_after=2` add `Retry-After: 2` to that error
//! - `delay_ms=1500` wait before answering
//! - `chunk_delay_ms=200` wait between streamed chunks
//! - `malformed` a 200 whose body is not JSON (streaming: a first event that is not)
//! - `drop` cut the connection (mid-stream when streaming)
//! - `times=2` the other faults apply to the first 2 requests with this prompt only

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How many recent requests [`Recorder`] keeps for inspection.
const RECORDED: usize = 200;

/// Recent requests, readable at `GET /_fake/requests` so tests can check exactly what the
/// functions sent (credentials are recorded only as present or absent). Each entry has a
/// `seq` number, counting from 1.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    requests: Arc<Mutex<VecDeque<Value>>>,
    disconnects: Arc<Mutex<u64>>,
    /// Requests recorded so far: each entry's `seq`, so a test can take the ones after
    /// a point even once older ones have been dropped.
    count: Arc<std::sync::atomic::AtomicU64>,
    /// Requests seen per (provider, prompt), for `times=N` faults.
    seen: Arc<Mutex<std::collections::HashMap<String, u32>>>,
}

impl Recorder {
    fn record(&self, provider: &str, path: &str, headers: &HeaderMap, body: &Value) {
        let seq = self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let entry = json!({
            "seq": seq,
            "provider": provider,
            "path": path,
            "authorized": headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key"),
            "anthropic_version": headers.get("anthropic-version").and_then(|v| v.to_str().ok()),
            "body": body,
        });
        if let Ok(mut requests) = self.requests.lock() {
            if requests.len() == RECORDED {
                requests.pop_front();
            }
            requests.push_back(entry);
        }
    }

    /// The faults of this request, once `times=N` is taken into account.
    fn faults(&self, headers: &HeaderMap, prompt: &str, provider: &str) -> Faults {
        let faults = Faults::for_provider(headers, prompt, provider);
        let Some(times) = faults.times else {
            return faults;
        };
        let count = self
            .seen
            .lock()
            .map(|mut seen| {
                let count = seen.entry(format!("{provider}\n{prompt}")).or_insert(0);
                *count += 1;
                *count
            })
            .unwrap_or(1);
        if count > times {
            Faults::default()
        } else {
            faults
        }
    }

    fn disconnected(&self) {
        if let Ok(mut count) = self.disconnects.lock() {
            *count += 1;
        }
    }
}

/// The fake providers' router, all four providers on one port.
pub fn router() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/_fake/requests", get(recorded))
        .route("/v1/chat/completions", post(openai))
        .route("/chat/completions", post(openai))
        .route("/v1/models", get(openai_models))
        .route("/models", get(openai_models))
        .route("/v1/messages", post(anthropic))
        .route("/v1beta/models", get(gemini_models))
        .route("/v1beta/models/{target}", post(gemini))
        .with_state(Recorder::default())
}

async fn recorded(State(recorder): State<Recorder>) -> Response {
    let requests: Vec<Value> = recorder
        .requests
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    let disconnects = recorder.disconnects.lock().map(|d| *d).unwrap_or(0);
    axum::Json(json!({"requests": requests, "disconnects": disconnects})).into_response()
}

/// Faults asked for by the header or a prompt directive.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Faults {
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    pub delay_ms: u64,
    pub chunk_delay_ms: u64,
    pub malformed: bool,
    pub drop: bool,
    pub times: Option<u32>,
}

impl Faults {
    /// Reads `x-fake-fault` and every unscoped `[[fake:…]]` directive in `prompt`.
    pub fn from_request(headers: &HeaderMap, prompt: &str) -> Self {
        Self::for_provider(headers, prompt, "")
    }

    /// Reads `x-fake-fault`, every `[[fake:…]]` directive in `prompt`, and the
    /// `[[fake@<provider>:…]]` ones naming `provider`.
    pub fn for_provider(headers: &HeaderMap, prompt: &str, provider: &str) -> Self {
        let mut faults = Faults::default();
        if let Some(spec) = headers.get("x-fake-fault").and_then(|v| v.to_str().ok()) {
            faults.apply(spec);
        }
        let mut rest = prompt;
        while let Some(start) = rest.find("[[fake") {
            let after = &rest[start + 6..];
            let Some(end) = after.find("]]") else { break };
            let directive = &after[..end];
            if let Some(spec) = directive.strip_prefix(':') {
                faults.apply(spec);
            } else if let Some((name, spec)) = directive
                .strip_prefix('@')
                .and_then(|scoped| scoped.split_once(':'))
                && name == provider
            {
                faults.apply(spec);
            }
            rest = &after[end..];
        }
        faults
    }

    fn apply(&mut self, spec: &str) {
        for item in spec.split(',').map(str::trim) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            match key {
                "status" => self.status = value.parse().ok(),
                "retry_after" => self.retry_after = value.parse().ok(),
                "delay_ms" => self.delay_ms = value.parse().unwrap_or(0),
                "chunk_delay_ms" => self.chunk_delay_ms = value.parse().unwrap_or(0),
                "malformed" => self.malformed = true,
                "drop" => self.drop = true,
                "times" => self.times = value.parse().ok(),
                _ => {}
            }
        }
    }
}

/// The answer to a prompt: deterministic text and token counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub id: String,
    pub text: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

const OPENINGS: [&str; 4] = [
    "Let me explain this step by step.",
    "Great question! Here is a clear way to understand it.",
    "Consider the idea from first principles.",
    "Research shows that worked examples help you learn faster.",
];

const BODIES: [&str; 4] = [
    "First, identify what is given. Then apply the definition carefully, because each step builds on the previous one. For example, a simple case makes the pattern visible.",
    "The key concept is that structure follows from the rules. However, you should check each result, such as by substituting values back. This helps you master the method.",
    "Think about why the result holds and how it changes if the inputs change. For instance, what if the value doubles? Analyze the outcome and demonstrate it with a small example.",
    "Start with the definition, then work through an example. Therefore the answer follows directly, and you can practice with similar problems to consolidate what you learn.",
];

impl Completion {
    /// The deterministic answer of `provider`'s `model` to `prompt`.
    pub fn for_prompt(provider: &str, model: &str, prompt: &str) -> Self {
        let digest = Sha256::digest(format!("{provider}\n{model}\n{prompt}").as_bytes());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let pick = usize::from(digest[6]) % OPENINGS.len();
        let topic: String = prompt
            .split_whitespace()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" ");
        let text = if prompt.to_ascii_lowercase().contains("json") {
            let object = json!({
                "digest": hex,
                "summary": format!("Analysis of: {topic}"),
                "score": u64::from(digest[7]) % 100,
                "items": [
                    {"title": "Review key concepts", "priority": "high"},
                    {"title": "Practice daily", "priority": "medium"},
                ],
            });
            format!(
                "Here is the requested JSON:\n```json\n{object:#}\n```\nLet me know if you need more."
            )
        } else {
            format!(
                "{} {} You asked about: {topic}. Next, try a practice problem to check your understanding. [ref {hex}]",
                OPENINGS[pick],
                BODIES[(pick + usize::from(digest[8])) % BODIES.len()],
            )
        };
        Self {
            id: hex,
            prompt_tokens: (prompt.chars().count() as u64).div_ceil(4),
            completion_tokens: (text.chars().count() as u64).div_ceil(4),
            text,
        }
    }

    /// The text cut into the pieces a stream delivers (one word each, with its space).
    pub fn chunks(&self) -> Vec<String> {
        let mut chunks = Vec::new();
        let mut current = String::new();
        for ch in self.text.chars() {
            current.push(ch);
            if ch == ' ' {
                chunks.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        chunks
    }

    fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

fn message_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        // Anthropic/OpenAI content blocks.
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, Box<Response>> {
    serde_json::from_slice(body).map_err(|_| {
        Box::new(
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": "We could not parse the JSON body of your request.", "type": "invalid_request_error"}}))).into_response())
    })
}

/// Before a stream starts: the delay and error status faults (the others act mid-stream).
async fn before_stream(
    faults: &Faults,
    error_body: impl FnOnce(u16) -> Value,
) -> Result<(), Response> {
    let upfront = Faults {
        drop: false,
        malformed: false,
        ..faults.clone()
    };
    before_answer(&upfront, error_body).await
}

/// Common fault handling before an answer; `Err` is the answer to send instead.
async fn before_answer(
    faults: &Faults,
    error_body: impl FnOnce(u16) -> Value,
) -> Result<(), Response> {
    if faults.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
    }
    if let Some(status) = faults.status {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (code, axum::Json(error_body(status))).into_response();
        if let Some(seconds) = faults.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        return Err(response);
    }
    if faults.malformed {
        return Err((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"choices\": [oops",
        )
            .into_response());
    }
    if faults.drop {
        // An error from the body stream makes the server abort the connection.
        let stream = futures_util::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other("dropped"))
        });
        return Err(Response::new(Body::from_stream(stream)));
    }
    Ok(())
}

/// Streams `events` (already framed) with the fault's pacing; `drop` cuts it halfway.
fn sse(recorder: Recorder, events: Vec<String>, faults: &Faults) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let delay = Duration::from_millis(faults.chunk_delay_ms);
    let cut_at = faults.drop.then_some(events.len() / 2);
    let mut events = events;
    if faults.malformed {
        events.insert(0, "data: {\"choices\": [oops\n\n".to_owned());
    }
    tokio::spawn(async move {
        for (index, event) in events.into_iter().enumerate() {
            if cut_at == Some(index) {
                let _ = tx.send(Err(std::io::Error::other("dropped"))).await;
                return;
            }
            if index > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(Bytes::from(event))).await.is_err() {
                recorder.disconnected();
                return;
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn openai_error(status: u16) -> Value {
    json!({"error": {"message": format!("Fake provider error {status}"), "type": "server_error", "code": status}})
}

async fn openai(
    State(recorder): State<Recorder>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match parse_body(&body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let provider = if uri.path().starts_with("/v1") {
        "openai"
    } else {
        "openai-compatible"
    };
    recorder.record(provider, uri.path(), &headers, &request);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|key| !key.trim().is_empty());
    if bearer.is_none() {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}))).into_response();
    }
    let model = request["model"]
        .as_str()
        .unwrap_or("gpt-4o-mini")
        .to_owned();
    let prompt = request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| message_text(&m["content"]))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let scope = if model.starts_with("deepseek") {
        "deepseek"
    } else {
        "openai"
    };
    let faults = recorder.faults(&headers, &prompt, scope);
    let completion = Completion::for_prompt("openai", &model, &prompt);
    let created = 1_700_000_000 + u64::from_str_radix(&completion.id[..4], 16).unwrap_or(0);
    if request["stream"].as_bool() == Some(true) {
        if let Err(response) = before_stream(&faults, openai_error).await {
            return response;
        }
        let id = format!("chatcmpl-{}", completion.id);
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            )
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        events.extend(
            completion
                .chunks()
                .iter()
                .map(|piece| chunk(json!({"content": piece}), Value::Null)),
        );
        events.push(chunk(json!({}), json!("stop")));
        if request["stream_options"]["include_usage"].as_bool() == Some(true) {
            events.push(format!("data: {}\n\n", json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens, "total_tokens": completion.total_tokens()}})));
        }
        events.push("data: [DONE]\n\n".to_owned());
        return sse(recorder, events, &faults);
    }
    if let Err(response) = before_answer(&faults, openai_error).await {
        return response;
    }
    axum::Json(json!({
        "id": format!("chatcmpl-{}", completion.id),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": completion.text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens, "total_tokens": completion.total_tokens()},
    }))
    .into_response()
}

async fn openai_models(headers: HeaderMap) -> Response {
    if headers.contains_key("anthropic-version") {
        let models = ["claude-3-haiku-20240307", "claude-3-5-sonnet-20241022"];
        return axum::Json(json!({
            "data": models.iter().map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2024-10-22T00:00:00Z"})).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": models[0],
            "last_id": models[1],
        }))
        .into_response();
    }
    let models = [
        "gpt-4o-mini",
        "gpt-4o",
        "deepseek-chat",
        "deepseek-reasoner",
    ];
    axum::Json(json!({
        "object": "list",
        "data": models.iter().map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "fake"})).collect::<Vec<_>>(),
    }))
    .into_response()
}

fn anthropic_error(status: u16) -> Value {
    let kind = match status {
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": format!("Fake provider error {status}")}})
}

async fn anthropic(State(recorder): State<Recorder>, headers: HeaderMap, body: Bytes) -> Response {
    let request = match parse_body(&body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    recorder.record("anthropic", "/v1/messages", &headers, &request);
    if headers.get("x-api-key").is_none_or(|key| key.is_empty()) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}))).into_response();
    }
    let model = request["model"]
        .as_str()
        .unwrap_or("claude-3-haiku-20240307")
        .to_owned();
    let mut prompt = message_text(request.get("system").unwrap_or(&Value::Null));
    if let Some(messages) = request["messages"].as_array() {
        for message in messages {
            prompt.push('\n');
            prompt.push_str(&message_text(&message["content"]));
        }
    }
    let faults = recorder.faults(&headers, &prompt, "anthropic");
    let completion = Completion::for_prompt("anthropic", &model, &prompt);
    let id = format!("msg_{}", completion.id);
    if request["stream"].as_bool() == Some(true) {
        if let Err(response) = before_stream(&faults, anthropic_error).await {
            return response;
        }
        let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
        let mut events = vec![
            event(
                "message_start",
                json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": completion.prompt_tokens, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            event("ping", json!({"type": "ping"})),
        ];
        events.extend(completion.chunks().iter().map(|piece| event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}))));
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": completion.completion_tokens}})));
        events.push(event("message_stop", json!({"type": "message_stop"})));
        return sse(recorder, events, &faults);
    }
    if let Err(response) = before_answer(&faults, anthropic_error).await {
        return response;
    }
    axum::Json(json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": completion.text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": completion.prompt_tokens, "output_tokens": completion.completion_tokens},
    }))
    .into_response()
}

async fn gemini_models() -> Response {
    let models = ["gemini-1.5-flash", "gemini-1.5-pro"];
    axum::Json(json!({
        "models": models.iter().map(|id| json!({"name": format!("models/{id}"), "displayName": id, "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]})).collect::<Vec<_>>(),
    }))
    .into_response()
}

fn gemini_error(status: u16) -> Value {
    let state = match status {
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        400 => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status, "message": format!("Fake provider error {status}"), "status": state}})
}

async fn gemini(
    State(recorder): State<Recorder>,
    Path(target): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, action)) = target.split_once(':') else {
        return (StatusCode::NOT_FOUND, axum::Json(gemini_error(404))).into_response();
    };
    let request = match parse_body(&body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    recorder.record(
        "gemini",
        &format!("/v1beta/models/{target}"),
        &headers,
        &request,
    );
    let keyed =
        query.get("key").is_some_and(|k| !k.is_empty()) || headers.contains_key("x-goog-api-key");
    if !keyed {
        return (StatusCode::FORBIDDEN, axum::Json(json!({"error": {"code": 403, "message": "Method doesn't allow unregistered callers.", "status": "PERMISSION_DENIED"}}))).into_response();
    }
    let prompt = request["contents"]
        .as_array()
        .map(|contents| {
            contents
                .iter()
                .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
                .filter_map(|p| p["text"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let faults = recorder.faults(&headers, &prompt, "gemini");
    let completion = Completion::for_prompt("gemini", model, &prompt);
    let usage = json!({"promptTokenCount": completion.prompt_tokens, "candidatesTokenCount": completion.completion_tokens, "totalTokenCount": completion.total_tokens()});
    let candidate = |text: &str, finish: Option<&str>| {
        let mut c = json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
        if let Some(finish) = finish {
            c["finishReason"] = json!(finish);
        }
        c
    };
    match action {
        "generateContent" => {
            if let Err(response) = before_answer(&faults, gemini_error).await {
                return response;
            }
            axum::Json(json!({"candidates": [candidate(&completion.text, Some("STOP"))], "usageMetadata": usage, "modelVersion": model}))
                .into_response()
        }
        "streamGenerateContent" => {
            if let Err(response) = before_stream(&faults, gemini_error).await {
                return response;
            }
            let chunks = completion.chunks();
            let last = chunks.len().saturating_sub(1);
            let events = chunks
                .iter()
                .enumerate()
                .map(|(i, piece)| {
                    let finish = (i == last).then_some("STOP");
                    let mut data =
                        json!({"candidates": [candidate(piece, finish)], "modelVersion": model});
                    if i == last {
                        data["usageMetadata"] = usage.clone();
                    }
                    format!("data: {data}\r\n\r\n")
                })
                .collect();
            sse(recorder, events, &faults)
        }
        _ => (StatusCode::NOT_FOUND, axum::Json(gemini_error(404))).into_response(),
    }
}

/// Serves the fake providers on `listener` until the process ends.
///
/// Sockets are `TCP_NODELAY`, as the real APIs stream: without it each streamed chunk of
/// a kept-alive connection waits for the client's (delayed) acknowledgement of the last.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_deterministic_and_prompt_dependent() {
        let a = Completion::for_prompt("openai", "gpt-4o-mini", "What is a derivative?");
        let b = Completion::for_prompt("openai", "gpt-4o-mini", "What is a derivative?");
        let c = Completion::for_prompt("openai", "gpt-4o-mini", "What is an integral?");
        assert_eq!(a, b);
        assert_ne!(a.text, c.text);
        assert_eq!(a.chunks().concat(), a.text);
        assert!(a.prompt_tokens > 0 && a.completion_tokens > 0);
    }

    #[test]
    fn json_prompts_get_parseable_json_inside_prose() {
        let answer =
            Completion::for_prompt("openai", "gpt-4o-mini", "Return a JSON object please").text;
        let start = answer.find('{').expect("has an object");
        let end = answer.rfind('}').expect("has an object");
        let value: Value = serde_json::from_str(&answer[start..=end]).expect("parses");
        assert!(value["digest"].is_string());
    }

    #[test]
    fn faults_come_from_header_and_prompt() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-fake-fault",
            HeaderValue::from_static("status=429,retry_after=2"),
        );
        let faults = Faults::from_request(&headers, "hello [[fake:delay_ms=10]] and [[fake:drop]]");
        assert_eq!(faults.status, Some(429));
        assert_eq!(faults.retry_after, Some(2));
        assert_eq!(faults.delay_ms, 10);
        assert!(faults.drop);
    }

    #[test]
    fn scoped_directives_apply_to_their_provider_only() {
        let prompt = "hi [[fake@deepseek:status=500,times=1]] [[fake:chunk_delay_ms=5]]";
        let deepseek = Faults::for_provider(&HeaderMap::new(), prompt, "deepseek");
        assert_eq!(deepseek.status, Some(500));
        assert_eq!(deepseek.times, Some(1));
        assert_eq!(deepseek.chunk_delay_ms, 5);
        let openai = Faults::for_provider(&HeaderMap::new(), prompt, "openai");
        assert_eq!(openai.status, None);
        assert_eq!(openai.chunk_delay_ms, 5);
        let recorder = Recorder::default();
        let first = recorder.faults(&HeaderMap::new(), prompt, "deepseek");
        let second = recorder.faults(&HeaderMap::new(), prompt, "deepseek");
        assert_eq!((first.status, second.status), (Some(500), None));
    }
}
