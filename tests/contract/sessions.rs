//! Revoked sessions: a token whose session (or whose user's sessions) an operator or a
//! sign-out revoked is refused at once, on every instance sharing Redis; with Redis cut
//! off, tokens are accepted until they expire, as by Supabase.

use serde_json::Value;
use studyflow_testkit::stack::{DEMO_USER_EMAIL, DEMO_USER_ID};
use studyflow_testkit::tokens::{self, now};
use uuid::Uuid;

use crate::support::{JWT_SECRET, TestApp};

/// A demo user's token of session `session`, issued at `iat`.
fn token_of(session: Uuid, iat: i64) -> String {
    let session = session.to_string();
    tokens::session_token(
        JWT_SECRET,
        DEMO_USER_ID,
        DEMO_USER_EMAIL,
        &session,
        iat,
        3600,
    )
}

/// `ai-study-analytics` with `token`: it answers 500 `Authentication failed` for a
/// refused token, and works for an accepted one.
async fn analytics_with(app: &TestApp, token: &str) -> (u16, Value) {
    let answer = app
        .post(
            "ai-study-analytics",
            &[("authorization", format!("Bearer {token}"))],
            serde_json::json!({}),
        )
        .await;
    (answer.status, answer.body)
}

fn refused(answer: &(u16, Value)) -> bool {
    answer.0 == 500 && answer.1["error"] == "Authentication failed"
}

#[tokio::test]
async fn a_revoked_session_is_refused_at_once_on_every_instance_sharing_redis() {
    let one = TestApp::start("sessions_one").await;
    let prefix = one.redis_prefix.clone();
    let two = TestApp::start_with("sessions_two", |c| c.redis.key_prefix = prefix).await;
    let (signed_out, other) = (Uuid::new_v4(), Uuid::new_v4());
    let token = token_of(signed_out, now());
    let other_token = token_of(other, now());
    for app in [&one, &two] {
        let answer = analytics_with(app, &token).await;
        assert!(!refused(&answer), "before: {answer:?}");
    }

    assert!(
        one.state
            .revocations
            .revoke_session(signed_out, Some(now() + 3600))
            .await
    );
    for app in [&one, &two] {
        let answer = analytics_with(app, &token).await;
        assert!(
            refused(&answer),
            "the revoked session, right after: {answer:?}"
        );
        let answer = analytics_with(app, &other_token).await;
        assert!(!refused(&answer), "another session of the user: {answer:?}");
    }
    // The refusal is a security event like any refused token.
    let rows = one.audit_rows("auth_failed", 1).await;
    assert_eq!(rows[0]["details"]["reason"], "revoked_session", "{rows:?}");
    assert_eq!(
        rows[0]["details"]["function"], "ai-study-analytics",
        "{rows:?}"
    );
    two.finish().await;
    one.finish().await;
}

#[tokio::test]
async fn revoking_a_user_refuses_every_token_issued_before_and_none_after() {
    let app = TestApp::start("sessions_user").await;
    let before = [
        token_of(Uuid::new_v4(), now() - 60),
        token_of(Uuid::new_v4(), now()),
    ];
    assert!(
        app.state
            .revocations
            .revoke_user(DEMO_USER_ID.parse().expect("uuid"))
            .await
    );
    for token in &before {
        let answer = analytics_with(&app, token).await;
        assert!(refused(&answer), "issued before: {answer:?}");
    }
    // Signed in again after the revocation (iat in a later second).
    let after = token_of(Uuid::new_v4(), now() + 1);
    let answer = analytics_with(&app, &after).await;
    assert!(!refused(&answer), "issued after: {answer:?}");
    app.finish().await;
}

#[tokio::test]
async fn without_redis_tokens_are_accepted_until_they_expire() {
    let relay = studyflow_testkit::relay::Relay::start("127.0.0.1:6379").await;
    let redis_url = format!("redis://{}", relay.addr);
    let app = TestApp::start_with("sessions_noredis", |c| {
        c.redis.url = redis_url.as_str().into()
    })
    .await;
    let session = Uuid::new_v4();
    let token = token_of(session, now());
    assert!(app.state.revocations.revoke_session(session, None).await);
    assert!(refused(&analytics_with(&app, &token).await));

    relay.cut();
    // Redis does not answer: the check cannot tell, and the token is served as Supabase
    // would serve it, until `exp` (an outage does not sign everybody out).
    let answer = analytics_with(&app, &token).await;
    assert!(!refused(&answer), "Redis cut off: {answer:?}");
    relay.restore().await;
    let answer = analytics_with(&app, &token).await;
    assert!(refused(&answer), "Redis back: {answer:?}");
    app.finish().await;
}

/// `studyflow-backend sessions …` against `redis_url` under `prefix`.
async fn sessions_cli(redis_url: &str, prefix: &str, args: &[&str]) -> (bool, String) {
    let backend = studyflow_testkit::stack::binary("studyflow-backend").expect("built");
    let mut command = tokio::process::Command::new(backend);
    command
        .arg("sessions")
        .args(args)
        .env("REDIS_URL", redis_url)
        .env("REDIS_KEY_PREFIX", prefix)
        .env("RUST_LOG", "warn");
    studyflow_testkit::process::run_to_end(&mut command).await
}

#[tokio::test]
async fn operators_revoke_a_session_or_a_user_from_the_command_line() {
    let app = TestApp::start("sessions_cli").await;
    let redis_url = studyflow_testkit::stack::redis_url();
    let (session, other) = (Uuid::new_v4(), Uuid::new_v4());
    let token = token_of(session, now());
    let other_token = token_of(other, now());
    let id = session.to_string();
    let (ok, out) = sessions_cli(&redis_url, &app.redis_prefix, &["revoke", "session", &id]).await;
    assert!(
        ok && out.contains(&format!("revoked: session {id}")),
        "{out}"
    );
    assert!(refused(&analytics_with(&app, &token).await));
    assert!(!refused(&analytics_with(&app, &other_token).await));

    let (ok, out) = sessions_cli(
        &redis_url,
        &app.redis_prefix,
        &["revoke", "user", DEMO_USER_ID],
    )
    .await;
    assert!(ok, "{out}");
    assert!(refused(&analytics_with(&app, &other_token).await));

    // Not a uuid, or Redis away: refused, saying why, and nothing is claimed.
    let (ok, out) = sessions_cli(&redis_url, &app.redis_prefix, &["revoke", "user", "bob"]).await;
    assert!(!ok && out.contains("invalid"), "{out}");
    let (ok, out) = sessions_cli(
        "redis://127.0.0.1:1",
        &app.redis_prefix,
        &["revoke", "session", &id],
    )
    .await;
    assert!(!ok && out.contains("not revoked"), "{out}");
    app.finish().await;
}
