//! Security events of the functions: failed authentication and rate-limit hits land in
//! `security_audit_log` and the metrics; the answers stay the contract's; shadow dry runs
//! record nothing.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn failed_authentication_is_recorded() {
    let app = TestApp::start("sec_auth").await;
    let client = [("x-forwarded-for", "203.0.113.9".to_owned())];
    let bad_token = [
        ("authorization", "Bearer not-a-token".to_owned()),
        ("x-forwarded-for", "203.0.113.9".to_owned()),
    ];
    let body = json!({"provider": "openai", "action": "completion", "prompt": "x"});

    let answer = app.post("ai-proxy", &client, body.clone()).await;
    assert_eq!(answer.body["error"], "Missing authorization header");
    let answer = app.post("ai-proxy", &bad_token, body.clone()).await;
    assert_eq!(answer.body["error"], "Invalid or expired token");
    let answer = app.post("ai-proxy-secure", &bad_token, body.clone()).await;
    assert_eq!(answer.body["error"], "Invalid or expired token");
    let answer = app
        .post(
            "encryption",
            &bad_token,
            json!({"action": "encrypt", "data": "x"}),
        )
        .await;
    assert_eq!(answer.status, 401);
    let answer = app.post("ai-study-analytics", &client, json!({})).await;
    assert_eq!(answer.body["error"], "No authorization header");

    let rows = app.audit_rows("auth_failed", 5).await;
    assert_eq!(rows.len(), 5);
    let seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["details"]["function"].as_str().unwrap_or("").to_owned(),
                r["details"]["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for expected in [
        ("ai-proxy", "missing_header"),
        ("ai-proxy", "invalid_token"),
        ("ai-proxy-secure", "invalid_token"),
        ("encryption", "invalid_token"),
        ("ai-study-analytics", "missing_header"),
    ] {
        assert!(
            seen.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {seen:?}"
        );
    }
    assert!(rows.iter().all(|r| r["ip_address"] == "203.0.113.9"));
    assert!(rows.iter().all(|r| r["severity"] == "medium"));
    assert!(!rows.iter().any(|r| r.to_string().contains("not-a-token")));
    let counted = app
        .metric(
            "studyflow_backend_security_events_total",
            &[("event", "auth_failed")],
        )
        .await;
    assert_eq!(counted, 5.0);

    // A shadow copy's failure is not an event; a forged marker's failure is.
    let shadow = [TestApp::shadow_marker()];
    app.post("ai-proxy", &shadow, body.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.audit_rows("auth_failed", 6).await.len(), 5);
    let forged = [("x-studyflow-shadow", "1".to_owned())];
    app.post("ai-proxy", &forged, body).await;
    assert_eq!(app.audit_rows("auth_failed", 6).await.len(), 6);
    app.finish().await;
}

#[tokio::test]
async fn rate_limit_hits_are_recorded() {
    let app = TestApp::start("sec_rate").await;
    let user = studyflow_testkit::stack::DEMO_USER_ID;
    // The user has used the minute's 60 requests already.
    sqlx::query(
        "insert into public.rate_limits (user_id, window_start, requests_count) \
         values ($1::uuid, now(), 60)",
    )
    .bind(user)
    .execute(&app.db)
    .await
    .expect("seed");
    let answer = app.ai_proxy_completion("openai", "x").await;
    assert_eq!(answer.status, 429);
    assert_eq!(
        answer.body,
        json!({"error": "Rate limit exceeded. Please wait before making another request."})
    );
    let rows = app.audit_rows("rate_limit_exceeded", 1).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["user_id"], user);
    assert_eq!(rows[0]["details"]["function"], "ai-proxy");
    let counted = app
        .metric(
            "studyflow_backend_security_events_total",
            &[("event", "rate_limit_exceeded")],
        )
        .await;
    assert_eq!(counted, 1.0);
    app.finish().await;
}
