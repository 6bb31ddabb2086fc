//! Health, readiness, metrics, request ids, body limit and design-shaped errors.

use reqwest::Method;
use serde_json::json;
use studyflow_backend::metrics;

use crate::support::{TestApp, assert_design_error};

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = TestApp::start_with("ops", |config| {
        config.embedding.model_dir = Some(studyflow_testkit::stack::embedding_model_dir());
    })
    .await;
    let health = app.request(Method::GET, "/health", &[], None).await;
    assert_eq!(
        (health.status, health.body.clone()),
        (200, json!({"status": "ok"}))
    );
    let ready = app.request(Method::GET, "/ready", &[], None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.body,
        json!({"status": "ready", "checks": {"database": "ok", "redis": "ok", "embedding": "ok"}})
    );

    // One function call, then every metric family is exposed under its constant name.
    let answer = app.ai_proxy_completion("openai", "hi").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let scrape = app.request(Method::GET, "/metrics", &[], None).await;
    assert_eq!(scrape.status, 200);
    for name in [
        metrics::REQUESTS_TOTAL,
        metrics::REQUEST_DURATION_SECONDS,
        metrics::PROVIDER_CALLS_TOTAL,
        metrics::PROVIDER_CALL_DURATION_SECONDS,
        metrics::DB_POOL_CONNECTIONS,
        metrics::DB_POOL_MAX_CONNECTIONS,
    ] {
        assert!(scrape.text.contains(name), "{name} missing from /metrics");
    }
    assert!(scrape.text.contains(&format!(
        "{}{{function=\"ai-proxy\",status=\"200\"}} 1",
        metrics::REQUESTS_TOTAL
    )));
    assert!(scrape.text.contains(&format!(
        "{}{{outcome=\"ok\",provider=\"openai\"}} 1",
        metrics::PROVIDER_CALLS_TOTAL
    )));
    app.finish().await;
}

#[tokio::test]
async fn request_ids_are_kept_or_generated() {
    let app = TestApp::start("reqid").await;
    let kept = app
        .request(
            Method::GET,
            "/health",
            &[("x-request-id", "abc-123".into())],
            None,
        )
        .await;
    assert_eq!(kept.header("x-request-id"), Some("abc-123"));
    let generated = app.request(Method::GET, "/health", &[], None).await;
    let id = generated.header("x-request-id").expect("generated id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    app.finish().await;
}

#[tokio::test]
async fn oversized_bodies_get_a_json_413_and_unknown_paths_a_json_404() {
    let app = TestApp::start_with("limits", |c| c.server.max_body_bytes = 2048).await;
    let big = vec![b'a'; 4096];
    let answer = app.post_raw("auth-validation", &[], &big).await;
    assert_design_error(&answer, 413, "VALIDATION_ERROR");
    assert_eq!(answer.body["details"]["limit_bytes"], 2048);

    let missing = app.post("no-such-function", &[], json!({})).await;
    assert_design_error(&missing, 404, "NOT_FOUND");
    assert_eq!(missing.body["message"], "Requested function was not found");
    let other = app.request(Method::GET, "/nowhere", &[], None).await;
    assert_design_error(&other, 404, "NOT_FOUND");
    app.finish().await;
}

#[tokio::test]
async fn sub_paths_reach_the_function() {
    let app = TestApp::start("subpath").await;
    let answer = app
        .post(
            "auth-validation/extra/segments",
            &[],
            json!({"email": "ada@gmail.com", "action": "validate"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    app.finish().await;
}

#[tokio::test]
async fn without_redis_the_backend_answers_and_reports_degraded() {
    let app = TestApp::start_with("noredis", |c| {
        // Nothing listens on port 1.
        c.redis.url = "redis://127.0.0.1:1".into();
    })
    .await;
    let ready = app.request(Method::GET, "/ready", &[], None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["status"], "degraded");
    assert_eq!(ready.body["checks"]["redis"], "down");

    // The limit still holds: 60 requests pass, the 61st is refused (by the in-process
    // window, or by the minute's rate_limits row when all 60 fell in one minute).
    for i in 0..60 {
        let answer = app
            .post(
                "ai-proxy",
                &app.auth(),
                json!({"provider": "openai", "action": "completion", "prompt": format!("q{i}")}),
            )
            .await;
        assert_eq!(answer.status, 200, "request {i}: {}", answer.text);
    }
    let refused = app.ai_proxy_completion("openai", "one more").await;
    assert_eq!(refused.status, 429);
    let scrape = app.request(Method::GET, "/metrics", &[], None).await;
    assert!(scrape.text.contains(metrics::REDIS_ERRORS_TOTAL));
    assert!(
        scrape.text.contains(&format!(
            "{}{{function=\"ai-proxy\",limiter=\"memory\"}} 1",
            metrics::RATE_LIMIT_REJECTIONS_TOTAL
        )) || scrape.text.contains(&format!(
            "{}{{function=\"ai-proxy\",limiter=\"database\"}} 1",
            metrics::RATE_LIMIT_REJECTIONS_TOTAL
        )),
        "{}",
        scrape.text
    );
    app.finish().await;
}
