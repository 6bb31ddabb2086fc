//! The admin API, on its own port: route table with live counters, phase changes,
//! rollback (one route or all), diff-gated promotion, audit log, routes-file reload,
//! readiness with the health of each flag source, diff reports (JSON, Markdown) and the
//! HTML console ([`console`]).
//!
//! The flag sources ([`sources`](crate::sources)) and the rollback
//! [`guard`](crate::guard) are services of their own: they run even when this port is
//! not served.
//!
//! Health, readiness, `/metrics` and the route table are open to whoever reaches the
//! port (keep it private). Diff reports, samples and the audit log (also the `audit` of
//! `GET /routes/{name}`) hold user data and need `Authorization: Bearer <admin_token>`,
//! compared in constant time; so does every change, which also names the operator in
//! `x-operator` (default `admin`), carries a reason, and is audited.
//!
//! Inputs are checked before anything is done: a malformed or nonsensical query, path or
//! body (a duration reaching past what a date can hold, a limit out of range, an id that
//! is no id, a route name no route could have) gets a JSON 400 `{"error": …}`.
//!
//! Its modules: [`router`] joins the [`api`] (JSON) and the [`console`] (HTML, drawn by
//! [`views`], signed in through [`session`]); [`auth`] checks the admin token, [`reports`]
//! reads the diff store with a time limit, [`error`] shapes refusals. Every change goes
//! through the control plane, [`Operations`](crate::operations::Operations).

pub mod api;
pub mod auth;
pub mod console;
pub mod error;
pub mod reports;
pub mod router;
pub mod session;
pub mod views;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::config::{ConsoleSettings, GuardConfig, PromotionConfig};
use crate::control::Control;
use crate::history::History;
use crate::metrics::Metrics;
use crate::operations::Operations;

use self::auth::{digest, same_digest};
use self::session::{ConsoleAuth, Sessions};

/// The control plane's settings the admin service runs with.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    pub guard: GuardConfig,
    pub promotion: PromotionConfig,
    /// How often fleet overrides are re-read besides announcements.
    pub resync: Duration,
}

/// What the admin service shares with its handlers (and the console's).
#[derive(Clone, Debug)]
pub(crate) struct AdminState {
    /// Every change goes through here.
    pub(crate) ops: Operations,
    /// The rollback guard's thresholds, shown with each route.
    pub(crate) guard: Arc<GuardConfig>,
    /// SHA-256 of the admin token: compared digest to digest, never the token itself.
    pub(crate) token_digest: Option<[u8; 32]>,
    /// Records the diff store dropped.
    pub(crate) store_dropped: Arc<AtomicU64>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) history: Arc<History>,
    sessions: Arc<Sessions>,
    pub(crate) console: Arc<ConsoleSettings>,
}

/// Everything the admin service is built from, besides its address, the route control
/// and the token.
#[derive(Debug)]
pub struct AdminParts {
    pub diff_database: Option<SecretString>,
    pub store_dropped: Arc<AtomicU64>,
    pub metrics: Arc<Metrics>,
    pub plane: ControlPlane,
    pub history: Arc<History>,
}

impl ConsoleAuth for AdminState {
    fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    fn token_matches(&self, token: &str) -> bool {
        self.token_digest
            .is_some_and(|expected| same_digest(&digest(token), &expected))
    }

    fn secure_cookies(&self) -> bool {
        self.console.secure_cookies
    }
}

/// Serves the admin API until the gateway shuts down, and watches the routes file.
#[derive(Debug)]
pub struct AdminService {
    addr: SocketAddr,
    /// Bound by the server before start-up, so a port in use stops the gateway.
    listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    state: AdminState,
    diff_database: Option<SecretString>,
    /// Filled once the service connects to the diff store; shared with the operations.
    diffs: Arc<OnceLock<PgPool>>,
}

impl AdminService {
    pub fn new(
        listener: std::net::TcpListener,
        control: Arc<Control>,
        token: Option<&SecretString>,
        parts: AdminParts,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let diffs = Arc::new(OnceLock::new());
        let ops = Operations::new(
            control,
            Arc::clone(&diffs),
            parts.plane.promotion,
            Arc::clone(&parts.metrics),
        );
        Ok(Self {
            addr,
            listener: std::sync::Mutex::new(Some(listener)),
            state: AdminState {
                ops,
                guard: Arc::new(parts.plane.guard),
                token_digest: token.map(|t| digest(t.expose_secret())),
                store_dropped: parts.store_dropped,
                metrics: parts.metrics,
                history: parts.history,
                sessions: Arc::new(Sessions::default()),
                console: Arc::new(ConsoleSettings::default()),
            },
            diff_database: parts.diff_database,
            diffs,
        })
    }
}

impl AdminService {
    /// The console's settings (`console` section); the defaults otherwise.
    #[must_use]
    pub fn with_console(mut self, settings: ConsoleSettings) -> Self {
        self.state.console = Arc::new(settings);
        self
    }
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if let Some(url) = &self.diff_database {
            match sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(3))
                .connect_lazy(url.expose_secret())
            {
                Ok(pool) => {
                    let _ = self.diffs.set(pool);
                }
                Err(error) => {
                    tracing::error!(%error, "diff store URL is invalid; reports are unavailable")
                }
            }
        }
        let taken = self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let listener = match taken.map(tokio::net::TcpListener::from_std) {
            Some(Ok(listener)) => listener,
            Some(Err(error)) => {
                tracing::error!(addr = %self.addr, %error, "admin API cannot listen");
                return;
            }
            None => return,
        };
        tracing::info!(addr = %self.addr, "admin API listening");
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(error) = axum::serve(listener, router::router(self.state.clone()))
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "admin API stopped");
        }
    }
}
