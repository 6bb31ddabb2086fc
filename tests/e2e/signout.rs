//! A sign-out through the gateway (supabase-js's `POST /auth/v1/logout`, passed through to
//! Supabase Auth, here the stand-in) revokes the token on every backend instance sharing
//! Redis, by the very next request, on function and data API routes alike.

use studyflow_testkit::stack::{Stack, StackOptions};
use studyflow_testkit::{database, tokens};

/// `ai-study-analytics` on the backend at `url` with `token`: whether the token was
/// refused (the function's answer to an invalid token).
async fn refused(url: &str, token: &str) -> bool {
    let answer = reqwest::Client::new()
        .post(format!("{url}/functions/v1/ai-study-analytics"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("the backend answers");
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    body["error"] == "Authentication failed"
}

/// `GET /rest/v1/tasks` on the backend at `url` with `token`: whether the data API
/// refused the token (401).
async fn table_refused(url: &str, token: &str) -> bool {
    reqwest::Client::new()
        .get(format!("{url}/rest/v1/tasks"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the backend answers")
        .status()
        == 401
}

async fn sign_out(stack: &Stack, token: &str, scope: &str) -> u16 {
    reqwest::Client::new()
        .post(format!(
            "{}/auth/v1/logout?scope={scope}",
            stack.gateway_url
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("the gateway answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_signed_out_token_is_refused_by_every_backend_instance_at_once() {
    let options = StackOptions::for_test("signout").expect("options");
    let database = options.database.clone();
    let stack = Stack::start(options).await.expect("stack starts");
    let (_second, second_url) = stack
        .start_extra_backend("backend-2")
        .await
        .expect("a second backend");
    // A user of this test's own: the Redis (and its key prefix) is the machine's, shared
    // with every other stack, so signing the demo user out everywhere would reach them.
    let user = uuid::Uuid::new_v4();
    let email = format!("signout-{user}@studyflow.test");
    database::ensure_user(&stack.database_url, user, &email)
        .await
        .expect("user");
    let token = || tokens::access_token(&stack.jwt_secret, &user.to_string(), &email, 3600);
    let (signed_out, kept) = (token(), token());
    for url in [&stack.backend_url, &second_url] {
        assert!(!refused(url, &signed_out).await, "before the sign-out");
    }

    // This session only: the other session of the same user keeps working.
    assert_eq!(sign_out(&stack, &signed_out, "local").await, 204);
    for url in [&stack.backend_url, &second_url] {
        assert!(
            refused(url, &signed_out).await,
            "{url}: the signed-out session"
        );
        assert!(table_refused(url, &signed_out).await, "{url}: tables too");
        assert!(!refused(url, &kept).await, "{url}: another session");
        assert!(!table_refused(url, &kept).await, "{url}: tables too");
    }
    // A token Supabase Auth refuses signs nobody out.
    assert_eq!(sign_out(&stack, "not-a-token", "global").await, 401);
    assert!(!refused(&stack.backend_url, &kept).await);
    // Everywhere (supabase-js's default scope): every session of the user until now.
    assert_eq!(sign_out(&stack, &kept, "global").await, 204);
    for url in [&stack.backend_url, &second_url] {
        assert!(refused(url, &kept).await, "{url}: signed out everywhere");
        assert!(table_refused(url, &kept).await, "{url}: tables too");
    }

    stack.stop().await;
    database::drop(&database).await.expect("drop database");
}
