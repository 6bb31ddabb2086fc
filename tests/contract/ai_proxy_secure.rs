//! ai-proxy-secure: CORS with the signature headers, the provider's answer as received,
//! and `{error}` 500s.

use reqwest::Method;
use serde_json::json;

use crate::support::{Answer, TestApp};

const FUNCTION: &str = "ai-proxy-secure";

fn assert_cors(answer: &Answer) {
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some(
            "authorization, x-client-info, apikey, content-type, x-signature, x-timestamp, x-nonce"
        )
    );
}

fn assert_error(answer: &Answer, message: &str) {
    assert_eq!(answer.status, 500, "{}", answer.text);
    assert_eq!(answer.body, json!({"error": message}));
    assert_cors(answer);
}

#[tokio::test]
async fn answers_the_provider_json_as_received() {
    let app = TestApp::start("secure_ok").await;
    let preflight = app.request(Method::OPTIONS, FUNCTION, &[], None).await;
    assert_eq!((preflight.status, preflight.text.as_str()), (200, ""));
    assert_cors(&preflight);

    let messages =
        json!([{"role": "system", "content": "s"}, {"role": "user", "content": "Define entropy"}]);
    let answer = app
        .post(
            FUNCTION,
            &app.auth(),
            json!({"provider": "claude", "action": "chat", "messages": messages, "maxTokens": 99}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_cors(&answer);
    assert_eq!(answer.body["type"], "message");
    assert!(answer.body["content"][0]["text"].is_string());
    let sent = app.last_provider_request().await;
    assert_eq!(
        sent["body"],
        json!({"model": "claude-3-haiku-20240307", "max_tokens": 99, "messages": [{"role": "user", "content": "Define entropy"}]})
    );

    let answer = app
        .post(
            FUNCTION,
            &app.auth(),
            json!({"provider": "openai", "action": "chat", "messages": messages, "temperature": 0}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["object"], "chat.completion");
    assert_eq!(
        app.last_provider_request().await["body"],
        json!({"model": "gpt-4o-mini", "messages": messages, "max_tokens": 1024, "temperature": 0.7})
    );

    let answer = app
        .post(FUNCTION, &app.auth(), json!({"provider": "gemini", "action": "chat", "messages": messages, "model": "ignored"}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.body["candidates"].is_array());
    assert_eq!(
        app.last_provider_request().await["body"],
        json!({"contents": [{"role": "user", "parts": [{"text": "s"}]}, {"role": "user", "parts": [{"text": "Define entropy"}]}]})
    );
    app.finish().await;
}

#[tokio::test]
async fn failures() {
    let app = TestApp::start("secure_fail").await;
    let body = json!({"provider": "deepseek", "action": "chat", "messages": [{"role": "user", "content": "x"}]});
    assert_error(
        &app.post(FUNCTION, &[], body.clone()).await,
        "Missing authorization header",
    );
    assert_error(
        &app.post(FUNCTION, &[("authorization", "Bearer nope".into())], body)
            .await,
        "Invalid or expired token",
    );
    let auth = app.auth();
    assert_error(
        &app.post(FUNCTION, &auth, json!({"provider": "deepseek"}))
            .await,
        "Missing required parameters: provider and action",
    );
    assert_error(
        &app.post(
            FUNCTION,
            &auth,
            json!({"provider": "cohere", "action": "chat"}),
        )
        .await,
        "cohere API key not configured",
    );
    // messages is required for every provider.
    assert_error(
        &app.post(
            FUNCTION,
            &auth,
            json!({"provider": "deepseek", "action": "chat"}),
        )
        .await,
        "messages must be an array",
    );
    assert_error(
        &app.post(
            FUNCTION,
            &auth,
            json!({"provider": "gemini", "action": "chat"}),
        )
        .await,
        "Cannot read properties of undefined (reading 'map')",
    );
    assert_error(
        &app.post(
            FUNCTION,
            &auth,
            json!({"provider": "claude", "action": "chat"}),
        )
        .await,
        "Cannot read properties of undefined (reading 'filter')",
    );
    assert_error(
        &app
            .post(
                FUNCTION,
                &auth,
                json!({"provider": "deepseek", "action": "chat", "messages": [{"role": "user", "content": "[[fake:status=502]]"}]}),
            )
            .await,
        "deepseek API error: 502 {\"error\":{\"message\":\"Fake provider error 502\",\"type\":\"server_error\",\"code\":502}}",
    );
    assert_eq!(app.rows("api_usage_logs").await.len(), 0, "no usage log");
    assert_eq!(app.rows("rate_limits").await.len(), 0, "no rate limit");
    app.finish().await;
}
