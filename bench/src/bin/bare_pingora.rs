//! The floor of the gateway: the smallest pingora reverse proxy, one `HttpPeer` and no
//! filters, built with the gateway's pingora version and features, its allocator
//! (mimalloc) and its server settings (threads, work stealing). Whatever the gateway
//! costs above this is the gateway's own work.
//!
//! With `BARE_PINGORA_CONTRACT=1` it also does what the gateway's contract asks of every
//! request, the way the gateway does it, and nothing else:
//! - adds the seven headers (`host`, `x-request-id`, `x-forwarded-for`,
//!   `x-forwarded-proto` upstream; `x-studyflow-route`, `x-studyflow-served-by`,
//!   `x-request-id` to answers), with values and names built once and room reserved
//!   (the request id is one fixed value: drawing a new one for each request counts as
//!   the gateway's own work);
//! - gives the upstream the gateway's default connect and read timeouts, so that an
//!   upstream that stalls is answered with a 504 rather than waited on.
//!
//! That is the floor of any proxy keeping the contract on pingora: what it costs in
//! pingora's header API and timers.
//!
//! `bare-pingora <listen addr> <upstream addr>`; announces
//! `bare-pingora listening on http://<addr>` once bound.

use std::time::Duration;

use async_trait::async_trait;
use http::HeaderValue;
use pingora::http::{KnownHeaderName, RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, Result, Session};
use pingora::proxy::{ProxyHttp, http_proxy_service};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every request to one upstream, over kept-alive plain HTTP connections.
struct Bare {
    peer: HttpPeer,
    /// The contract's headers, when the contract's work is done.
    headers: Option<Headers>,
}

static HOST: KnownHeaderName = KnownHeaderName::from_static("host");
static REQUEST_ID: KnownHeaderName = KnownHeaderName::from_static("x-request-id");
static FORWARDED_FOR: KnownHeaderName = KnownHeaderName::from_static("x-forwarded-for");
static FORWARDED_PROTO: KnownHeaderName = KnownHeaderName::from_static("x-forwarded-proto");
static ROUTE: KnownHeaderName = KnownHeaderName::from_static("x-studyflow-route");
static SERVED_BY: KnownHeaderName = KnownHeaderName::from_static("x-studyflow-served-by");

/// One value for each header the gateway adds.
struct Headers {
    host: HeaderValue,
    request_id: HeaderValue,
    forwarded_for: HeaderValue,
    forwarded_proto: HeaderValue,
    route: HeaderValue,
    served_by: HeaderValue,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        if let Some(h) = &self.headers {
            request.insert_header(&HOST, h.host.clone())?;
            request.insert_header(&REQUEST_ID, h.request_id.clone())?;
            request.insert_header(&FORWARDED_FOR, h.forwarded_for.clone())?;
            request.insert_header(&FORWARDED_PROTO, h.forwarded_proto.clone())?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        if let Some(h) = &self.headers {
            response.reserve_headers(3)?;
            response.insert_header(&ROUTE, h.route.clone())?;
            response.insert_header(&SERVED_BY, h.served_by.clone())?;
            response.insert_header(&REQUEST_ID, h.request_id.clone())?;
        }
        Ok(())
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
        // As the gateway: every pingora timeout on tokio's timer.
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let contract = std::env::var("BARE_PINGORA_CONTRACT").is_ok_and(|v| v == "1");
    let mut peer = HttpPeer::new(upstream.as_str(), false, String::new());
    if contract {
        // The gateway's defaults (`connect_timeout_secs`, `read_timeout_secs`).
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.read_timeout = Some(Duration::from_secs(60));
    }
    let headers = contract.then(|| Headers {
        host: HeaderValue::from_str(&upstream).unwrap_or(HeaderValue::from_static("upstream")),
        request_id: HeaderValue::from_static("5f8c1a52-0000-4000-8000-000000000000"),
        forwarded_for: HeaderValue::from_static("127.0.0.1"),
        forwarded_proto: HeaderValue::from_static("http"),
        route: HeaderValue::from_static("bench"),
        served_by: HeaderValue::from_static("legacy"),
    });
    let mut proxy = http_proxy_service(&server.configuration, Bare { peer, headers });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    println!("bare-pingora listening on http://{listen}");
    server.run_forever();
}
