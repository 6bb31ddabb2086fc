//! The AI provider layer against the fake providers: each provider's whole and streamed
//! answers through the one trait, on its own wire format, with usage and model lists;
//! the chains: fallback when the first provider answers 500, 429, too slowly or
//! malformed, `Retry-After`, the circuit breaker opening and recovering; and a legacy
//! function with fallback configured keeping its answer's shape.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use studyflow_backend::BackendConfig;
use studyflow_backend::providers::Provider;
use studyflow_backend::providers::chain::{AiUse, Prompt};
use studyflow_backend::providers::chat::{
    Availability, ChatMessage, ChatRequest, Role, StreamEvent, Usage,
};
use studyflow_testkit::fake_providers::Completion;

use crate::support::{TestApp, chain};

fn user(text: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::new(Role::User, text)]
}

fn prompt(text: &str) -> Prompt {
    Prompt {
        messages: user(text),
        temperature: Some(0.7),
        max_tokens: Some(500),
    }
}

/// Fast retries and deadlines, a breaker that stays closed, DeepSeek then OpenAI.
fn quick(config: &mut BackendConfig) {
    config
        .ai
        .chains
        .insert(AiUse::TutorStream, chain("deepseek,openai"));
    config.ai.retry.max = 1;
    config.ai.retry.base_ms = 10;
    config.ai.retry.max_delay_ms = 2_000;
    config.ai.attempt_timeout_ms = 400;
    config.ai.deadline_ms = 10_000;
    config.ai.breaker.failures = 1_000;
    config.ai.breaker.error_rate = 1.0;
    config.ai.breaker.min_calls = 1_000;
}

/// Concatenates a stream's text; returns it with the `Done` event's model and usage.
async fn drain(
    mut stream: studyflow_backend::providers::chat::TokenStream,
) -> (Vec<String>, Option<(String, Option<Usage>)>) {
    let mut pieces = Vec::new();
    let mut done = None;
    while let Some(event) = stream.next().await {
        match event.expect("no stream error") {
            StreamEvent::Delta(text) => pieces.push(text),
            StreamEvent::Done { model, usage } => done = Some((model, usage)),
        }
    }
    (pieces, done)
}

/// Requests the fake received whose prompt contains `marker`, as (path, body).
async fn requests_with(app: &TestApp, marker: &str) -> Vec<(String, Value)> {
    app.provider_requests()
        .await
        .into_iter()
        .filter(|r| r["body"].to_string().contains(marker))
        .map(|r| {
            (
                r["path"].as_str().unwrap_or("").to_owned(),
                r["body"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_provider_answers_whole_and_streamed_on_its_own_wire_format() {
    let app = TestApp::start("ai_wire").await;
    let text = "Explain osmosis to me";
    // How each fake builds the prompt it answers (Anthropic's includes the absent system).
    for (provider, fake, prompt_text) in [
        (Provider::OpenAi, "openai", text.to_owned()),
        (Provider::DeepSeek, "openai", text.to_owned()),
        (Provider::Anthropic, "anthropic", format!("null\n{text}")),
        (Provider::Gemini, "gemini", text.to_owned()),
    ] {
        let client = app.state.ai.provider(provider).expect("a client");
        assert_eq!(client.availability(), Availability::Available);
        let model = provider.default_model();
        let expected = Completion::for_prompt(fake, model, &prompt_text);
        let usage = Usage::new(expected.prompt_tokens, expected.completion_tokens);
        let request = ChatRequest {
            model: model.into(),
            messages: user(text),
            temperature: Some(0.2),
            max_tokens: Some(300),
        };

        let answer = client.generate(&request).await.expect("an answer");
        assert_eq!(answer.text, expected.text, "{provider}");
        assert_eq!(answer.model, model, "{provider}");
        assert_eq!(answer.usage, Some(usage), "{provider}");

        let (pieces, done) = drain(client.stream(&request).await.expect("a stream")).await;
        assert!(pieces.len() > 5, "{provider}: streamed in pieces");
        assert_eq!(pieces.concat(), expected.text, "{provider}");
        assert_eq!(done, Some((model.to_owned(), Some(usage))), "{provider}");

        let models = client.models().await.expect("a model list");
        assert!(models.iter().any(|m| m == model), "{provider}: {models:?}");
    }

    let sent = requests_with(&app, "osmosis").await;
    let paths: Vec<&str> = sent.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/chat/completions",
            "/v1/chat/completions",
            "/chat/completions",
            "/chat/completions",
            "/v1/messages",
            "/v1/messages",
            "/v1beta/models/gemini-1.5-flash:generateContent",
            "/v1beta/models/gemini-1.5-flash:streamGenerateContent",
        ]
    );
    assert_eq!(sent[1].1["stream_options"], json!({"include_usage": true}));
    assert_eq!(sent[5].1["stream"], json!(true));
    assert_eq!(sent[4].1["max_tokens"], json!(300));
    assert_eq!(
        sent[6].1["generationConfig"],
        json!({"temperature": 0.2, "maxOutputTokens": 300})
    );
    app.finish().await;
}

#[tokio::test]
async fn the_chain_falls_back_when_the_first_provider_fails() {
    let app = TestApp::start_with("ai_fallback", quick).await;
    // (fault on DeepSeek, calls DeepSeek gets: retried once unless malformed)
    for (fault, calls) in [
        ("status=500", 2),
        ("status=429", 2),
        ("delay_ms=3000", 2),
        ("malformed", 1),
    ] {
        for streaming in [false, true] {
            let text =
                format!("Why is the sky blue? ({fault}, {streaming}) [[fake@deepseek:{fault}]]");
            let expected = Completion::for_prompt("openai", "gpt-4o-mini", &text);
            let (provider, fallbacks, answer) = if streaming {
                let routed = app
                    .state
                    .ai
                    .stream(AiUse::TutorStream, &prompt(&text))
                    .await
                    .expect("the fallback streams");
                let (pieces, _) = drain(routed.value).await;
                (routed.provider, routed.fallbacks, pieces.concat())
            } else {
                let routed = app
                    .state
                    .ai
                    .generate(AiUse::TutorStream, &prompt(&text))
                    .await
                    .expect("the fallback answers");
                (routed.provider, routed.fallbacks, routed.value.text)
            };
            assert_eq!(
                (provider, fallbacks),
                (Provider::OpenAi, 1),
                "{fault} streaming={streaming}"
            );
            assert_eq!(answer, expected.text, "{fault} streaming={streaming}");
            let sent = requests_with(&app, &format!("({fault}, {streaming})")).await;
            let deepseek = sent
                .iter()
                .filter(|(p, _)| p == "/chat/completions")
                .count();
            assert_eq!(
                deepseek, calls,
                "{fault} streaming={streaming}: calls to DeepSeek"
            );
        }
    }
    // Who answered is in the metrics.
    let fallbacks = app
        .metric(
            "studyflow_backend_ai_answers_total",
            &[
                ("function", "ai-tutor-stream"),
                ("provider", "openai"),
                ("outcome", "fallback"),
            ],
        )
        .await;
    assert_eq!(fallbacks, 8.0);
    let timeouts = app
        .metric(
            "studyflow_backend_ai_attempts_total",
            &[("provider", "deepseek"), ("outcome", "timeout")],
        )
        .await;
    assert_eq!(timeouts, 4.0);
    app.finish().await;
}

#[tokio::test]
async fn retry_after_is_honoured_and_holds_the_provider_off() {
    let app = TestApp::start_with("ai_retry_after", |c| {
        quick(c);
        c.ai.retry.max = 2;
        c.ai.retry.max_delay_ms = 3_000;
        c.ai.attempt_timeout_ms = 5_000;
    })
    .await;

    // 429 with Retry-After: 1, once: the same provider is asked again after a second.
    let text = "Define entropy [[fake@deepseek:status=429,retry_after=1,times=1]]";
    let started = Instant::now();
    let routed = app
        .state
        .ai
        .generate(AiUse::TutorStream, &prompt(text))
        .await
        .expect("answered");
    let elapsed = started.elapsed();
    assert_eq!((routed.provider, routed.fallbacks), (Provider::DeepSeek, 0));
    assert_eq!(routed.attempts, 2);
    assert!(
        elapsed >= Duration::from_secs(1),
        "the retry waited what Retry-After asked ({elapsed:?})"
    );
    assert_eq!(requests_with(&app, "Define entropy").await.len(), 2);

    // Retry-After: 30 is longer than AI_RETRY_MAX_DELAY_MS: no wait, the next provider
    // answers, and DeepSeek is not asked again while its Retry-After runs.
    let text = "Define enthalpy [[fake@deepseek:status=429,retry_after=30]]";
    let started = Instant::now();
    let routed = app
        .state
        .ai
        .generate(AiUse::TutorStream, &prompt(text))
        .await
        .expect("answered");
    assert_eq!(routed.provider, Provider::OpenAi);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "did not wait 30 s"
    );
    assert_eq!(
        requests_with(&app, "Define enthalpy")
            .await
            .iter()
            .filter(|(p, _)| p == "/chat/completions")
            .count(),
        1
    );
    let deepseek = app.state.ai.provider(Provider::DeepSeek).expect("client");
    assert!(
        matches!(deepseek.availability(), Availability::CircuitOpen { retry_in } if retry_in > Duration::from_secs(20)),
        "{:?}",
        deepseek.availability()
    );
    let routed = app
        .state
        .ai
        .generate(AiUse::TutorStream, &prompt("Define enzyme"))
        .await
        .expect("answered");
    assert_eq!(routed.provider, Provider::OpenAi);
    let sent = requests_with(&app, "Define enzyme").await;
    assert_eq!(sent.len(), 1, "only OpenAI was asked: {sent:?}");
    app.finish().await;
}

#[tokio::test]
async fn the_circuit_breaker_opens_and_recovers() {
    let app = TestApp::start_with("ai_breaker", |c| {
        quick(c);
        c.ai.retry.max = 0;
        c.ai.breaker.failures = 2;
        c.ai.breaker.open_secs = 1;
    })
    .await;
    let deepseek = app.state.ai.provider(Provider::DeepSeek).expect("client");
    for n in 0..2 {
        let text = format!("Outage {n} [[fake@deepseek:status=503]]");
        let routed = app
            .state
            .ai
            .generate(AiUse::TutorStream, &prompt(&text))
            .await
            .expect("answered");
        assert_eq!(routed.provider, Provider::OpenAi);
    }
    assert!(matches!(
        deepseek.availability(),
        Availability::CircuitOpen { .. }
    ));
    assert_eq!(breaker_gauge(&app).await, 2.0, "open");

    // While open, DeepSeek is not called at all.
    let routed = app
        .state
        .ai
        .generate(AiUse::TutorStream, &prompt("While open"))
        .await
        .expect("answered");
    assert_eq!(routed.provider, Provider::OpenAi);
    assert_eq!(requests_with(&app, "While open").await.len(), 1);

    // After AI_BREAKER_OPEN_SECS a probe goes through; it succeeds and closes it.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(deepseek.availability(), Availability::Probing);
    let routed = app
        .state
        .ai
        .generate(AiUse::TutorStream, &prompt("After recovery"))
        .await
        .expect("answered");
    assert_eq!(routed.provider, Provider::DeepSeek);
    assert_eq!(deepseek.availability(), Availability::Available);
    assert_eq!(breaker_gauge(&app).await, 0.0, "closed");
    let opened = app
        .metric(
            "studyflow_backend_ai_breaker_transitions_total",
            &[("provider", "deepseek"), ("state", "open")],
        )
        .await;
    assert_eq!(opened, 1.0);
    app.finish().await;
}

#[tokio::test]
async fn a_legacy_function_with_fallback_configured_keeps_its_answer_shape() {
    let app = TestApp::start_with("ai_legacy_fallback", |c| {
        quick(c);
        c.ai.chains.insert(AiUse::Tutor, chain("deepseek,openai"));
    })
    .await;
    let normal = app
        .post(
            "ai-tutor-professional",
            &[],
            json!({"message": "Explain photosynthesis"}),
        )
        .await;
    assert_eq!(normal.status, 200, "{}", normal.text);
    assert_eq!(normal.body["metadata"]["model"], "deepseek-chat");

    let failed_over = app
        .post(
            "ai-tutor-professional",
            &[],
            json!({"message": "Explain photosynthesis [[fake@deepseek:status=500]]"}),
        )
        .await;
    assert_eq!(failed_over.status, 200, "{}", failed_over.text);
    assert_eq!(failed_over.body["metadata"]["model"], "gpt-4o-mini");
    assert_eq!(shape(&failed_over.body), shape(&normal.body));
    assert!(
        failed_over.body["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );

    // Every provider down: the legacy's own error for the first provider's failure.
    let down = app
        .post(
            "ai-tutor-professional",
            &[],
            json!({"message": "Explain it [[fake:status=500]]"}),
        )
        .await;
    assert_eq!(down.status, 500);
    assert!(
        down.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("DeepSeek API error: 500 ")),
        "{}",
        down.text
    );
    app.finish().await;
}

#[tokio::test]
async fn legacy_functions_call_one_provider_by_default() {
    let app = TestApp::start("ai_legacy_default").await;
    let answer = app
        .post(
            "ai-tutor-professional",
            &[],
            json!({"message": "Explain gravity [[fake@deepseek:status=500]]"}),
        )
        .await;
    assert_eq!(answer.status, 500);
    let sent = requests_with(&app, "Explain gravity").await;
    assert_eq!(sent.len(), 1, "one call, no retry, no fallback: {sent:?}");
    app.finish().await;
}

async fn breaker_gauge(app: &TestApp) -> f64 {
    app.metric(
        "studyflow_backend_ai_breaker_state",
        &[("provider", "deepseek")],
    )
    .await
}

/// The keys and value types of a JSON value, recursively.
pub fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(_) => json!("array"),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}
