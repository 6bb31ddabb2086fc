//! The client address of the backend's own security events: `X-Forwarded-For` is
//! believed only from a trusted proxy (`TRUSTED_PROXIES`, loopback by default, where the
//! test connects from), and then only its right-most untrusted hop; from any other peer
//! the peer's address is recorded. security-monitor's own rows keep the legacy's reading.

use serde_json::{Value, json};
use studyflow_backend::client_address::TrustedProxies;

use crate::support::TestApp;

fn proxy_body() -> Value {
    json!({"provider": "openai", "action": "completion", "prompt": "x"})
}

/// The `ip_address` of the `nth` (from 1) `auth_failed` row.
async fn recorded_address(app: &TestApp, nth: usize) -> Value {
    let rows = app.audit_rows("auth_failed", nth).await;
    assert_eq!(rows.len(), nth, "{rows:?}");
    rows[nth - 1]["ip_address"].clone()
}

#[tokio::test]
async fn a_trusted_gateway_names_the_client_in_the_audit_log() {
    let app = TestApp::start("client_trusted").await;
    let answer = app
        .post(
            "ai-proxy",
            &[("x-forwarded-for", "203.0.113.9".into())],
            proxy_body(),
        )
        .await;
    assert_eq!(answer.body["error"], "Missing authorization header");
    assert_eq!(recorded_address(&app, 1).await, "203.0.113.9");

    // What the client wrote itself, left of the address the gateway appended, is not
    // believed.
    app.post(
        "ai-proxy",
        &[("x-forwarded-for", "198.51.100.66, 203.0.113.10".into())],
        proxy_body(),
    )
    .await;
    assert_eq!(recorded_address(&app, 2).await, "203.0.113.10");

    // No header: the gateway itself (the peer) is all the backend knows; `X-Real-IP` is
    // not read.
    app.post(
        "encryption",
        &[
            ("authorization", "Bearer forged".into()),
            ("x-real-ip", "192.0.2.55".into()),
        ],
        json!({"action": "encrypt", "data": "x"}),
    )
    .await;
    assert_eq!(recorded_address(&app, 3).await, "127.0.0.1");
    app.finish().await;
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = TestApp::start_with("client_untrusted", |c| {
        c.server.trusted_proxies = TrustedProxies::parse("10.0.0.0/8, fd00::/8").expect("proxies");
    })
    .await;
    let forged = [
        ("x-forwarded-for", "203.0.113.9".to_owned()),
        ("x-real-ip", "203.0.113.9".to_owned()),
    ];
    let answer = app.post("ai-proxy", &forged, proxy_body()).await;
    assert_eq!(answer.body["error"], "Missing authorization header");
    assert_eq!(recorded_address(&app, 1).await, "127.0.0.1");

    // The rate-limit event records the same address.
    sqlx::query(
        "insert into public.rate_limits (user_id, window_start, requests_count) \
         values ($1::uuid, now(), 60)",
    )
    .bind(studyflow_testkit::stack::DEMO_USER_ID)
    .execute(&app.db)
    .await
    .expect("seed");
    let mut headers = app.auth();
    headers.extend(forged.iter().cloned());
    let answer = app.post("ai-proxy", &headers, proxy_body()).await;
    assert_eq!(answer.status, 429, "{}", answer.text);
    let rows = app.audit_rows("rate_limit_exceeded", 1).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["ip_address"], "127.0.0.1");

    // security-monitor answers and stores as the legacy does: the header as sent.
    let answer = app
        .post(
            "security-monitor",
            &forged,
            json!({"type": "csp-report", "data": {"csp-report": {"blocked-uri": "inline"}}}),
        )
        .await;
    assert_eq!(answer.body, json!({"success": true}));
    let rows = app.audit_rows("suspicious_activity", 1).await;
    assert_eq!(rows[0]["ip_address"], "203.0.113.9");
    app.finish().await;
}
