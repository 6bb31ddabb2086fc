//! ai-study-analytics: authentication messages, the rows embedded in the prompt (last 30
//! days of completed sessions, all tasks and goals, in `created_at, id` order), the
//! parsed answer, and provider failures.

use serde_json::json;
use sqlx::PgPool;

use crate::support::{Answer, TestApp, assert_iso_millis};

const FUNCTION: &str = "ai-study-analytics";
const FALLBACK: &str = "Unable to generate analytics at this time. Please try again later.";

fn assert_failure(answer: &Answer, message: &str) {
    assert_eq!(answer.status, 500, "{}", answer.text);
    assert_eq!(
        answer.body,
        json!({"success": false, "error": message, "fallback_message": FALLBACK})
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
}

/// Seeds two tasks, one recent and one old completed session, and a goal.
pub async fn seed(db: &PgPool, user: &str, task_title: &str) {
    let user = uuid::Uuid::parse_str(user).expect("uuid");
    sqlx::query(
        "insert into tasks (user_id, title, status, created_at) values
           ($1, $2, 'completed', '2026-01-01T10:00:00Z'), ($1, 'Essay draft', 'todo', '2026-01-02T10:00:00Z')",
    )
    .bind(user)
    .bind(task_title)
    .execute(db)
    .await
    .expect("tasks");
    sqlx::query(
        "insert into study_sessions (user_id, title, status, duration, completed_at, created_at) values
           ($1, 'Recent', 'completed', 45, now() - interval '2 days', '2026-01-03T10:00:00Z'),
           ($1, 'Old', 'completed', 30, now() - interval '40 days', '2026-01-04T10:00:00Z')",
    )
    .bind(user)
    .execute(db)
    .await
    .expect("sessions");
    sqlx::query(
        "insert into study_goals (user_id, title, target_value, current_value, created_at)
           values ($1, 'Study 10 hours', 10, 4, '2026-01-05T10:00:00Z')",
    )
    .bind(user)
    .execute(db)
    .await
    .expect("goals");
}

#[tokio::test]
async fn analyses_the_users_rows() {
    let app = TestApp::start("analytics_ok").await;
    seed(
        &app.db,
        studyflow_testkit::stack::DEMO_USER_ID,
        "Algebra homework",
    )
    .await;
    let answer = app
        .request(reqwest::Method::POST, FUNCTION, &app.auth(), None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["success"], true);
    assert!(answer.body["analytics"].is_object());
    assert_iso_millis(&answer.body["generated_at"]);

    let sent = app.last_provider_request().await;
    assert_eq!(sent["path"], "/v1/chat/completions");
    assert_eq!(sent["body"]["model"], "gpt-4o-mini");
    assert_eq!(
        sent["body"]["messages"][0]["content"],
        studyflow_backend::prompts::Prompts::shipped()
            .expect("shipped prompts")
            .render("ai-study-analytics", &serde_json::json!({}))
            .expect("renders")
            .system
    );
    let prompt = sent["body"]["messages"][1]["content"]
        .as_str()
        .expect("prompt");
    assert!(prompt.contains("\"title\": \"Recent\""), "{prompt}");
    assert!(
        !prompt.contains("\"title\": \"Old\""),
        "sessions older than 30 days are left out"
    );
    let algebra = prompt.find("Algebra homework").expect("first task");
    let essay = prompt.find("Essay draft").expect("second task");
    assert!(algebra < essay, "tasks in created_at order");
    assert!(
        prompt.contains("\"created_at\": \"2026-01-01T10:00:00+00:00\""),
        "PostgREST rendering"
    );
    assert!(prompt.contains("\"tags\": []"));
    assert!(prompt.contains("\"title\": \"Study 10 hours\""));
    app.finish().await;
}

#[tokio::test]
async fn failures() {
    let app = TestApp::start("analytics_fail").await;
    let answer = app
        .request(reqwest::Method::POST, FUNCTION, &[], None)
        .await;
    assert_failure(&answer, "No authorization header");
    let answer = app
        .request(
            reqwest::Method::POST,
            FUNCTION,
            &[("authorization", "Bearer x.y.z".into())],
            None,
        )
        .await;
    assert_failure(&answer, "Authentication failed");

    // A directive in a task title reaches the fake through the prompt.
    seed(
        &app.db,
        studyflow_testkit::stack::DEMO_USER_ID,
        "[[fake:status=503]]",
    )
    .await;
    let answer = app
        .request(reqwest::Method::POST, FUNCTION, &app.auth(), None)
        .await;
    assert_failure(&answer, "OpenAI API error: 503");
    app.finish().await;

    let app = TestApp::start("analytics_bad").await;
    seed(
        &app.db,
        studyflow_testkit::stack::DEMO_USER_ID,
        "[[fake:malformed]]",
    )
    .await;
    let answer = app
        .request(reqwest::Method::POST, FUNCTION, &app.auth(), None)
        .await;
    assert_failure(
        &answer,
        "Unexpected token 'o', \"{\"choices\": [oops\" is not valid JSON",
    );
    app.finish().await;
}
