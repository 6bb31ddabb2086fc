//! ai-study-recommendations: the key check, the 400 for a body that is not JSON, the
//! exact OpenAI request, the parsed answer, and the 500s.

use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, assert_iso_millis};

const FUNCTION: &str = "ai-study-recommendations";
const GENERIC: &str = "Unable to generate AI recommendations at this time. Please try again later.";

#[tokio::test]
async fn recommends_from_the_body() {
    let app = TestApp::start("recs_ok").await;
    let preflight = app.request(Method::OPTIONS, FUNCTION, &[], None).await;
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));

    let answer = app
        .post(
            FUNCTION,
            &[],
            json!({"subjects": ["Math", "Physics"], "goals": [{"title": "Pass", "target": 80}],
                   "timePreferences": {"morning": true}, "currentPerformance": {"Math": 71.5}}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["success"], true);
    assert!(answer.body["recommendations"].is_object());
    assert_iso_millis(&answer.body["generated_at"]);
    let keys: Vec<&String> = answer.body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["success", "recommendations", "generated_at"]);

    let sent = app.last_provider_request().await;
    assert_eq!(sent["path"], "/v1/chat/completions");
    let body = &sent["body"];
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["temperature"], 0.7);
    assert_eq!(body["max_tokens"], 2000);
    assert_eq!(
        body["messages"][0]["content"],
        studyflow_backend::prompts::Prompts::shipped()
            .expect("shipped prompts")
            .render("ai-study-recommendations", &serde_json::json!({}))
            .expect("renders")
            .system
    );
    let user = body["messages"][1]["content"]
        .as_str()
        .expect("user prompt");
    assert!(user.starts_with(
        "Here is my student data.\n\nSubjects:\n[\n  \"Math\",\n  \"Physics\"\n]\n\nStudy goals:\n[\n  {\n    \"title\": \"Pass\",\n    \"target\": 80\n  }\n]\n\nRecent performance:\n{\n  \"Math\": 71.5\n}\n\nTime preferences:\n{\n  \"morning\": true\n}\n\nStudy history:\nundefined\n\nAnswer with a JSON object of this shape:\n{\n  \"priority_recommendations\": ["
    ), "{user}");
    app.finish().await;
}

#[tokio::test]
async fn failures() {
    let app = TestApp::start_with("recs_nokey", |c| c.providers.openai.api_key = None).await;
    let answer = app.post_raw(FUNCTION, &[], b"not json").await;
    assert_eq!(answer.status, 500, "the key is checked first");
    assert_eq!(
        answer.body,
        json!({"success": false, "error": "OpenAI API key not configured", "fallback_message": "AI recommendations unavailable. Please try again later."})
    );
    app.finish().await;

    let app = TestApp::start("recs_fail").await;
    let answer = app.post_raw(FUNCTION, &[], b"not json").await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({"success": false, "error": "Invalid request body", "fallback_message": "Invalid request format."})
    );
    let answer = app.post_raw(FUNCTION, &[], b"null").await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body,
        json!({"success": false, "error": "Cannot destructure property 'studyData' of 'requestBody' as it is null.", "fallback_message": GENERIC})
    );
    let answer = app
        .post(FUNCTION, &[], json!({"subjects": ["[[fake:status=500]]"]}))
        .await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body,
        json!({"success": false, "error": "OpenAI API error: 500 - {\"error\":{\"message\":\"Fake provider error 500\",\"type\":\"server_error\",\"code\":500}}", "fallback_message": GENERIC})
    );
    app.finish().await;
}
