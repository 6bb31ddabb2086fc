//! Shadow traffic: copies of requests sent to the side that is not serving, and the
//! capture of both answers for comparison.
//!
//! The request path only clones `Bytes` handles into a [`ShadowPlan`] and, once the
//! client's request body has been forwarded, hands a [`ShadowJob`] to a bounded queue with
//! `try_send`: it never waits. A background worker sends the copies with bounded
//! concurrency and a timeout, waits for the served answer's capture, and passes the pair
//! to the comparison queue. Whatever bound is hit, the copy is dropped and counted; the
//! client never notices.
//!
//! Every byte held for shadowing (copied request bodies, captured answers, pairs waiting
//! for comparison) is reserved from one [`Budget`] (`shadow.max_buffered_bytes`); a copy
//! that would go over it is dropped and counted, so a stalled shadow side cannot grow the
//! gateway's memory beyond the budget.
//!
//! A copy sent to the new side carries [`SHADOW_HEADER`] with the secret shared with the
//! new backend, which then runs it as a dry run; copies to the legacy side never carry it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::v1::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{Error, ErrorType};
use pingora::protocols::http::v1::client::HttpSession;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use studyflow_diffing::{CapturedRequest, CapturedResponse, CompiledRules, Exchange};
use studyflow_flags::Side;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::header_names as known;
use crate::kept_alive::KeptAlive;
use crate::metrics::Metrics;
use crate::stats::{NewOutcome, RouteStats, ShadowDrop};
use crate::upstream::Upstream;

/// Header carrying the request id through the gateway, both upstreams and the logs.
pub const REQUEST_ID: &str = "x-request-id";

/// True for `percent` % of calls, at random.
pub(crate) fn sampled(percent: u8) -> bool {
    percent >= 100 || fastrand::u8(0..100) < percent
}

/// Marks a shadow copy. To the new side its value is the secret shared with the new
/// backend, which runs such a request as a dry run; to the legacy side it is
/// [`LEGACY_COPY_MARK`]. Clients' values are removed.
pub const SHADOW_HEADER: &str = "x-studyflow-shadow";

/// [`SHADOW_HEADER`]'s value on copies to the legacy side, which has no secret to know.
pub const LEGACY_COPY_MARK: &str = "copy";

/// How long a shadow job waits for the served answer to finish (long streams included).
const SERVED_WAIT: Duration = Duration::from_secs(600);
/// How often the copies' idle connections are checked for ones their servers closed.
const SWEEP_EVERY: Duration = Duration::from_secs(15);

/// Request headers never copied to the shadow side: hop-by-hop ones, and those the
/// shadow client sets itself.
const SKIPPED_HEADERS: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "accept-encoding",
];

/// Bounds of the shadow machinery.
#[derive(Debug, Clone, Copy)]
pub struct ShadowLimits {
    /// Copies in flight at once.
    pub max_concurrency: usize,
    /// Copies waiting for a free slot; beyond it copies are dropped.
    pub queue_size: usize,
    /// Time a shadow side has to answer (unless the route sets its own).
    pub timeout: Duration,
    /// Largest request or response body captured; a larger request is not shadowed.
    pub max_body_bytes: usize,
    /// All bytes held for copies and comparisons at once.
    pub max_buffered_bytes: usize,
    /// Pairs waiting for comparison; beyond it pairs are dropped.
    pub compare_queue_size: usize,
    /// Whether answers are captured and compared at all.
    pub compare: bool,
}

/// The bytes held for shadowing by the whole gateway, against one limit.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// Bytes held right now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.max)
            })
            .is_ok()
    }
}

/// Bytes reserved from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Reservation {
    pub fn new(budget: &Arc<Budget>) -> Self {
        Self {
            budget: Arc::clone(budget),
            bytes: 0,
        }
    }

    /// Reserves `bytes` more; false (and nothing reserved) when the budget has no room.
    pub fn grow(&mut self, bytes: usize) -> bool {
        let ok = self.budget.reserve(bytes);
        if ok {
            self.bytes += bytes;
        }
        ok
    }

    /// Takes over what `other` holds.
    pub fn absorb(&mut self, mut other: Reservation) {
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

/// Up to `cap` bytes of a body, kept as the chunks that went by, reserved from the
/// shadow budget when it has one.
#[derive(Debug)]
pub struct BodyBuffer {
    chunks: Vec<Bytes>,
    len: usize,
    cap: usize,
    truncated: bool,
    reservation: Option<Reservation>,
    over_budget: bool,
}

impl BodyBuffer {
    pub fn new(cap: usize) -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
            cap,
            truncated: false,
            reservation: None,
            over_budget: false,
        }
    }

    /// A buffer whose bytes are reserved from `budget`.
    pub fn with_budget(cap: usize, budget: &Arc<Budget>) -> Self {
        Self {
            reservation: Some(Reservation::new(budget)),
            ..Self::new(cap)
        }
    }

    pub fn push(&mut self, chunk: &Bytes) {
        if self.truncated || self.over_budget || chunk.is_empty() {
            return;
        }
        let room = self.cap - self.len;
        let taken = chunk.len().min(room);
        if let Some(reservation) = self.reservation.as_mut()
            && !reservation.grow(taken)
        {
            // Nothing more is kept: the budget is spent.
            self.over_budget = true;
            self.chunks.clear();
            self.reservation = None;
            return;
        }
        if chunk.len() > room {
            self.chunks.push(chunk.slice(..room));
            self.len = self.cap;
            self.truncated = true;
        } else {
            self.chunks.push(chunk.clone());
            self.len += chunk.len();
        }
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The budget had no room for part of the body: what is kept is incomplete.
    pub fn over_budget(&self) -> bool {
        self.over_budget
    }

    /// The reservation of the bytes kept (moved out; the bytes stay).
    pub fn take_reservation(&mut self) -> Option<Reservation> {
        self.reservation.take()
    }

    /// The captured bytes as one buffer (copies only when there were several chunks).
    pub fn into_bytes(self) -> Bytes {
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut out = BytesMut::with_capacity(self.len);
                for chunk in self.chunks {
                    out.extend_from_slice(&chunk);
                }
                out.freeze()
            }
        }
    }
}

/// The served answer as captured on the request path.
#[derive(Debug)]
pub struct ServedCapture {
    status: u16,
    headers: http::HeaderMap,
    body: BodyBuffer,
}

impl ServedCapture {
    pub fn new(response: &ResponseHeader, cap: usize, budget: &Arc<Budget>) -> Self {
        Self {
            status: response.status.as_u16(),
            headers: response.headers.clone(),
            body: BodyBuffer::with_budget(cap, budget),
        }
    }

    pub fn push(&mut self, chunk: &Bytes) {
        self.body.push(chunk);
    }

    /// The captured answer and the reservation of its bytes; `None` when the budget had
    /// no room for all of it.
    fn into_response(mut self) -> Option<(CapturedResponse, Option<Reservation>)> {
        if self.body.over_budget() {
            return None;
        }
        let reservation = self.body.take_reservation();
        let response = CapturedResponse {
            status: self.status,
            truncated: self.body.truncated(),
            headers: self.headers,
            body: self.body.into_bytes(),
        };
        Some((response, reservation))
    }
}

/// The served answer as handed to the shadow job.
#[derive(Debug)]
pub struct Served {
    response: CapturedResponse,
    reservation: Option<Reservation>,
    /// Set when the new side served a 5xx: the caller's identity hash. The job settles
    /// whether it counts against the new side once the legacy's answer is in.
    guard_caller: Option<u64>,
}

/// Per-request shadow state, kept in the request context while the request is served.
#[derive(Debug)]
pub struct ShadowPlan {
    route: String,
    stats: Arc<RouteStats>,
    rules: Arc<CompiledRules>,
    target: Arc<Upstream>,
    /// Where a noise probe goes (the serving side), when this request is probed.
    probe: Option<Arc<Upstream>>,
    served_by: Side,
    /// The phase the request was served under, and when.
    under: ServedUnder,
    timeout: Duration,
    method: String,
    uri: String,
    headers: http::HeaderMap,
    body: BodyBuffer,
    dispatched: bool,
    /// Whether the served answer is captured for comparison.
    compare: bool,
    served_tx: Option<oneshot::Sender<Served>>,
    served: Option<ServedCapture>,
}

impl ShadowPlan {
    /// Records a request body chunk; returns true once the whole body went by.
    pub fn request_chunk(&mut self, chunk: Option<&Bytes>, end_of_stream: bool) -> bool {
        if let Some(chunk) = chunk {
            self.body.push(chunk);
        }
        end_of_stream && !self.dispatched
    }

    /// Starts capturing the served answer. It may come before the request body is
    /// complete (an early 401, say): it is kept and handed over once the copy is sent.
    pub fn served_head(&mut self, response: &ResponseHeader, cap: usize, budget: &Arc<Budget>) {
        if self.compare {
            self.served = Some(ServedCapture::new(response, cap, budget));
        }
    }

    pub fn served_chunk(&mut self, chunk: &Bytes) {
        if let Some(served) = self.served.as_mut() {
            served.push(chunk);
        }
    }

    /// Whether a copy is on its way and the served answer will be compared with it.
    pub fn will_compare(&self) -> bool {
        self.served_tx.is_some()
    }

    /// Hands the served capture to the waiting shadow job. `ok` is false when the served
    /// request failed, which the job counts. `guard_caller` asks the job to settle a
    /// new-side 5xx against the legacy's answer.
    pub fn finish(mut self, ok: bool, guard_caller: Option<u64>) {
        let Some(tx) = self.served_tx.take() else {
            return;
        };
        match self
            .served
            .take()
            .filter(|_| ok)
            .map(ServedCapture::into_response)
        {
            Some(Some((response, reservation))) => {
                let _ = tx.send(Served {
                    response,
                    reservation,
                    guard_caller,
                });
            }
            Some(None) => {
                // The answer did not fit in the budget: the pair is dropped, and counted.
                self.stats.shadow_dropped(ShadowDrop::OverBudget);
                drop(tx);
            }
            None => drop(tx),
        }
    }
}

/// One copy to send.
#[derive(Debug)]
pub struct ShadowJob {
    route: String,
    request_id: String,
    stats: Arc<RouteStats>,
    rules: Arc<CompiledRules>,
    target: Arc<Upstream>,
    probe: Option<Arc<Upstream>>,
    served_by: Side,
    under: ServedUnder,
    timeout: Duration,
    request: CapturedRequest,
    /// The request body's share of the budget, held until the job ends.
    reservation: Option<Reservation>,
    /// The served answer, when answers are compared.
    served_rx: Option<oneshot::Receiver<Served>>,
}

/// The request path's handle on the shadow queue.
#[derive(Debug, Clone)]
pub struct Shadower {
    tx: mpsc::Sender<ShadowJob>,
    pub limits: ShadowLimits,
    pub budget: Arc<Budget>,
    /// The dry-run marker's value for copies to the new side.
    secret: Option<http::HeaderValue>,
}

impl Shadower {
    /// Whether `value` of an incoming [`SHADOW_HEADER`] is this gateway's secret: the
    /// request is a copy made by a gateway of this deployment, which is never copied
    /// again. Compared in constant time.
    pub fn is_own_copy(&self, value: Option<&[u8]>) -> bool {
        match (&self.secret, value) {
            (Some(secret), Some(value)) => {
                subtle::ConstantTimeEq::ct_eq(secret.as_bytes(), value).into()
            }
            _ => false,
        }
    }

    /// Snapshots the request head for a copy to `target` (`uri` is the canonical path
    /// and query). `None` when the copy cannot be made safely: towards the new side
    /// without the dry-run secret (counted).
    pub fn plan(
        &self,
        route: &crate::routing::Route,
        request: &RequestHeader,
        uri: String,
        target: Side,
        served_by: Side,
    ) -> Option<ShadowPlan> {
        if target == Side::New && self.secret.is_none() {
            route.stats.shadow_dropped(ShadowDrop::NoSecret);
            return None;
        }
        // Handles on the parsed head's names and values: nothing is copied.
        let mut headers = http::HeaderMap::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            if !SKIPPED_HEADERS.contains(&name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
        let rules = Arc::clone(&route.spec.rules);
        let probe = (rules.may_probe(request.method.as_str()) && sampled(rules.probe_percent))
            .then(|| Arc::clone(route.upstream(served_by)));
        Some(ShadowPlan {
            route: route.spec.name.clone(),
            stats: Arc::clone(&route.stats),
            rules,
            probe,
            target: Arc::clone(route.upstream(target)),
            served_by,
            under: ServedUnder {
                phase: route.phase,
                at: chrono::Utc::now(),
            },
            timeout: route
                .spec
                .timeout_secs
                .map_or(self.limits.timeout, Duration::from_secs),
            method: request.method.as_str().to_owned(),
            uri,
            headers,
            body: BodyBuffer::with_budget(self.limits.max_body_bytes, &self.budget),
            dispatched: false,
            compare: self.limits.compare,
            served_tx: None,
            served: None,
        })
    }

    /// Queues the copy of `plan`'s request, without waiting. On success the plan waits
    /// for the served answer; otherwise the copy is counted as dropped.
    pub fn dispatch(&self, plan: &mut ShadowPlan, request_id: &str) -> bool {
        plan.dispatched = true;
        if plan.body.truncated() {
            plan.stats.shadow_dropped(ShadowDrop::BodyTooLarge);
            return false;
        }
        if plan.body.over_budget() {
            plan.stats.shadow_dropped(ShadowDrop::OverBudget);
            return false;
        }
        let (served_tx, served_rx) = match self.limits.compare {
            true => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let mut buffer = std::mem::replace(&mut plan.body, BodyBuffer::new(0));
        let reservation = buffer.take_reservation();
        let job = ShadowJob {
            route: std::mem::take(&mut plan.route),
            request_id: request_id.to_owned(),
            stats: Arc::clone(&plan.stats),
            rules: Arc::clone(&plan.rules),
            target: Arc::clone(&plan.target),
            probe: plan.probe.take(),
            served_by: plan.served_by,
            under: plan.under,
            timeout: plan.timeout,
            request: CapturedRequest {
                method: std::mem::take(&mut plan.method),
                uri: std::mem::take(&mut plan.uri),
                headers: std::mem::take(&mut plan.headers),
                body: buffer.into_bytes(),
                truncated: false,
            },
            reservation,
            served_rx,
        };
        match self.tx.try_send(job) {
            Ok(()) => {
                plan.stats.shadow_sent();
                plan.served_tx = served_tx;
                true
            }
            Err(_) => {
                plan.stats.shadow_dropped(ShadowDrop::QueueFull);
                false
            }
        }
    }
}

/// The phase a request was served under, and when: a pair is evidence for that phase
/// only, however late it is compared.
#[derive(Debug, Clone, Copy)]
pub struct ServedUnder {
    pub phase: studyflow_flags::Phase,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What the comparison stage receives.
#[derive(Debug)]
pub struct ComparedPair {
    pub exchange: Exchange,
    pub under: ServedUnder,
    pub stats: Arc<RouteStats>,
    pub rules: Arc<CompiledRules>,
    /// A second answer of the serving side to the same request (noise probe).
    pub probe: Option<CapturedResponse>,
    /// The pair's bytes in the shadow budget, given back once it is compared.
    pub reservation: Option<Reservation>,
}

/// Creates the request path's [`Shadower`] and the background worker that serves it.
/// `compare` receives the pairs; `secret` marks copies to the new side as dry runs.
pub fn channel(
    limits: ShadowLimits,
    secret: Option<&str>,
    compare: mpsc::Sender<ComparedPair>,
    metrics: Arc<Metrics>,
) -> crate::Result<(Shadower, ShadowWorker)> {
    let secret = secret
        .map(|text| {
            http::HeaderValue::from_str(text)
                .map(|mut value| {
                    value.set_sensitive(true);
                    value
                })
                .map_err(|_| crate::Error::Config("`shadow.secret` is not a header value".into()))
        })
        .transpose()?;
    let (tx, rx) = mpsc::channel(limits.queue_size.max(1));
    let budget = Budget::new(limits.max_buffered_bytes);
    Ok((
        Shadower {
            tx,
            limits,
            budget: Arc::clone(&budget),
            secret: secret.clone(),
        },
        ShadowWorker {
            rx: Mutex::new(Some(rx)),
            limits,
            budget,
            secret,
            compare,
            metrics,
        },
    ))
}

/// Sends the queued copies; runs as a pingora background service.
#[derive(Debug)]
pub struct ShadowWorker {
    rx: Mutex<Option<mpsc::Receiver<ShadowJob>>>,
    limits: ShadowLimits,
    budget: Arc<Budget>,
    secret: Option<http::HeaderValue>,
    compare: mpsc::Sender<ComparedPair>,
    metrics: Arc<Metrics>,
}

/// What a job needs besides itself.
#[derive(Clone)]
struct JobContext {
    /// Copies go out through pingora's HTTP/1 connector, as served requests do (upstream
    /// peers speak HTTP/1): the same HTTP/1 and TLS stack. The HTTP/1 connector, not the
    /// one that also speaks HTTP/2: each of that one's futures holds the states of both,
    /// and moving them cost about 10 000 instructions per copy.
    connector: Arc<Connector>,
    /// The copies' idle connections, kept here rather than in the connector's pool.
    kept_alive: Arc<KeptAlive>,
    cap: usize,
    budget: Arc<Budget>,
    secret: Option<http::HeaderValue>,
    compare: mpsc::Sender<ComparedPair>,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl BackgroundService for ShadowWorker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut rx| rx.take()) else {
            return;
        };
        let kept_alive = Arc::new(KeptAlive::new(self.limits.max_concurrency));
        let context = JobContext {
            connector: Arc::new(Connector::new(None)),
            kept_alive: Arc::clone(&kept_alive),
            cap: self.limits.max_body_bytes,
            budget: Arc::clone(&self.budget),
            secret: self.secret.clone(),
            compare: self.compare.clone(),
            metrics: Arc::clone(&self.metrics),
        };
        let slots = Arc::new(Semaphore::new(self.limits.max_concurrency.max(1)));
        let mut sweeps = tokio::time::interval(SWEEP_EVERY);
        sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One wait for shutdown for the whole loop, polled first (as in the comparison
        // stage's loop). Queued jobs come before a sweep: while they keep coming, the
        // connections they use are tested as they are taken, and the sweep waits for the
        // queue's next lull (at most `max_concurrency` idle connections wait with it).
        let stopping = shutdown.changed();
        tokio::pin!(stopping);
        loop {
            let job = tokio::select! {
                biased;
                _ = &mut stopping => None,
                job = rx.recv() => job,
                _ = sweeps.tick() => {
                    kept_alive.sweep();
                    continue;
                }
            };
            let Some(job) = job else { break };
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let context = context.clone();
            // Boxed: a job's future is about 1.6 KB, which the task would otherwise copy
            // in when it is spawned and again when it ends.
            tokio::spawn(Box::pin(async move {
                run_job(&context, job).await;
                drop(slot);
            }));
        }
    }
}

async fn run_job(context: &JobContext, job: ShadowJob) {
    let probe = async {
        match &job.probe {
            Some(upstream) => send_copy(context, &job, upstream).await.ok(),
            None => None,
        }
    };
    let started = std::time::Instant::now();
    let copy = async {
        let answer = send_copy(context, &job, &job.target).await;
        if answer.is_ok() {
            context
                .metrics
                .shadow_answered(&job.route, job.target.side, started.elapsed());
        }
        answer
    };
    let (shadow, probe) = tokio::join!(copy, probe);
    // Diffing off: the copy was the whole job.
    let compares = job.served_rx.is_some();
    let served = match job.served_rx {
        None => None,
        // Most served answers are in by the time the copy's is: no timer for those.
        Some(mut served_rx) => match served_rx.try_recv() {
            Ok(served) => Some(served),
            Err(oneshot::error::TryRecvError::Closed) => None,
            Err(oneshot::error::TryRecvError::Empty) => {
                match tokio::time::timeout(SERVED_WAIT, served_rx).await {
                    Ok(Ok(served)) => Some(served),
                    _ => None,
                }
            }
        },
    };
    // A new-side 5xx waits for the legacy's answer to tell a fault from the contract's own
    // error answer (the legacy answers some auth failures with 500 too).
    if let Some(caller) = served.as_ref().and_then(|s| s.guard_caller) {
        let outcome = match &shadow {
            Ok((legacy, _)) if legacy.status >= 500 => NewOutcome::SharedError,
            Ok(_) => NewOutcome::ServerError,
            Err(_) => NewOutcome::UnconfirmedError(caller),
        };
        job.stats.new_outcome(outcome);
    }
    let (shadow, shadow_reservation) = match shadow {
        Ok(answer) => answer,
        Err(why) => {
            job.stats.shadow_dropped(why);
            tracing::debug!(route = %job.route, request_id = %job.request_id, ?why, "shadow copy failed");
            return;
        }
    };
    let Some(served) = served else {
        if compares {
            job.stats.shadow_dropped(ShadowDrop::ServedFailed);
        }
        return;
    };
    let mut reservation = Reservation::new(&context.budget);
    for held in [job.reservation, served.reservation, shadow_reservation]
        .into_iter()
        .flatten()
    {
        reservation.absorb(held);
    }
    let pair = ComparedPair {
        under: job.under,
        stats: Arc::clone(&job.stats),
        rules: Arc::clone(&job.rules),
        probe: probe.map(|(response, _)| response),
        reservation: Some(reservation),
        exchange: Exchange {
            route: job.route,
            request_id: job.request_id,
            served_by: job.served_by.name().to_owned(),
            request: job.request,
            served: served.response,
            shadow,
        },
    };
    if let Err(mpsc::error::TrySendError::Full(pair) | mpsc::error::TrySendError::Closed(pair)) =
        context.compare.try_send(pair)
    {
        pair.stats.shadow_dropped(ShadowDrop::CompareQueueFull);
    }
}

/// Sends `job`'s request to `upstream` and reads its answer, within the job's timeout.
///
/// A kept-alive connection that its server closed just as it was taken fails before any
/// of the answer arrives. Such a copy is sent again on a new connection, as pingora's
/// proxy does for a served request that fails so on a reused connection, when sending it
/// twice does no harm: a dry run on the new side, or a method that may be repeated.
async fn send_copy(
    context: &JobContext,
    job: &ShadowJob,
    upstream: &Upstream,
) -> Result<(CapturedResponse, Option<Reservation>), ShadowDrop> {
    let mark = copy_mark(context, upstream.side).ok_or(ShadowDrop::NoSecret)?;
    let head = copy_head(job, upstream, mark).map_err(|_| ShadowDrop::Error)?;
    let (peer, key) = upstream.default_peer();
    let body = &job.request.body;
    // Boxed: a connection's state is large, and the job's future is moved into its task.
    let exchange = Box::pin(async {
        let kept = context.kept_alive.take(key);
        let reused = kept.is_some();
        let mut session = match kept {
            Some(stream) => HttpSession::new_with_options(stream, peer),
            // Boxed: connecting anew holds the TCP and TLS states (about 8 KB), which a
            // kept-alive connection, the common case, should not carry or copy.
            None => Box::pin(context.connector.get_http_session(peer)).await?.0,
        };
        let mut answer = exchange(context, &mut session, head, body).await;
        if let Err(error) = &answer
            && reused
            && failed_as_reused(error)
            && repeatable(job, upstream.side)
        {
            tracing::debug!(route = %job.route, request_id = %job.request_id, %error, "kept-alive connection closed as it was taken; copy sent again");
            let mark = copy_mark(context, upstream.side)
                .ok_or_else(|| Error::new(ErrorType::InternalError))?;
            let head = copy_head(job, upstream, mark)?;
            session = Box::pin(context.connector.get_http_session(peer)).await?.0;
            answer = exchange(context, &mut session, head, body).await;
        }
        // Kept only when the exchange ended cleanly and the upstream keeps it alive.
        session.respect_keepalive();
        if let Some(stream) = session.reuse().await {
            context.kept_alive.keep(key, stream);
        }
        answer
    });
    match tokio::time::timeout(job.timeout, exchange).await {
        Err(_) => Err(ShadowDrop::Timeout),
        Ok(Err(error)) if crate::upstream::timed_out(&error) => Err(ShadowDrop::Timeout),
        Ok(Err(error)) => {
            tracing::debug!(route = %job.route, request_id = %job.request_id, %error, "shadow copy's exchange failed");
            Err(ShadowDrop::Error)
        }
        Ok(Ok(None)) => Err(ShadowDrop::OverBudget),
        Ok(Ok(Some(answer))) => Ok(answer),
    }
}

/// The copy mark for `side`: to the new side the secret shared with the new backend
/// (`None` without one), to the legacy side only that it is a copy.
fn copy_mark(context: &JobContext, side: Side) -> Option<http::HeaderValue> {
    match side {
        Side::New => context.secret.clone(),
        Side::Legacy => Some(http::HeaderValue::from_static(LEGACY_COPY_MARK)),
    }
}

/// Whether sending `job`'s copy to `side` twice does no harm: a dry run on the new side,
/// or an idempotent method.
fn repeatable(job: &ShadowJob, side: Side) -> bool {
    side == Side::New
        || http::Method::from_bytes(job.request.method.as_bytes()).is_ok_and(|m| m.is_idempotent())
}

/// Whether `error`, met on a reused connection, is one pingora marks as a connection
/// closed or reset before any of the answer arrived.
fn failed_as_reused(error: &Error) -> bool {
    let mut retry = error.retry;
    retry.decide_reuse(true);
    retry.retry()
}

/// The copy's request head: the captured request's method, target and headers (its id
/// replaced by the job's), the upstream's `Host`, the copy mark, and the body's length.
fn copy_head(
    job: &ShadowJob,
    upstream: &Upstream,
    mark: http::HeaderValue,
) -> pingora::Result<RequestHeader> {
    let request = &job.request;
    let mut head = RequestHeader::build_no_case(
        request.method.as_str(),
        request.uri.as_bytes(),
        Some(request.headers.len() + 4),
    )?;
    head.insert_header(&known::HOST, upstream.host_header().clone())?;
    head.insert_header(&known::REQUEST_ID, job.request_id.as_str())?;
    head.insert_header(&known::SHADOW, mark)?;
    for (name, value) in &request.headers {
        if name.as_str() != REQUEST_ID {
            head.append_header(name.clone(), value.clone())?;
        }
    }
    let bodiless = matches!(
        request.method.as_str(),
        "GET" | "HEAD" | "DELETE" | "OPTIONS"
    );
    if !(request.body.is_empty() && bodiless) {
        head.insert_header("content-length", request.body.len())?;
    }
    Ok(head)
}

/// One request and its answer on `session`. `None` when the answer went over the shadow
/// budget.
async fn exchange(
    context: &JobContext,
    session: &mut HttpSession,
    head: RequestHeader,
    body: &Bytes,
) -> pingora::Result<Option<(CapturedResponse, Option<Reservation>)>> {
    session.write_request_header(Box::new(head)).await?;
    if !body.is_empty() {
        session.write_body(body).await?;
    }
    session.finish_body().await?;
    // Informational answers (other than a switch of protocols) come before the answer.
    let (status, headers) = loop {
        session.read_response().await?;
        let Some(answer) = session.resp_header() else {
            return Error::e_explain(ErrorType::InvalidHTTPHeader, "no answer head");
        };
        if !answer.status.is_informational() || answer.status.as_u16() == 101 {
            break (answer.status.as_u16(), answer.headers.clone());
        }
    };
    let mut captured = BodyBuffer::with_budget(context.cap, &context.budget);
    while let Some(chunk) = session.read_body_bytes().await? {
        captured.push(&chunk);
        if captured.over_budget() {
            return Ok(None);
        }
        if captured.truncated() {
            break;
        }
    }
    let reservation = captured.take_reservation();
    Ok(Some((
        CapturedResponse {
            status,
            headers,
            truncated: captured.truncated(),
            body: captured.into_bytes(),
        },
        reservation,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_buffers_stop_at_the_cap() {
        let mut buffer = BodyBuffer::new(5);
        buffer.push(&Bytes::from_static(b"abc"));
        assert!(!buffer.truncated());
        buffer.push(&Bytes::from_static(b"defg"));
        assert!(buffer.truncated());
        buffer.push(&Bytes::from_static(b"h"));
        assert_eq!(&buffer.into_bytes()[..], b"abcde");
    }

    #[test]
    fn a_single_chunk_is_not_copied() {
        let chunk = Bytes::from_static(b"payload");
        let mut buffer = BodyBuffer::new(100);
        buffer.push(&chunk);
        assert_eq!(buffer.into_bytes().as_ptr(), chunk.as_ptr());
    }
}
