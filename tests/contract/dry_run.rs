//! Shadow dry runs (`x-studyflow-shadow: 1`): the same answers, but every table and
//! Redis key is left as it was; provider calls are skipped (placeholder) or live as
//! configured per function.

use serde_json::{Value, json};
use studyflow_backend::providers::PLACEHOLDER_TEXT;

use crate::support::TestApp;

/// Every public table's rows, as JSON text, in a stable order.
async fn tables(app: &TestApp) -> Vec<(String, Vec<String>)> {
    let mut snapshot = Vec::new();
    for table in [
        "profiles",
        "subjects",
        "tasks",
        "study_sessions",
        "study_goals",
        "notifications",
        "rate_limits",
        "api_usage_logs",
        "security_audit_log",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "select to_json(t)::text from public.{table} t order by 1"
        ))
        .fetch_all(&app.db)
        .await
        .expect("rows");
        snapshot.push((table.to_owned(), rows));
    }
    let users: Vec<String> =
        sqlx::query_scalar("select to_json(u)::text from auth.users u order by 1")
            .fetch_all(&app.db)
            .await
            .expect("users");
    snapshot.push(("auth.users".into(), users));
    snapshot
}

type Headers = Vec<(&'static str, String)>;

/// The writing requests of the contract, each with the status it answers.
fn writes(app: &TestApp) -> Vec<(&'static str, Headers, Value, u16)> {
    let user = studyflow_e2e::stack::DEMO_USER_ID;
    vec![
        (
            "ai-proxy",
            app.auth(),
            json!({"provider": "openai", "action": "completion", "prompt": "Explain entropy"}),
            200,
        ),
        (
            "security-monitor",
            vec![],
            json!({"type": "security-event", "data": {"event_type": "login_failed", "user_id": user, "details": {"reason": "brute force"}, "severity": "critical"}}),
            200,
        ),
        (
            "security-monitor",
            vec![("x-forwarded-for", "198.51.100.1".into())],
            json!({"type": "csp-report", "data": {"csp-report": {"blocked-uri": "inline"}}}),
            200,
        ),
        (
            "security-monitor",
            vec![],
            json!({"type": "anomaly-detection", "data": {"user_id": user, "patterns": {"session_duration": 500}}}),
            200,
        ),
        // A failing write followed by a thrown error: still nothing lasts.
        (
            "security-monitor",
            vec![],
            json!({"type": "security-event", "data": {"event_type": "x", "severity": "high"}}),
            500,
        ),
    ]
}

fn shadow(mut headers: Headers) -> Headers {
    headers.push(("x-studyflow-shadow", "1".into()));
    headers
}

#[tokio::test]
async fn a_shadowed_write_leaves_every_table_and_redis_key_unchanged() {
    let app = TestApp::start("dryrun").await;
    // A session so the anomaly check has history to compare with.
    sqlx::query("insert into study_sessions (user_id, title, duration) values ($1::uuid, 's', 10)")
        .bind(studyflow_e2e::stack::DEMO_USER_ID)
        .execute(&app.db)
        .await
        .expect("session");
    let tables_before = tables(&app).await;
    let redis_before = app.redis_snapshot().await;

    for (function, headers, body, status) in writes(&app) {
        let answer = app.post(function, &shadow(headers), body.clone()).await;
        assert_eq!(answer.status, status, "{function} {body}: {}", answer.text);
    }
    assert_eq!(
        tables(&app).await,
        tables_before,
        "a dry run changed a table"
    );
    assert_eq!(
        app.redis_snapshot().await,
        redis_before,
        "a dry run changed Redis"
    );

    // The same requests served for real do write (so the comparison above means something).
    for (function, headers, body, status) in writes(&app) {
        let answer = app.post(function, &headers, body.clone()).await;
        assert_eq!(answer.status, status, "{function} {body}: {}", answer.text);
    }
    let after = tables(&app).await;
    let count = |snapshot: &[(String, Vec<String>)], table: &str| {
        snapshot
            .iter()
            .find(|(name, _)| name == table)
            .map_or(0, |(_, rows)| rows.len())
    };
    assert_eq!(count(&after, "api_usage_logs"), 1);
    assert_eq!(count(&after, "rate_limits"), 1);
    assert_eq!(count(&after, "notifications"), 1);
    assert_eq!(
        count(&after, "security_audit_log"),
        4,
        "event, csp, anomaly, event"
    );
    assert_eq!(app.redis_snapshot().await.len(), 1, "the rate-limit window");
    app.finish().await;
}

#[tokio::test]
async fn shadowed_provider_calls_are_skipped_or_live_per_function() {
    let app = TestApp::start_with("dryrun_providers", |c| {
        c.shadow_provider_overrides = "ai-proxy-secure=live".into();
    })
    .await;
    let calls_before = app.provider_requests().await.len();

    // Skipped (the default): a placeholder in the provider's format, the usual answer shape.
    let tutor = app
        .post(
            "ai-tutor-professional",
            &shadow(vec![]),
            json!({"message": "Explain limits"}),
        )
        .await;
    assert_eq!(tutor.status, 200, "{}", tutor.text);
    assert_eq!(tutor.body["content"], PLACEHOLDER_TEXT);
    assert_eq!(tutor.body["metadata"]["model"], "deepseek-chat");
    assert!(tutor.body["quality"]["breakdown"].is_array());
    for provider in ["gemini", "claude", "deepseek"] {
        let proxy = app
            .post(
                "ai-proxy",
                &shadow(app.auth()),
                json!({"provider": provider, "action": "completion", "prompt": "hi"}),
            )
            .await;
        assert_eq!(proxy.status, 200, "{}", proxy.text);
        assert_eq!(proxy.body["content"], PLACEHOLDER_TEXT);
    }
    // The placeholder does not parse as JSON: analytics falls back, as the legacy would
    // on an unparsable answer.
    let analytics = app
        .request(
            reqwest::Method::POST,
            "ai-study-analytics",
            &shadow(app.auth()),
            None,
        )
        .await;
    assert_eq!(analytics.status, 200, "{}", analytics.text);
    assert_eq!(analytics.body["analytics"]["summary"]["completion_rate"], 0);
    assert_eq!(
        analytics.body["analytics"]["summary"]["average_session_length"],
        0
    );
    assert_eq!(analytics.body["analytics"]["goal_progress"], json!([]));
    let recommendations = app
        .post("ai-study-recommendations", &shadow(vec![]), json!({}))
        .await;
    assert_eq!(
        recommendations.body["recommendations"]["subject_focus"][0]["subject"], "Mathematics",
        "the contract's fallback object"
    );
    assert_eq!(
        app.provider_requests().await.len(),
        calls_before,
        "no provider was called"
    );

    // Live for ai-proxy-secure: the provider answers.
    let secure = app
        .post(
            "ai-proxy-secure",
            &shadow(app.auth()),
            json!({"provider": "openai", "action": "chat", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(secure.status, 200, "{}", secure.text);
    assert_ne!(
        secure.body["choices"][0]["message"]["content"],
        PLACEHOLDER_TEXT
    );
    assert_eq!(app.provider_requests().await.len(), calls_before + 1);

    // Shadowed requests are counted.
    let scrape = app
        .request(reqwest::Method::GET, "/metrics", &[], None)
        .await;
    assert!(
        scrape
            .text
            .contains(studyflow_backend::metrics::SHADOW_REQUESTS_TOTAL)
    );
    app.finish().await;
}
