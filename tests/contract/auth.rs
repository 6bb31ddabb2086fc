//! Access-token verification through a function (`encryption`, whose bad-token answer
//! is a clean 401): HS256 with the project secret; ES256 and RS256 through a JWKS served
//! by the test (cached, refetched once on an unknown kid, kept through an outage);
//! expired and not-yet-valid (`nbf`) tokens, wrong audience or role, wrong key, unknown
//! kid, `alg: none` and algorithm confusion both ways: each refused with the same answer.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use studyflow_testkit::stack::DEMO_USER_ID;

use crate::support::{JWT_SECRET, TestApp, serve};

// Test-only keys, generated for these tests (never used anywhere else).
const EC_KEY_1: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5jv7h0BES38LM6ab
Q0cNKZkmHQrlxBgNX+5eIV3IGVWhRANCAAReyRnYmlpIGkyWdCmd3u6ocOncCPQZ
ECaDSaYAxc+e4P4L9PXYSRUKuqIkevFtzVx0W3bUyVL7s5bhl++tdAZF
-----END PRIVATE KEY-----
";
const EC_KEY_1_X: &str = "XskZ2JpaSBpMlnQpnd7uqHDp3Aj0GRAmg0mmAMXPnuA";
const EC_KEY_1_Y: &str = "_gv09dhJFQq6oiR68W3NXHRbdtTJUvuzluGX7610BkU";
const EC_KEY_2: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFUlvM4Wj8bwT1SCb
HLaEhZqv9MNFnpg6a+wfDJzdNMKhRANCAAS+K6XC2fVug/nEmYnUPWypUJfVGXQa
0KX8MkXh3wwchLngHLgjfXdVPv/OdptGS2DG7SWlixBDyFrvteuiE1j8
-----END PRIVATE KEY-----
";
const EC_KEY_2_X: &str = "viulwtn1boP5xJmJ1D1sqVCX1Rl0GtCl_DJF4d8MHIQ";
const EC_KEY_2_Y: &str = "ueAcuCN9d1U-_852m0ZLYMbtJaWLEEPIWu-166ITWPw";
const RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC9LIQJb2MZwxrU
9/zwLaZW0IhyjPs0LkTjqprhqpCSKdm6Sn2wHM0R7n+cLKglTips5DT24p3u9iFD
tC14fmZVK6oKHaCpjMh4PvGS0sUkrVsvvCoK3ODx0hoUJwJUJ+HD1OHc4O5gLi/i
ZTf3vJY8nFxvGKcGm3e1OFmnnNcqAPX9ebfJch/J5jUcyGfF3TTDloMe1M3kp/Vk
tZDOvDLms0SagYhIsyn/NF+qG+HOwgQ76XjfuR1/MFyVvSknwmSAWoC4fuw2/grV
+T53C23M5dFNIf6TgeUtKF2FCblkvQrlF5bEnjbEqZHcTgqWo03U5k+HvAZ6PQnv
9kPuUGqpAgMBAAECggEACxw3MPqqvlOYGtPptg1oTIb4zIl9I2ZoQ1q8t+41iXAN
yoQfd51padkxA3IX+gDqOvT4K1vJ3MP11i0Z0o7R4cSruuZcjjineXBw7aeVTn8j
8NzDN1obl/g38eEMoPaqqr6w+TD4rwtnYouBSvp3dF3Wi+vNu3ScBjemBFMQy/Wi
lxPI1Nx8nCMuvd312YatFuUGydKBEBHJKQ9yJtnMJBtv9jbxWV+eDWci5EeAgc+c
qlPvpOxXiVPJOLBmam4YBfO+h5pkeh4Sf59hOuTW1e1KJbfusip3B58oIqDj0Iue
/ds90t2XIYGDFMErM0zoy6fjRVS3Qm3UrgGxA6jO9QKBgQDp8D0/XoWxzo4FofO6
v2KN0dzVMf95HqjAEISYDZvDolyzFGjlVBZQPgfQV5SwlS5zDj7tnwCGtYiqQrj5
e0Oa088GwzWOumuQzlUrKc+LnHXkbnJwXEuLXBNRpZrC83kyDHP0NSS6b2I/i5g9
7hnDYoCA/xnZSLOtAuWN9Wgs9wKBgQDPA5E2ED+JaMS9NgMNgAady1dDt6v4FfPz
5Hq30fUR9Wr7kK2EReQfMMRAWK/6RCTLgyi3felxoVP9URza0T3o3VAM23xOnuv1
j4fRcBS6CEGg+wOY+9+9pMYMODlCTWMBQMeSdSzdkMNTOouidZUsfv1Bt0IphpkN
Y9QvQ75dXwKBgA3cURSvGgbF8T4+MT2wVzuF4qqzEqrveRogIGsN61u1A/8MR4bG
66eHdVkPx1yLCjyA7JORpytUGCvWVjVZ61CCGjMRX9v8CaGDyCINkSF5fLazII6t
uUAhjXd582h3moevmzMt7uYo8U5IjBWnRNmBvZFnC/YGy7aFhGpbzvdTAoGBAMgG
3WAM8Se32Sour2JzC3GbEnX3Wq57n95RLhbCQ/gXWEk9sbv2wIc22tqGF3xOLfOL
h2NNwayvQvWpU6VHu3dvqTLTPdjGDJ+ZEZZYo15iLe/7u60t6zJWrZsPFJyxI/IJ
Aw3MNQ7eGy4nitbuoLZ++f1usvpm+SqMBHGrFp0nAoGBAK4PW8wOU3gF/5bLK+9s
KMnZ/a1taiv8n4y4P803oWIDxRqlx0n/X48CNiMLwc92SJB4rftxDWvKrejczJqo
MQP0vPrnUHTOITyf2T4rXFDJ0kFXny8MgUJUBxtK1HHL7hl8x0eaTaOrOnWv9yc5
5gQ3/S/VE55eQO6iOyjqB+D3
-----END PRIVATE KEY-----
";
/// The public half of [`RSA_KEY`], as an attacker would find it.
const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvSyECW9jGcMa1Pf88C2m
VtCIcoz7NC5E46qa4aqQkinZukp9sBzNEe5/nCyoJU4qbOQ09uKd7vYhQ7QteH5m
VSuqCh2gqYzIeD7xktLFJK1bL7wqCtzg8dIaFCcCVCfhw9Th3ODuYC4v4mU397yW
PJxcbxinBpt3tThZp5zXKgD1/Xm3yXIfyeY1HMhnxd00w5aDHtTN5Kf1ZLWQzrwy
5rNEmoGISLMp/zRfqhvhzsIEO+l437kdfzBclb0pJ8JkgFqAuH7sNv4K1fk+dwtt
zOXRTSH+k4HlLShdhQm5ZL0K5ReWxJ42xKmR3E4KlqNN1OZPh7wGej0J7/ZD7lBq
qQIDAQAB
-----END PUBLIC KEY-----
";
const RSA_N: &str = "vSyECW9jGcMa1Pf88C2mVtCIcoz7NC5E46qa4aqQkinZukp9sBzNEe5_nCyoJU4qbOQ09uKd7vYhQ7QteH5mVSuqCh2gqYzIeD7xktLFJK1bL7wqCtzg8dIaFCcCVCfhw9Th3ODuYC4v4mU397yWPJxcbxinBpt3tThZp5zXKgD1_Xm3yXIfyeY1HMhnxd00w5aDHtTN5Kf1ZLWQzrwy5rNEmoGISLMp_zRfqhvhzsIEO-l437kdfzBclb0pJ8JkgFqAuH7sNv4K1fk-dwttzOXRTSH-k4HlLShdhQm5ZL0K5ReWxJ42xKmR3E4KlqNN1OZPh7wGej0J7_ZD7lBqqQ";

fn ec_jwk(kid: &str, x: &str, y: &str) -> Value {
    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"})
}

fn rsa_jwk(kid: &str) -> Value {
    json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": kid, "alg": "RS256", "use": "sig"})
}

/// The JWKS endpoint of the test: its keys, whether it is up, and how often it was read.
#[derive(Debug, Default)]
struct Jwks {
    keys: Vec<Value>,
    down: bool,
    fetches: usize,
}

type Shared = Arc<Mutex<Jwks>>;

async fn jwks(State(shared): State<Shared>) -> axum::response::Response {
    let mut jwks = shared.lock().expect("lock");
    jwks.fetches += 1;
    if jwks.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(json!({"keys": jwks.keys})).into_response()
}

fn claims(exp_in: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": "http://127.0.0.1/auth/v1", "sub": DEMO_USER_ID, "aud": "authenticated",
        "role": "authenticated", "exp": now + exp_in, "iat": now, "email": "student@gmail.com",
        "session_id": uuid::Uuid::new_v4().to_string(), "is_anonymous": false
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).expect("signs")
}

fn hs256(claims: &Value, secret: &str) -> String {
    sign(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

fn rs256(kid: &str, claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        Some(kid),
        claims,
        &EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).expect("pem"),
    )
}

/// Claims that become valid `nbf_in` seconds from now.
fn not_before(nbf_in: i64) -> Value {
    let mut claims = claims(3600);
    claims["nbf"] = json!(chrono::Utc::now().timestamp() + nbf_in);
    claims
}

fn es256(kid: &str, pem: &str, claims: &Value) -> String {
    sign(
        Algorithm::ES256,
        Some(kid),
        claims,
        &EncodingKey::from_ec_pem(pem.as_bytes()).expect("pem"),
    )
}

/// 200 when the token is accepted, 401 when refused.
async fn status_with(app: &TestApp, token: &str) -> u16 {
    let answer = app
        .post(
            "encryption",
            &[("authorization", format!("Bearer {token}"))],
            json!({"action": "encrypt", "data": "x"}),
        )
        .await;
    if answer.status == 401 {
        assert_eq!(
            answer.body,
            json!({"error": "Invalid authentication token"})
        );
    }
    answer.status
}

#[tokio::test]
async fn hs256_tokens_and_their_failures() {
    let app = TestApp::start("auth_hs").await;
    assert_eq!(
        status_with(&app, &hs256(&claims(3600), JWT_SECRET)).await,
        200
    );
    // Expired (beyond the small leeway), wrong audience, wrong role, wrong key.
    assert_eq!(
        status_with(&app, &hs256(&claims(-120), JWT_SECRET)).await,
        401
    );
    let mut wrong_aud = claims(3600);
    wrong_aud["aud"] = json!("other-project");
    assert_eq!(status_with(&app, &hs256(&wrong_aud, JWT_SECRET)).await, 401);
    let mut anon = claims(3600);
    anon["role"] = json!("anon");
    assert_eq!(status_with(&app, &hs256(&anon, JWT_SECRET)).await, 401);
    assert_eq!(
        status_with(
            &app,
            &hs256(
                &claims(3600),
                "some-other-secret-with-32-characters-or-more"
            )
        )
        .await,
        401
    );
    // The anon key (no subject) and a user that does not exist.
    assert_eq!(
        status_with(&app, &studyflow_testkit::tokens::anon_key(JWT_SECRET)).await,
        401
    );
    let mut stranger = claims(3600);
    stranger["sub"] = json!(uuid::Uuid::new_v4().to_string());
    assert_eq!(status_with(&app, &hs256(&stranger, JWT_SECRET)).await, 401);
    // alg none: an unsigned token.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims(3600).to_string())
    );
    assert_eq!(status_with(&app, &none).await, 401);
    // The legacy removes the first "Bearer " only: a doubled prefix fails.
    let token = hs256(&claims(3600), JWT_SECRET);
    let answer = app
        .post(
            "encryption",
            &[("authorization", format!("Bearer Bearer {token}"))],
            json!({"action": "encrypt", "data": "x"}),
        )
        .await;
    assert_eq!(answer.status, 401);
    // ES256 and RS256 tokens need a JWKS, which this backend has not: a validly signed
    // asymmetric token does not get in through the HS256 secret.
    assert_eq!(
        status_with(&app, &es256("k1", EC_KEY_1, &claims(3600))).await,
        401
    );
    assert_eq!(status_with(&app, &rs256("r1", &claims(3600))).await, 401);
    app.finish().await;
}

/// A JWKS endpoint serving EC key `k1` and RSA key `r1` (the keys can be changed through
/// the shared set); returns the set, the server's base URL and its task.
async fn jwks_server() -> (Shared, String, tokio::task::JoinHandle<()>) {
    let shared: Shared = Arc::new(Mutex::new(Jwks {
        keys: vec![ec_jwk("k1", EC_KEY_1_X, EC_KEY_1_Y), rsa_jwk("r1")],
        ..Jwks::default()
    }));
    let router = axum::Router::new()
        .route("/auth/v1/.well-known/jwks.json", get(jwks))
        .with_state(shared.clone());
    let (url, task) = serve(router).await;
    (shared, url, task)
}

/// Supabase's JWKS address under `base`.
fn jwks_address(base: &str) -> reqwest::Url {
    reqwest::Url::parse(&format!("{base}/auth/v1/.well-known/jwks.json")).expect("url")
}

#[tokio::test]
async fn tokens_not_yet_valid_are_refused() {
    let (_keys, jwks_url, jwks_task) = jwks_server().await;
    let app = TestApp::start_with("auth_nbf", |c| {
        c.auth.jwks_url = Some(jwks_address(&jwks_url));
    })
    .await;
    // `nbf` beyond now + the leeway (5 s): the invalid-token answer, whatever signed it.
    assert_eq!(
        status_with(&app, &hs256(&not_before(120), JWT_SECRET)).await,
        401
    );
    assert_eq!(
        status_with(&app, &es256("k1", EC_KEY_1, &not_before(120))).await,
        401
    );
    assert_eq!(
        status_with(&app, &rs256("r1", &not_before(3000))).await,
        401
    );
    // Already valid, or within the leeway: accepted.
    assert_eq!(
        status_with(&app, &hs256(&not_before(-60), JWT_SECRET)).await,
        200
    );
    assert_eq!(
        status_with(&app, &es256("k1", EC_KEY_1, &not_before(2))).await,
        200
    );
    app.finish().await;
    jwks_task.abort();
}

#[tokio::test]
async fn es256_and_rs256_through_a_cached_jwks() {
    let (shared, jwks_url, jwks_task) = jwks_server().await;
    let app = TestApp::start_with("auth_jwks", |c| {
        c.auth.jwks_url = Some(jwks_address(&jwks_url));
        c.auth.jwks_min_refetch_secs = 0;
    })
    .await;
    let fetches = || shared.lock().expect("lock").fetches;

    assert_eq!(
        status_with(&app, &es256("k1", EC_KEY_1, &claims(3600))).await,
        200
    );
    assert_eq!(fetches(), 1);
    // Cached: no second fetch for a known kid.
    assert_eq!(
        status_with(&app, &es256("k1", EC_KEY_1, &claims(3600))).await,
        200
    );
    assert_eq!(fetches(), 1);
    let rsa = sign(
        Algorithm::RS256,
        Some("r1"),
        &claims(3600),
        &EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).expect("pem"),
    );
    assert_eq!(status_with(&app, &rsa).await, 200);
    assert_eq!(fetches(), 1);

    // Expired, wrong audience, signed by another key under a known kid.
    assert_eq!(
        status_with(&app, &es256("k1", EC_KEY_1, &claims(-120))).await,
        401
    );
    let mut wrong_aud = claims(3600);
    wrong_aud["aud"] = json!("somebody-else");
    assert_eq!(
        status_with(&app, &es256("k1", EC_KEY_1, &wrong_aud)).await,
        401
    );
    assert_eq!(
        status_with(&app, &es256("k1", EC_KEY_2, &claims(3600))).await,
        401
    );
    let mut anon = claims(3600);
    anon["role"] = json!("anon");
    assert_eq!(status_with(&app, &es256("k1", EC_KEY_1, &anon)).await, 401);
    assert_eq!(status_with(&app, &rs256("r1", &anon)).await, 401);

    // Algorithm confusion: an HS256 token "signed" with the public key, and an ES256
    // header naming the RSA key.
    let public_as_secret = format!("{{\"x\":\"{EC_KEY_1_X}\",\"y\":\"{EC_KEY_1_Y}\"}}");
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some("k1".into());
    let token = encode(
        &confused,
        &claims(3600),
        &EncodingKey::from_secret(public_as_secret.as_bytes()),
    )
    .expect("signs");
    assert_eq!(status_with(&app, &token).await, 401);
    // … and HS256 "signed" with the RSA public key, as published, under its kid.
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some("r1".into());
    let token = encode(
        &confused,
        &claims(3600),
        &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()),
    )
    .expect("signs");
    assert_eq!(status_with(&app, &token).await, 401);
    assert_eq!(
        status_with(&app, &es256("r1", EC_KEY_1, &claims(3600))).await,
        401
    );
    // An RS256 header naming the EC key.
    assert_eq!(status_with(&app, &rs256("k1", &claims(3600))).await, 401);

    // Key rotation: an unknown kid triggers one refetch that finds the new key.
    let before = fetches();
    shared
        .lock()
        .expect("lock")
        .keys
        .push(ec_jwk("k2", EC_KEY_2_X, EC_KEY_2_Y));
    assert_eq!(
        status_with(&app, &es256("k2", EC_KEY_2, &claims(3600))).await,
        200
    );
    assert_eq!(fetches(), before + 1);
    // A kid that is nowhere costs one fetch per attempt (at most), and fails.
    let before = fetches();
    assert_eq!(
        status_with(&app, &es256("k9", EC_KEY_2, &claims(3600))).await,
        401
    );
    assert_eq!(fetches(), before + 1);

    // An outage keeps the cached keys working; unknown kids still fail.
    shared.lock().expect("lock").down = true;
    assert_eq!(
        status_with(&app, &es256("k9", EC_KEY_2, &claims(3600))).await,
        401
    );
    assert_eq!(
        status_with(&app, &es256("k1", EC_KEY_1, &claims(3600))).await,
        200
    );
    assert_eq!(
        status_with(&app, &es256("k2", EC_KEY_2, &claims(3600))).await,
        200
    );
    app.finish().await;
    jwks_task.abort();
}
