//! The pingora [`ProxyHttp`] implementation. It only dispatches: each phase asks
//! [`routing`](crate::routing) or [`upstream`](crate::upstream) and records the outcome in
//! [`RequestCtx`].

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use studyflow_flags::Side;

use crate::identity::request_identity;
use crate::routing::{Decision, RouteTable};
use crate::upstream::Upstream;

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
    routes: Arc<RouteTable>,
    legacy: Upstream,
    new: Upstream,
}

/// What the gateway knows about one request as it goes through pingora's phases.
#[derive(Debug)]
pub struct RequestCtx {
    routes: Option<Arc<RouteTable>>,
    route: Option<usize>,
    side: Side,
    request_id: String,
}

impl Gateway {
    pub fn new(routes: Arc<RouteTable>, legacy: Upstream, new: Upstream) -> Self {
        Self {
            routes,
            legacy,
            new,
        }
    }

    fn upstream(&self, side: Side) -> &Upstream {
        match side {
            Side::Legacy => &self.legacy,
            Side::New => &self.new,
        }
    }
}

impl RequestCtx {
    fn route_name(&self) -> &str {
        match (&self.routes, self.route) {
            (Some(routes), Some(index)) => &routes.route(index).name,
            _ => "-",
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            routes: None,
            route: None,
            side: Side::Legacy,
            request_id: String::new(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let routes = Arc::clone(&self.routes);
        let header = session.req_header();
        ctx.request_id = header
            .headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 200)
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let decision = routes.decide(header.method.as_str(), header.uri.path(), || {
            let text = |name: &str| header.headers.get(name).and_then(|v| v.to_str().ok());
            let client = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip().to_string());
            request_identity(text("authorization"), text("apikey"), None)
                .map(|id| id.into_owned().into())
                .or_else(|| client.map(Into::into))
        });
        ctx.routes = Some(routes);
        match decision {
            Decision::Blocked { route } => {
                ctx.route = Some(route);
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
            Decision::Serve { route, side } => {
                ctx.route = route;
                ctx.side = side;
                Ok(false)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Ok(self.upstream(ctx.side).peer())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_request.insert_header("host", self.upstream(ctx.side).authority())?;
        upstream_request.insert_header(REQUEST_ID, ctx.request_id.as_str())?;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(routes), Some(index)) = (&ctx.routes, ctx.route) {
            let route = routes.route(index);
            for (name, value) in &route.response_headers {
                response.insert_header(name.clone(), value.as_str())?;
            }
            response.insert_header(ROUTE, route.name.as_str())?;
        }
        response.insert_header(SERVED_BY, ctx.side.name())?;
        response.insert_header(REQUEST_ID, ctx.request_id.as_str())?;
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let header = session.req_header();
        tracing::info!(
            request_id = %ctx.request_id,
            method = %header.method,
            path = header.uri.path(),
            route = ctx.route_name(),
            side = ctx.side.name(),
            status,
            error = error.map(|e| e.to_string()),
            "request"
        );
    }
}
