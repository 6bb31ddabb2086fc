//! `ai-study-analytics`: authenticated; reads the user's study sessions completed in the
//! last 30 days, all tasks and all goals, and asks OpenAI for an analytics object.
//! CORS *basic*; the request body is not read. Noise: `generated_at`.
//!
//! Rows are rendered as PostgREST renders them and ordered by `created_at, id`; the
//! messages come from `backend/prompts/ai-study-analytics.jinja`. The fallback keeps the legacy's quirks
//! (`total_study_time` always 0, `average_session_length` null with sessions).

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Entry, Invocation, behind_cors, iso_now, model_json};
use crate::AppState;
use crate::cors::Cors;
use crate::js::value::{math_round, number, to_number};
use crate::prompts::Prompts;
use crate::providers::chain::AiUse;
use crate::providers::{Endpoint, Provider};
use crate::store::{RequestDb, RowsQuery};

const NAME: &str = "ai-study-analytics";

const FALLBACK_MESSAGE: &str = "Unable to generate analytics at this time. Please try again later.";

pub fn router() -> Router<AppState> {
    behind_cors(NAME, |_, _| Cors::basic(), Entry::Preflight, handle)
}

async fn handle(state: AppState, invocation: Invocation, cors: Cors) -> Response {
    let result = invocation
        .with_db(
            &state,
            || Err("Authentication failed".into()),
            async |db| analyse(&state, &invocation, db).await,
        )
        .await;
    match result {
        Ok(analytics) => cors.json(
            StatusCode::OK,
            json!({"success": true, "analytics": analytics, "generated_at": iso_now()}),
        ),
        Err(message) => cors.json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"success": false, "error": message, "fallback_message": FALLBACK_MESSAGE}),
        ),
    }
}

async fn analyse(
    state: &AppState,
    invocation: &Invocation,
    db: &mut RequestDb,
) -> Result<Value, String> {
    let user = invocation
        .authenticate(state, db, NAME)
        .await
        .map_err(|failure| failure.say("No authorization header", "Authentication failed"))?;

    let thirty_days_ago = chrono::Utc::now() - chrono::Duration::days(30);
    let sessions = db
        .rows(
            RowsQuery::SessionsCompletedSince,
            user.id,
            Some(thirty_days_ago),
        )
        .await
        .map_err(|e| format!("Failed to fetch sessions: {}", db_message(&e)))?;
    let tasks = db
        .rows(RowsQuery::Tasks, user.id, None)
        .await
        .map_err(|e| format!("Failed to fetch tasks: {}", db_message(&e)))?;
    let goals = db
        .rows(RowsQuery::Goals, user.id, None)
        .await
        .map_err(|e| format!("Failed to fetch goals: {}", db_message(&e)))?;

    let variables = json!({"sessions": sessions, "tasks": tasks, "goals": goals});
    let payload = payload(&state.prompts, &variables)?;
    // The legacy does not check the key: an unset one goes out as `Bearer undefined`.
    let key = state.providers.key_or_undefined(Provider::OpenAi);
    let reply = state
        .ai
        .send_legacy(
            state.provider_context(NAME, invocation.dry_run),
            AiUse::Analytics,
            Endpoint::OpenAiChatCompletions,
            &key,
            &payload,
        )
        .await
        .map_err(|e| e.to_string())?;
    if !reply.ok() {
        return Err(format!("OpenAI API error: {}", reply.status));
    }
    let data = reply.json()?;
    let content = model_json::content(&data)?;
    Ok(model_json::extract(content.as_ref())?
        .unwrap_or_else(|| fallback(&sessions, &tasks, &goals)))
}

/// The database's own message (what PostgREST would relay), not sqlx's wrapper text.
fn db_message(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// The provider request for the template's variables (`sessions`, `tasks`, `goals`).
pub fn payload(prompts: &Prompts, variables: &Value) -> Result<Value, String> {
    super::study_request(prompts, NAME, variables)
}

/// The analytics object used when the answer does not parse (contract appendix).
pub fn fallback(sessions: &[Value], tasks: &[Value], goals: &[Value]) -> Value {
    // The legacy sums a column that does not exist: NaN as soon as there is a session.
    let average = if sessions.is_empty() {
        json!(0)
    } else {
        Value::Null
    };
    let completed = tasks
        .iter()
        .filter(|t| t.get("status").and_then(Value::as_str) == Some("completed"))
        .count();
    let completion_rate = if tasks.is_empty() {
        0.0
    } else {
        math_round((100.0 * completed as f64) / tasks.len() as f64)
    };
    let goal_progress: Vec<Value> = goals
        .iter()
        .map(|goal| {
            let current = to_number(goal.get("current_value"));
            let target = to_number(goal.get("target_value"));
            let mut entry = serde_json::Map::new();
            if let Some(title) = goal.get("title") {
                entry.insert("goal_title".into(), title.clone());
            }
            entry.insert(
                "progress_percentage".into(),
                number(math_round((100.0 * current) / target)),
            );
            entry.insert(
                "status".into(),
                json!(if current >= target { "ahead" } else { "behind" }),
            );
            entry.insert(
                "suggestion".into(),
                json!("Stay consistent with your current pace."),
            );
            Value::Object(entry)
        })
        .collect();
    json!({
        "summary": {
            "total_study_time": 0,
            "average_session_length": average,
            "most_productive_times": ["Morning (9-11 AM)", "Evening (7-9 PM)"],
            "completion_rate": number(completion_rate),
        },
        "patterns": [{
            "insight": "Consistent Study Habits",
            "description": "You maintain regular study sessions with good consistency.",
            "trend": "positive",
        }],
        "recommendations": [{
            "title": "Optimize Study Schedule",
            "description": "Consider studying during your peak productivity hours for better focus.",
            "priority": "medium",
            "category": "time_management",
        }],
        "goal_progress": goal_progress,
        "next_actions": [{
            "action": "Schedule regular study blocks",
            "expected_impact": "Improved consistency and focus",
            "effort_level": "medium",
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_numbers_follow_javascript() {
        let tasks: Vec<Value> = (0..40)
            .map(|i| json!({"status": if i < 23 { "completed" } else { "todo" }}))
            .collect();
        let goals = vec![
            json!({"title": "Read", "current_value": 5, "target_value": 10}),
            json!({"title": "Zero", "current_value": 3, "target_value": 0}),
            json!({"title": "Null", "current_value": null, "target_value": 4}),
            json!({"title": "Done", "current_value": 9, "target_value": 8}),
        ];
        let analytics = fallback(&[json!({})], &tasks, &goals);
        assert_eq!(analytics["summary"]["completion_rate"], json!(58));
        assert_eq!(analytics["summary"]["total_study_time"], json!(0));
        assert_eq!(analytics["summary"]["average_session_length"], Value::Null);
        let progress = &analytics["goal_progress"];
        assert_eq!(progress[0]["progress_percentage"], json!(50));
        assert_eq!(progress[0]["status"], "behind");
        assert_eq!(progress[1]["progress_percentage"], Value::Null);
        assert_eq!(progress[1]["status"], "ahead");
        assert_eq!(progress[2]["progress_percentage"], json!(0));
        assert_eq!(progress[3]["progress_percentage"], json!(113));
        assert_eq!(progress[3]["status"], "ahead");
        let empty = fallback(&[], &[], &[]);
        assert_eq!(empty["summary"]["average_session_length"], json!(0));
        assert_eq!(empty["summary"]["completion_rate"], json!(0));
    }

    #[test]
    fn prompt_embeds_the_rows() {
        let prompts = Prompts::shipped().expect("shipped prompts load");
        let variables = json!({"sessions": [], "tasks": [{"id": 1}], "goals": []});
        let sent = payload(&prompts, &variables).expect("renders");
        let user = sent["messages"][1]["content"].as_str().expect("text");
        assert!(user.starts_with(
            "Here is my study data.\n\nStudy sessions completed in the last 30 days:\n[]\n\nTasks:\n[\n  {\n    \"id\": 1\n  }\n]\n\nStudy goals:\n[]\n\nAnswer with"
        ));
        assert!(user.ends_with("\"effort_level\": \"low\" | \"medium\" | \"high\" }\n  ]\n}"));
    }
}
