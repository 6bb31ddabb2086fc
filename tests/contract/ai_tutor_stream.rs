//! ai-tutor-stream: the tutor as server-sent events. Tokens as they come, then a `done`
//! event with metadata, quality and usage; the same shape whichever provider answers; an
//! `error` event when no provider can answer or the answer breaks off; the client going
//! away closes the provider's connection.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use studyflow_testkit::fake_providers::Completion;

use crate::ai_providers::shape;
use studyflow_backend::ai_types::AiUse;

use crate::support::{SseEvent, SseReader, TestApp, chain};

const FUNCTION: &str = "ai-tutor-stream";

/// The prompt the tutor sends, as the fake joins it (system, then user message).
fn fake_prompt(message: &str, context: &Value) -> String {
    let prompts = studyflow_backend::prompts::Prompts::shipped().expect("shipped prompts");
    let rendered = prompts
        .render(
            FUNCTION,
            &serde_json::json!({"message": message, "context": context}),
        )
        .expect("renders");
    format!("{}\n{}", rendered.system, rendered.user)
}

async fn stream(app: &TestApp, body: Value) -> (reqwest::header::HeaderMap, Vec<SseEvent>) {
    let response = app.post_streaming(FUNCTION, body).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let events = SseReader::new(response).rest().await;
    (headers, events)
}

fn text_of(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.name == "token")
        .map(|e| e.data["text"].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn tokens_then_a_done_event_with_metadata_and_usage() {
    let app = TestApp::start("stream_ok").await;
    let context = json!({"subject": "biology", "difficulty": "beginner"});
    let message = "Explain photosynthesis";
    let (headers, events) = stream(&app, json!({"message": message, "context": context})).await;
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-allow-credentials"], "true");

    let expected =
        Completion::for_prompt("openai", "deepseek-chat", &fake_prompt(message, &context));
    let tokens = events.iter().filter(|e| e.name == "token").count();
    assert!(tokens > 5, "streamed in pieces: {events:?}");
    assert_eq!(text_of(&events), expected.text);

    let done = events.last().expect("a last event");
    assert_eq!(done.name, "done");
    let metadata = &done.data["metadata"];
    assert_eq!(metadata["provider"], "deepseek");
    assert_eq!(metadata["model"], "deepseek-chat");
    assert_eq!(metadata["responseType"], "stream");
    assert_eq!(metadata["fallbacks"], 0);
    assert!(metadata["timeToFirstToken"].is_u64());
    assert!(
        metadata["requestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(
        done.data["usage"],
        json!({"promptTokens": expected.prompt_tokens, "completionTokens": expected.completion_tokens, "totalTokens": expected.prompt_tokens + expected.completion_tokens})
    );
    assert!(done.data["quality"]["overall"].is_number());

    // The request the provider got: streaming, the tutor's prompts and defaults.
    let sent = app.last_provider_request().await;
    assert_eq!(sent["path"], "/chat/completions");
    assert_eq!(sent["body"]["stream"], true);
    assert_eq!(sent["body"]["temperature"], 0.7);
    assert_eq!(sent["body"]["max_tokens"], 2000);
    assert_eq!(sent["body"]["messages"][0]["role"], "system");
    app.finish().await;
}

#[tokio::test]
async fn a_fallback_keeps_the_shape_of_the_stream() {
    let app = TestApp::start_with("stream_fallback", |c| {
        c.ai.chains
            .insert(AiUse::TutorStream, chain("deepseek,anthropic,gemini"));
        c.ai.retry.max = 0;
    })
    .await;
    let (_, normal) = stream(&app, json!({"message": "What is a prime number?"})).await;
    let (_, fell_back) = stream(
        &app,
        json!({"message": "What is a prime number? [[fake@deepseek:status=503]]"}),
    )
    .await;
    let (_, twice) = stream(
        &app,
        json!({"message": "What is a prime? [[fake@deepseek:status=500]] [[fake@anthropic:status=529]]"}),
    )
    .await;
    let names = |events: &[SseEvent]| -> Vec<String> {
        let mut names: Vec<String> = events.iter().map(|e| e.name.clone()).collect();
        names.dedup();
        names
    };
    for events in [&normal, &fell_back, &twice] {
        assert_eq!(names(events), ["token", "done"]);
        assert!(events[0].data.as_object().is_some_and(|o| o.len() == 1));
    }
    let done = |events: &[SseEvent]| events.last().map(|e| e.data.clone()).unwrap_or_default();
    assert_eq!(done(&fell_back)["metadata"]["provider"], "anthropic");
    assert_eq!(done(&fell_back)["metadata"]["fallbacks"], 1);
    assert_eq!(done(&twice)["metadata"]["provider"], "gemini");
    assert_eq!(done(&twice)["metadata"]["fallbacks"], 2);
    assert_eq!(shape(&done(&fell_back)), shape(&done(&normal)));
    assert_eq!(shape(&done(&twice)), shape(&done(&normal)));
    app.finish().await;
}

#[tokio::test]
async fn failures_end_the_stream_with_an_error_event() {
    let app = TestApp::start_with("stream_errors", |c| {
        c.ai.chains
            .insert(AiUse::TutorStream, chain("deepseek,openai"));
        c.ai.retry.max = 0;
    })
    .await;
    // No provider can answer.
    let (_, events) = stream(&app, json!({"message": "Hi [[fake:status=503]]"})).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].name, "error");
    assert_eq!(events[0].data["code"], "AI_PROVIDER_ERROR");
    assert_eq!(events[0].data["details"]["partial"], false);
    let message = events[0].data["message"].as_str().unwrap_or_default();
    assert!(
        !message.contains("deepseek") && !message.contains("HTTP"),
        "no internal detail: {message}"
    );

    // The answer breaks off halfway: what came is kept, then an error event.
    let (_, events) = stream(&app, json!({"message": "Tell me more [[fake:drop]]"})).await;
    let last = events.last().expect("events");
    assert!(!text_of(&events).is_empty());
    assert_eq!(last.name, "error");
    assert_eq!(last.data["code"], "AI_STREAM_INTERRUPTED");
    assert_eq!(last.data["details"]["partial"], true);
    assert!(events.iter().all(|e| e.name != "done"));
    app.finish().await;
}

#[tokio::test]
async fn requests_are_checked_like_the_tutor_checks_them() {
    let app = TestApp::start("stream_validation").await;
    let signed_in = [("authorization", format!("Bearer {}", app.token()))];
    let preflight = app.request(Method::OPTIONS, FUNCTION, &[], None).await;
    assert_eq!((preflight.status, preflight.text.as_str()), (200, ""));
    let get = app.request(Method::GET, FUNCTION, &signed_in, None).await;
    assert_eq!(get.status, 405);
    for body in [json!({}), json!({"message": ""}), json!({"message": 3})] {
        let answer = app.post(FUNCTION, &signed_in, body).await;
        assert_eq!(answer.status, 400);
        assert_eq!(
            answer.body,
            json!({"error": "Message is required and must be a string"})
        );
    }
    let bad = app.post_raw(FUNCTION, &signed_in, b"{nope").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"], "Invalid request body");
    let history = app
        .post(
            FUNCTION,
            &signed_in,
            json!({"message": "hi", "context": {"history": 5}}),
        )
        .await;
    assert_eq!(history.status, 400);
    assert_eq!(history.body["error"], "Invalid conversation history");
    app.finish().await;
}

#[tokio::test]
async fn only_signed_in_students_within_the_ai_rate_limit_reach_the_provider() {
    let app = TestApp::start("stream_admission").await;
    let body = json!({"message": "What is a prime number?"});
    let anonymous = app.post(FUNCTION, &[], body.clone()).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.body,
        json!({"error": "Missing authorization header"})
    );
    let forged = app
        .post(
            FUNCTION,
            &[("authorization", "Bearer not.a.token".to_owned())],
            body.clone(),
        )
        .await;
    assert_eq!(forged.status, 401);
    assert_eq!(forged.body, json!({"error": "Invalid or expired token"}));
    assert!(
        app.provider_requests().await.is_empty(),
        "no provider call for anyone not signed in"
    );

    // 60 requests a minute per student, shared with every AI function: the 61st is 429.
    let signed_in = [("authorization", format!("Bearer {}", app.token()))];
    for i in 0..60 {
        let answer = app
            .request(
                Method::POST,
                FUNCTION,
                &signed_in,
                Some(
                    json!({"message": format!("question {i}")})
                        .to_string()
                        .into_bytes(),
                ),
            )
            .await;
        assert_eq!(answer.status, 200, "request {i}");
    }
    let over = app.post(FUNCTION, &signed_in, body).await;
    assert_eq!(over.status, 429, "{:?}", over.body);
    app.finish().await;
}

#[tokio::test]
async fn a_client_going_away_closes_the_provider_connection() {
    let app = TestApp::start("stream_disconnect").await;
    assert_eq!(app.provider_disconnects().await, 0);
    let response = app
        .post_streaming(
            FUNCTION,
            json!({"message": "Explain the water cycle [[fake:chunk_delay_ms=200]]"}),
        )
        .await;
    let mut reader = SseReader::new(response);
    let first = reader.next_event().await.expect("a first event");
    assert_eq!(first.name, "token");
    drop(reader);

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while app.provider_disconnects().await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the fake provider never saw its client go away"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled = app
        .metric(
            "studyflow_backend_ai_streams_total",
            &[("provider", "deepseek"), ("outcome", "cancelled")],
        )
        .await;
    assert_eq!(cancelled, 1.0);
    app.finish().await;
}
