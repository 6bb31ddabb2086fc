//! ai-tutor-professional: CORS *shared*, 405, 400, the 500 variants, the 200 answer with
//! its metadata, quality and usage, and the exact DeepSeek request.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_iso_millis};

const FUNCTION: &str = "ai-tutor-professional";

const SHARED_ALLOW_HEADERS: &str =
    "authorization, x-client-info, apikey, content-type, x-supabase-auth, x-request-id";

fn assert_shared_cors(answer: &crate::support::Answer) {
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some(SHARED_ALLOW_HEADERS)
    );
    assert_eq!(
        answer.header("access-control-allow-methods"),
        Some("POST, GET, OPTIONS, PUT, DELETE")
    );
    assert_eq!(answer.header("access-control-max-age"), Some("86400"));
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
}

#[tokio::test]
async fn preflight_method_and_validation_answers() {
    let app = TestApp::start("tutor_basic").await;
    let preflight = app.request(Method::OPTIONS, FUNCTION, &[], None).await;
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.text, "");
    assert_shared_cors(&preflight);

    let get = app.request(Method::GET, FUNCTION, &[], None).await;
    assert_eq!(get.status, 405);
    assert_eq!(get.body, json!({"error": "Method not allowed"}));
    assert_shared_cors(&get);
    assert_eq!(get.header("content-type"), Some("application/json"));

    for body in [
        json!({}),
        json!({"message": ""}),
        json!({"message": 42}),
        json!("text"),
    ] {
        let answer = app.post(FUNCTION, &[], body.clone()).await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(
            answer.body,
            json!({"error": "Message is required and must be a string"})
        );
    }

    let bad = app.post_raw(FUNCTION, &[], b"{not json").await;
    assert_eq!(bad.status, 500);
    assert_eq!(bad.body["error"], "Internal server error");
    assert_eq!(
        bad.body["message"],
        "Expected property name or '}' in JSON at position 1 (line 1 column 2)"
    );
    assert_iso_millis(&bad.body["timestamp"]);
    assert_shared_cors(&bad);
    app.finish().await;
}

#[tokio::test]
async fn missing_key_and_provider_failure_are_500s() {
    let app = TestApp::start_with("tutor_nokey", |c| c.providers.deepseek.api_key = None).await;
    let answer = app.post(FUNCTION, &[], json!({"message": "hi"})).await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body["message"],
        "DEEPSEEK_API_KEY environment variable is required"
    );
    // Validation comes first: no message and no key is a 400.
    let answer = app.post(FUNCTION, &[], json!({})).await;
    assert_eq!(answer.status, 400);
    app.finish().await;

    let app = TestApp::start("tutor_fail").await;
    let answer = app
        .post(FUNCTION, &[], json!({"message": "hi [[fake:status=503]]"}))
        .await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body["message"],
        "DeepSeek API error: 503 {\"error\":{\"message\":\"Fake provider error 503\",\"type\":\"server_error\",\"code\":503}}"
    );
    let malformed = app
        .post(FUNCTION, &[], json!({"message": "hi [[fake:malformed]]"}))
        .await;
    assert_eq!(malformed.status, 500);
    assert_eq!(
        malformed.body["message"],
        "Unexpected token 'o', \"{\"choices\": [oops\" is not valid JSON"
    );
    app.finish().await;
}

#[tokio::test]
async fn answers_with_content_metadata_quality_and_usage() {
    let app = TestApp::start("tutor_ok").await;
    let answer = app
        .post(
            FUNCTION,
            &[],
            json!({
                "message": "Explain derivatives",
                "context": {
                    "subject": "Calculus",
                    "difficulty": "beginner",
                    "history": [
                        {"role": "user", "content": "Hello", "timestamp": 1},
                        {"role": "assistant", "content": "Hi! How can I help?", "timestamp": 2}
                    ]
                },
                "options": {"mode": "reasoning", "temperature": 0, "maxTokens": 500, "stream": true}
            }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_shared_cors(&answer);
    let keys: Vec<&String> = answer.body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["content", "metadata", "quality", "usage"]);
    let content = answer.body["content"].as_str().expect("content");
    assert!(!content.is_empty());

    let metadata = &answer.body["metadata"];
    let keys: Vec<&String> = metadata.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        [
            "model",
            "processingTime",
            "enhancementsApplied",
            "cacheHit",
            "responseType",
            "requestId",
            "timestamp"
        ]
    );
    assert_eq!(metadata["model"], "deepseek-reasoner");
    assert!(metadata["processingTime"].is_u64());
    assert_eq!(
        metadata["enhancementsApplied"],
        json!(["prompt_optimization", "educational_formatting"])
    );
    assert_eq!(metadata["cacheHit"], false);
    assert_eq!(metadata["responseType"], "conversation");
    let request_id = metadata["requestId"].as_str().expect("id");
    assert!(
        request_id.starts_with("req_") && request_id.len() >= 26,
        "{request_id}"
    );
    assert_iso_millis(&metadata["timestamp"]);

    let quality = &answer.body["quality"];
    let names: Vec<&str> = quality["breakdown"]
        .as_array()
        .expect("breakdown")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["accuracy", "completeness", "clarity", "educationalValue"]
    );
    assert_eq!(
        answer.body["quality"],
        studyflow_backend::functions::ai_tutor_professional::quality::assess(
            content,
            "Explain derivatives"
        )
    );
    let usage = &answer.body["usage"];
    assert!(usage["promptTokens"].is_u64() && usage["completionTokens"].is_u64());
    assert_eq!(
        usage["totalTokens"].as_u64(),
        Some(
            usage["promptTokens"].as_u64().unwrap_or(0)
                + usage["completionTokens"].as_u64().unwrap_or(0)
        )
    );

    // Exactly what DeepSeek received.
    let sent = app.last_provider_request().await;
    assert_eq!(sent["path"], "/v1/chat/completions");
    assert_eq!(sent["authorized"], true);
    let body = &sent["body"];
    assert_eq!(body["model"], "deepseek-reasoner");
    assert_eq!(body["temperature"], 0.7, "0 is falsy: the default applies");
    assert_eq!(body["max_tokens"], 500);
    assert_eq!(body["stream"], false);
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 4);
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "You are an expert educational AI tutor. You specialize in Calculus. Adjust your explanations for beginner level understanding.\n\nGuidelines:\n1. Provide clear, well-structured responses using appropriate academic language\n2. Use concrete examples to illustrate concepts\n3. Highlight key concepts and important points\n4. Encourage critical thinking with thought-provoking questions\n5. Build on previous knowledge and make connections between ideas"})
    );
    assert_eq!(messages[1], json!({"role": "user", "content": "Hello"}));
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "Hi! How can I help?"})
    );
    assert_eq!(
        messages[3],
        json!({"role": "user", "content": "Explain derivatives\n\n[Context: This is a Calculus question. Level: beginner Please provide a structured explanation with examples.]"})
    );
    app.finish().await;
}

#[tokio::test]
async fn defaults_and_history_errors() {
    let app = TestApp::start("tutor_defaults").await;
    let answer = app
        .post(FUNCTION, &[], json!({"message": "hello there"}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let body = app.last_provider_request().await["body"].clone();
    assert_eq!(body["model"], "deepseek-chat");
    assert_eq!(body["temperature"], 0.7);
    assert_eq!(body["max_tokens"], 2000);
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "hello there"})
    );

    let answer = app
        .post(
            FUNCTION,
            &[],
            json!({"message": "hi", "context": {"history": "nope"}}),
        )
        .await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body["message"],
        "context.history.map is not a function"
    );
    let answer = app
        .post(
            FUNCTION,
            &[],
            json!({"message": "hi", "context": {"history": [null]}}),
        )
        .await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body["message"],
        "Cannot read properties of null (reading 'role')"
    );
    let answer = app.post_raw(FUNCTION, &[], b"null").await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body["message"],
        Value::String("Cannot read properties of null (reading 'message')".into())
    );
    app.finish().await;
}
