//! Prometheus metrics of the backend, served at `GET /metrics`.
//!
//! Every metric name is a constant here; dashboards and alerts use exactly these names.
//! Labels are bounded: function names from the fixed list, provider names, outcomes and
//! status codes — never a user id or a raw path.

use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use sqlx::PgPool;

use crate::config::FUNCTIONS;
use crate::{AppState, Result};

/// Requests answered, by function (`other` outside the functions) and status code.
pub const REQUESTS_TOTAL: &str = "studyflow_backend_requests_total";
/// Time to answer, by function.
pub const REQUEST_DURATION_SECONDS: &str = "studyflow_backend_request_duration_seconds";
/// Calls to AI providers, by provider and outcome (`ok`, `http_error`, `network_error`,
/// `skipped`).
pub const PROVIDER_CALLS_TOTAL: &str = "studyflow_backend_provider_calls_total";
/// Duration of AI provider calls, by provider.
pub const PROVIDER_CALL_DURATION_SECONDS: &str = "studyflow_backend_provider_call_duration_seconds";
/// Database pool connections, by state (`idle`, `in_use`), sampled at each scrape.
pub const DB_POOL_CONNECTIONS: &str = "studyflow_backend_db_pool_connections";
/// Configured size of the database pool.
pub const DB_POOL_MAX_CONNECTIONS: &str = "studyflow_backend_db_pool_max_connections";
/// Failed Redis operations, by operation.
pub const REDIS_ERRORS_TOTAL: &str = "studyflow_backend_redis_errors_total";
/// Requests refused by the AI rate limit, by function and limiter (`redis`, `memory`,
/// `database`).
pub const RATE_LIMIT_REJECTIONS_TOTAL: &str = "studyflow_backend_rate_limit_rejections_total";
/// Shadowed (dry-run) requests, by function.
pub const SHADOW_REQUESTS_TOTAL: &str = "studyflow_backend_shadow_requests_total";

/// Every metric name, for the dashboard checks.
pub const ALL: [&str; 9] = [
    REQUESTS_TOTAL,
    REQUEST_DURATION_SECONDS,
    PROVIDER_CALLS_TOTAL,
    PROVIDER_CALL_DURATION_SECONDS,
    DB_POOL_CONNECTIONS,
    DB_POOL_MAX_CONNECTIONS,
    REDIS_ERRORS_TOTAL,
    RATE_LIMIT_REJECTIONS_TOTAL,
    SHADOW_REQUESTS_TOTAL,
];

/// The backend's registry and its metrics. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    provider_calls: IntCounterVec,
    provider_duration: HistogramVec,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    redis_errors: IntCounterVec,
    rate_limit_rejections: IntCounterVec,
    shadow_requests: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(REQUESTS_TOTAL, "Requests answered by the backend"),
            &["function", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(REQUEST_DURATION_SECONDS, "Time to answer a request").buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["function"],
        )?;
        let provider_calls = IntCounterVec::new(
            Opts::new(PROVIDER_CALLS_TOTAL, "Calls to AI providers"),
            &["provider", "outcome"],
        )?;
        let provider_duration = HistogramVec::new(
            HistogramOpts::new(
                PROVIDER_CALL_DURATION_SECONDS,
                "Duration of AI provider calls",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            ]),
            &["provider"],
        )?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(DB_POOL_CONNECTIONS, "Database pool connections by state"),
            &["state"],
        )?;
        let pool_max = IntGauge::new(DB_POOL_MAX_CONNECTIONS, "Configured database pool size")?;
        let redis_errors = IntCounterVec::new(
            Opts::new(REDIS_ERRORS_TOTAL, "Failed Redis operations"),
            &["operation"],
        )?;
        let rate_limit_rejections = IntCounterVec::new(
            Opts::new(
                RATE_LIMIT_REJECTIONS_TOTAL,
                "Requests refused by the AI rate limit",
            ),
            &["function", "limiter"],
        )?;
        let shadow_requests = IntCounterVec::new(
            Opts::new(SHADOW_REQUESTS_TOTAL, "Shadowed (dry-run) requests"),
            &["function"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(provider_calls.clone()))?;
        registry.register(Box::new(provider_duration.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(rate_limit_rejections.clone()))?;
        registry.register(Box::new(shadow_requests.clone()))?;
        Ok(Self {
            registry,
            requests,
            request_duration,
            provider_calls,
            provider_duration,
            pool_connections,
            pool_max,
            redis_errors,
            rate_limit_rejections,
            shadow_requests,
        })
    }

    pub fn provider_call(&self, provider: &str, outcome: &str, elapsed: Duration) {
        self.provider_calls
            .with_label_values(&[provider, outcome])
            .inc();
        if outcome != "skipped" {
            self.provider_duration
                .with_label_values(&[provider])
                .observe(elapsed.as_secs_f64());
        }
    }

    pub fn redis_error(&self, operation: &str) {
        self.redis_errors.with_label_values(&[operation]).inc();
    }

    pub fn rate_limited(&self, function: &str, limiter: &str) {
        self.rate_limit_rejections
            .with_label_values(&[function, limiter])
            .inc();
    }

    pub fn shadow_request(&self, function: &str) {
        self.shadow_requests.with_label_values(&[function]).inc();
    }

    fn request(&self, function: &str, status: StatusCode, elapsed: Duration) {
        self.requests
            .with_label_values(&[function, status.as_str()])
            .inc();
        self.request_duration
            .with_label_values(&[function])
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition, with the pool gauges sampled now.
    pub fn render(&self, pool: &PgPool, max_connections: u32) -> String {
        let size = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        self.pool_connections.with_label_values(&["idle"]).set(idle);
        self.pool_connections
            .with_label_values(&["in_use"])
            .set((size - idle).max(0));
        self.pool_max.set(i64::from(max_connections));
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "encoding metrics failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// The function a route path belongs to, as a bounded label.
pub fn function_label(path: &str) -> &'static str {
    let name = path
        .strip_prefix("/functions/v1/")
        .map(|rest| rest.split('/').next().unwrap_or(rest));
    match name {
        Some(name) => FUNCTIONS
            .iter()
            .find(|f| **f == name)
            .copied()
            .unwrap_or("other"),
        None => "other",
    }
}

/// Middleware counting and timing every request by function and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let function = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |path| function_label(path.as_str()));
    if request
        .headers()
        .contains_key(crate::functions::SHADOW_HEADER)
    {
        state.metrics.shadow_request(function);
    }
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request(function, response.status(), started.elapsed());
    response
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(&state.db, state.config.db_max_connections);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(function_label("/functions/v1/ai-proxy"), "ai-proxy");
        assert_eq!(function_label("/functions/v1/ai-proxy/{*rest}"), "ai-proxy");
        assert_eq!(function_label("/functions/v1/unknown"), "other");
        assert_eq!(function_label("/health"), "other");
    }

    #[test]
    fn every_name_is_registered() {
        let metrics = Metrics::new().expect("metrics");
        metrics.provider_call("openai", "ok", Duration::from_millis(5));
        metrics.redis_error("rate_limit");
        metrics.rate_limited("ai-proxy", "redis");
        metrics.shadow_request("ai-proxy");
        metrics.request("ai-proxy", StatusCode::OK, Duration::from_millis(1));
        let names: Vec<String> = metrics
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        for name in [
            REQUESTS_TOTAL,
            REQUEST_DURATION_SECONDS,
            PROVIDER_CALLS_TOTAL,
            PROVIDER_CALL_DURATION_SECONDS,
            REDIS_ERRORS_TOTAL,
            RATE_LIMIT_REJECTIONS_TOTAL,
            SHADOW_REQUESTS_TOTAL,
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing");
        }
    }
}
