//! `ai-study-recommendations`: no authentication; asks OpenAI for study recommendations
//! built from the request body. CORS *basic*. Noise: `generated_at`.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{Entry, Invocation, behind_cors, iso_now, model_json};
use crate::AppState;
use crate::cors::Cors;
use crate::js::errors::{cannot_destructure, get_opt};
use crate::js::json::{parse, parse_body};
use crate::prompts::Prompts;
use crate::providers::chain::AiUse;
use crate::providers::{Endpoint, Provider};

const NAME: &str = "ai-study-recommendations";

/// The contract's fallback object (appendix), used when the answer does not parse.
pub const FALLBACK: &str = r#"{"priority_recommendations":[{"title":"Optimize Study Schedule","description":"Based on your current patterns, adjusting your study schedule could improve efficiency.","action_items":["Study during peak focus hours","Take regular breaks","Plan challenging subjects for high-energy times"],"expected_impact":"15-20% improvement in retention","priority":"high"}],"schedule_optimization":{"best_study_times":["Morning (8-10 AM)","Evening (6-8 PM)"],"suggested_session_length":"45-50 minutes","break_recommendations":"5-10 minute breaks every hour"},"subject_focus":[{"subject":"Mathematics","recommended_hours_per_week":8,"focus_areas":["Problem solving","Concept review"],"study_methods":["Practice problems","Spaced repetition"]}],"learning_techniques":[{"technique":"Pomodoro Technique","description":"25-minute focused sessions with 5-minute breaks","best_for":["Mathematics","Science subjects"]}],"motivational_insights":{"strengths":["Consistent study habits","Good time management"],"growth_areas":["Focus improvement","Subject balance"],"encouraging_message":"You're making great progress! Small adjustments to your routine can lead to significant improvements."}}"#;

const GENERIC_FALLBACK: &str =
    "Unable to generate AI recommendations at this time. Please try again later.";

pub fn router() -> Router<AppState> {
    behind_cors(NAME, |_, _| Cors::basic(), Entry::Preflight, handle)
}

async fn handle(state: AppState, invocation: Invocation, cors: Cors) -> Response {
    let (status, body) = match recommend(&state, &invocation).await {
        Ok(answer) => answer,
        Err(message) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"success": false, "error": message, "fallback_message": GENERIC_FALLBACK}),
        ),
    };
    cors.json(status, body)
}

async fn recommend(
    state: &AppState,
    invocation: &Invocation,
) -> Result<(StatusCode, Value), String> {
    let Some(key) = state.providers.key(Provider::OpenAi) else {
        return Ok((
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({
                "success": false,
                "error": "OpenAI API key not configured",
                "fallback_message": "AI recommendations unavailable. Please try again later.",
            }),
        ));
    };
    let Ok(body) = parse_body(&invocation.body) else {
        return Ok((
            StatusCode::BAD_REQUEST,
            json!({
                "success": false,
                "error": "Invalid request body",
                "fallback_message": "Invalid request format.",
            }),
        ));
    };
    if body.is_null() {
        return Err(cannot_destructure("studyData", "requestBody", Some(&body)));
    }
    let payload = payload(&state.prompts, &body)?;
    let reply = state
        .ai
        .send_legacy(
            state.provider_context(NAME, invocation.dry_run),
            AiUse::Recommendations,
            Endpoint::OpenAiChatCompletions,
            key.expose_secret(),
            &payload,
        )
        .await
        .map_err(|e| e.to_string())?;
    if !reply.ok() {
        return Err(format!(
            "OpenAI API error: {} - {}",
            reply.status, reply.text
        ));
    }
    let data = reply.json()?;
    let content = model_json::content(&data)?;
    let recommendations = match model_json::extract(content.as_ref())? {
        Some(parsed) => parsed,
        None => parse(FALLBACK).map_err(|_| "fallback does not parse".to_owned())?,
    };
    Ok((
        StatusCode::OK,
        json!({"success": true, "recommendations": recommendations, "generated_at": iso_now()}),
    ))
}

/// The provider request for a request body (an object or array: its fields are the
/// template's variables, each undefined when absent).
pub fn payload(prompts: &Prompts, body: &Value) -> Result<Value, String> {
    let mut variables = serde_json::Map::new();
    for name in VARIABLES {
        if let Some(value) = get_opt(Some(body), name) {
            variables.insert(name.to_owned(), value.clone());
        }
    }
    super::study_request(prompts, NAME, &Value::Object(variables))
}

/// The body fields the template reads.
const VARIABLES: [&str; 5] = [
    "studyData",
    "subjects",
    "goals",
    "timePreferences",
    "currentPerformance",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_parses_and_has_the_five_keys() {
        let fallback = parse(FALLBACK).expect("parses");
        let keys: Vec<&String> = fallback.as_object().expect("object").keys().collect();
        assert_eq!(
            keys,
            [
                "priority_recommendations",
                "schedule_optimization",
                "subject_focus",
                "learning_techniques",
                "motivational_insights"
            ]
        );
    }

    #[test]
    fn missing_fields_read_undefined() {
        let prompts = Prompts::shipped().expect("shipped prompts load");
        let sent = payload(&prompts, &json!({"subjects": ["Math"]})).expect("renders");
        let prompt = sent["messages"][1]["content"].as_str().expect("text");
        assert!(prompt.starts_with(
            "Here is my student data.\n\nSubjects:\n[\n  \"Math\"\n]\n\nStudy goals:\nundefined\n\nRecent performance:\nundefined"
        ));
        assert!(prompt.ends_with("\"encouraging_message\": string\n  }\n}"));
    }
}
