//! The in-process harness of the contract tests: the backend (`studyflow_backend::app`)
//! and the fake AI providers each served on a port-0 listener, a fresh migrated
//! database per test, and the real Redis with a key prefix of the test's own.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::PgPool;
use studyflow_backend::ai_types::ChainEntry;
use studyflow_backend::{AppState, BackendConfig};
use studyflow_testkit::stack::{DEMO_USER_EMAIL, DEMO_USER_ID};
use studyflow_testkit::{database, fake_providers, tokens};
use tokio::task::JoinHandle;

pub const JWT_SECRET: &str = "contract-test-secret-with-at-least-32-characters";
pub const ENCRYPTION_KEY: &str = "contract-encryption-key";
pub const ENCRYPTION_SALT: &str = "contract-salt";
/// The secret the gateway would send as `x-studyflow-shadow` on its shadow copies.
pub const SHADOW_SECRET: &str = "contract-shadow-secret-shared-with-the-gateway";

/// An answer: status, headers and the body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One running backend with its own database and Redis prefix.
#[derive(Debug)]
pub struct TestApp {
    pub url: String,
    pub providers_url: String,
    pub db: PgPool,
    pub database: String,
    pub redis_prefix: String,
    pub state: AppState,
    client: reqwest::Client,
    tasks: Vec<JoinHandle<()>>,
}

/// Serves `router` on 127.0.0.1:0 in the background, with each request's peer address
/// (`ConnectInfo`), as `studyflow_backend::serve` does.
pub async fn serve(router: axum::Router) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let task = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    (url, task)
}

/// The configuration every test starts from: all providers on the fake, the test secret.
pub fn base_config(providers_url: &str, database_url: &str, redis_prefix: &str) -> BackendConfig {
    let mut config = BackendConfig::default();
    config.server.listen_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.database.url = database_url.into();
    config.database.max_connections = 5;
    config.redis.url = studyflow_testkit::stack::redis_url().as_str().into();
    config.redis.key_prefix = redis_prefix.into();
    config.auth.jwt_secret = Some(JWT_SECRET.into());
    config.encryption.key = Some(ENCRYPTION_KEY.into());
    config.encryption.salt = Some(ENCRYPTION_SALT.into());
    config.shadow.secret = Some(SHADOW_SECRET.into());
    let fake = reqwest::Url::parse(providers_url).expect("the fake providers' URL");
    let providers = &mut config.providers;
    for (access, key) in [
        (&mut providers.deepseek, "fake-deepseek-key"),
        (&mut providers.openai, "fake-openai-key"),
        (&mut providers.gemini, "fake-gemini-key"),
    ] {
        access.api_key = Some(key.into());
        access.base_url = Some(fake.clone());
    }
    // The legacy name of the Anthropic key, as the legacy deployment sets it.
    providers.claude_api_key = Some("fake-anthropic-key".into());
    providers.anthropic.base_url = Some(fake);
    config
}

/// A provider chain as the configuration spells it.
pub fn chain(text: &str) -> Vec<ChainEntry> {
    ChainEntry::parse_list(text).expect("a valid chain")
}

impl TestApp {
    /// A backend with the base configuration.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, |_| {}).await
    }

    /// A backend whose configuration `adjust` changes first.
    pub async fn start_with(name: &str, adjust: impl FnOnce(&mut BackendConfig)) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("studyflow_test_c_{name}_{}", &suffix[..8]);
        let database_url = database::prepare(&database).await.expect("database");
        let demo = uuid::Uuid::parse_str(DEMO_USER_ID).expect("uuid");
        database::ensure_user(&database_url, demo, DEMO_USER_EMAIL)
            .await
            .expect("demo user");
        let (providers_url, providers_task) = serve(fake_providers::router()).await;
        let redis_prefix = format!("contract:{database}:");
        let mut config = base_config(&providers_url, &database_url, &redis_prefix);
        adjust(&mut config);
        let state = AppState::new(config).expect("state");
        let (url, app_task) = serve(studyflow_backend::app(state.clone())).await;
        let db = PgPool::connect(&database_url).await.expect("pool");
        Self {
            url,
            providers_url,
            db,
            database,
            redis_prefix,
            state,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            tasks: vec![providers_task, app_task],
        }
    }

    /// An access token of the demo user (HS256, the test secret).
    pub fn token(&self) -> String {
        tokens::access_token(JWT_SECRET, DEMO_USER_ID, DEMO_USER_EMAIL, 3600)
    }

    pub fn auth(&self) -> Vec<(&'static str, String)> {
        vec![("authorization", format!("Bearer {}", self.token()))]
    }

    /// The marker of the gateway's shadow copies, with the shared secret.
    pub fn shadow_marker() -> (&'static str, String) {
        ("x-studyflow-shadow", SHADOW_SECRET.into())
    }

    /// Sends a request to `/functions/v1/<function>` (or any path starting with `/`).
    pub async fn request(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let url = if target.starts_with('/') {
            format!("{}{target}", self.url)
        } else {
            format!("{}/functions/v1/{target}", self.url)
        };
        let mut request = self.client.request(method, url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Answer {
            status,
            headers,
            text,
            body,
        }
    }

    /// POST with a JSON body.
    pub async fn post(&self, function: &str, headers: &[(&str, String)], body: Value) -> Answer {
        let mut all = headers.to_vec();
        all.push(("content-type", "application/json".into()));
        self.request(
            Method::POST,
            function,
            &all,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// An authenticated `ai-proxy` completion of `prompt` by `provider`.
    pub async fn ai_proxy_completion(&self, provider: &str, prompt: &str) -> Answer {
        let body = json!({"provider": provider, "action": "completion", "prompt": prompt});
        self.post("ai-proxy", &self.auth(), body).await
    }

    /// POST with the raw bytes given.
    pub async fn post_raw(
        &self,
        function: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Answer {
        self.request(Method::POST, function, headers, Some(body.to_vec()))
            .await
    }

    /// What the fake providers received, oldest first.
    pub async fn provider_requests(&self) -> Vec<Value> {
        let answer = self.fake_providers_log().await;
        answer["requests"].as_array().cloned().unwrap_or_default()
    }

    /// The fake providers' log: the requests they received and the disconnects they saw.
    async fn fake_providers_log(&self) -> Value {
        self.client
            .get(format!("{}/_fake/requests", self.providers_url))
            .send()
            .await
            .expect("fake answers")
            .json()
            .await
            .expect("json")
    }

    /// The last request the fake providers received.
    pub async fn last_provider_request(&self) -> Value {
        self.provider_requests()
            .await
            .pop()
            .expect("a provider request was made")
    }

    /// Rows of `select to_json(t) from <table> t` (test inspection only).
    pub async fn rows(&self, table: &str) -> Vec<Value> {
        sqlx::query_scalar::<_, Value>(&format!(
            "select to_json(t) from public.{table} t order by created_at"
        ))
        .fetch_all(&self.db)
        .await
        .expect("rows")
    }

    /// A Redis connection for inspecting this test's keys.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(studyflow_testkit::stack::redis_url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connects")
    }

    /// This test's Redis keys with their contents, sorted.
    pub async fn redis_snapshot(&self) -> Vec<(String, Vec<String>)> {
        let mut redis = self.redis().await;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.redis_prefix))
            .query_async(&mut redis)
            .await
            .expect("keys");
        keys.sort();
        let mut snapshot = Vec::new();
        for key in keys {
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut redis)
                .await
                .unwrap_or_default();
            snapshot.push((key, members));
        }
        snapshot
    }

    /// Stops the servers, drops the database and this test's Redis keys.
    pub async fn finish(self) {
        for task in &self.tasks {
            task.abort();
        }
        let keys: Vec<String> = {
            let mut redis = self.redis().await;
            redis::cmd("KEYS")
                .arg(format!("{}*", self.redis_prefix))
                .query_async(&mut redis)
                .await
                .unwrap_or_default()
        };
        if !keys.is_empty() {
            let mut redis = self.redis().await;
            let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query_async(&mut redis).await;
        }
        self.db.close().await;
        self.state.db.close().await;
        database::drop(&self.database).await.expect("drop database");
    }
}

/// Asserts the JSON error shape of the design (`{code, message, details}`).
pub fn assert_design_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.body["code"], code, "{}", answer.text);
    assert!(answer.body["message"].is_string(), "{}", answer.text);
    assert!(answer.body.get("details").is_some(), "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
}

/// Asserts an ISO-8601 UTC timestamp with milliseconds (`2026-01-01T10:00:00.123Z`).
pub fn assert_iso_millis(value: &Value) {
    let text = value.as_str().expect("timestamp string");
    assert_eq!(text.len(), 24, "{text}");
    assert!(text.ends_with('Z'), "{text}");
    assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{text}");
}

/// Reads a `text/event-stream` answer event by event, as a browser's EventSource would.
pub struct SseReader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl std::fmt::Debug for SseReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseReader").finish_non_exhaustive()
    }
}

/// One event: its name and its data (JSON when it parses).
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub name: String,
    pub data: Value,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` at the end of the body.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        use futures_util::StreamExt;
        loop {
            let normalised = self.buffer.replace("\r\n", "\n");
            if let Some(end) = normalised.find("\n\n") {
                let block = normalised[..end].to_owned();
                self.buffer = normalised[end + 2..].to_owned();
                let mut name = "message".to_owned();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let text = data.join("\n");
                let data = serde_json::from_str(&text).unwrap_or(Value::String(text));
                return Some(SseEvent { name, data });
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// Every remaining event.
    pub async fn rest(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next_event().await {
            events.push(event);
        }
        events
    }
}

impl TestApp {
    /// POSTs `body` to `function` and hands back the raw answer (for streams).
    /// A streaming POST as the demo user.
    pub async fn post_streaming(&self, function: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/functions/v1/{function}", self.url))
            .bearer_auth(self.token())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request answered")
    }

    /// The fake providers' disconnect counter (streaming clients that went away).
    pub async fn provider_disconnects(&self) -> u64 {
        let answer = self.fake_providers_log().await;
        answer["disconnects"].as_u64().unwrap_or(0)
    }

    /// The backend's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("text")
    }

    /// The value of metric `name` with these labels (among others), 0 when absent.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics()
            .await
            .lines()
            .find(|line| {
                line.starts_with(&format!("{name}{{"))
                    && labels
                        .iter()
                        .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Rows of `security_audit_log` of `event_type`, waiting up to 5 s for at least
    /// `at_least` (request paths write them in the background).
    pub async fn audit_rows(&self, event_type: &str, at_least: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let rows: Vec<Value> = sqlx::query_scalar(
                "select to_json(t) from public.security_audit_log t where event_type = $1 order by created_at",
            )
            .bind(event_type)
            .fetch_all(&self.db)
            .await
            .expect("audit rows");
            if rows.len() >= at_least || std::time::Instant::now() > deadline {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
