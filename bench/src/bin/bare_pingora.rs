//! The floor of the gateway: the smallest pingora reverse proxy, one `HttpPeer` and no
//! filters, built with the gateway's pingora version and features, its allocator
//! (mimalloc) and its server settings (threads, work stealing). Whatever the gateway
//! costs above this is the gateway's own work.
//!
//! `bare-pingora <listen addr> <upstream addr>`; announces
//! `bare-pingora listening on http://<addr>` once bound.

use async_trait::async_trait;
use pingora::prelude::{HttpPeer, Result, Session};
use pingora::proxy::{ProxyHttp, http_proxy_service};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every request to one upstream, over kept-alive plain HTTP connections.
struct Bare {
    peer: HttpPeer,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare-pingora <listen addr> <upstream addr>");
        std::process::exit(2);
    };
    let threads = std::env::var("BARE_PINGORA_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let work_stealing = std::env::var("BARE_PINGORA_WORK_STEALING").map_or(true, |v| v != "false");
    // The gateway's settings (proxy/src/server.rs): the same threads and work stealing.
    let conf = ServerConf {
        threads,
        work_stealing,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let peer = HttpPeer::new(upstream.as_str(), false, String::new());
    let mut proxy = http_proxy_service(&server.configuration, Bare { peer });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    println!("bare-pingora listening on http://{listen}");
    server.run_forever();
}
