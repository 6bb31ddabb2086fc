//! auth-validation over HTTP: allow-list CORS (echoed origin, `null`, 204 preflight),
//! every 400 message, the 200 and the 500 for a body that is not JSON.

use reqwest::Method;
use serde_json::json;

use crate::support::{Answer, TestApp};

const FUNCTION: &str = "auth-validation";

fn assert_allow_list(answer: &Answer, origin: &str) {
    assert_eq!(answer.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("authorization, x-client-info, apikey, content-type, x-request-id")
    );
    assert_eq!(
        answer.header("access-control-allow-methods"),
        Some("GET, POST, PUT, DELETE, OPTIONS")
    );
    assert_eq!(answer.header("access-control-max-age"), Some("86400"));
}

#[tokio::test]
async fn every_answer_of_the_contract() {
    let app = TestApp::start("authval").await;
    let origin = [("origin", "http://localhost:5173".to_owned())];
    let preflight = app.request(Method::OPTIONS, FUNCTION, &origin, None).await;
    assert_eq!((preflight.status, preflight.text.as_str()), (204, ""));
    assert_allow_list(&preflight, "http://localhost:5173");
    let preview = [(
        "origin",
        "https://study-flow-ai-abc123-team9.vercel.app".to_owned(),
    )];
    let answer = app.request(Method::OPTIONS, FUNCTION, &preview, None).await;
    assert_allow_list(&answer, "https://study-flow-ai-abc123-team9.vercel.app");
    let evil = [("origin", "https://evil.example".to_owned())];
    let answer = app.request(Method::OPTIONS, FUNCTION, &evil, None).await;
    assert_allow_list(&answer, "null");

    let cases = [
        (
            json!({"email": "ada@gmail.com", "action": "signup"}),
            200,
            json!({"valid": true, "message": "Email validation successful"}),
        ),
        (
            json!({"email": "ada@gmail.com"}),
            400,
            json!({"valid": false, "error": "Missing required parameters"}),
        ),
        (
            json!({"email": "not-an-email", "action": "validate"}),
            400,
            json!({"valid": false, "error": "Invalid email format"}),
        ),
        (
            json!({"email": "ada@example.com", "action": "validate"}),
            400,
            json!({"valid": false, "error": "Email domain not allowed. Please use one of: @gmail.com, @hotmail.com, @outlook.com, @yahoo.com, @protonmail.com, @icloud.com"}),
        ),
        (
            json!({"email": "tempmail.fan@gmail.com", "action": "signup"}),
            400,
            json!({"valid": false, "error": "Disposable email addresses are not allowed"}),
        ),
        (
            json!({"email": format!("{}@gmail.com", "a".repeat(250)), "action": "signup"}),
            400,
            json!({"valid": false, "error": "Email address is too long"}),
        ),
    ];
    for (body, status, expected) in cases {
        let answer = app.post(FUNCTION, &origin, body.clone()).await;
        assert_eq!(answer.status, status, "{body}");
        assert_eq!(answer.body, expected, "{body}");
        assert_allow_list(&answer, "http://localhost:5173");
    }
    let answer = app.post_raw(FUNCTION, &evil, b"{").await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.body,
        json!({"valid": false, "error": "Validation service error"})
    );
    assert_allow_list(&answer, "null");
    app.finish().await;
}

#[tokio::test]
async fn allowed_origins_come_from_the_configuration() {
    let app = TestApp::start_with("authval_origins", |c| {
        c.server.allowed_origins =
            vec!["https://app.example".into(), "http://localhost:9000".into()];
    })
    .await;
    let answer = app
        .request(
            Method::OPTIONS,
            FUNCTION,
            &[("origin", "http://localhost:9000".into())],
            None,
        )
        .await;
    assert_allow_list(&answer, "http://localhost:9000");
    let answer = app
        .request(
            Method::OPTIONS,
            FUNCTION,
            &[("origin", "http://localhost:5173".into())],
            None,
        )
        .await;
    assert_allow_list(&answer, "null");
    app.finish().await;
}
