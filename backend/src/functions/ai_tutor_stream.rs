//! `ai-tutor-stream`: the tutor, streamed token by token. A new route with no legacy
//! twin (the gateway serves it from the new backend only). CORS *shared*, like the tutor.
//!
//! The body is ai-tutor-professional's (`{message, context?, options?}`), and the
//! prompts are the tutor's. The answer is `text/event-stream`:
//!
//! ```text
//! event: token
//! data: {"text":"Photosynthesis "}        … one per piece of text, as it arrives
//!
//! event: done
//! data: {"metadata":{"provider":"deepseek","model":"deepseek-chat","processingTime":812,
//!        "timeToFirstToken":164,"attempts":1,"fallbacks":0,"enhancementsApplied":[…],
//!        "cacheHit":false,"responseType":"stream","requestId":"…","timestamp":"…"},
//!        "quality":{…},"usage":{"promptTokens":…,"completionTokens":…,"totalTokens":…}}
//! ```
//!
//! or, when no provider can answer or the answer breaks off, a last
//! `event: error` with `{code, message, details:{requestId, partial}}` (`partial`: some
//! text was already sent). The providers are tried along `AI_CHAIN_TUTOR_STREAM` until
//! one produces a first token ([`crate::providers::chain`]); whichever answers, the events
//! have this same shape (`usage` is `null` when a provider reports none). When the client
//! goes away, the upstream request is dropped at once, which closes its connection.
//!
//! Errors before the stream: `OPTIONS` 200, other methods 405; no `Authorization` header
//! 401 `{"error":"Missing authorization header"}`, a token that does not verify (the same
//! verification as every function) 401 `{"error":"Invalid or expired token"}`; more than
//! [`crate::rate_limit::LIMIT`] AI requests of the user in a minute (the per-user AI limit every
//! AI function shares) 429; a body that is not JSON or a bad `context.history` 400, a
//! missing message 400 (the tutor's text). The provider bill is never open to anonymous
//! callers.

use std::convert::Infallible;
use std::time::Instant;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ai_tutor_professional::{conversation, quality};
use super::{Entry, Invocation, behind_cors, iso_now};
use crate::AppState;
use crate::cors::Cors;
use crate::js::errors::{get, get_opt};
use crate::js::json::parse_body;
use crate::js::value::{or, truthy};
use crate::prompts::Prompts;
use crate::providers::PLACEHOLDER_TEXT;
use crate::providers::chain::{AiUse, Prompt};
use crate::providers::chat::{ChatMessage, StreamEvent};
use crate::rate_limit::Decision;

const NAME: &str = "ai-tutor-stream";

/// Events waiting for a slow client before the producer waits too.
const BUFFERED_EVENTS: usize = 32;

pub fn router() -> Router<AppState> {
    behind_cors(NAME, |_, _| Cors::shared(), Entry::PostOnly, handle)
}

async fn handle(state: AppState, invocation: Invocation, cors: Cors) -> Response {
    let started = Instant::now();
    if let Err((status, body)) = admit(&state, &invocation).await {
        return cors.json(status, body);
    }
    let (message, prompt) = match prompt_of(&state.prompts, &invocation.body) {
        Ok(read) => read,
        Err(body) => return cors.json(StatusCode::BAD_REQUEST, body),
    };
    let request_id = invocation
        .header(crate::REQUEST_ID_HEADER)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let skip = state.provider_context(NAME, invocation.dry_run).skip;

    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(BUFFERED_EVENTS);
    let relay = Relay {
        state,
        tx,
        message,
        request_id,
        started,
    };
    tokio::spawn(async move {
        let tx = relay.tx.clone();
        tokio::select! {
            () = tx.closed() => {
                tracing::info!(request_id = %relay.request_id, "client went away; AI stream cancelled");
            }
            () = relay.run(prompt, skip) => {}
        }
    });
    let mut response = Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies that buffer by default (nginx) pass the stream through as it comes.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    cors.apply(response)
}

/// Lets in a signed-in user within the per-user AI rate limit; otherwise the status and
/// body to answer.
async fn admit(state: &AppState, invocation: &Invocation) -> Result<(), (StatusCode, Value)> {
    let Some(header) = invocation.non_empty_header("authorization") else {
        invocation.auth_failed(state, NAME, None);
        return Err((
            StatusCode::UNAUTHORIZED,
            json!({"error": "Missing authorization header"}),
        ));
    };
    let mut db = state
        .request_db(invocation.dry_run)
        .await
        .map_err(|error| {
            tracing::error!(%error, "database unavailable");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "Internal server error"}),
            )
        })?;
    let verified = state.auth.user_from_header(&mut db, &header).await;
    db.finish().await;
    let user = verified.map_err(|error| {
        invocation.auth_failed(state, NAME, Some(&error));
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "Invalid or expired token"}),
        )
    })?;
    match state
        .rate_limiter
        .check(&user.id.to_string(), invocation.dry_run)
        .await
    {
        Decision::Allowed => Ok(()),
        Decision::Limited(limiter) => {
            state.metrics.rate_limited(NAME, limiter);
            Err((
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "Rate limit exceeded. Please wait before making another request."}),
            ))
        }
    }
}

/// The message and the prompt of a request body, or the 400 body.
pub fn prompt_of(prompts: &Prompts, body: &[u8]) -> Result<(String, Prompt), Value> {
    let body = parse_body(body)
        .map_err(|message| json!({"error": "Invalid request body", "message": message}))?;
    let message = get(Some(&body), "message")
        .map_err(|message| json!({"error": "Invalid request body", "message": message}))?;
    let Some(Value::String(message)) = message.filter(|m| truthy(Some(m))) else {
        return Err(json!({"error": "Message is required and must be a string"}));
    };
    let empty = Value::Object(Map::new());
    let context = or(body.get("context"), &empty);
    let options = body.get("options");
    let messages = conversation(prompts, NAME, message, context, options)
        .map_err(|message| json!({"error": "Invalid conversation history", "message": message}))?;
    let messages = messages.iter().map(ChatMessage::from_json).collect();
    // The tutor's defaults, with JavaScript's `||` (0 means the default too).
    let temperature = or(get_opt(options, "temperature"), &json!(0.7)).as_f64();
    let max_tokens = or(get_opt(options, "maxTokens"), &json!(2000)).as_u64();
    Ok((
        message.clone(),
        Prompt {
            messages,
            temperature,
            max_tokens,
        },
    ))
}

/// What the `done` event reports besides the text.
struct Finish {
    provider: &'static str,
    model: String,
    first_token_ms: u64,
    attempts: u32,
    fallbacks: u32,
    usage: Value,
}

/// Produces the events of one stream.
struct Relay {
    state: AppState,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    message: String,
    request_id: String,
    started: Instant,
}

impl Relay {
    /// `false` when the client is gone.
    async fn send(&self, event: Event) -> bool {
        self.tx.send(Ok(event)).await.is_ok()
    }

    async fn run(&self, prompt: Prompt, skip: bool) {
        if skip {
            // A shadow dry run: no provider call, the placeholder in the usual shape.
            self.send(token(PLACEHOLDER_TEXT)).await;
            let finish = Finish {
                provider: "shadow",
                model: "shadow".into(),
                first_token_ms: 0,
                attempts: 0,
                fallbacks: 0,
                usage: Value::Null,
            };
            self.done(PLACEHOLDER_TEXT, finish).await;
            return;
        }
        let routed = match self.state.ai.stream(AiUse::TutorStream, &prompt).await {
            Ok(routed) => routed,
            Err(error) => {
                tracing::warn!(request_id = %self.request_id, %error, "no AI provider could start the stream");
                self.error(
                    "AI_PROVIDER_ERROR",
                    "The AI tutor is unavailable right now. Please try again.",
                    false,
                )
                .await;
                return;
            }
        };
        let first_token_ms = self.started.elapsed().as_millis() as u64;
        let provider = routed.provider.label();
        let mut stream = routed.value;
        let mut content = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(StreamEvent::Delta(text)) => {
                    content.push_str(&text);
                    if !self.send(token(&text)).await {
                        return;
                    }
                }
                Ok(StreamEvent::Done { model, usage }) => {
                    let finish = Finish {
                        provider,
                        model,
                        first_token_ms,
                        attempts: routed.attempts,
                        fallbacks: routed.fallbacks,
                        usage: usage.map_or(Value::Null, |u| json!(u)),
                    };
                    self.done(&content, finish).await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(request_id = %self.request_id, provider, %error, "AI stream broke off");
                    self.error(
                        "AI_STREAM_INTERRUPTED",
                        "The answer was interrupted. Please try again.",
                        !content.is_empty(),
                    )
                    .await;
                    return;
                }
            }
        }
    }

    async fn done(&self, content: &str, finish: Finish) {
        let body = json!({
            "metadata": {
                "provider": finish.provider,
                "model": finish.model,
                "processingTime": self.started.elapsed().as_millis() as u64,
                "timeToFirstToken": finish.first_token_ms,
                "attempts": finish.attempts,
                "fallbacks": finish.fallbacks,
                "enhancementsApplied": ["prompt_optimization", "educational_formatting"],
                "cacheHit": false,
                "responseType": "stream",
                "requestId": self.request_id,
                "timestamp": iso_now(),
            },
            "quality": quality::assess(content, &self.message),
            "usage": finish.usage,
        });
        self.send(event("done", &body)).await;
    }

    async fn error(&self, code: &str, message: &str, partial: bool) {
        let body = json!({
            "code": code,
            "message": message,
            "details": {"requestId": self.request_id, "partial": partial},
        });
        self.send(event("error", &body)).await;
    }
}

fn event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

fn token(text: &str) -> Event {
    event("token", &json!({"text": text}))
}
