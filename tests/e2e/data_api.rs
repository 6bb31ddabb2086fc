//! The data API through the whole stack: the real frontend client (supabase-js) runs
//! every query shape the frontend uses against every table, on the backend directly and
//! through the gateway with the table routes in `primary`; then the table routes in
//! `shadow` against a second backend instance on the legacy side: list queries compare
//! with zero regressions, and a write copied as a dry run leaves no row behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use studyflow_testkit::stack::{DEMO_USER_ID, Stack, StackOptions};
use studyflow_testkit::{database, tokens};

use crate::harness::{diff_overview, node_test, route_summary};

const OTHER_ID: &str = "0d5e3f6a-1b2c-4d3e-8f4a-5b6c7d8e9f01";
const OTHER_EMAIL: &str = "other@studyflow.test";
/// The named upstream the table routes use as their legacy side in this test.
const REPLICA: &str = "replica";

/// The shipped routes file with every data API route in `phase`, its legacy side the
/// `replica` upstream.
fn rest_routes_in(dir: &Path, phase: &str) -> PathBuf {
    let text = studyflow_flags::DEFAULT_ROUTES_FILE.replace(
        "phase: legacy, diff: *rest_",
        &format!("phase: {phase}, legacy: {REPLICA}, diff: *rest_"),
    );
    std::fs::create_dir_all(dir).expect("log dir");
    let path = dir.join(format!("routes-rest-{phase}.yaml"));
    std::fs::write(&path, text).expect("routes file");
    path
}

/// Restarts the gateway with every data API route in `phase`.
async fn move_table_routes(stack: &mut Stack, dir: &Path, phase: &str) {
    stack
        .restart_gateway(Some(rest_routes_in(dir, phase)))
        .await
        .unwrap_or_else(|e| panic!("gateway in {phase}: {e}"));
}

async fn run_suite(stack: &Stack, url: &str, side: &str) {
    let env = [
        ("STUDYFLOW_GATEWAY_URL", url.to_owned()),
        ("STUDYFLOW_ANON_KEY", stack.anon_key()),
        ("STUDYFLOW_EXPECT_SIDE", side.to_owned()),
        ("STUDYFLOW_USER_ID", DEMO_USER_ID.to_owned()),
        ("STUDYFLOW_USER_TOKEN", stack.demo_token(3600)),
        ("STUDYFLOW_OTHER_ID", OTHER_ID.to_owned()),
        (
            "STUDYFLOW_OTHER_TOKEN",
            tokens::access_token(&stack.jwt_secret, OTHER_ID, OTHER_EMAIL, 3600),
        ),
        ("DATABASE_URL", stack.database_url.clone()),
    ];
    let (success, report) = node_test("data-api.test.mjs", &env).await;
    assert!(success, "data-api.test.mjs failed ({side}):\n{report}");
    assert!(
        report.contains("# fail 0") && report.contains("# pass 9"),
        "{report}"
    );
}

#[tokio::test]
async fn supabase_js_gets_postgrest_answers_directly_through_primary_and_in_shadow() {
    let options = StackOptions::for_test("dataapi").expect("options");
    let database_name = options.database.clone();
    let dir = options.log_dir.clone();
    let mut stack = Stack::start(options).await.expect("stack starts");
    let other = uuid::Uuid::parse_str(OTHER_ID).expect("uuid");
    database::ensure_user(&stack.database_url, other, OTHER_EMAIL)
        .await
        .expect("second user");
    let (_replica, replica_url) = stack
        .start_extra_backend("backend-replica")
        .await
        .expect("a second backend");
    stack.options.gateway_env.push((
        format!("STUDYFLOW_GATEWAY__UPSTREAMS__{}", REPLICA.to_uppercase()),
        replica_url,
    ));

    // The backend itself, then the gateway with every table route on the new side.
    let backend = stack.backend_url.clone();
    run_suite(&stack, &backend, "direct").await;
    move_table_routes(&mut stack, &dir, "primary").await;
    let gateway = stack.gateway_url.clone();
    run_suite(&stack, &gateway, "new").await;

    // Shadow: the replica answers, the backend gets copies.
    move_table_routes(&mut stack, &dir, "shadow").await;
    let client = reqwest::Client::new();
    let token = stack.demo_token(3600);
    let get = |target: &str| {
        client
            .get(format!("{}/rest/v1/{target}", stack.gateway_url))
            .bearer_auth(&token)
            .header("apikey", stack.anon_key())
            .send()
    };
    let lists = [
        "study_sessions?select=*,subjects(name)&order=started_at.desc",
        "tasks?select=*&status=neq.completed&order=due_date.asc",
        "tasks?select=id,title&due_date=gte.2026-12-01&limit=2&order=id",
        "subjects?select=*",
        "study_goals?select=title,current_value,target_value,status&status=eq.active",
        "notifications?select=*&order=created_at.desc&limit=20",
        "calendar_events?select=*&event_date=gte.2026-12-01",
        "user_settings?select=*",
    ];
    for target in lists {
        let answer = get(target).await.expect("answered");
        assert_eq!(answer.status(), 200, "{target}");
        assert_eq!(
            answer
                .headers()
                .get("x-studyflow-served-by")
                .and_then(|v| v.to_str().ok()),
            Some("legacy")
        );
    }
    // Every read's copy compared before the write: both sides read the same database, so
    // a copy still on its way when the write commits would see one more task.
    let reads_compared = |overview: &Value| -> i64 {
        READ_ROUTES
            .iter()
            .map(|route| compared(overview, route))
            .sum()
    };
    wait_for_overview(&stack, |o| reads_compared(o) >= lists.len() as i64).await;

    // A write: the replica commits it, the backend's copy is a dry run.
    let title = format!("shadowed-{}", uuid::Uuid::new_v4());
    let created = client
        .post(format!("{}/rest/v1/tasks?select=title", stack.gateway_url))
        .bearer_auth(&token)
        .header("prefer", "return=representation")
        .json(&json!({"user_id": DEMO_USER_ID, "title": title}))
        .send()
        .await
        .expect("answered");
    assert_eq!(created.status(), 201);

    // Every copy compared: no regression on any table route.
    let overview = wait_for_overview(&stack, |o| compared(o, "rest-tasks-writes") >= 1).await;
    let routes = overview["routes"].as_array().cloned().unwrap_or_default();
    let rest: Vec<&Value> = routes
        .iter()
        .filter(|r| r["route"].as_str().is_some_and(|n| n.starts_with("rest-")))
        .collect();
    let total: i64 = rest
        .iter()
        .map(|r| r["compared"].as_i64().unwrap_or(0))
        .sum();
    assert!(total > lists.len() as i64, "{overview:#}");
    for route in &rest {
        assert_eq!(route["regression"], 0, "{route:#}");
    }
    let rows: i64 = sqlx_count(&stack.database_url, &title).await;
    assert_eq!(rows, 1, "the dry run left no row behind");

    stack.stop().await;
    database::drop(&database_name).await.expect("drop database");
}

/// The table routes that serve reads.
const READ_ROUTES: [&str; 7] = [
    "rest-study-sessions",
    "rest-tasks",
    "rest-subjects",
    "rest-study-goals",
    "rest-notifications",
    "rest-calendar-events",
    "rest-user-settings",
];

/// Pairs compared on `route` in a diff report.
fn compared(overview: &Value, route: &str) -> i64 {
    route_summary(overview, route)["compared"]
        .as_i64()
        .unwrap_or(0)
}

/// The gateway's diff report once `ready` holds of it, or after 30 s (the assertions
/// that follow say what is missing).
async fn wait_for_overview(stack: &Stack, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let overview = diff_overview(stack).await;
        if ready(&overview) || started.elapsed() > Duration::from_secs(30) {
            return overview;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rows of `tasks` titled `title`.
async fn sqlx_count(database_url: &str, title: &str) -> i64 {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(database_url)
        .await
        .expect("connects");
    sqlx::query_scalar("select count(*) from tasks where title = $1")
        .bind(title)
        .fetch_one(&mut connection)
        .await
        .expect("count")
}
