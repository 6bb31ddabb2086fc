//! Builds the pingora server from a [`GatewayConfig`] and runs it.

use std::sync::Arc;
use std::time::Duration;

use pingora::proxy::http_proxy_service;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::GenBackgroundService;
use studyflow_flags::{DEFAULT_ROUTES_FILE, RoutesFile, Side};

use crate::admin::AdminService;
use crate::config::GatewayConfig;
use crate::gateway::Gateway;
use crate::routing::RouteTable;
use crate::upstream::Upstream;
use crate::{Error, Result};

/// Everything checked before the server starts; `--check-config` stops here.
#[derive(Debug)]
pub struct Prepared {
    pub config: GatewayConfig,
    pub routes: Arc<RouteTable>,
    pub legacy: Upstream,
    pub new: Upstream,
}

/// Validates the routes file and upstreams of `config`.
pub fn prepare(config: GatewayConfig) -> Result<Prepared> {
    let file = match &config.routes_file {
        Some(path) => RoutesFile::load(path)?,
        None => RoutesFile::parse(DEFAULT_ROUTES_FILE)?,
    };
    let connect = Duration::from_secs(config.connect_timeout_secs);
    let read = Duration::from_secs(config.read_timeout_secs);
    let legacy = Upstream::from_url(Side::Legacy, &config.legacy_url, connect, read)?;
    let new = Upstream::from_url(Side::New, &config.new_url, connect, read)?;
    Ok(Prepared {
        routes: Arc::new(RouteTable::new(file)),
        config,
        legacy,
        new,
    })
}

/// Runs the gateway until it receives SIGINT/SIGTERM.
pub fn run(prepared: Prepared) -> Result<()> {
    let Prepared {
        config,
        routes,
        legacy,
        new,
    } = prepared;
    let admin_addr = config
        .admin_listen
        .parse()
        .map_err(|_| Error::Config("invalid `admin_listen`".into()))?;
    let conf = ServerConf {
        threads: config.threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let gateway = Gateway::new(Arc::clone(&routes), legacy, new);
    let mut proxy = http_proxy_service(&server.configuration, gateway);
    proxy.add_tcp(&config.listen);
    server.add_service(proxy);
    server.add_service(GenBackgroundService::new(
        "admin API".into(),
        Arc::new(AdminService::new(admin_addr, routes)),
    ));
    tracing::info!(listen = %config.listen, admin = %config.admin_listen, "gateway starting");
    server.run_forever()
}
