//! Prometheus metrics of the backend, served at `GET /metrics` ([`crate::http`] holds the
//! endpoint and the middleware that counts requests).
//!
//! Every metric name is a constant here; dashboards and alerts use exactly these names.
//! Labels are bounded: function names from the fixed list, provider names, outcomes and
//! status codes — never a user id or a raw path. A leaf module: every layer counts
//! through [`Metrics`], so it depends on nothing of the crate but [`crate::ai_types`].

use std::time::Duration;

use axum::http::StatusCode;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    Result, TextEncoder,
};
use sqlx::PgPool;

use crate::ai_types::Usage;

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
/// Answers of the provider chains, by use (function), the provider that answered
/// (`none` when none did) and outcome (`first_choice`, `fallback`, `exhausted`,
/// `deadline`, `refused`).
pub const AI_ANSWERS_TOTAL: &str = "studyflow_backend_ai_answers_total";
/// Calls the chains made, by provider and outcome (`ok`, `http_429`, `http_5xx`,
/// `http_4xx`, `timeout`, `network_error`, `malformed`, `interrupted`, `no_key`,
/// `circuit_open`).
pub const AI_ATTEMPTS_TOTAL: &str = "studyflow_backend_ai_attempts_total";
/// Duration of those calls (to the answer, or to the first token), by provider.
pub const AI_ATTEMPT_DURATION_SECONDS: &str = "studyflow_backend_ai_attempt_duration_seconds";
/// Retries of a provider after a retryable failure, by provider.
pub const AI_RETRIES_TOTAL: &str = "studyflow_backend_ai_retries_total";
/// Times a chain moved past a provider that failed, by that provider.
pub const AI_FALLBACKS_TOTAL: &str = "studyflow_backend_ai_fallbacks_total";
/// Tokens used, by provider and kind (`prompt`, `completion`).
pub const AI_TOKENS_TOTAL: &str = "studyflow_backend_ai_tokens_total";
/// Time from the start of a streaming chain to its first token, by provider.
pub const AI_TIME_TO_FIRST_TOKEN_SECONDS: &str = "studyflow_backend_ai_time_to_first_token_seconds";
/// Streams after their first token, by provider and outcome (`completed`, `error`,
/// `cancelled` when the client went away).
pub const AI_STREAMS_TOTAL: &str = "studyflow_backend_ai_streams_total";
/// Circuit breaker state by provider: 0 closed, 1 half-open, 2 open.
pub const AI_BREAKER_STATE: &str = "studyflow_backend_ai_breaker_state";
/// Circuit breaker transitions, by provider and the state entered.
pub const AI_BREAKER_TRANSITIONS_TOTAL: &str = "studyflow_backend_ai_breaker_transitions_total";
/// Security events (also written to `security_audit_log`), by event type
/// (`auth_failed`, `rate_limit_exceeded`, `vault_read`, `vault_read_failed`, `vault_write`,
/// `vault_list`, `vault_key_rejected`, `vault_rotation_started`,
/// `vault_rotation_completed`, `vault_rotation_finished`).
pub const SECURITY_EVENTS_TOTAL: &str = "studyflow_backend_security_events_total";
/// Security events that could not be written to `security_audit_log`, by reason
/// (`queue_full`, `database`).
pub const SECURITY_AUDIT_DROPPED_TOTAL: &str = "studyflow_backend_security_audit_dropped_total";
/// Key vault operations, by operation (`read`, `write`, `list`, `rotate`, `finish`) and
/// outcome (`ok`, `error`).
pub const VAULT_OPERATIONS_TOTAL: &str = "studyflow_backend_vault_operations_total";

/// Every metric name, for the dashboard checks.
pub const ALL: [&str; 22] = [
    REQUESTS_TOTAL,
    REQUEST_DURATION_SECONDS,
    PROVIDER_CALLS_TOTAL,
    PROVIDER_CALL_DURATION_SECONDS,
    DB_POOL_CONNECTIONS,
    DB_POOL_MAX_CONNECTIONS,
    REDIS_ERRORS_TOTAL,
    RATE_LIMIT_REJECTIONS_TOTAL,
    SHADOW_REQUESTS_TOTAL,
    AI_ANSWERS_TOTAL,
    AI_ATTEMPTS_TOTAL,
    AI_ATTEMPT_DURATION_SECONDS,
    AI_RETRIES_TOTAL,
    AI_FALLBACKS_TOTAL,
    AI_TOKENS_TOTAL,
    AI_TIME_TO_FIRST_TOKEN_SECONDS,
    AI_STREAMS_TOTAL,
    AI_BREAKER_STATE,
    AI_BREAKER_TRANSITIONS_TOTAL,
    SECURITY_EVENTS_TOTAL,
    SECURITY_AUDIT_DROPPED_TOTAL,
    VAULT_OPERATIONS_TOTAL,
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
    ai: AiMetrics,
    security_events: IntCounterVec,
    security_audit_dropped: IntCounterVec,
    vault_operations: IntCounterVec,
}

/// The provider chains' metrics.
#[derive(Debug, Clone)]
struct AiMetrics {
    answers: IntCounterVec,
    attempts: IntCounterVec,
    attempt_duration: HistogramVec,
    retries: IntCounterVec,
    fallbacks: IntCounterVec,
    tokens: IntCounterVec,
    first_token: HistogramVec,
    streams: IntCounterVec,
    breaker_state: IntGaugeVec,
    breaker_transitions: IntCounterVec,
}

/// Creates metrics and registers each in its registry.
struct Registrar(Registry);

impl Registrar {
    fn keep<M: prometheus::core::Collector + Clone + 'static>(&self, metric: M) -> Result<M> {
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec> {
        self.keep(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec> {
        self.keep(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.keep(HistogramVec::new(opts, labels)?)
    }
}

/// Seconds to answer a request.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Seconds of one provider call (the legacy calls).
const PROVIDER_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Seconds of one attempt of a provider chain.
const ATTEMPT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Seconds to a stream's first token.
const FIRST_TOKEN_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

impl AiMetrics {
    fn register(r: &Registrar) -> Result<Self> {
        Ok(Self {
            answers: r.counter(
                AI_ANSWERS_TOTAL,
                "Answers of the AI provider chains",
                &["function", "provider", "outcome"],
            )?,
            attempts: r.counter(
                AI_ATTEMPTS_TOTAL,
                "Calls made by the AI provider chains",
                &["provider", "outcome"],
            )?,
            attempt_duration: r.histogram(
                AI_ATTEMPT_DURATION_SECONDS,
                "Duration of AI provider calls made by the chains",
                &["provider"],
                ATTEMPT_BUCKETS,
            )?,
            retries: r.counter(AI_RETRIES_TOTAL, "Retries of an AI provider", &["provider"])?,
            fallbacks: r.counter(
                AI_FALLBACKS_TOTAL,
                "Times a chain moved past a failed AI provider",
                &["provider"],
            )?,
            tokens: r.counter(
                AI_TOKENS_TOTAL,
                "Tokens used by AI provider calls",
                &["provider", "kind"],
            )?,
            first_token: r.histogram(
                AI_TIME_TO_FIRST_TOKEN_SECONDS,
                "Time from the start of a streaming chain to its first token",
                &["provider"],
                FIRST_TOKEN_BUCKETS,
            )?,
            streams: r.counter(
                AI_STREAMS_TOTAL,
                "AI streams after their first token, by outcome",
                &["provider", "outcome"],
            )?,
            breaker_state: r.gauge(
                AI_BREAKER_STATE,
                "Circuit breaker state (0 closed, 1 half-open, 2 open)",
                &["provider"],
            )?,
            breaker_transitions: r.counter(
                AI_BREAKER_TRANSITIONS_TOTAL,
                "Circuit breaker transitions",
                &["provider", "state"],
            )?,
        })
    }
}

impl Metrics {
    pub fn new() -> Result<Self> {
        let r = Registrar(Registry::new());
        Ok(Self {
            requests: r.counter(
                REQUESTS_TOTAL,
                "Requests answered by the backend",
                &["function", "status"],
            )?,
            request_duration: r.histogram(
                REQUEST_DURATION_SECONDS,
                "Time to answer a request",
                &["function"],
                REQUEST_BUCKETS,
            )?,
            provider_calls: r.counter(
                PROVIDER_CALLS_TOTAL,
                "Calls to AI providers",
                &["provider", "outcome"],
            )?,
            provider_duration: r.histogram(
                PROVIDER_CALL_DURATION_SECONDS,
                "Duration of AI provider calls",
                &["provider"],
                PROVIDER_BUCKETS,
            )?,
            pool_connections: r.gauge(
                DB_POOL_CONNECTIONS,
                "Database pool connections by state",
                &["state"],
            )?,
            pool_max: r.keep(IntGauge::new(
                DB_POOL_MAX_CONNECTIONS,
                "Configured database pool size",
            )?)?,
            redis_errors: r.counter(
                REDIS_ERRORS_TOTAL,
                "Failed Redis operations",
                &["operation"],
            )?,
            rate_limit_rejections: r.counter(
                RATE_LIMIT_REJECTIONS_TOTAL,
                "Requests refused by the AI rate limit",
                &["function", "limiter"],
            )?,
            shadow_requests: r.counter(
                SHADOW_REQUESTS_TOTAL,
                "Shadowed (dry-run) requests",
                &["function"],
            )?,
            ai: AiMetrics::register(&r)?,
            security_events: r.counter(
                SECURITY_EVENTS_TOTAL,
                "Security events (also in security_audit_log)",
                &["event"],
            )?,
            security_audit_dropped: r.counter(
                SECURITY_AUDIT_DROPPED_TOTAL,
                "Security events not written to security_audit_log",
                &["reason"],
            )?,
            vault_operations: r.counter(
                VAULT_OPERATIONS_TOTAL,
                "Key vault operations",
                &["operation", "outcome"],
            )?,
            // Last: every metric above is registered by now.
            registry: r.0,
        })
    }

    /// A chain's result for `function`: who answered (or `none`) and how.
    pub fn ai_answer(&self, function: &str, provider: &str, outcome: &str) {
        self.ai
            .answers
            .with_label_values(&[function, provider, outcome])
            .inc();
    }

    pub fn ai_attempt(&self, provider: &str, outcome: &str, elapsed: Duration) {
        self.ai
            .attempts
            .with_label_values(&[provider, outcome])
            .inc();
        if !elapsed.is_zero() {
            self.ai
                .attempt_duration
                .with_label_values(&[provider])
                .observe(elapsed.as_secs_f64());
        }
    }

    pub fn ai_retry(&self, provider: &str) {
        self.ai.retries.with_label_values(&[provider]).inc();
    }

    pub fn ai_fallback(&self, provider: &str) {
        self.ai.fallbacks.with_label_values(&[provider]).inc();
    }

    pub fn ai_tokens(&self, provider: &str, usage: Usage) {
        self.ai
            .tokens
            .with_label_values(&[provider, "prompt"])
            .inc_by(usage.prompt_tokens);
        self.ai
            .tokens
            .with_label_values(&[provider, "completion"])
            .inc_by(usage.completion_tokens);
    }

    pub fn ai_first_token(&self, provider: &str, elapsed: Duration) {
        self.ai
            .first_token
            .with_label_values(&[provider])
            .observe(elapsed.as_secs_f64());
    }

    pub fn ai_stream(&self, provider: &str, outcome: &str) {
        self.ai
            .streams
            .with_label_values(&[provider, outcome])
            .inc();
    }

    pub fn breaker_state(&self, provider: &str, gauge: i64) {
        self.ai
            .breaker_state
            .with_label_values(&[provider])
            .set(gauge);
    }

    pub fn breaker_transition(&self, provider: &str, state: &str, gauge: i64) {
        self.breaker_state(provider, gauge);
        self.ai
            .breaker_transitions
            .with_label_values(&[provider, state])
            .inc();
    }

    pub fn security_event(&self, event: &str) {
        self.security_events.with_label_values(&[event]).inc();
    }

    pub fn security_audit_dropped(&self, reason: &str) {
        self.security_audit_dropped
            .with_label_values(&[reason])
            .inc();
    }

    pub fn vault_operation(&self, operation: &str, outcome: &str) {
        self.vault_operations
            .with_label_values(&[operation, outcome])
            .inc();
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

    /// One answered request of `function` (a bounded label).
    pub fn request(&self, function: &str, status: StatusCode, elapsed: Duration) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_registered() {
        let metrics = Metrics::new().expect("metrics");
        metrics.provider_call("openai", "ok", Duration::from_millis(5));
        metrics.redis_error("rate_limit");
        metrics.rate_limited("ai-proxy", "redis");
        metrics.shadow_request("ai-proxy");
        metrics.request("ai-proxy", StatusCode::OK, Duration::from_millis(1));
        metrics.ai_answer("ai-tutor-stream", "openai", "fallback");
        metrics.ai_attempt("openai", "ok", Duration::from_millis(3));
        metrics.ai_retry("openai");
        metrics.ai_fallback("deepseek");
        metrics.ai_tokens("openai", Usage::new(1, 2));
        metrics.ai_first_token("openai", Duration::from_millis(3));
        metrics.ai_stream("openai", "completed");
        metrics.breaker_transition("openai", "open", 2);
        metrics.security_event("auth_failed");
        metrics.security_audit_dropped("queue_full");
        metrics.vault_operation("read", "ok");
        let names: Vec<String> = metrics
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        // Every exported name but the pool gauges, which are sampled at scrape time.
        for name in ALL
            .into_iter()
            .filter(|n| ![DB_POOL_CONNECTIONS, DB_POOL_MAX_CONNECTIONS].contains(n))
        {
            assert!(names.iter().any(|n| n == name), "{name} missing");
        }
    }
}
