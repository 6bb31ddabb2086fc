//! Shadow traffic: copies of requests sent to the side that is not serving, and the
//! capture of both answers for comparison.
//!
//! The request path only clones `Bytes` handles into a [`ShadowPlan`] and, once the
//! client's request body has been forwarded, hands a [`ShadowJob`] to a bounded queue with
//! `try_send`: it never waits. A background worker sends the copies with bounded
//! concurrency and a timeout, waits for the served answer's capture, and passes the pair
//! to the comparison queue. Whatever bound is hit, the copy is dropped and counted; the
//! client never notices.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use studyflow_diffing::{CapturedRequest, CapturedResponse, CompiledRules, Exchange};
use studyflow_flags::Side;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::metrics::Metrics;
use crate::stats::{RouteStats, ShadowDrop};
use crate::upstream::Upstream;

/// Marks a shadow copy. A request carrying it is never shadowed again (loop guard), and
/// the new backend runs it as a dry run.
pub const SHADOW_HEADER: &str = "x-studyflow-shadow";

/// How long a shadow job waits for the served answer to finish (long streams included).
const SERVED_WAIT: Duration = Duration::from_secs(600);

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
    /// Pairs waiting for comparison; beyond it pairs are dropped.
    pub compare_queue_size: usize,
    /// Whether answers are captured and compared at all.
    pub compare: bool,
}

/// Up to `cap` bytes of a body, kept as the chunks that went by.
#[derive(Debug)]
pub struct BodyBuffer {
    chunks: Vec<Bytes>,
    len: usize,
    cap: usize,
    truncated: bool,
}

impl BodyBuffer {
    pub fn new(cap: usize) -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
            cap,
            truncated: false,
        }
    }

    pub fn push(&mut self, chunk: &Bytes) {
        if self.truncated || chunk.is_empty() {
            return;
        }
        let room = self.cap - self.len;
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
    headers: Vec<(String, String)>,
    body: BodyBuffer,
}

impl ServedCapture {
    pub fn new(response: &ResponseHeader, cap: usize) -> Self {
        Self {
            status: response.status.as_u16(),
            headers: header_pairs(response.headers.iter()),
            body: BodyBuffer::new(cap),
        }
    }

    pub fn push(&mut self, chunk: &Bytes) {
        self.body.push(chunk);
    }

    fn into_response(self) -> CapturedResponse {
        CapturedResponse {
            status: self.status,
            truncated: self.body.truncated(),
            headers: self.headers,
            body: self.body.into_bytes(),
        }
    }
}

fn header_pairs<'a>(
    headers: impl Iterator<Item = (&'a http::HeaderName, &'a http::HeaderValue)>,
) -> Vec<(String, String)> {
    headers
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
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
    timeout: Duration,
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: BodyBuffer,
    dispatched: bool,
    served_tx: Option<oneshot::Sender<CapturedResponse>>,
    served: Option<ServedCapture>,
}

impl ShadowPlan {
    /// Snapshots the request head for a copy to `target`.
    pub fn new(
        route: &crate::routing::Route,
        request: &RequestHeader,
        target: Side,
        served_by: Side,
        limits: &ShadowLimits,
    ) -> Self {
        let headers = header_pairs(
            request
                .headers
                .iter()
                .filter(|(name, _)| !SKIPPED_HEADERS.contains(&name.as_str())),
        );
        let rules = Arc::clone(&route.spec.rules);
        let probe = (rules.may_probe(request.method.as_str())
            && crate::gateway::sampled(rules.probe_percent))
        .then(|| Arc::clone(route.upstream(served_by)));
        Self {
            route: route.spec.name.clone(),
            stats: Arc::clone(&route.stats),
            rules,
            probe,
            target: Arc::clone(route.upstream(target)),
            served_by,
            timeout: route
                .spec
                .timeout_secs
                .map_or(limits.timeout, Duration::from_secs),
            method: request.method.as_str().to_owned(),
            uri: request.uri.path_and_query().map_or_else(
                || request.uri.path().to_owned(),
                |pq| pq.as_str().to_owned(),
            ),
            headers,
            body: BodyBuffer::new(limits.max_body_bytes),
            dispatched: false,
            served_tx: None,
            served: None,
        }
    }

    /// Records a request body chunk; returns true once the whole body went by.
    pub fn request_chunk(&mut self, chunk: Option<&Bytes>, end_of_stream: bool) -> bool {
        if let Some(chunk) = chunk {
            self.body.push(chunk);
        }
        end_of_stream && !self.dispatched
    }

    /// Starts capturing the served answer (only once the copy is on its way).
    pub fn served_head(&mut self, response: &ResponseHeader, cap: usize) {
        if self.served_tx.is_some() {
            self.served = Some(ServedCapture::new(response, cap));
        }
    }

    pub fn served_chunk(&mut self, chunk: &Bytes) {
        if let Some(served) = self.served.as_mut() {
            served.push(chunk);
        }
    }

    /// Hands the served capture to the waiting shadow job. `ok` is false when the served
    /// request failed, which the job counts.
    pub fn finish(mut self, ok: bool) {
        if let (true, Some(tx), Some(served)) = (ok, self.served_tx.take(), self.served.take()) {
            let _ = tx.send(served.into_response());
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
    timeout: Duration,
    request: CapturedRequest,
    /// The served answer, when answers are compared.
    served_rx: Option<oneshot::Receiver<CapturedResponse>>,
}

/// The request path's handle on the shadow queue.
#[derive(Debug, Clone)]
pub struct Shadower {
    tx: mpsc::Sender<ShadowJob>,
    pub limits: ShadowLimits,
}

impl Shadower {
    /// Queues the copy of `plan`'s request, without waiting. On success the plan waits
    /// for the served answer; otherwise the copy is counted as dropped.
    pub fn dispatch(&self, plan: &mut ShadowPlan, request_id: &str) -> bool {
        plan.dispatched = true;
        if plan.body.truncated() {
            plan.stats.shadow_dropped(ShadowDrop::BodyTooLarge);
            return false;
        }
        let (served_tx, served_rx) = match self.limits.compare {
            true => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let body = std::mem::replace(&mut plan.body, BodyBuffer::new(0)).into_bytes();
        let job = ShadowJob {
            route: plan.route.clone(),
            request_id: request_id.to_owned(),
            stats: Arc::clone(&plan.stats),
            rules: Arc::clone(&plan.rules),
            target: Arc::clone(&plan.target),
            probe: plan.probe.take(),
            served_by: plan.served_by,
            timeout: plan.timeout,
            request: CapturedRequest {
                method: plan.method.clone(),
                uri: plan.uri.clone(),
                headers: std::mem::take(&mut plan.headers),
                body,
                truncated: false,
            },
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

/// What the comparison stage receives.
#[derive(Debug)]
pub struct ComparedPair {
    pub exchange: Exchange,
    pub stats: Arc<RouteStats>,
    pub rules: Arc<CompiledRules>,
    /// A second answer of the serving side to the same request (noise probe).
    pub probe: Option<CapturedResponse>,
}

/// Creates the request path's [`Shadower`] and the background worker that serves it.
/// `compare` receives the pairs.
pub fn channel(
    limits: ShadowLimits,
    compare: mpsc::Sender<ComparedPair>,
    metrics: Arc<Metrics>,
) -> (Shadower, ShadowWorker) {
    let (tx, rx) = mpsc::channel(limits.queue_size.max(1));
    (
        Shadower { tx, limits },
        ShadowWorker {
            rx: Mutex::new(Some(rx)),
            limits,
            compare,
            metrics,
        },
    )
}

/// Sends the queued copies; runs as a pingora background service.
#[derive(Debug)]
pub struct ShadowWorker {
    rx: Mutex<Option<mpsc::Receiver<ShadowJob>>>,
    limits: ShadowLimits,
    compare: mpsc::Sender<ComparedPair>,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl BackgroundService for ShadowWorker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut rx| rx.take()) else {
            return;
        };
        let client = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(self.limits.max_concurrency)
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "shadow client cannot start; shadows will be dropped");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(self.limits.max_concurrency.max(1)));
        loop {
            let job = tokio::select! {
                job = rx.recv() => job,
                _ = shutdown.changed() => None,
            };
            let Some(job) = job else { break };
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let client = client.clone();
            let compare = self.compare.clone();
            let metrics = Arc::clone(&self.metrics);
            let cap = self.limits.max_body_bytes;
            tokio::spawn(async move {
                run_job(&client, job, cap, &compare, &metrics).await;
                drop(slot);
            });
        }
    }
}

async fn run_job(
    client: &reqwest::Client,
    job: ShadowJob,
    cap: usize,
    compare: &mpsc::Sender<ComparedPair>,
    metrics: &Metrics,
) {
    let probe = async {
        match &job.probe {
            Some(upstream) => send_copy(client, &job, upstream, cap).await.ok(),
            None => None,
        }
    };
    let started = std::time::Instant::now();
    let copy = async {
        let answer = send_copy(client, &job, &job.target, cap).await;
        if answer.is_ok() {
            metrics.shadow_answered(&job.route, job.target.side, started.elapsed());
        }
        answer
    };
    let (shadow, probe) = tokio::join!(copy, probe);
    let shadow = match shadow {
        Ok(response) => response,
        Err(why) => {
            job.stats.shadow_dropped(why);
            tracing::debug!(route = %job.route, request_id = %job.request_id, ?why, "shadow copy failed");
            return;
        }
    };
    // Diffing off: the copy was the whole job.
    let Some(served_rx) = job.served_rx else {
        return;
    };
    let Ok(Ok(served)) = tokio::time::timeout(SERVED_WAIT, served_rx).await else {
        job.stats.shadow_dropped(ShadowDrop::ServedFailed);
        return;
    };
    let pair = ComparedPair {
        stats: Arc::clone(&job.stats),
        rules: Arc::clone(&job.rules),
        probe,
        exchange: Exchange {
            route: job.route,
            request_id: job.request_id,
            served_by: job.served_by.name().to_owned(),
            request: job.request,
            served,
            shadow,
        },
    };
    if let Err(mpsc::error::TrySendError::Full(pair) | mpsc::error::TrySendError::Closed(pair)) =
        compare.try_send(pair)
    {
        pair.stats.shadow_dropped(ShadowDrop::CompareQueueFull);
    }
}

async fn send_copy(
    client: &reqwest::Client,
    job: &ShadowJob,
    upstream: &Upstream,
    cap: usize,
) -> Result<CapturedResponse, ShadowDrop> {
    let url = format!("{}{}", upstream.base_url(), job.request.uri);
    let method = reqwest::Method::from_bytes(job.request.method.as_bytes())
        .map_err(|_| ShadowDrop::Error)?;
    let mut request = client
        .request(method, url)
        .timeout(job.timeout)
        .header(SHADOW_HEADER, "1")
        .header(crate::gateway::REQUEST_ID, &job.request_id);
    for (name, value) in &job.request.headers {
        if !name.eq_ignore_ascii_case(crate::gateway::REQUEST_ID) {
            request = request.header(name, value);
        }
    }
    let classify = |e: reqwest::Error| {
        if e.is_timeout() {
            ShadowDrop::Timeout
        } else {
            ShadowDrop::Error
        }
    };
    let mut response = request
        .body(job.request.body.clone())
        .send()
        .await
        .map_err(classify)?;
    let status = response.status().as_u16();
    let headers = header_pairs(response.headers().iter());
    let mut body = BodyBuffer::new(cap);
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        body.push(&chunk);
        if body.truncated() {
            break;
        }
    }
    Ok(CapturedResponse {
        status,
        headers,
        truncated: body.truncated(),
        body: body.into_bytes(),
    })
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
