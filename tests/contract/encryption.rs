//! encryption: 401/400/503/500 answers, round trips, and the byte format (IV ‖
//! ciphertext ‖ tag, standard base64).

use base64::Engine;
use reqwest::Method;
use serde_json::json;

use crate::support::TestApp;

const FUNCTION: &str = "encryption";

#[tokio::test]
async fn encrypts_and_decrypts() {
    let app = TestApp::start("enc_ok").await;
    let origin = ("origin", "http://localhost:3000".to_owned());
    let preflight = app
        .request(
            Method::OPTIONS,
            FUNCTION,
            std::slice::from_ref(&origin),
            None,
        )
        .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );

    let mut headers = app.auth();
    headers.push(origin);
    let plaintext = "Private note: ünïcödé ✓";
    let sealed = app
        .post(
            FUNCTION,
            &headers,
            json!({"action": "encrypt", "data": plaintext}),
        )
        .await;
    assert_eq!(sealed.status, 200, "{}", sealed.text);
    assert_eq!(
        sealed.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    let result = sealed.body["result"].as_str().expect("result");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(result)
        .expect("standard base64");
    assert_eq!(raw.len(), 12 + plaintext.len() + 16);

    let opened = app
        .post(
            FUNCTION,
            &headers,
            json!({"action": "decrypt", "data": result}),
        )
        .await;
    assert_eq!(opened.status, 200);
    assert_eq!(opened.body, json!({"result": plaintext}));

    // Each encryption uses a fresh IV.
    let again = app
        .post(
            FUNCTION,
            &headers,
            json!({"action": "encrypt", "data": plaintext}),
        )
        .await;
    assert_ne!(again.body["result"], sealed.body["result"]);
    // Numbers are converted to text first.
    let number = app
        .post(
            FUNCTION,
            &headers,
            json!({"action": "encrypt", "data": 12345}),
        )
        .await;
    let opened = app
        .post(
            FUNCTION,
            &headers,
            json!({"action": "decrypt", "data": number.body["result"]}),
        )
        .await;
    assert_eq!(opened.body, json!({"result": "12345"}));
    app.finish().await;
}

#[tokio::test]
async fn failures() {
    let app = TestApp::start("enc_fail").await;
    let answer = app
        .post(FUNCTION, &[], json!({"action": "encrypt", "data": "x"}))
        .await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (401, json!({"error": "Missing authorization header"}))
    );
    let answer = app
        .post(
            FUNCTION,
            &[("authorization", "Bearer bad".into())],
            json!({"action": "encrypt", "data": "x"}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (401, json!({"error": "Invalid authentication token"}))
    );
    let auth = app.auth();
    let answer = app
        .post(FUNCTION, &auth, json!({"action": "encrypt"}))
        .await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (400, json!({"error": "Missing required parameters"}))
    );
    let answer = app
        .post(FUNCTION, &auth, json!({"action": "rot13", "data": "x"}))
        .await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (400, json!({"error": "Invalid action"}))
    );
    for data in [
        "AAAA",
        "not base64!",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let answer = app
            .post(FUNCTION, &auth, json!({"action": "decrypt", "data": data}))
            .await;
        assert_eq!(
            (answer.status, answer.body.clone()),
            (500, json!({"error": "Encryption operation failed"})),
            "{data}"
        );
    }
    let answer = app.post_raw(FUNCTION, &auth, b"{").await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (500, json!({"error": "Encryption operation failed"}))
    );
    app.finish().await;

    let app = TestApp::start_with("enc_unconfigured", |c| c.encryption.salt = None).await;
    let answer = app
        .post(
            FUNCTION,
            &app.auth(),
            json!({"action": "encrypt", "data": "x"}),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (503, json!({"error": "Encryption service not configured"}))
    );
    // Missing parameters are checked before the configuration.
    let answer = app
        .post(FUNCTION, &app.auth(), json!({"action": "encrypt"}))
        .await;
    assert_eq!(answer.status, 400);
    app.finish().await;
}
