//! security-monitor: the four event types, their rows, the 429 of a blocked user, the
//! 400 for an unknown type, thrown errors, and ignored write failures.

use reqwest::Method;
use serde_json::json;

use crate::support::TestApp;

const FUNCTION: &str = "security-monitor";

#[tokio::test]
async fn csp_reports_and_security_events_are_stored() {
    let app = TestApp::start("secmon_rows").await;
    let preflight = app.request(Method::OPTIONS, FUNCTION, &[], None).await;
    assert_eq!((preflight.status, preflight.text.as_str()), (200, ""));

    let headers = [
        ("x-forwarded-for", "203.0.113.7".to_owned()),
        ("x-real-ip", "10.0.0.1".to_owned()),
        ("user-agent", "contract-test".to_owned()),
    ];
    let answer = app
        .post(
            FUNCTION,
            &headers,
            json!({"type": "csp-report", "data": {"csp-report": {"blocked-uri": "https://evil.example/x.js", "violated-directive": "script-src", "source-file": "https://app.example", "line-number": 12}}}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (200, json!({"success": true}))
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    let rows = app.rows("security_audit_log").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["event_type"], "suspicious_activity");
    assert_eq!(rows[0]["severity"], "medium");
    assert_eq!(rows[0]["ip_address"], "203.0.113.7");
    assert_eq!(rows[0]["user_agent"], "contract-test");
    assert_eq!(
        rows[0]["details"],
        json!({"type": "csp_violation", "blocked_uri": "https://evil.example/x.js", "violated_directive": "script-src", "source_file": "https://app.example", "line_number": 12})
    );

    let user = studyflow_testkit::stack::DEMO_USER_ID;
    let answer = app
        .post(
            FUNCTION,
            &[("x-real-ip", "10.0.0.1".to_owned())],
            json!({"type": "security-event", "data": {"event_type": "login_failed", "user_id": user, "details": {"reason": "5 failed logins"}, "severity": "high"}}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (200, json!({"success": true}))
    );
    let rows = app.rows("security_audit_log").await;
    assert_eq!(rows[1]["event_type"], "login_failed");
    assert_eq!(rows[1]["user_id"], user);
    assert_eq!(rows[1]["severity"], "high");
    assert_eq!(rows[1]["ip_address"], "10.0.0.1");
    let notes = app.rows("notifications").await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["title"], "Security Alert");
    assert_eq!(
        notes[0]["message"],
        "Suspicious activity detected: 5 failed logins"
    );
    assert_eq!(notes[0]["type"], "system");
    assert_eq!(notes[0]["priority"], "urgent");
    assert_eq!(notes[0]["action_url"], "/settings");

    // Low severity (the default): an audit row, no notification.
    let answer = app
        .post(FUNCTION, &[], json!({"type": "security-event", "data": {"event_type": "password_changed", "user_id": user}}))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(app.rows("security_audit_log").await[2]["severity"], "low");
    assert_eq!(app.rows("notifications").await.len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn rate_limit_checks_and_anomalies() {
    let app = TestApp::start("secmon_checks").await;
    let user = studyflow_testkit::stack::DEMO_USER_ID;
    sqlx::query(
        "insert into rate_limits (user_id, window_start, action, blocked_until)
         values ($1::uuid, now(), 'login', '2099-01-01T12:34:56.789123Z')",
    )
    .bind(user)
    .execute(&app.db)
    .await
    .expect("seed");
    let answer = app
        .post(
            FUNCTION,
            &[],
            json!({"type": "rate-limit-check", "data": {"user_id": user, "action": "login"}}),
        )
        .await;
    assert_eq!(answer.status, 429);
    assert_eq!(
        answer.body,
        json!({"allowed": false, "message": "Rate limit exceeded", "blocked_until": "2099-01-01T12:34:56.789Z"})
    );
    for data in [
        json!({"user_id": user, "action": "signup"}),
        json!({"user_id": "not-a-uuid", "action": "login"}),
    ] {
        let answer = app
            .post(
                FUNCTION,
                &[],
                json!({"type": "rate-limit-check", "data": data}),
            )
            .await;
        assert_eq!(
            (answer.status, answer.body.clone()),
            (200, json!({"success": true}))
        );
    }

    // Anomaly: average of the last 7 days is 30; 100 > 3 × 30 is logged, 80 is not.
    sqlx::query(
        "insert into study_sessions (user_id, title, duration) values ($1::uuid, 'a', 20), ($1::uuid, 'b', 40)",
    )
    .bind(user)
    .execute(&app.db)
    .await
    .expect("sessions");
    for duration in [80, 100] {
        let answer = app
            .post(FUNCTION, &[], json!({"type": "anomaly-detection", "data": {"user_id": user, "patterns": {"session_duration": duration}}}))
            .await;
        assert_eq!(
            (answer.status, answer.body.clone()),
            (200, json!({"success": true}))
        );
    }
    let rows = app.rows("security_audit_log").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0]["details"],
        json!({"type": "anomaly_detected", "reason": "Unusual session duration", "expected": 30, "actual": 100})
    );
    assert_eq!(rows[0]["severity"], "low");
    app.finish().await;
}

#[tokio::test]
async fn unknown_types_thrown_errors_and_ignored_write_failures() {
    let app = TestApp::start("secmon_errors").await;
    let answer = app.post(FUNCTION, &[], json!({"type": "nope"})).await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (400, json!({"error": "Unknown event type"}))
    );
    let answer = app.post(FUNCTION, &[], json!({"type": "csp-report"})).await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (
            500,
            json!({"error": "Cannot read properties of undefined (reading 'csp-report')"})
        )
    );
    let answer = app.post_raw(FUNCTION, &[], b"[1,]").await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (
            500,
            json!({"error": "Unexpected token ']', \"[1,]\" is not valid JSON"})
        )
    );
    // A high-severity event without details: the audit row is written, then the
    // notification's `details.reason` throws.
    let answer = app
        .post(
            FUNCTION,
            &[],
            json!({"type": "security-event", "data": {"event_type": "x", "severity": "critical"}}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (
            500,
            json!({"error": "Cannot read properties of undefined (reading 'reason')"})
        )
    );
    assert_eq!(app.rows("security_audit_log").await.len(), 1);
    // A write that fails (no event_type violates NOT NULL; a bad uuid) still answers 200.
    for data in [
        json!({"severity": "low"}),
        json!({"event_type": "x", "user_id": "not-a-uuid"}),
    ] {
        let answer = app
            .post(
                FUNCTION,
                &[],
                json!({"type": "security-event", "data": data}),
            )
            .await;
        assert_eq!(
            (answer.status, answer.body.clone()),
            (200, json!({"success": true}))
        );
    }
    assert_eq!(app.rows("security_audit_log").await.len(), 1);
    app.finish().await;
}
