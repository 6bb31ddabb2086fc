//! `ai-proxy-secure`: like `ai-proxy` without rate limit or usage log; answers the
//! provider's JSON as received. CORS *basic* plus `x-signature, x-timestamp, x-nonce`.
//! Every failure is 500 `{error}`; `messages` is required for every provider.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::proxy_providers::{ProxyFields, ProxyProvider, claude_messages, gemini_contents};
use super::{Entry, Invocation, behind_cors};
use crate::AppState;
use crate::cors::Cors;
use crate::js::json::parse_body;
use crate::js::value::{or, to_js_string};
use crate::store::RequestDb;

const NAME: &str = "ai-proxy-secure";

const ALLOW_HEADERS: &str =
    "authorization, x-client-info, apikey, content-type, x-signature, x-timestamp, x-nonce";

pub fn router() -> Router<AppState> {
    behind_cors(
        NAME,
        |_, _| Cors::with_allow_headers(ALLOW_HEADERS),
        Entry::Preflight,
        handle,
    )
}

async fn handle(state: AppState, invocation: Invocation, cors: Cors) -> Response {
    let result = invocation
        .with_db(
            &state,
            || Err("Internal server error".into()),
            async |db| forward(&state, &invocation, db).await,
        )
        .await;
    match result {
        Ok(data) => cors.json(StatusCode::OK, data),
        Err(message) => {
            let message = if message.is_empty() {
                "Internal server error".to_owned()
            } else {
                message
            };
            cors.json(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": message}))
        }
    }
}

async fn forward(
    state: &AppState,
    invocation: &Invocation,
    db: &mut RequestDb,
) -> Result<Value, String> {
    invocation
        .authenticate(state, db, NAME)
        .await
        .map_err(|failure| {
            failure.say("Missing authorization header", "Invalid or expired token")
        })?;

    let body = parse_body(&invocation.body)?;
    let ProxyFields {
        provider,
        messages,
        model,
        temperature,
        max_tokens,
        ..
    } = ProxyFields::of(&body)?;
    let not_configured = || format!("{} API key not configured", to_js_string(provider));
    let row = ProxyProvider::lookup(provider).ok_or_else(not_configured)?;
    let key = row.key(state).ok_or_else(not_configured)?;

    let default_model = json!(row.default_model);
    let payload = match row.name {
        "gemini" => json!({"contents": gemini_contents(messages)?}),
        "claude" => json!({
            "model": or(model, &default_model),
            "max_tokens": or(max_tokens, &json!(1024)),
            "messages": claude_messages(messages)?,
        }),
        _ => {
            // The real APIs reject a body without a messages array (a 500 in the
            // legacy); the stand-in fails the same way before calling.
            if !matches!(messages, Some(Value::Array(_))) {
                return Err("messages must be an array".into());
            }
            json!({
                "model": or(model, &default_model),
                "messages": messages,
                "max_tokens": or(max_tokens, &json!(1024)),
                "temperature": or(temperature, &json!(0.7)),
            })
        }
    };
    let reply = state
        .providers
        .send(
            state.provider_context(NAME, invocation.dry_run),
            row.endpoint,
            &key,
            &payload,
        )
        .await
        .map_err(|e| e.to_string())?;
    if !reply.ok() {
        return Err(format!(
            "{} API error: {} {}",
            row.name, reply.status, reply.text
        ));
    }
    reply.json()
}
