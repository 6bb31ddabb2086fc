//! Sign-outs passed through to Supabase Auth are recorded as revocations in the Redis the
//! backend reads, before the answer goes back; a refused sign-out records nothing, and a
//! Redis that is away never fails the client's sign-out.

use redis::AsyncCommands;

use crate::harness::{Gateway, RedisNamespace, TestUpstream};

const USER: &str = "5f8c1a52-7c3e-4b6e-9a51-3d2f0c9b8e01";

/// A Supabase-shaped access token of `session` (the gateway reads it; Supabase Auth, here
/// the legacy side, is what accepts or refuses it).
fn token(session: &str) -> String {
    let claims = serde_json::json!({
        "sub": USER,
        "role": "authenticated",
        "session_id": session,
        "exp": chrono::Utc::now().timestamp() + 600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"any-secret-the-upstream-checks"),
    )
    .expect("sign")
}

async fn sign_out(gateway: &Gateway, token: &str, scope: &str) -> u16 {
    let path = format!("/auth/v1/logout?scope={scope}");
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];
    gateway
        .call(reqwest::Method::POST, &path, None, &headers)
        .await
        .0
}

fn config(redis_url: &str, prefix: &str) -> String {
    format!("sessions:\n  redis_url: {redis_url}\n  key_prefix: \"{prefix}\"\n")
}

#[tokio::test]
async fn an_accepted_sign_out_is_recorded_before_the_answer_goes_back() {
    let (legacy, new) = TestUpstream::pair().await;
    let namespace = RedisNamespace::new();
    let prefix = format!("{}:", namespace.prefix);
    let extra = config(&RedisNamespace::url(), &prefix);
    let gateway = Gateway::start("routes: []\n", &legacy.url, &new.url, &extra).await;
    let mut redis = redis::Client::open(RedisNamespace::url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");

    // `local`: this session, until its token would have expired.
    let session = uuid::Uuid::new_v4().to_string();
    assert_eq!(sign_out(&gateway, &token(&session), "local").await, 200);
    let key = format!("{prefix}revoked:session:{session}");
    let ttl: i64 = redis.ttl(&key).await.expect("ttl");
    assert!((1..=600).contains(&ttl), "{key}: ttl {ttl}");

    // `global` (supabase-js's default): every session of the user until now.
    let before = chrono::Utc::now().timestamp();
    assert_eq!(sign_out(&gateway, &token(&session), "global").await, 200);
    let at: Option<i64> = redis
        .get(format!("{prefix}revoked:user:{USER}"))
        .await
        .expect("get");
    assert!(at.is_some_and(|at| at >= before), "{at:?}");

    // Refused by Supabase Auth (here: the legacy side failing): nothing is recorded.
    let other = uuid::Uuid::new_v4().to_string();
    legacy.fail(true);
    assert_eq!(sign_out(&gateway, &token(&other), "local").await, 500);
    let exists: bool = redis
        .exists(format!("{prefix}revoked:session:{other}"))
        .await
        .expect("exists");
    assert!(!exists, "a refused sign-out revokes nothing");
    // The sign-out reached Supabase Auth every time, untouched.
    assert!(
        legacy
            .seen()
            .iter()
            .all(|s| s.uri.starts_with("/auth/v1/logout?scope="))
    );
    assert!(new.seen().is_empty());
    let _: () = redis
        .del(&[key, format!("{prefix}revoked:user:{USER}")])
        .await
        .expect("del");
}

#[tokio::test]
async fn a_sign_out_is_answered_when_redis_is_away() {
    let (legacy, new) = TestUpstream::pair().await;
    let gateway = Gateway::start(
        "routes: []\n",
        &legacy.url,
        &new.url,
        &config("redis://127.0.0.1:1", "studyflow-test-away:"),
    )
    .await;
    let session = uuid::Uuid::new_v4().to_string();
    assert_eq!(sign_out(&gateway, &token(&session), "local").await, 200);
    assert_eq!(legacy.seen().len(), 1);
}
