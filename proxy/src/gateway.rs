//! The pingora [`ProxyHttp`] implementation. It only dispatches: each phase asks
//! [`routing`](crate::routing), [`shadow`](crate::shadow) or
//! [`upstream`](crate::upstream) and records the outcome in [`RequestCtx`].
//!
//! Before anything is decided, the request is made the gateway's own: its path is put in
//! canonical form (a path with no single meaning is refused with a 400), and every
//! `x-studyflow-*` header is removed, so no client can pick a side, a mode or a route by
//! spelling. Upstream answers lose their `x-studyflow-*` headers before the gateway adds
//! its own, and gateway-made errors are JSON with the request id.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use pingora::ErrorSource;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use studyflow_flags::{Side, canonical_path};

use crate::control::Control;
use crate::header_names as known;
use crate::identity::{Clients, request_identity};
use crate::logout::{LOGOUT_PATH, LogoutRecorder, PendingLogout};
use crate::metrics::{Metrics, RouteSeries};
use crate::routing::{Decision, Route, RouteTable};
use crate::shadow::{ShadowPlan, Shadower, sampled};
use crate::stats::NewOutcome;

pub use crate::shadow::REQUEST_ID;
/// Response header telling which side answered (`legacy` or `new`).
pub const SERVED_BY: &str = "x-studyflow-served-by";
/// Response header naming the matched route.
pub const ROUTE: &str = "x-studyflow-route";
/// Every header the gateway and its backends exchange starts with this: clients' and
/// upstream answers' are removed.
pub const INTERNAL_PREFIX: &str = "x-studyflow-";
/// Where the one-line-per-request access log is written (off unless `RUST_LOG` turns it
/// on, e.g. `RUST_LOG=info,studyflow_gateway::access=info`).
pub const ACCESS_LOG: &str = "studyflow_gateway::access";
/// Largest request head (names and values of every header) forwarded; larger ones are
/// answered 431 by the gateway.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// How many headers the gateway adds to an answer beside the route's own (route, side,
/// id); room is made for them and the route's once. A proxied request needs none: its
/// four (`Host`, the id, the two `X-Forwarded-*`) fit in the room every parsed head has
/// (vendor/pingora-http/PATCHED.md), which the upstream request's copy keeps.
const ADDED_TO_ANSWER: usize = 3;

/// The gateway's proxy logic.
#[derive(Debug)]
pub struct Gateway {
    control: Arc<Control>,
    shadower: Shadower,
    metrics: Arc<Metrics>,
    /// Client addresses behind trusted load balancers, and verified callers.
    clients: Clients,
    /// Records accepted sign-outs for the backend; `None` when `sessions.redis_url` is
    /// unset.
    logout: Option<LogoutRecorder>,
    /// Request metrics of requests that ended before any route table was consulted.
    unrouted: RouteSeries,
}

/// What the gateway knows about one request as it goes through pingora's phases.
#[derive(Debug)]
pub struct RequestCtx {
    table: Option<Arc<RouteTable>>,
    route: Option<usize>,
    side: Side,
    /// The client's `x-request-id` when it sent one usable id, else a new one.
    request_id: HeaderValue,
    /// The upstream request carries `request_id` already: the client's only id.
    request_id_forwarded: bool,
    /// The new side was unreachable and legacy served instead.
    fell_back: bool,
    shadow: Option<Box<ShadowPlan>>,
    started: Instant,
    /// The canonical path, when the request spelled it otherwise (sent upstream instead).
    canonical: Option<String>,
    /// The connection's peer, looked up once per request.
    peer: Option<IpAddr>,
    /// A sign-out on its way to Supabase Auth, recorded once Auth accepts it.
    logout: Option<Box<PendingLogout>>,
}

impl Gateway {
    pub fn new(
        control: Arc<Control>,
        shadower: Shadower,
        metrics: Arc<Metrics>,
        clients: Clients,
        logout: Option<LogoutRecorder>,
    ) -> Self {
        Self {
            control,
            shadower,
            metrics,
            clients,
            logout,
            unrouted: RouteSeries::default(),
        }
    }
}

/// The `x-studyflow-*` headers among `headers` (names are lower case in `http`), to be
/// removed. Allocates nothing when there is none, the common case.
fn internal_headers(headers: &http::HeaderMap) -> Vec<http::HeaderName> {
    headers
        .keys()
        .filter(|name| name.as_str().starts_with(INTERNAL_PREFIX))
        .cloned()
        .collect()
}

/// What the request filter reads from a request head in one pass.
struct Head<'a> {
    /// Names and values of every header.
    bytes: usize,
    /// The `x-studyflow-*` headers, to be removed.
    internal: Vec<http::HeaderName>,
    /// The first `x-request-id` and how many there are.
    request_id: Option<&'a HeaderValue>,
    request_ids: usize,
}

fn inspect_head(headers: &http::HeaderMap) -> Head<'_> {
    let mut head = Head {
        bytes: 0,
        internal: Vec::new(),
        request_id: None,
        request_ids: 0,
    };
    for (name, value) in headers {
        head.bytes += name.as_str().len() + value.len();
        if name.as_str().starts_with(INTERNAL_PREFIX) && head.internal.last() != Some(name) {
            head.internal.push(name.clone());
        } else if name.as_str() == REQUEST_ID {
            head.request_id.get_or_insert(value);
            head.request_ids += 1;
        }
    }
    head
}

/// Whether a client's `x-request-id` is kept: short, printable, no spaces.
fn usable_request_id(value: &HeaderValue) -> bool {
    !value.is_empty() && value.len() <= 200 && value.as_bytes().iter().all(u8::is_ascii_graphic)
}

/// A gateway-made answer: JSON `{code, message, request_id}` with `x-request-id`.
async fn respond_json(
    session: &mut Session,
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
) -> Result<()> {
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "request_id": request_id,
    })
    .to_string();
    let mut response = ResponseHeader::build(status, Some(4))?;
    response.insert_header("content-type", "application/json")?;
    response.insert_header("content-length", body.len())?;
    response.insert_header(REQUEST_ID, request_id)?;
    response.insert_header("cache-control", "no-store")?;
    session
        .write_response_header(Box::new(response), false)
        .await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}

/// A stable hash of who sent a request, for counting distinct callers of new-side
/// errors (see [`Clients::guard_caller`]).
fn caller_hash(clients: &Clients, session: &Session, peer: Option<IpAddr>) -> u64 {
    let headers = &session.req_header().headers;
    let caller = clients.guard_caller(headers, clients.address(headers, peer));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    caller.hash(&mut hasher);
    hasher.finish()
}

impl RequestCtx {
    fn route(&self) -> Option<&Route> {
        Some(self.table.as_ref()?.route(self.route?))
    }

    fn route_name(&self) -> &str {
        self.route().map_or("-", |r| r.spec.name.as_str())
    }

    /// The request id as text (it is printable ASCII, whether the client's or new).
    fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or("-")
    }
}

impl Gateway {
    /// A sign-out to record once Supabase Auth accepts it, when sign-outs are recorded.
    fn pending_logout(&self, request: &RequestHeader, path: &str) -> Option<Box<PendingLogout>> {
        if self.logout.is_none() || path != LOGOUT_PATH || request.method != http::Method::POST {
            return None;
        }
        PendingLogout::of(
            header(request, http::header::AUTHORIZATION),
            request.uri.query(),
        )
        .map(Box::new)
    }
}

fn header(request: &RequestHeader, name: impl http::header::AsHeaderName) -> Option<&str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_upgrade(request: &RequestHeader) -> bool {
    request.headers.contains_key(http::header::UPGRADE)
}

/// How the new side did on a request it served: an upstream error is a timeout or a
/// connection failure; otherwise the status decides.
fn new_outcome(status: u16, error: Option<&Error>) -> NewOutcome {
    if let Some(error) = error.filter(|e| *e.esource() == ErrorSource::Upstream) {
        return match crate::upstream::timed_out(error) {
            true => NewOutcome::Timeout,
            false => NewOutcome::ConnectFailure,
        };
    }
    if status >= 500 {
        NewOutcome::ServerError
    } else {
        NewOutcome::Ok
    }
}

/// The answer to a request that failed: status, code and message (status 0 when the
/// client's connection failed and nothing can be said). An upstream that did not answer
/// in time is a 504, whatever step it stalled in ([`crate::upstream::timed_out`]).
fn error_answer(e: &Error) -> (u16, &'static str, &'static str) {
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(status), _) => (*status, "ERROR", "the request failed"),
        (_, ErrorSource::Upstream) if crate::upstream::timed_out(e) => (
            504,
            "UPSTREAM_TIMEOUT",
            "the upstream did not answer in time",
        ),
        (_, ErrorSource::Upstream) => (502, "UPSTREAM_UNAVAILABLE", "the upstream failed"),
        (
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
            ErrorSource::Downstream,
        ) => (0, "", ""),
        (_, ErrorSource::Downstream) => (400, "BAD_REQUEST", "the request is malformed"),
        _ => (500, "INTERNAL", "the gateway failed"),
    }
}

/// A random (version 4) UUID for a request that came without an id. Drawn from a
/// thread-local generator: `Uuid::new_v4` asks the kernel for every id, a system call per
/// request. Request ids need to be unique, not unpredictable.
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_ne_bytes()).into_uuid();
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            table: None,
            route: None,
            side: Side::Legacy,
            request_id: HeaderValue::from_static(""),
            request_id_forwarded: false,
            fell_back: false,
            shadow: None,
            started: Instant::now(),
            canonical: None,
            peer: None,
            logout: None,
        }
    }

    /// No downstream modules. pingora's default adds a response compression module,
    /// disabled, whose context is built and whose filters run on every request; the
    /// gateway passes answers on as the upstream sent them.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let table = self.control.table();
        let request = session.req_header();
        let head = inspect_head(&request.headers);
        match head.request_id.filter(|id| usable_request_id(id)) {
            Some(id) => {
                ctx.request_id = id.clone();
                ctx.request_id_forwarded = head.request_ids == 1;
            }
            None => ctx.request_id = new_request_id(),
        }
        // A copy made by this deployment's gateways (a new side that is itself a gateway)
        // is never copied again.
        let own_copy = self.shadower.is_own_copy(
            request
                .headers
                .get(known::SHADOW.name())
                .map(|v| v.as_bytes()),
        );
        let internal = head.internal;
        if head.bytes > MAX_HEADER_BYTES {
            ctx.table = Some(table);
            let message = format!("request headers exceed {MAX_HEADER_BYTES} bytes");
            respond_json(
                session,
                431,
                "HEADERS_TOO_LARGE",
                &message,
                ctx.request_id(),
            )
            .await?;
            return Ok(true);
        }
        match canonical_path(request.uri.path()) {
            Ok(Cow::Borrowed(_)) => {}
            Ok(Cow::Owned(path)) => ctx.canonical = Some(path),
            Err(why) => {
                ctx.table = Some(table);
                let message = format!("invalid request path: {why}");
                respond_json(session, 400, "INVALID_PATH", &message, ctx.request_id()).await?;
                return Ok(true);
            }
        }
        ctx.peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let request = session.req_header_mut();
        for name in internal {
            request.remove_header(&name);
        }
        let request = session.req_header();
        let path = ctx.canonical.as_deref().unwrap_or(request.uri.path());
        ctx.logout = self.pending_logout(request, path);
        // The client's address is only needed for a canary request that carries no token.
        let client = || {
            self.clients
                .address(&request.headers, ctx.peer)
                .map(|ip| ip.to_string().into())
        };
        let decision = table.decide(request.method.as_str(), path, || {
            request_identity(
                header(request, http::header::AUTHORIZATION),
                header(request, known::APIKEY.name()),
                None,
            )
            .map(|id| id.into_owned().into())
            .or_else(client)
        });
        match decision {
            Decision::Blocked { route } => {
                ctx.route = Some(route);
                ctx.table = Some(table);
                respond_json(
                    session,
                    404,
                    "NOT_FOUND",
                    "Requested function was not found",
                    ctx.request_id(),
                )
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
                    && !own_copy
                    && !is_upgrade(request)
                    && route.spec.copies(request.method.as_str(), target)
                    && sampled(route.spec.shadow.sample_percent)
                {
                    let uri = match request.uri.query() {
                        Some(query) => format!("{path}?{query}"),
                        None => path.to_owned(),
                    };
                    ctx.shadow = self
                        .shadower
                        .plan(route, request, uri, target, side)
                        .map(Box::new);
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
                tracing::warn!(route = %route.spec.name, request_id = ctx.request_id(), "new side unreachable; legacy serves");
            }
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let upstream = match ctx.route() {
            Some(route) => route.upstream(ctx.side),
            None => match &ctx.table {
                Some(table) => &table.default_legacy,
                None => return Ok(()),
            },
        };
        upstream_request.insert_header(&known::HOST, upstream.host_header().clone())?;
        if !ctx.request_id_forwarded {
            upstream_request.insert_header(&known::REQUEST_ID, ctx.request_id.clone())?;
        }
        let (chain, proto) = self
            .clients
            .forwarded(&session.req_header().headers, ctx.peer);
        upstream_request.insert_header(&known::FORWARDED_FOR, chain)?;
        upstream_request.insert_header(&known::FORWARDED_PROTO, proto)?;
        if let Some(path) = &ctx.canonical {
            let uri = match upstream_request.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path.clone(),
            };
            let uri = uri
                .parse::<http::Uri>()
                .or_err(ErrorType::InvalidHTTPHeader, "canonical path")?;
            upstream_request.set_uri(uri);
        }
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
            && !self
                .shadower
                .dispatch(plan, ctx.request_id.to_str().unwrap_or("-"))
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
        if let (Some(recorder), Some(pending)) = (&self.logout, ctx.logout.take())
            && response.status.is_success()
        {
            // Before the answer goes back: the client's next request is refused already.
            // Boxed, as a sign-out is rare: the Redis write's future is large, and held
            // inline it would make every answer's filter future as large, a copy of it
            // made on every request.
            Box::pin(recorder.record(&pending.0)).await;
        }
        if let Some(plan) = ctx.shadow.as_mut() {
            plan.served_head(
                response,
                self.shadower.limits.max_body_bytes,
                &self.shadower.budget,
            );
        }
        for name in internal_headers(&response.headers) {
            response.remove_header(&name);
        }
        if let Some(route) = ctx.route() {
            let extra = &route.answer_headers.extra;
            response.reserve_headers(ADDED_TO_ANSWER + extra.len())?;
            for (name, value) in extra {
                response.insert_header(name, value.clone())?;
            }
            response.insert_header(&known::ROUTE, route.answer_headers.route.clone())?;
        }
        let side = HeaderValue::from_static(ctx.side.name());
        response.insert_header(&known::SERVED_BY, side)?;
        response.insert_header(&known::REQUEST_ID, ctx.request_id.clone())?;
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

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, code, message) = error_answer(e);
        // Nothing can be said once the answer has started, or to a closed connection.
        if status > 0 && session.response_written().is_none() {
            let sent = respond_json(session, status, code, message, ctx.request_id()).await;
            if let Err(error) = sent {
                tracing::debug!(%error, request_id = ctx.request_id(), "error answer not sent");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let mut outcome =
            (ctx.side == Side::New && ctx.route.is_some()).then(|| new_outcome(status, error));
        if outcome == Some(NewOutcome::ServerError) && error.is_none() {
            // A 5xx answer may be the contract's own (the legacy answers some auth failures
            // with 500): it counts against the new side only if the legacy, given a copy,
            // answered otherwise, or if enough distinct callers had one.
            let caller = caller_hash(&self.clients, session, ctx.peer);
            match ctx.shadow.as_ref().is_some_and(|plan| plan.will_compare()) {
                true => {
                    outcome = None;
                    if let Some(plan) = ctx.shadow.take() {
                        plan.finish(true, Some(caller));
                    }
                }
                false => outcome = Some(NewOutcome::UnconfirmedError(caller)),
            }
        }
        if let Some(plan) = ctx.shadow.take() {
            plan.finish(error.is_none(), None);
        }
        if !ctx.route().is_some_and(|r| r.spec.blocked) {
            let series = match (ctx.route(), &ctx.table) {
                (Some(route), _) => &route.series,
                (None, Some(table)) => &table.passthrough_series,
                (None, None) => &self.unrouted,
            };
            let elapsed = ctx.started.elapsed();
            self.metrics
                .request(series, ctx.route_name(), ctx.side, status, elapsed);
        }
        if let (Some(outcome), Some(route)) = (outcome, ctx.route()) {
            route.stats.new_outcome(outcome);
        }
        let request = session.req_header();
        tracing::info!(
            target: ACCESS_LOG,
            request_id = ctx.request_id(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_that_stalls_at_any_step_is_a_gateway_timeout() {
        for stalled in [
            ErrorType::ConnectTimedout,
            ErrorType::TLSHandshakeTimedout,
            ErrorType::ReadTimedout,
            ErrorType::WriteTimedout,
        ] {
            let (status, code, _) = error_answer(&Error::new_up(stalled.clone()));
            assert_eq!((status, code), (504, "UPSTREAM_TIMEOUT"), "{stalled:?}");
        }
        let (status, code, _) = error_answer(&Error::new_up(ErrorType::ConnectRefused));
        assert_eq!((status, code), (502, "UPSTREAM_UNAVAILABLE"));
    }

    #[test]
    fn client_side_failures_are_told_apart_from_the_gateway_s_own() {
        let closed = Error::new_down(ErrorType::ConnectionClosed);
        assert_eq!(
            error_answer(&closed).0,
            0,
            "nothing to say to a closed connection"
        );
        let malformed = Error::new_down(ErrorType::InvalidHTTPHeader);
        assert_eq!(error_answer(&malformed).0, 400);
        let internal = Error::new_in(ErrorType::InternalError);
        assert_eq!(error_answer(&internal).0, 500);
        let status = Error::new_in(ErrorType::HTTPStatus(413));
        assert_eq!(error_answer(&status).0, 413);
    }
}
