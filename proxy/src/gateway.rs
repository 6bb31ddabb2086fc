//! The pingora [`ProxyHttp`] implementation. It only dispatches: each phase asks
//! [`routing`](crate::routing), [`shadow`](crate::shadow) or
//! [`upstream`](crate::upstream) and records the outcome in [`RequestCtx`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::ErrorSource;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use studyflow_flags::Side;

use crate::control::Control;
use crate::identity::request_identity;
use crate::metrics::Metrics;
use crate::routing::{Decision, Route, RouteTable};
use crate::shadow::{SHADOW_HEADER, ShadowPlan, Shadower};
use crate::stats::NewOutcome;

/// Header carrying the request id through the gateway, both upstreams and the logs.
pub const REQUEST_ID: &str = "x-request-id";
/// Response header telling which side answered (`legacy` or `new`).
pub const SERVED_BY: &str = "x-studyflow-served-by";
/// Response header naming the matched route.
pub const ROUTE: &str = "x-studyflow-route";

const BLOCKED_BODY: &str = r#"{"code":"NOT_FOUND","message":"Requested function was not found"}"#;

/// The gateway's proxy logic.
#[derive(Debug)]
pub struct Gateway {
    control: Arc<Control>,
    shadower: Shadower,
    metrics: Arc<Metrics>,
}

/// What the gateway knows about one request as it goes through pingora's phases.
#[derive(Debug)]
pub struct RequestCtx {
    table: Option<Arc<RouteTable>>,
    route: Option<usize>,
    side: Side,
    request_id: String,
    /// The new side was unreachable and legacy served instead.
    fell_back: bool,
    shadow: Option<Box<ShadowPlan>>,
    started: Instant,
}

impl Gateway {
    pub fn new(control: Arc<Control>, shadower: Shadower, metrics: Arc<Metrics>) -> Self {
        Self {
            control,
            shadower,
            metrics,
        }
    }
}

impl RequestCtx {
    fn route(&self) -> Option<&Route> {
        Some(self.table.as_ref()?.route(self.route?))
    }

    fn route_name(&self) -> &str {
        self.route().map_or("-", |r| r.spec.name.as_str())
    }
}

fn header<'a>(request: &'a RequestHeader, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_upgrade(request: &RequestHeader) -> bool {
    request.headers.contains_key(http::header::UPGRADE)
}

/// How the new side did on a request it served: an upstream error is a timeout or a
/// connection failure; otherwise the status decides.
fn new_outcome(status: u16, error: Option<&Error>) -> NewOutcome {
    if let Some(error) = error.filter(|e| *e.esource() == ErrorSource::Upstream) {
        return match error.etype() {
            ErrorType::ConnectTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
            | ErrorType::TLSHandshakeTimedout => NewOutcome::Timeout,
            _ => NewOutcome::ConnectFailure,
        };
    }
    if status >= 500 {
        NewOutcome::ServerError
    } else {
        NewOutcome::Ok
    }
}

/// A random (version 4) UUID for a request that came without an id. Drawn from a
/// thread-local generator: `Uuid::new_v4` asks the kernel for every id, a system call per
/// request. Request ids need to be unique, not unpredictable.
fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_ne_bytes())
        .into_uuid()
        .to_string()
}

/// True for `percent` % of calls, at random.
pub(crate) fn sampled(percent: u8) -> bool {
    percent >= 100 || fastrand::u8(0..100) < percent
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            table: None,
            route: None,
            side: Side::Legacy,
            request_id: String::new(),
            fell_back: false,
            shadow: None,
            started: Instant::now(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let table = self.control.table();
        let request = session.req_header();
        ctx.request_id = header(request, REQUEST_ID)
            .filter(|v| !v.is_empty() && v.len() <= 200)
            .map_or_else(new_request_id, str::to_owned);
        // The client's address is only needed for a canary request that carries no token.
        let client = || {
            session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip().to_string().into())
        };
        let decision = table.decide(request.method.as_str(), request.uri.path(), || {
            request_identity(
                header(request, "authorization"),
                header(request, "apikey"),
                None,
            )
            .map(|id| id.into_owned().into())
            .or_else(client)
        });
        match decision {
            Decision::Blocked { route } => {
                ctx.route = Some(route);
                ctx.table = Some(table);
                let mut response = ResponseHeader::build(404, Some(3))?;
                response.insert_header("content-type", "application/json")?;
                response.insert_header("content-length", BLOCKED_BODY.len())?;
                response.insert_header(REQUEST_ID, ctx.request_id.as_str())?;
                session
                    .write_response_header(Box::new(response), false)
                    .await?;
                session
                    .write_response_body(Some(Bytes::from_static(BLOCKED_BODY.as_bytes())), true)
                    .await?;
                Ok(true)
            }
            Decision::Serve { route: None, side } => {
                ctx.side = side;
                table.passthrough.served(side);
                ctx.table = Some(table);
                Ok(false)
            }
            Decision::Serve {
                route: Some(index),
                side,
            } => {
                let route = table.route(index);
                route.stats.served(side);
                if let Some(target) = route.shadow_target(side)
                    && !is_upgrade(request)
                    && !request.headers.contains_key(SHADOW_HEADER)
                    && route.spec.shadow.allows(request.method.as_str(), target)
                    && sampled(route.spec.shadow.sample_percent)
                {
                    let plan = ShadowPlan::new(route, request, target, side, &self.shadower.limits);
                    ctx.shadow = Some(Box::new(plan));
                }
                ctx.route = Some(index);
                ctx.side = side;
                ctx.table = Some(table);
                Ok(false)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let peer = match ctx.route() {
            Some(route) => route
                .upstream(ctx.side)
                .peer(route.spec.timeout_secs.map(Duration::from_secs)),
            None => match &ctx.table {
                Some(table) => table.default_legacy.peer(None),
                None => return Error::e_explain(ErrorType::InternalError, "no route table"),
            },
        };
        Ok(peer)
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // The new side is down: serve idempotent requests from legacy rather than fail.
        let idempotent = session.req_header().method.is_idempotent();
        if ctx.side == Side::New && idempotent && !ctx.fell_back && ctx.route.is_some() {
            ctx.fell_back = true;
            ctx.side = Side::Legacy;
            // The copy would go to legacy, which now serves: no shadow for this request.
            ctx.shadow = None;
            if let Some(route) = ctx.route() {
                route.stats.fallback();
                route.stats.new_outcome(NewOutcome::ConnectFailure);
                tracing::warn!(route = %route.spec.name, request_id = %ctx.request_id, "new side unreachable; legacy serves");
            }
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let authority = match ctx.route() {
            Some(route) => route.upstream(ctx.side).authority().to_owned(),
            None => match &ctx.table {
                Some(table) => table.default_legacy.authority().to_owned(),
                None => return Ok(()),
            },
        };
        upstream_request.insert_header("host", authority)?;
        upstream_request.insert_header(REQUEST_ID, ctx.request_id.as_str())?;
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(plan) = ctx.shadow.as_mut()
            && plan.request_chunk(body.as_ref(), end_of_stream)
            && !self.shadower.dispatch(plan, &ctx.request_id)
        {
            ctx.shadow = None;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(plan) = ctx.shadow.as_mut() {
            plan.served_head(response, self.shadower.limits.max_body_bytes);
        }
        if let Some(route) = ctx.route() {
            for (name, value) in &route.spec.response_headers {
                response.insert_header(name.clone(), value.as_str())?;
            }
            response.insert_header(ROUTE, route.spec.name.as_str())?;
        }
        response.insert_header(SERVED_BY, ctx.side.name())?;
        response.insert_header(REQUEST_ID, ctx.request_id.as_str())?;
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let (Some(plan), Some(chunk)) = (ctx.shadow.as_mut(), body.as_ref()) {
            plan.served_chunk(chunk);
        }
        Ok(None)
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(plan) = ctx.shadow.take() {
            plan.finish(error.is_none());
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if !ctx.route().is_some_and(|r| r.spec.blocked) {
            self.metrics
                .request(ctx.route_name(), ctx.side, status, ctx.started.elapsed());
        }
        if ctx.side == Side::New
            && let Some(route) = ctx.route()
        {
            route.stats.new_outcome(new_outcome(status, error));
        }
        let request = session.req_header();
        tracing::info!(
            request_id = %ctx.request_id,
            method = %request.method,
            path = request.uri.path(),
            route = ctx.route_name(),
            side = ctx.side.name(),
            fell_back = ctx.fell_back,
            status,
            error = error.map(|e| e.to_string()),
            "request"
        );
    }
}
