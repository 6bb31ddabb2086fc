//! Test upstreams and a gateway process.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

pub const TOKEN: &str = "test-admin-token-0123456789";
/// The dry-run secret every test gateway shares with its new side.
pub const SHADOW_SECRET: &str = "test-shadow-secret-0123456789";

/// A request an upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub shadow: bool,
    pub body_len: usize,
    pub request_id: Option<String>,
    /// `X-Forwarded-For` as the upstream received it.
    pub forwarded_for: Option<String>,
}

/// A purpose-built upstream: answers `{"side", "method", "uri", "shadow", "body_len"}`,
/// with a few special paths (`/slow` sleeps 5 s, `/slow-new` too on the new side only,
/// `/sse` streams, `/status/<code>`, `/report` differs between sides, `/noisy` differs
/// only in an id and a time, `/realtime/v1/websocket` echoes). [`TestUpstream::fail`]
/// makes every answer but the websocket a 500, on demand.
#[derive(Debug, Clone)]
pub struct TestUpstream {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    failing: Arc<AtomicBool>,
}

#[derive(Clone)]
struct UpstreamState {
    side: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
    failing: Arc<AtomicBool>,
}

impl TestUpstream {
    /// The two sides of a route: `legacy` and `new`.
    pub async fn pair() -> (Self, Self) {
        (Self::start("legacy").await, Self::start("new").await)
    }

    pub async fn start(side: &'static str) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(AtomicBool::new(false));
        let state = UpstreamState {
            side,
            seen: Arc::clone(&seen),
            failing: Arc::clone(&failing),
        };
        let app = Router::new()
            .route("/realtime/v1/websocket", get(websocket))
            .route("/sse", get(sse))
            .route("/status/{code}", any(status))
            .route("/report", any(report))
            .route("/noisy", any(noisy))
            .route("/early", any(early))
            .route("/internal-headers", any(internal_headers))
            .route("/ai", any(ai_answer))
            .fallback(echo)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                fail_on_demand,
            ))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, seen, failing }
    }

    /// From now on, answer every request with a 500 (`true`) or normally (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn shadows(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.shadow).collect()
    }

    pub fn clear(&self) {
        self.seen.lock().expect("lock").clear();
    }
}

async fn fail_on_demand(
    State(state): State<UpstreamState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.failing.load(Ordering::Relaxed) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"side": state.side, "error": "failing on demand"})),
        )
            .into_response();
    }
    next.run(request).await
}

/// A 401 sent without reading the request body (a missing header, say), as a function
/// that checks headers first would.
async fn early(_: Recorded) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "Missing authorization header"})),
    )
        .into_response()
}

/// An answer carrying headers in the gateway's own namespace, which must not reach
/// clients as if the gateway had set them.
async fn internal_headers(Recorded(state): Recorded) -> Response {
    (
        [
            ("x-studyflow-served-by", "forged"),
            ("x-studyflow-internal-token", "upstream-secret"),
        ],
        axum::Json(json!({"side": state.side})),
    )
        .into_response()
}

/// An AI function whose provider failed on the legacy side (500), while the new side, in
/// a dry run, skipped its provider call and says so. `?invalid` is a validation error
/// given before any provider call, unmarked, with a different text on each side.
async fn ai_answer(Recorded(state): Recorded, uri: Uri) -> Response {
    if uri.query() == Some("invalid") {
        let text = format!("{} says the message is required", state.side);
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": text}))).into_response();
    }
    match state.side {
        "legacy" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "DeepSeek API error: 503 Service Unavailable"})),
        )
            .into_response(),
        _ => (
            [("x-studyflow-provider", "skipped")],
            axum::Json(json!({"content": "[shadow dry run: provider call skipped]"})),
        )
            .into_response(),
    }
}

/// The same answer on both sides but for a random id and the time (noise to declare).
async fn noisy(_: Recorded) -> Response {
    axum::Json(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "at": chrono::Utc::now().to_rfc3339(),
        "value": 1,
    }))
    .into_response()
}

/// The upstream's state, for a handler: extracting it records the request (with no
/// body; `echo`, which reads the body, records itself).
struct Recorded(UpstreamState);

impl axum::extract::FromRequestParts<UpstreamState> for Recorded {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &UpstreamState,
    ) -> Result<Self, Self::Rejection> {
        record(state, &parts.method, &parts.uri, &parts.headers, 0);
        Ok(Recorded(state.clone()))
    }
}

fn record(state: &UpstreamState, method: &Method, uri: &Uri, headers: &HeaderMap, body_len: usize) {
    state.seen.lock().expect("lock").push(Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        shadow: headers.contains_key("x-studyflow-shadow"),
        body_len,
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        forwarded_for: headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
}

async fn echo(
    State(state): State<UpstreamState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, &method, &uri, &headers, body.len());
    if uri.path() == "/slow" || (uri.path() == "/slow-new" && state.side == "new") {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    axum::Json(json!({
        "side": state.side,
        "method": method.as_str(),
        "uri": uri.to_string(),
        "shadow": headers.contains_key("x-studyflow-shadow"),
        "body_len": body.len(),
    }))
    .into_response()
}

async fn status(Path(code): Path<u16>, Recorded(state): Recorded) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT),
        axum::Json(json!({"side": state.side})),
    )
        .into_response()
}

/// A JSON answer with a random id (noise within one side), a timestamp (declared noise),
/// a side-specific `value` (a regression) and a token that must never be stored.
async fn report(Recorded(state): Recorded) -> Response {
    axum::Json(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "at": chrono::Utc::now().to_rfc3339(),
        "value": if state.side == "legacy" { 1 } else { 2 },
        "token": SAMPLE_JWT,
        "items": [{"name": "a"}, {"name": "b"}],
    }))
    .into_response()
}

/// The `diff_store` section of a gateway's configuration: `database`, flushed every 100 ms.
pub fn diff_store(database: &str) -> String {
    format!("diff_store:\n  database_url: {database}\n  flush_interval_ms: 100\n")
}

/// A JWT-shaped secret the report endpoint returns; it must never reach a stored sample.
pub const SAMPLE_JWT: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.c2lnbmF0dXJlLXNlY3JldA";

/// Three events, one second apart.
async fn sse(Recorded(state): Recorded) -> Response {
    let side = state.side;
    let stream = futures_util::stream::unfold(0u32, move |n| async move {
        if n == 3 {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let event = format!("data: {{\"n\":{n},\"side\":\"{side}\"}}\n\n");
        Some((Ok::<_, std::io::Error>(Bytes::from(event)), n + 1))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("response")
}

async fn websocket(State(state): State<UpstreamState>, upgrade: WebSocketUpgrade) -> Response {
    let side = state.side;
    upgrade.on_upgrade(move |mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Text(text) = message {
                let reply = format!("{side}:{}", text.as_str());
                if socket.send(Message::Text(reply.into())).await.is_err() {
                    break;
                }
            }
        }
    })
}

/// Creates an empty database on the local Postgres and returns its URL.
pub async fn fresh_database() -> String {
    let name = format!(
        "studyflow_test_gw_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    studyflow_testkit::database::create(&name)
        .await
        .expect("create database")
}

/// Drops a database made by [`fresh_database`].
pub async fn drop_database(url: &str) {
    if let Some((_, name)) = url.rsplit_once('/') {
        let _ = studyflow_testkit::database::drop(name).await;
    }
}

/// A running gateway process with its own config, routes and state files.
#[derive(Debug)]
pub struct Gateway {
    pub url: String,
    pub admin_url: String,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Gateway {
    /// Starts a gateway with `routes` (YAML) between `legacy` and `new`; `extra` is
    /// appended to its config file.
    pub async fn start(routes: &str, legacy: &str, new: &str, extra: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sf-gw-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("routes.yaml"), routes).expect("routes");
        // Port 0: the gateway takes free ports and announces them (no race with other
        // tests); `spawn` writes them into the config, so that the CLI, which reads the
        // config, finds the admin API.
        let config = format!(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nadmin_token: {TOKEN}\nroutes_file: {routes}\nstate_file: {state}\nsnapshot_file: {snapshot}\nlegacy_url: {legacy}\nnew_url: {new}\n{extra}\n",
            routes = dir.join("routes.yaml").display(),
            state = dir.join("state.json").display(),
            snapshot = dir.join("snapshot.json").display(),
        );
        std::fs::write(dir.join("gateway.yaml"), config).expect("config");
        let mut gateway = Self {
            url: String::new(),
            admin_url: String::new(),
            dir,
            child: None,
        };
        gateway.spawn().await;
        gateway
    }

    /// Starts the gateway on free ports (a restart too: its old ports may have been
    /// taken since it stopped) and writes them into the config.
    async fn spawn(&mut self) {
        self.write_ports("127.0.0.1:0", "127.0.0.1:0");
        let mut command = Command::new(env!("CARGO_BIN_EXE_studyflow-gateway"));
        command
            .arg("--config")
            .arg(self.config_file())
            .env("RUST_LOG", "info")
            .env("STUDYFLOW_GATEWAY__SHADOW__SECRET", SHADOW_SECRET)
            .env("STUDYFLOW_GATEWAY__GUARD__JWT_SECRET", JWT_SECRET);
        let log = self.dir.join("gateway.log");
        let (child, urls) = studyflow_testkit::process::start_announced(
            "gateway",
            &mut command,
            &log,
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e:#}"));
        self.child = Some(child);
        let [url, admin_url] = <[String; 2]>::try_from(urls).expect("proxy and admin URLs");
        let host = |url: &str| url.trim_start_matches("http://").to_owned();
        self.write_ports(&host(&url), &host(&admin_url));
        self.url = url;
        self.admin_url = admin_url;
        // pingora binds the announced proxy port when its service starts.
        if let Err(error) =
            studyflow_testkit::process::wait_accepting(&self.url, Duration::from_secs(20)).await
        {
            panic!("gateway did not start: {error:#}\n{}", self.log());
        }
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let admin = client
                .get(format!("{}/health", self.admin_url))
                .send()
                .await;
            if admin.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "gateway did not start:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets the proxy's and the admin API's listening addresses in the config file.
    fn write_ports(&self, listen: &str, admin_listen: &str) {
        let file = self.config_file();
        let config = std::fs::read_to_string(&file).expect("config");
        let kept: Vec<String> = config
            .lines()
            .map(|line| {
                if line.starts_with("listen:") {
                    format!("listen: {listen}")
                } else if line.starts_with("admin_listen:") {
                    format!("admin_listen: {admin_listen}")
                } else {
                    line.to_owned()
                }
            })
            .collect();
        std::fs::write(&file, kept.join("\n") + "\n").expect("config");
    }

    /// Stops the gateway (SIGTERM) and starts it again with the same files, on new ports.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// The gateway's configuration file (for CLI commands that read it).
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("gateway.yaml")
    }

    /// `GET /ready` of the admin API: status and body.
    pub async fn ready(&self) -> (u16, Value) {
        let response = client()
            .get(format!("{}/ready", self.admin_url))
            .send()
            .await
            .expect("admin answers");
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Waits (up to `within`) until `check` holds for the admin view of `route`; returns
    /// the last view.
    pub async fn wait_route(
        &self,
        route: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let view = self.route(route).await;
            if check(&view) || started.elapsed() > within {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until this gateway's guard has looked at `route` `more` times from now (it
    /// ticks every `guard.interval_ms`), so a test can say what the guard did, or did
    /// not do, once it had its say. Gives up after 20 s; the caller's assertion speaks.
    pub async fn wait_guard_checks(&self, route: &str, more: u64) {
        let checks = |view: &Value| view["guard"]["checks"].as_u64().unwrap_or(0);
        let from = checks(&self.route(route).await);
        self.wait_route(route, Duration::from_secs(20), |view| {
            checks(view) >= from + more
        })
        .await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    pub fn write_routes(&self, routes: &str) {
        std::fs::write(self.dir.join("routes.yaml"), routes).expect("routes");
    }

    /// GET through the gateway; returns status, served-by header and JSON body.
    pub async fn get(&self, path: &str) -> (u16, String, Value) {
        self.call(reqwest::Method::GET, path, None, &[]).await
    }

    /// A GET with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String, Value) {
        self.call(reqwest::Method::GET, path, None, headers).await
    }

    /// A POST of `body`, with no extra headers.
    pub async fn post(&self, path: &str, body: &[u8]) -> (u16, String, Value) {
        self.call(reqwest::Method::POST, path, Some(body.to_vec()), &[])
            .await
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> (u16, String, Value) {
        let mut request = client().request(method, format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status().as_u16();
        let side = response
            .headers()
            .get("x-studyflow-served-by")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, side, body)
    }

    /// An admin API call with the token; returns status and JSON body.
    /// Sets a route's phase through the admin API (`body`: phase, percent, force, reason).
    pub async fn set_phase(&self, route: &str, body: Value) -> (u16, Value) {
        self.admin(reqwest::Method::PUT, &format!("/routes/{route}"), body)
            .await
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = client()
            .request(method, format!("{}{path}", self.admin_url))
            .bearer_auth(TOKEN)
            .header("x-operator", "test-operator")
            .json(&body)
            .send()
            .await
            .expect("admin answers");
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// A GET of the admin service (API or console) with the operator token.
    pub async fn read(&self, path: &str) -> reqwest::Response {
        client()
            .get(format!("{}{path}", self.admin_url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the admin service answers")
    }

    /// The admin view of one route (with the token: its audit entries too).
    pub async fn route(&self, name: &str) -> Value {
        self.read(&format!("/routes/{name}"))
            .await
            .json()
            .await
            .expect("json")
    }

    /// Rolls `route` back through the admin API.
    pub async fn rollback(&self, route: &str, reason: &str) -> (u16, Value) {
        let path = format!("/routes/{route}/rollback");
        self.admin(reqwest::Method::POST, &path, json!({"reason": reason}))
            .await
    }

    /// Waits until `counter` of `route` reaches `at_least`, and returns its value.
    pub async fn wait_counter(&self, route: &str, counter: &str, at_least: u64) -> u64 {
        let started = Instant::now();
        loop {
            let value = self.route(route).await["counters"][counter]
                .as_u64()
                .unwrap_or(0);
            if value >= at_least || started.elapsed() > Duration::from_secs(15) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The gateway's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Resident memory of the gateway process, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!(
            "/proc/{}/status",
            self.pid().expect("gateway runs")
        ))
        .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Stops the gateway process (SIGTERM) and waits for it.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            let _ = child.kill().await;
        }
    }

    /// Runs the operator CLI against this gateway.
    /// The CLI with `--config` naming this gateway's configuration file first.
    pub async fn cli_configured(&self, args: &[&str]) -> (bool, String) {
        let config = self.config_file();
        let mut all = vec!["--config", config.to_str().expect("a UTF-8 path")];
        all.extend_from_slice(args);
        self.cli(&all).await
    }

    /// Runs the CLI with its standard output read by nobody (the pipe's reading end
    /// closed at once, as `| head` does once it has its lines): whether it succeeded,
    /// and its standard error.
    pub async fn cli_unread(&self, args: &[&str]) -> (bool, String) {
        let mut child = self
            .cli_command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the CLI starts");
        drop(child.stdout.take());
        let output = child.wait_with_output().await.expect("the CLI ends");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub async fn cli(&self, args: &[&str]) -> (bool, String) {
        studyflow_testkit::process::run_to_end(&mut self.cli_command(args)).await
    }

    /// The operator CLI, pointed at this gateway's admin API.
    fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_studyflow-gateway"));
        command
            .args(args)
            .env("STUDYFLOW_ADMIN_URL", &self.admin_url)
            .env("STUDYFLOW_ADMIN_TOKEN", TOKEN)
            .env("STUDYFLOW_OPERATOR", "cli-operator");
        command
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client that does not pool connections across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Waits until `check` holds (polling), for up to 10 s.
pub async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// The JWT secret the test gateways verify callers with (`guard.jwt_secret`).
pub const JWT_SECRET: &str = "studyflow-test-jwt-secret-of-32-bytes!";

/// A bearer token for `sub`, signed with [`JWT_SECRET`] and valid for an hour.
pub fn bearer_for(sub: &str) -> String {
    let claims = serde_json::json!({
        "sub": sub,
        "role": "authenticated",
        "exp": chrono::Utc::now().timestamp() + 3600,
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign");
    format!("Bearer {token}")
}

/// A bearer token claiming `sub` with a made-up signature, as an attacker would send.
pub fn forged_bearer_for(sub: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{sub}","role":"authenticated"}}"#));
    format!("Bearer {header}.{claims}.sig")
}

/// Unleash tokens of the test server (see `tests/unleash/README.md`).
pub const UNLEASH_ADMIN_TOKEN: &str = "*:*.studyflow-admin-secret";
pub const UNLEASH_CLIENT_TOKEN: &str = "default:development.studyflow-client-secret";

/// A real Unleash 7.5.1 (`tests/unleash/server.mjs` on Node) on a fresh database of the
/// local Postgres, dropped when the server is dropped.
#[derive(Debug)]
pub struct UnleashServer {
    pub url: String,
    database: String,
    child: Option<Child>,
}

impl UnleashServer {
    pub async fn start() -> Self {
        use tokio::io::AsyncBufReadExt;
        let server = studyflow_testkit::database::server_url();
        let database = format!(
            "studyflow_test_unleash_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests");
        let mut child = Command::new("node")
            .arg("unleash/server.mjs")
            .current_dir(&tests)
            .env("UNLEASH_PORT", "0")
            .env("UNLEASH_DATABASE_URL", format!("{server}/{database}"))
            .env("UNLEASH_ADMIN_TOKEN", UNLEASH_ADMIN_TOKEN)
            .env("UNLEASH_CLIENT_TOKEN", UNLEASH_CLIENT_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/unleash/server.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("unleash ready on ") {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await;
        let mut unleash = Self {
            url: String::new(),
            database,
            child: Some(child),
        };
        // Dropping `unleash` on failure stops the server and drops its database.
        let Ok(Some(url)) = ready else {
            panic!("the Unleash server did not start");
        };
        unleash.url = url;
        unleash
    }

    /// Stops the server (SIGTERM) and waits for it; the database stays until drop.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            let _ = child.kill().await;
        }
    }

    /// The gateway configuration section for this server.
    pub fn gateway_config(&self, refresh_ms: u64) -> String {
        format!(
            "unleash:\n  url: {}\n  client_token: \"{UNLEASH_CLIENT_TOKEN}\"\n  admin_token: \"{UNLEASH_ADMIN_TOKEN}\"\n  refresh_ms: {refresh_ms}\n  timeout_ms: 1000\n",
            self.url
        )
    }

    /// An admin API call (`path` under `/api/admin`); returns status and JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = client()
            .request(method, format!("{}/api/admin{path}", self.url))
            .header("authorization", UNLEASH_ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("unleash answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for UnleashServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        // Unleash may still hold connections for a moment: `with (force)` ends them.
        let _ = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!(
                "drop database if exists \"{}\" with (force)",
                self.database
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A Redis key prefix of its own, so parallel tests (and engineers) never share state;
/// its keys are deleted when dropped.
#[derive(Debug)]
pub struct RedisNamespace {
    pub prefix: String,
}

impl RedisNamespace {
    pub fn new() -> Self {
        Self {
            prefix: format!(
                "studyflow-test:{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
        }
    }

    pub fn url() -> String {
        studyflow_testkit::stack::redis_url()
    }

    /// The gateway configuration section for a fleet in this namespace.
    pub fn gateway_config(&self, resync_secs: u64) -> String {
        format!(
            "fleet:\n  redis_url: {}\n  prefix: \"{}\"\n  resync_secs: {resync_secs}\n",
            Self::url(),
            self.prefix
        )
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(Self::url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis")
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(Self::url())
            && let Ok(mut conn) = client.get_connection()
        {
            let _: Result<(), _> = redis::cmd("DEL")
                .arg(format!("{}:overrides", self.prefix))
                .arg(format!("{}:audit", self.prefix))
                .query(&mut conn);
        }
    }
}

pub use studyflow_testkit::ports::RefusedPort;
pub use studyflow_testkit::relay::Relay;

/// The harness's own rails.
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gateway_restarts_when_another_socket_took_its_old_ports() {
        let (legacy, new) = TestUpstream::pair().await;
        let routes = "routes:\n  - {name: main, path: /functions/v1/main, phase: legacy}\n";
        let mut gateway = Gateway::start(routes, &legacy.url, &new.url, "").await;
        gateway.stop().await;
        // Between the stop and the start, other servers take both of its ports (a port
        // this cannot bind is taken already).
        let taken: Vec<std::net::TcpListener> = [&gateway.url, &gateway.admin_url]
            .iter()
            .filter_map(|url| std::net::TcpListener::bind(url.trim_start_matches("http://")).ok())
            .collect();
        gateway.spawn().await;
        let (status, side, _) = gateway.get("/functions/v1/main").await;
        assert_eq!((status, side.as_str()), (200, "legacy"));
        // The config names the new ports, for the CLI.
        let config = std::fs::read_to_string(gateway.config_file()).expect("config");
        let admin = gateway.admin_url.trim_start_matches("http://");
        assert!(
            config.contains(&format!("admin_listen: {admin}\n")),
            "{config}"
        );
        drop(taken);
    }
}
