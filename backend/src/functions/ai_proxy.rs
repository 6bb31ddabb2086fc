//! `ai-proxy`: authenticated multi-provider proxy (gemini, openai, claude, deepseek).
//! CORS *basic*.
//!
//! Checks in the legacy order: header, token, body fields, rate limit (then the user's
//! `rate_limits` row is written), action, provider key, provider call, usage log.
//! Failures answer 500 `{error, details}` (429 when the message mentions `Rate limit`).
//!
//! Intentional fixes (legacy-contract.md): the rate limit is enforced for real, 60
//! requests per user in any minute ([`crate::rate_limit`]), and the `rate_limits` row
//! counts the minute's requests instead of being reset to 1; `details` is a short text
//! naming the request id instead of a stack trace.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::proxy_providers::{ProxyFields, ProxyProvider, claude_messages, gemini_contents};
use super::{Entry, Invocation, behind_cors, iso_now};
use crate::AppState;
use crate::cors::Cors;
use crate::js::errors::{cannot_read, get_opt, index_opt};
use crate::js::json::parse_body;
use crate::js::value::{length, number, or, to_js_string, truthy};
use crate::rate_limit::{self, Decision};
use crate::security_audit::{EventType, SecurityEvent};
use crate::store::{RequestDb, Table};

const NAME: &str = "ai-proxy";

const RATE_LIMITED: &str = "Rate limit exceeded. Please wait before making another request.";

pub fn router() -> Router<AppState> {
    behind_cors(NAME, |_, _| Cors::basic(), Entry::Preflight, handle)
}

/// How a request fails.
enum Failure {
    /// The rate limit's own 429 (no `details`).
    RateLimited,
    /// A thrown error with its message.
    Thrown(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Thrown(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::Thrown(message.to_owned())
    }
}

async fn handle(state: AppState, invocation: Invocation, cors: Cors) -> Response {
    let result = invocation
        .with_db(
            &state,
            || Err(Failure::Thrown("Internal server error".into())),
            async |db| proxy(&state, &invocation, db).await,
        )
        .await;
    match result {
        Ok(body) => cors.json(StatusCode::OK, body),
        Err(Failure::RateLimited) => cors.json(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": RATE_LIMITED}),
        ),
        Err(Failure::Thrown(message)) => {
            let status = if message.contains("Rate limit") {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            let message = if message.is_empty() {
                "Internal server error".to_owned()
            } else {
                message
            };
            let request_id = invocation
                .header(crate::REQUEST_ID_HEADER)
                .unwrap_or_else(|| "-".into());
            cors.json(
                status,
                json!({
                    "error": message,
                    "details": format!("See the backend log for request {request_id}."),
                }),
            )
        }
    }
}

async fn proxy(
    state: &AppState,
    invocation: &Invocation,
    db: &mut RequestDb,
) -> Result<Value, Failure> {
    let user = invocation
        .authenticate(state, db, NAME)
        .await
        .map_err(|failure| {
            Failure::Thrown(failure.say("Missing authorization header", "Invalid or expired token"))
        })?;

    let body = parse_body(&invocation.body)?;
    let fields = ProxyFields::of(&body)?;

    if let Err(failure) = rate_limit(state, db, user.id, invocation.dry_run).await {
        if !invocation.dry_run {
            let event = SecurityEvent::new(
                EventType::RateLimitExceeded,
                json!({"function": NAME, "limit_per_minute": rate_limit::LIMIT}),
            )
            .user(user.id)
            .client(invocation.client_address(state), &invocation.headers);
            state.audit.record(event);
        }
        return Err(failure);
    }
    if let Err(error) = db.count_request(user.id).await {
        // The legacy ignores this write's outcome too.
        tracing::warn!(%error, "rate_limits write failed");
    }

    let table_row = ProxyProvider::lookup(fields.provider);
    let mut payload = match (fields.action.and_then(Value::as_str), table_row) {
        (Some("chat"), row) if truthy(fields.messages) => format_payload(row, fields.messages)?,
        (Some("completion"), row) if truthy(fields.prompt) => {
            let messages = json!([{"role": "user", "content": fields.prompt}]);
            format_payload(row, Some(&messages))?
        }
        _ => return Err(format!("Unsupported action: {}", to_js_string(fields.action)).into()),
    };
    if truthy(fields.model) {
        payload.insert("model".into(), fields.model.cloned().unwrap_or_default());
    }
    if let Some(temperature) = fields.temperature {
        payload.insert("temperature".into(), temperature.clone());
    }
    if truthy(fields.max_tokens) {
        payload.insert(
            "max_tokens".into(),
            fields.max_tokens.cloned().unwrap_or_default(),
        );
    }

    let not_configured = || format!("{} API key not configured", to_js_string(fields.provider));
    let row = table_row.ok_or_else(not_configured)?;
    let key = row.key(state).ok_or_else(not_configured)?;
    let reply = state
        .providers
        .send(
            state.provider_context(NAME, invocation.dry_run),
            row.endpoint,
            &key,
            &Value::Object(payload),
        )
        .await
        .map_err(|e| e.to_string())?;
    if !reply.ok() {
        return Err(format!("{} API error: {} {}", row.name, reply.status, reply.text).into());
    }
    let data = reply.json()?;
    let content = extract_content(row, &data)?;

    let prompt_or_empty = or(fields.prompt, &Value::String(String::new())).clone();
    let tokens = match (length(Some(&content)), length(Some(&prompt_or_empty))) {
        (Some(a), Some(b)) => ((a + b) / 4.0).ceil(),
        _ => f64::NAN,
    };
    let default_label = json!("default");
    let now = iso_now();
    let mut usage = Map::new();
    usage.insert("user_id".into(), json!(user.id.to_string()));
    usage.insert("provider".into(), json!(row.name));
    usage.insert("model".into(), or(fields.model, &default_label).clone());
    usage.insert("tokens_used".into(), number(tokens));
    usage.insert("request_timestamp".into(), json!(now));
    usage.insert("created_at".into(), json!(now));
    if let Err(error) = db.insert(Table::ApiUsageLogs, &usage).await {
        tracing::warn!(%error, "api_usage_logs write failed (ignored, as by the legacy)");
    }

    let default_model = json!(row.default_model);
    Ok(json!({
        "data": data,
        "content": content,
        "provider": row.name,
        "model": or(fields.model, &default_model),
    }))
}

/// The legacy check on the `rate_limits` rows, then the sliding window.
async fn rate_limit(
    state: &AppState,
    db: &mut RequestDb,
    user: uuid::Uuid,
    dry_run: bool,
) -> Result<(), Failure> {
    match db.recent_request_count(user).await {
        Ok(count) if count >= i64::from(rate_limit::LIMIT) => {
            state.metrics.rate_limited(NAME, "database");
            return Err(Failure::RateLimited);
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "rate_limits lookup failed; allowing"),
    }
    match state.rate_limiter.check(&user.to_string(), dry_run).await {
        Decision::Allowed => Ok(()),
        Decision::Limited(limiter) => {
            state.metrics.rate_limited(NAME, limiter);
            Err(Failure::RateLimited)
        }
    }
}

/// `formatMessagesForProvider`: the provider's request body before the overrides.
fn format_payload(
    row: Option<ProxyProvider>,
    messages: Option<&Value>,
) -> Result<Map<String, Value>, String> {
    let mut payload = Map::new();
    match row.map(|r| r.name) {
        Some("gemini") => {
            payload.insert("contents".into(), gemini_contents(messages)?);
        }
        Some("claude") => {
            payload.insert("model".into(), json!("claude-3-haiku-20240307"));
            payload.insert("max_tokens".into(), json!(1024));
            payload.insert("messages".into(), claude_messages(messages)?);
        }
        Some(name) => {
            let default = row.map_or("", |r| r.default_model);
            debug_assert!(name == "openai" || name == "deepseek");
            payload.insert("model".into(), json!(default));
            payload.insert("messages".into(), messages.cloned().unwrap_or_default());
            payload.insert("max_tokens".into(), json!(1024));
            payload.insert("temperature".into(), json!(0.7));
        }
        None => {
            payload.insert("messages".into(), messages.cloned().unwrap_or_default());
        }
    }
    Ok(payload)
}

/// `extractContent`: the answer text (any truthy value), else `""`.
fn extract_content(row: ProxyProvider, data: &Value) -> Result<Value, String> {
    let first = match row.name {
        "gemini" => "candidates",
        "claude" => "content",
        _ => "choices",
    };
    if data.is_null() {
        return Err(cannot_read(Some(data), first));
    }
    let top = index_opt(get_opt(Some(data), first), 0);
    let text = match row.name {
        "gemini" => get_opt(
            index_opt(get_opt(get_opt(top, "content"), "parts"), 0),
            "text",
        ),
        "claude" => get_opt(top, "text"),
        _ => get_opt(get_opt(top, "message"), "content"),
    };
    Ok(or(text, &Value::String(String::new())).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> ProxyProvider {
        ProxyProvider::lookup(Some(&json!(name))).expect("known provider")
    }

    #[test]
    fn payloads_follow_the_provider_table() {
        let messages =
            json!([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]);
        let openai = format_payload(Some(row("openai")), Some(&messages)).expect("payload");
        assert_eq!(
            Value::Object(openai),
            json!({"model": "gpt-4o-mini", "messages": messages, "max_tokens": 1024, "temperature": 0.7})
        );
        let claude = format_payload(Some(row("claude")), Some(&messages)).expect("payload");
        assert_eq!(
            claude["messages"],
            json!([{"role": "user", "content": "u"}])
        );
        let unknown = format_payload(None, Some(&messages)).expect("payload");
        assert_eq!(Value::Object(unknown), json!({"messages": messages}));
    }

    #[test]
    fn content_extraction() {
        let gemini = json!({"candidates": [{"content": {"parts": [{"text": "g"}]}}]});
        assert_eq!(extract_content(row("gemini"), &gemini), Ok(json!("g")));
        assert_eq!(
            extract_content(row("claude"), &json!({"content": [{"text": "c"}]})),
            Ok(json!("c"))
        );
        assert_eq!(extract_content(row("openai"), &json!({})), Ok(json!("")));
        assert!(extract_content(row("deepseek"), &Value::Null).is_err());
    }
}
