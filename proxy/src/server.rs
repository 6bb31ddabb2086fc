//! Builds the pingora server from a [`GatewayConfig`] and runs it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use pingora::listeners::TcpSocketOptions;
use pingora::proxy::http_proxy_service;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::GenBackgroundService;
use secrecy::ExposeSecret;
use studyflow_flags::Side;
use tokio::sync::mpsc;

use crate::admin::{AdminParts, AdminService, ControlPlane};
use crate::comparison::{Comparer, StoreTarget};
use crate::config::GatewayConfig;
use crate::control::{Control, ControlSettings, FleetSettings};
use crate::gateway::Gateway;
use crate::guard::GuardService;
use crate::history::{History, Recorder};
use crate::identity::Clients;
use crate::logout::LogoutRecorder;
use crate::metrics::Metrics;
use crate::shadow::{self, ComparedPair};
use crate::sources::FlagSources;
use crate::upstream::{Upstream, Upstreams};
use crate::{Error, Result};

/// Everything checked before the server starts; `--check-config` stops here.
#[derive(Debug)]
pub struct Prepared {
    pub config: GatewayConfig,
    pub control: Arc<Control>,
}

/// Validates the upstreams, routes file and persisted state of `config`, and loads the
/// flag sources (Unleash and Redis may be down: see [`Control::new`]).
pub fn prepare(config: GatewayConfig) -> Result<Prepared> {
    let connect = Duration::from_secs(config.connect_timeout_secs);
    let read = Duration::from_secs(config.read_timeout_secs);
    let legacy = Upstream::from_url(Side::Legacy, &config.legacy_url, connect, read)?;
    let new = Upstream::from_url(Side::New, &config.new_url, connect, read)?;
    let named = config
        .upstreams
        .iter()
        .map(|(name, url)| {
            Upstream::from_url(Side::New, url, connect, read)
                .map(|u| (name.clone(), u))
                .map_err(|e| Error::Config(format!("upstreams.{name}: {e}")))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let upstreams = Upstreams::new(legacy, new, named);
    let instance = format!(
        "{}-{}-{}",
        config
            .unleash
            .as_ref()
            .map_or("studyflow-gateway", |u| u.app_name.as_str()),
        hostname(),
        instance_port(&config.listen)
    );
    let settings = ControlSettings {
        routes_file: config.routes_file.clone(),
        state_file: config.state_file.clone(),
        snapshot_file: config.snapshot_file.clone(),
        upstreams,
        fleet: config.fleet.redis_url.as_ref().map(|url| FleetSettings {
            url: url.expose_secret().to_owned(),
            prefix: config.fleet.prefix.clone(),
            timeout: Duration::from_millis(config.fleet.timeout_ms),
        }),
        unleash: config.unleash.as_ref().map(|u| u.settings(&instance)),
    };
    // Start-up only: the serving runtimes are pingora's, made later.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("start-up runtime"))?;
    let control = runtime.block_on(Control::new(settings))?;
    log_overrides(&control);
    Ok(Prepared {
        config,
        control: Arc::new(control),
    })
}

/// Says at start which operator overrides are in force: they outlive restarts, and a
/// route that is not where its routes file puts it should never be a surprise.
fn log_overrides(control: &Control) {
    let table = control.table();
    for route in table.routes() {
        if let Some(held) = control.override_of(&route.spec.name) {
            tracing::warn!(
                route = %route.spec.name,
                phase = %held.phase,
                file_phase = %route.spec.phase,
                by = %held.by,
                at = %held.at,
                reason = %held.reason,
                "operator override in force (kept across restarts; `routes reset --all` drops it)"
            );
        }
    }
}

/// Runs the gateway until it receives SIGINT/SIGTERM.
pub fn run(prepared: Prepared) -> Result<()> {
    let Prepared { config, control } = prepared;
    let admin_addr: std::net::SocketAddr = config
        .admin_listen
        .parse()
        .map_err(|_| Error::Config("invalid `admin_listen`".into()))?;
    let conf = ServerConf {
        threads: config.threads,
        work_stealing: config.work_stealing,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        // Every pingora timeout on tokio's timer. Its timer wheel ("fast timeouts") keeps a
        // timer until its deadline even once cancelled; pingora's own documentation has
        // tokio's timer as the better fit for long timeouts that are nearly always
        // cancelled, which every one of the gateway's is (a route's read timeout is
        // seconds long and ends with the answer). Counted in `studyflow-bench
        // instructions`: 500 fewer instructions per request in `legacy`, 1 150 in `shadow`.
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let limits = config.shadow.limits();
    let (compare_tx, compare_rx) = mpsc::channel(limits.compare_queue_size);
    let metrics = Arc::new(Metrics::new()?);
    let secret = config.shadow.secret.as_ref().map(|s| s.expose_secret());
    if secret.is_none() {
        tracing::warn!(
            "`shadow.secret` is not set: no copies go to the new side (they would not be dry runs)"
        );
    }
    let (shadower, shadow_worker) =
        shadow::channel(limits, secret, compare_tx, Arc::clone(&metrics))?;
    let clients = Clients::new(
        config.trusted_proxies()?,
        config
            .guard
            .jwt_secret
            .as_ref()
            .map(|s| s.expose_secret().as_bytes()),
    );
    let gateway = Gateway::new(
        Arc::clone(&control),
        shadower,
        Arc::clone(&metrics),
        clients,
        LogoutRecorder::new(&config.sessions)?,
    );
    // Every port is bound (or refused) before anything serves.
    let proxy_port = ProxyPort::bind(&config.listen)?;
    let admin_listener = std::net::TcpListener::bind(admin_addr).map_err(Error::io(format!(
        "`admin_listen` {admin_addr} cannot be bound"
    )))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(Error::io(format!("`admin_listen` {admin_addr}")))?;
    let mut proxy = http_proxy_service(&server.configuration, gateway);
    proxy_port.add_to(&mut proxy);
    server.add_service(proxy);

    let mut worker = GenBackgroundService::new("shadow traffic".into(), Arc::new(shadow_worker));
    worker.threads = Some(2);
    server.add_service(worker);
    let store_dropped = Arc::new(AtomicU64::new(0));
    let comparer = comparer(&config, compare_rx, &store_dropped, &metrics)?;
    server.add_service(GenBackgroundService::new(
        "comparison".into(),
        Arc::new(comparer),
    ));
    let history = Arc::new(History::default());
    server.add_service(GenBackgroundService::new(
        "route history".into(),
        Arc::new(Recorder {
            control: Arc::clone(&control),
            metrics: Arc::clone(&metrics),
            history: Arc::clone(&history),
        }),
    ));
    server.add_service(GenBackgroundService::new(
        "flag sources".into(),
        Arc::new(FlagSources {
            control: Arc::clone(&control),
            resync: Duration::from_secs(config.fleet.resync_secs),
        }),
    ));
    server.add_service(GenBackgroundService::new(
        "rollback guard".into(),
        Arc::new(GuardService {
            control: Arc::clone(&control),
            config: config.guard.clone(),
        }),
    ));
    let parts = AdminParts {
        diff_database: config.diff_store.database_url.clone(),
        store_dropped,
        metrics: Arc::clone(&metrics),
        plane: ControlPlane {
            guard: config.guard.clone(),
            promotion: config.promotion.clone(),
            resync: Duration::from_secs(config.fleet.resync_secs),
        },
        history: Arc::clone(&history),
    };
    let admin = AdminService::new(admin_listener, control, config.admin_token.as_ref(), parts)
        .map_err(Error::io(format!("`admin_listen` {admin_addr}")))?;
    server.add_service(GenBackgroundService::new(
        "admin API".into(),
        Arc::new(admin.with_console(config.console.settings())),
    ));
    tracing::info!(listen = %proxy_port.addr, admin = %admin_addr, "gateway starting");
    // The line a supervisor (or the test harness) reads to learn the ports, which matters
    // when `listen` or `admin_listen` asks for any free port (port 0).
    println!(
        "studyflow-gateway listening on http://{} admin http://{admin_addr}",
        proxy_port.addr
    );
    server.run_forever()
}

/// The comparison worker: compares the pairs the shadow worker captures and feeds the
/// diff store (when one is configured), redacting first.
fn comparer(
    config: &GatewayConfig,
    pairs: mpsc::Receiver<ComparedPair>,
    store_dropped: &Arc<AtomicU64>,
    metrics: &Arc<Metrics>,
) -> Result<Comparer> {
    let store = config
        .diff_store
        .database_url
        .as_ref()
        .map(|url| StoreTarget {
            database_url: url.expose_secret().to_owned(),
            settings: config.diff_store.settings(),
            dropped: Arc::clone(store_dropped),
        });
    let redactor = studyflow_diffing::Redactor::new(&config.redact_patterns)
        .map_err(|e| Error::Config(format!("`redact_patterns`: {e}")))?;
    Ok(Comparer::new(pairs, store, redactor, Arc::clone(metrics)))
}

/// The proxy's listening port, bound before pingora starts.
///
/// pingora binds its listeners itself, when its service starts, and does not say which
/// port it got. A fixed port is checked by binding it once here, so a taken port is a
/// configuration error at start. Port 0 (any free port, what tests use so that no two
/// processes race for one) is taken here: a socket bound with `SO_REUSEPORT`, never
/// listening, holds the port for the life of the process, and pingora binds the same
/// port with `SO_REUSEPORT` too. A socket that does not listen receives no connection,
/// so every connection goes to pingora's listener.
#[derive(Debug)]
struct ProxyPort {
    addr: std::net::SocketAddr,
    held: Option<socket2::Socket>,
}

impl ProxyPort {
    fn bind(listen: &str) -> Result<Self> {
        let refused =
            |e: std::io::Error| Error::Config(format!("`listen` {listen} cannot be bound: {e}"));
        let wanted: std::net::SocketAddr = listen
            .parse()
            .map_err(|_| Error::Config(format!("`listen` {listen} is not an address")))?;
        if wanted.port() != 0 {
            let probe = std::net::TcpListener::bind(wanted).map_err(refused)?;
            drop(probe);
            return Ok(Self {
                addr: wanted,
                held: None,
            });
        }
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(wanted),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .map_err(refused)?;
        socket.set_reuse_port(true).map_err(refused)?;
        socket.bind(&wanted.into()).map_err(refused)?;
        let addr = socket
            .local_addr()
            .map_err(refused)?
            .as_socket()
            .ok_or_else(|| Error::Config(format!("`listen` {listen}: not an IP address")))?;
        Ok(Self {
            addr,
            held: Some(socket),
        })
    }

    fn add_to<A>(&self, service: &mut pingora::services::listening::Service<A>) {
        let addr = self.addr.to_string();
        if self.held.is_some() {
            let mut options = TcpSocketOptions::default();
            options.so_reuseport = Some(true);
            service.add_tcp_with_settings(&addr, options);
        } else {
            service.add_tcp(&addr);
        }
    }
}

/// What tells this instance apart on its host: the listen address, or the process id
/// when the port is picked at start.
fn instance_port(listen: &str) -> String {
    if listen.ends_with(":0") {
        format!("pid{}", std::process::id())
    } else {
        listen.to_owned()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}
