//! ai-proxy: every failure message, the four providers' payloads and answers, the usage
//! log and rate-limit rows, and the real 60-per-minute limit.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use studyflow_testkit::tokens;

use crate::support::{Answer, JWT_SECRET, TestApp};

const FUNCTION: &str = "ai-proxy";

fn assert_basic_cors(answer: &Answer) {
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("authorization, x-client-info, apikey, content-type")
    );
    assert_eq!(answer.header("access-control-allow-methods"), None);
}

fn assert_failure(answer: &Answer, status: u16, message: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.body["error"], message, "{}", answer.text);
    let details = answer.body["details"].as_str().expect("details text");
    // Intentional fix: a short text naming the request, no stack trace.
    assert!(
        details.starts_with("See the backend log for request"),
        "{details}"
    );
    assert!(!details.contains(".ts:"), "{details}");
    assert_basic_cors(answer);
}

#[tokio::test]
async fn failures_in_the_legacy_order() {
    let app = TestApp::start("proxy_fail").await;
    let preflight = app.request(Method::OPTIONS, FUNCTION, &[], None).await;
    assert_eq!((preflight.status, preflight.text.as_str()), (200, ""));
    assert_basic_cors(&preflight);

    let body = json!({"provider": "openai", "action": "chat", "messages": [{"role": "user", "content": "hi"}]});
    let answer = app.post(FUNCTION, &[], body.clone()).await;
    assert_failure(&answer, 500, "Missing authorization header");

    let expired = tokens::access_token(
        JWT_SECRET,
        studyflow_testkit::stack::DEMO_USER_ID,
        "x@gmail.com",
        -3600,
    );
    for token in ["garbage".to_owned(), expired] {
        let answer = app
            .post(
                FUNCTION,
                &[("authorization", format!("Bearer {token}"))],
                body.clone(),
            )
            .await;
        assert_failure(&answer, 500, "Invalid or expired token");
    }
    // A valid token of a user that does not exist.
    let stranger = tokens::access_token(
        JWT_SECRET,
        &uuid::Uuid::new_v4().to_string(),
        "s@gmail.com",
        3600,
    );
    let answer = app
        .post(
            FUNCTION,
            &[("authorization", format!("Bearer {stranger}"))],
            body.clone(),
        )
        .await;
    assert_failure(&answer, 500, "Invalid or expired token");

    let auth = app.auth();
    let answer = app
        .post(FUNCTION, &auth, json!({"provider": "openai"}))
        .await;
    assert_failure(
        &answer,
        500,
        "Missing required parameters: provider and action",
    );
    let answer = app.post_raw(FUNCTION, &auth, b"{oops").await;
    assert_failure(
        &answer,
        500,
        "Expected property name or '}' in JSON at position 1 (line 1 column 2)",
    );
    let answer = app
        .post(
            FUNCTION,
            &auth,
            json!({"provider": "openai", "action": "translate"}),
        )
        .await;
    assert_failure(&answer, 500, "Unsupported action: translate");
    let answer = app
        .post(
            FUNCTION,
            &auth,
            json!({"provider": "openai", "action": "chat"}),
        )
        .await;
    assert_failure(&answer, 500, "Unsupported action: chat");
    let answer = app
        .post(
            FUNCTION,
            &auth,
            json!({"provider": "mistral", "action": "completion", "prompt": "hi"}),
        )
        .await;
    assert_failure(&answer, 500, "mistral API key not configured");
    let answer = app
        .post(
            FUNCTION,
            &auth,
            json!({"provider": "openai", "action": "completion", "prompt": "hi [[fake:status=500]]"}),
        )
        .await;
    assert_failure(
        &answer,
        500,
        "openai API error: 500 {\"error\":{\"message\":\"Fake provider error 500\",\"type\":\"server_error\",\"code\":500}}",
    );
    // Any error whose message mentions "Rate limit" answers 429 (with details).
    let answer = app
        .post(
            FUNCTION,
            &auth,
            json!({"provider": "openai", "action": "Rate limit"}),
        )
        .await;
    assert_failure(&answer, 429, "Unsupported action: Rate limit");
    app.finish().await;

    let app = TestApp::start_with("proxy_nokey", |c| c.providers.gemini.api_key = None).await;
    let answer = app
        .post(
            FUNCTION,
            &app.auth(),
            json!({"provider": "gemini", "action": "completion", "prompt": "hi"}),
        )
        .await;
    assert_failure(&answer, 500, "gemini API key not configured");
    app.finish().await;
}

#[tokio::test]
async fn each_provider_gets_its_wire_format() {
    let app = TestApp::start("proxy_ok").await;
    let auth = app.auth();
    let messages = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is a limit?"},
        {"role": "assistant", "content": "A value approached."},
        {"role": "user", "content": "Thanks"}
    ]);
    let cases = [
        ("openai", "gpt-4o-mini", "/v1/chat/completions"),
        ("deepseek", "deepseek-chat", "/chat/completions"),
        ("claude", "claude-3-haiku-20240307", "/v1/messages"),
        (
            "gemini",
            "gemini-1.5-flash",
            "/v1beta/models/gemini-1.5-flash:generateContent",
        ),
    ];
    for (provider, default_model, path) in cases {
        let answer = app
            .post(
                FUNCTION,
                &auth,
                json!({"provider": provider, "action": "chat", "messages": messages}),
            )
            .await;
        assert_eq!(answer.status, 200, "{provider}: {}", answer.text);
        assert_basic_cors(&answer);
        let keys: Vec<&String> = answer.body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["data", "content", "provider", "model"]);
        assert_eq!(answer.body["provider"], provider);
        assert_eq!(answer.body["model"], default_model);
        let content = answer.body["content"].as_str().expect("content");
        assert!(!content.is_empty());
        let sent = app.last_provider_request().await;
        assert_eq!(sent["path"], path, "{provider}");
        // Gemini's key travels in the query (the fake answers 403 without it).
        assert_eq!(sent["authorized"], provider != "gemini", "{provider}");
        let body = &sent["body"];
        match provider {
            "gemini" => {
                assert_eq!(
                    body,
                    &json!({"contents": [
                        {"role": "user", "parts": [{"text": "Be brief."}]},
                        {"role": "user", "parts": [{"text": "What is a limit?"}]},
                        {"role": "model", "parts": [{"text": "A value approached."}]},
                        {"role": "user", "parts": [{"text": "Thanks"}]}
                    ]})
                );
                assert_eq!(
                    answer.body["data"]["candidates"][0]["content"]["parts"][0]["text"],
                    content
                );
            }
            "claude" => {
                assert_eq!(sent["anthropic_version"], "2023-06-01");
                assert_eq!(
                    body,
                    &json!({"model": "claude-3-haiku-20240307", "max_tokens": 1024, "messages": messages.as_array().expect("array")[1..]})
                );
                assert_eq!(answer.body["data"]["content"][0]["text"], content);
            }
            _ => {
                assert_eq!(
                    body,
                    &json!({"model": default_model, "messages": messages, "max_tokens": 1024, "temperature": 0.7})
                );
                assert_eq!(
                    answer.body["data"]["choices"][0]["message"]["content"],
                    content
                );
            }
        }
    }
    app.finish().await;
}

#[tokio::test]
async fn overrides_usage_log_and_rate_limit_row() {
    let app = TestApp::start("proxy_rows").await;
    // Both requests in one calendar minute, so in one rate-limit row.
    studyflow_testkit::clock::clear_of_minute_turn(Duration::from_secs(10)).await;
    let prompt = "Summarise the chain rule";
    let answer = app
        .post(
            FUNCTION,
            &app.auth(),
            json!({"provider": "gemini", "action": "completion", "prompt": prompt,
                   "model": "gemini-pro", "temperature": 0, "maxTokens": 64}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["model"], "gemini-pro");
    let body = app.last_provider_request().await["body"].clone();
    assert_eq!(
        body,
        json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}],
               "model": "gemini-pro", "temperature": 0, "max_tokens": 64})
    );

    let logs = app.rows("api_usage_logs").await;
    assert_eq!(logs.len(), 1);
    let content = answer.body["content"].as_str().expect("content");
    let expected_tokens = (content.encode_utf16().count() + prompt.len()).div_ceil(4);
    assert_eq!(logs[0]["user_id"], studyflow_testkit::stack::DEMO_USER_ID);
    assert_eq!(logs[0]["provider"], "gemini");
    assert_eq!(logs[0]["model"], "gemini-pro");
    assert_eq!(logs[0]["tokens_used"], json!(expected_tokens));
    assert_eq!(logs[0]["success"], true);

    // Without a model the log says "default".
    let answer = app
        .post(
            FUNCTION,
            &app.auth(),
            json!({"provider": "openai", "action": "completion", "prompt": "hi"}),
        )
        .await;
    assert_eq!(answer.status, 200);
    let logs = app.rows("api_usage_logs").await;
    assert_eq!(logs[1]["model"], "default");

    let limits = app.rows("rate_limits").await;
    assert_eq!(limits.len(), 1, "{limits:?}");
    assert_eq!(limits[0]["user_id"], studyflow_testkit::stack::DEMO_USER_ID);
    let window = limits[0]["window_start"].as_str().expect("window");
    assert!(window.contains(":00+00:00"), "starts on a minute: {window}");
    // Intentional fix: the row counts the minute's requests.
    assert_eq!(limits[0]["requests_count"], 2);
    app.finish().await;
}

#[tokio::test]
async fn sixty_requests_a_minute_then_429() {
    let app = TestApp::start("proxy_limit").await;
    let auth = app.auth();
    for i in 0..60 {
        let answer = app
            .post(
                FUNCTION,
                &auth,
                json!({"provider": "deepseek", "action": "completion", "prompt": format!("q{i}")}),
            )
            .await;
        assert_eq!(answer.status, 200, "request {i}: {}", answer.text);
    }
    let answer = app
        .post(
            FUNCTION,
            &auth,
            json!({"provider": "deepseek", "action": "completion", "prompt": "q60"}),
        )
        .await;
    assert_eq!(answer.status, 429);
    assert_eq!(
        answer.body,
        json!({"error": "Rate limit exceeded. Please wait before making another request."})
    );
    assert_basic_cors(&answer);
    // Refused requests reach no provider and log no usage.
    assert_eq!(app.rows("api_usage_logs").await.len(), 60);
    let scrape = app.request(Method::GET, "/metrics", &[], None).await;
    assert!(
        scrape
            .text
            .contains(studyflow_backend::metrics::RATE_LIMIT_REJECTIONS_TOTAL)
    );

    // The window is per user.
    let other = uuid::Uuid::new_v4();
    studyflow_testkit::database::ensure_user(
        &format!(
            "{}/{}",
            studyflow_testkit::database::server_url(),
            app.database
        ),
        other,
        "other@gmail.com",
    )
    .await
    .expect("user");
    let token = tokens::access_token(JWT_SECRET, &other.to_string(), "other@gmail.com", 3600);
    let answer = app
        .post(
            FUNCTION,
            &[("authorization", format!("Bearer {token}"))],
            json!({"provider": "deepseek", "action": "completion", "prompt": "mine"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let _: Value = answer.body;
    app.finish().await;
}
