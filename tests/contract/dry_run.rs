//! Shadow dry runs (`x-studyflow-shadow: <SHADOW_SECRET>`): the same answers, but every
//! table and Redis key is left as it was; provider calls are skipped (placeholder) or live
//! as configured per function. The marker with any other value, or with no secret
//! configured, is ignored: the request is served and recorded for real.

use std::time::Duration;

use serde_json::{Value, json};
use studyflow_backend::config::ShadowProviderMode;
use studyflow_backend::providers::PLACEHOLDER_TEXT;

use crate::support::{SHADOW_SECRET, TestApp};

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
    let user = studyflow_testkit::stack::DEMO_USER_ID;
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

/// A study session, so the anomaly check has history to compare with.
async fn add_session(app: &TestApp) {
    sqlx::query("insert into study_sessions (user_id, title, duration) values ($1::uuid, 's', 10)")
        .bind(studyflow_testkit::stack::DEMO_USER_ID)
        .execute(&app.db)
        .await
        .expect("session");
}

fn shadow(headers: Headers) -> Headers {
    marked(headers, SHADOW_SECRET)
}

fn marked(mut headers: Headers, marker: &str) -> Headers {
    headers.push(("x-studyflow-shadow", marker.into()));
    headers
}

/// What a served request leaves behind, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Footprint {
    usage_logs: i64,
    /// The sum of `rate_limits.requests_count` (the minute's row counts requests).
    rate_limit_requests: i64,
    notifications: i64,
    /// security-monitor's own rows.
    suspicious: i64,
    auth_failed: i64,
    /// Members of the user's Redis rate-limit window.
    window: usize,
    shadow_requests: u64,
}

async fn footprint(app: &TestApp) -> Footprint {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&app.db)
            .await
            .expect("count")
    };
    let shadow_requests = app
        .metric(
            studyflow_backend::metrics::SHADOW_REQUESTS_TOTAL,
            &[("function", "ai-proxy")],
        )
        .await as u64;
    Footprint {
        usage_logs: count("select count(*) from public.api_usage_logs").await,
        rate_limit_requests: count(
            "select coalesce(sum(requests_count), 0)::bigint from public.rate_limits",
        )
        .await,
        notifications: count("select count(*) from public.notifications").await,
        suspicious: count(
            "select count(*) from public.security_audit_log where event_type <> 'auth_failed'",
        )
        .await,
        auth_failed: count(
            "select count(*) from public.security_audit_log where event_type = 'auth_failed'",
        )
        .await,
        window: app
            .redis_snapshot()
            .await
            .iter()
            .map(|(_, m)| m.len())
            .sum(),
        shadow_requests,
    }
}

/// Sends the contract's writes and a forged-token request, each with `marker` as the
/// shadow header, and asserts that all of them were served for real: usage logged, rate
/// limit counted (database and Redis), security-monitor's rows and the failed
/// authentication recorded, and no shadow request counted.
async fn assert_served_for_real(app: &TestApp, marker: &str) {
    let before = footprint(app).await;
    for (function, headers, body, status) in writes(app) {
        let answer = app
            .post(function, &marked(headers, marker), body.clone())
            .await;
        assert_eq!(answer.status, status, "{function} {body}: {}", answer.text);
    }
    let forged = marked(
        vec![("authorization", "Bearer forged.token.x".into())],
        marker,
    );
    let answer = app
        .post(
            "ai-proxy",
            &forged,
            json!({"provider": "openai", "action": "completion", "prompt": "x"}),
        )
        .await;
    assert_eq!(
        answer.body["error"], "Invalid or expired token",
        "{}",
        answer.text
    );
    let wanted = usize::try_from(before.auth_failed + 1).unwrap_or(usize::MAX);
    app.audit_rows("auth_failed", wanted).await;
    let after = footprint(app).await;
    assert_eq!(
        after,
        Footprint {
            usage_logs: before.usage_logs + 1,
            rate_limit_requests: before.rate_limit_requests + 1,
            notifications: before.notifications + 1,
            suspicious: before.suspicious + 4,
            auth_failed: before.auth_failed + 1,
            window: before.window + 1,
            shadow_requests: before.shadow_requests,
        },
        "with x-studyflow-shadow: {marker:?} the requests must be served for real"
    );
}

#[tokio::test]
async fn a_shadowed_write_leaves_every_table_and_redis_key_unchanged() {
    let app = TestApp::start("dryrun").await;
    add_session(&app).await;
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
async fn the_marker_without_the_shared_secret_is_served_for_real() {
    let app = TestApp::start("dryrun_forged").await;
    add_session(&app).await;
    for marker in [
        "1",
        "true",
        "",
        "wrong-secret-of-the-same-sort-of-length",
        // (Surrounding blanks are no part of a header value: HTTP strips them.)
        &format!("{SHADOW_SECRET}x"),
        &format!("x{SHADOW_SECRET}"),
        &SHADOW_SECRET[..SHADOW_SECRET.len() - 1],
    ] {
        assert_served_for_real(&app, marker).await;
    }
    // The secret itself still marks a dry run: nothing more is written.
    let before = footprint(&app).await;
    for (function, headers, body, status) in writes(&app) {
        let answer = app.post(function, &shadow(headers), body.clone()).await;
        assert_eq!(answer.status, status, "{function} {body}: {}", answer.text);
    }
    let after = footprint(&app).await;
    assert_eq!(
        after,
        Footprint {
            shadow_requests: before.shadow_requests + 1,
            ..before
        }
    );
    app.finish().await;
}

#[tokio::test]
async fn without_a_configured_secret_the_marker_is_never_honoured() {
    let app = TestApp::start_with("dryrun_nosecret", |c| c.shadow.secret = None).await;
    add_session(&app).await;
    for marker in ["1", SHADOW_SECRET, ""] {
        assert_served_for_real(&app, marker).await;
    }
    app.finish().await;
}

#[tokio::test]
async fn shadowed_provider_calls_are_skipped_or_live_per_function() {
    let app = TestApp::start_with("dryrun_providers", |c| {
        c.shadow
            .provider_overrides
            .insert("ai-proxy-secure".into(), ShadowProviderMode::Live);
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

#[tokio::test]
async fn a_dry_run_that_skips_its_provider_call_says_so_to_the_gateway() {
    let app = TestApp::start("dryrun_skip_mark").await;
    let mark = studyflow_backend::providers::PROVIDER_SKIPPED_HEADER;
    let body = json!({"provider": "openai", "action": "completion", "prompt": "Explain entropy"});
    // A dry run reaching the provider call: skipped, and the answer says so.
    let skipped = app
        .post("ai-proxy", &shadow(app.auth()), body.clone())
        .await;
    assert_eq!(skipped.status, 200, "{}", skipped.text);
    assert_eq!(skipped.header(mark), Some("skipped"));
    assert!(app.provider_requests().await.is_empty());
    // A dry run answered before any provider call (a validation error): no mark, so the
    // gateway compares it as usual.
    let invalid = app
        .post(
            "ai-proxy",
            &shadow(app.auth()),
            json!({"provider": "openai"}),
        )
        .await;
    assert_eq!(invalid.status, 500, "{}", invalid.text);
    assert_eq!(invalid.header(mark), None);
    // Served for real: the provider is called and nothing is marked.
    let real = app.post("ai-proxy", &app.auth(), body).await;
    assert_eq!(real.status, 200, "{}", real.text);
    assert_eq!(real.header(mark), None);
    assert_eq!(app.provider_requests().await.len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn live_shadow_provider_calls_stop_at_the_budget_and_are_then_skipped_with_the_mark() {
    let app = TestApp::start_with("dryrun_live_budget", |c| {
        c.shadow.provider_calls = ShadowProviderMode::Live;
        c.shadow.live_per_minute = 2;
    })
    .await;
    let mark = studyflow_backend::providers::PROVIDER_SKIPPED_HEADER;
    // The budget is per calendar minute: all three calls in one.
    studyflow_testkit::clock::clear_of_minute_turn(Duration::from_secs(10)).await;
    let mut marks = Vec::new();
    for i in 0..3 {
        let body = json!({"provider": "openai", "action": "completion", "prompt": format!("Explain entropy {i}")});
        let answer = app.post("ai-proxy", &shadow(app.auth()), body).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        marks.push(answer.header(mark).map(str::to_owned));
    }
    assert_eq!(marks, [None, None, Some("skipped".to_owned())]);
    assert_eq!(
        app.provider_requests().await.len(),
        2,
        "two live calls within the minute's budget"
    );
    app.finish().await;
}
