//! Prometheus metrics of the gateway, served at `GET /metrics` on the admin port.
//!
//! Every metric name is a constant here; the dashboards and alert rules in `dashboards/`
//! use exactly these names (a test checks it). Labels are bounded: route names from the
//! routes file (`-` for pass-through traffic), sides, status classes, outcomes.
//!
//! The request path only touches two metrics (a counter and a histogram, both in the
//! `logging` phase, after the answer is sent). Everything the per-route counters of
//! [`crate::stats`] already count is exported from them at scrape time, so it costs the
//! request path nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use studyflow_flags::{Phase, Side};

use crate::routing::RouteTable;
use crate::stats::StatsSnapshot;

/// Requests answered to clients, by route, serving side and status class (`2xx`…).
pub const REQUESTS_TOTAL: &str = "studyflow_gateway_requests_total";
/// Time from request to the end of the answer, by route and serving side.
pub const REQUEST_DURATION_SECONDS: &str = "studyflow_gateway_request_duration_seconds";
/// Time the shadow side took to answer a copy, by route and shadow side.
pub const SHADOW_DURATION_SECONDS: &str = "studyflow_gateway_shadow_duration_seconds";
/// Shadow copies by route and outcome: `sent`, `dropped_queue_full`,
/// `dropped_body_too_large`, `dropped_over_budget`, `dropped_no_secret`, `timeout`, `error`,
/// `served_failed`, `compare_dropped`.
pub const SHADOWS_TOTAL: &str = "studyflow_gateway_shadows_total";
/// Answer pairs by route and verdict (`equal`, `noise`, `regression`, and
/// `provider_skipped` for pairs left uncompared because the new side's dry run skipped
/// its provider call).
pub const DIFF_PAIRS_TOTAL: &str = "studyflow_gateway_diff_pairs_total";
/// Time to compare one pair of answers.
pub const DIFF_DURATION_SECONDS: &str = "studyflow_gateway_diff_duration_seconds";
/// Diff records the store could not take (queue full or database unavailable).
pub const DIFF_STORE_DROPPED_TOTAL: &str = "studyflow_gateway_diff_store_dropped_total";
/// Requests meant for the new side that legacy served because new was unreachable.
pub const FALLBACKS_TOTAL: &str = "studyflow_gateway_fallbacks_total";
/// 1 for each route's phase in force (one series per route and phase).
pub const ROUTE_PHASE: &str = "studyflow_gateway_route_phase";
/// The canary percentage of each route (0 outside canary, 100 in primary and later).
pub const ROUTE_NEW_PERCENT: &str = "studyflow_gateway_route_new_percent";

/// Phase changes back to `legacy` (or a safer phase), by route and trigger (`manual`,
/// `automatic`).
pub const ROLLBACKS_TOTAL: &str = "studyflow_gateway_rollbacks_total";
/// 1 when a flag source (`file`, …) loads, 0 when its last load failed.
pub const FLAG_SOURCE_UP: &str = "studyflow_gateway_flag_source_up";

/// Every metric name, for the dashboard checks.
pub const ALL: [&str; 12] = [
    REQUESTS_TOTAL,
    REQUEST_DURATION_SECONDS,
    SHADOW_DURATION_SECONDS,
    SHADOWS_TOTAL,
    DIFF_PAIRS_TOTAL,
    DIFF_DURATION_SECONDS,
    DIFF_STORE_DROPPED_TOTAL,
    FALLBACKS_TOTAL,
    ROUTE_PHASE,
    ROUTE_NEW_PERCENT,
    ROLLBACKS_TOTAL,
    FLAG_SOURCE_UP,
];

const PHASES: [&str; 5] = ["legacy", "shadow", "canary", "primary", "decommissioned"];

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// The gateway's registry and metrics. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    shadow_duration: HistogramVec,
    shadows: IntCounterVec,
    diff_pairs: IntCounterVec,
    diff_duration: Histogram,
    store_dropped: IntCounterVec,
    fallbacks: IntCounterVec,
    route_phase: IntGaugeVec,
    route_new_percent: IntGaugeVec,
    rollbacks: IntCounterVec,
    flag_source_up: IntGaugeVec,
    /// Values of the exported stats at the last scrape, to add only the difference.
    exported: Mutex<HashMap<String, StatsSnapshot>>,
    store_exported: AtomicU64,
}

/// The status classes of [`REQUESTS_TOTAL`], in [`class_index`] order.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// The index in [`STATUS_CLASSES`] of `status`'s class (`error` when no answer was
/// written).
fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// `2xx`, `4xx`, … (`error` when no answer was written).
pub fn status_class(status: u16) -> &'static str {
    STATUS_CLASSES[class_index(status)]
}

/// One route's request series, looked up in the registry on first use and kept with the
/// route table, so a request touches its counter and histogram without hashing labels.
/// A series appears in `/metrics` once it has counted something, as with a lookup per
/// request.
#[derive(Debug, Default)]
pub struct RouteSeries {
    /// By side ([`side_index`]) and status class ([`class_index`]).
    requests: [[OnceLock<IntCounter>; 6]; 2],
    duration: [OnceLock<Histogram>; 2],
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Legacy => 0,
        Side::New => 1,
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let gauge =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let histogram =
            |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, prometheus::Error> {
                let metric = HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                    labels,
                )?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let diff_duration = Histogram::with_opts(
            HistogramOpts::new(DIFF_DURATION_SECONDS, "Time to compare one pair of answers")
                .buckets(vec![
                    0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1,
                ]),
        )?;
        registry.register(Box::new(diff_duration.clone()))?;
        Ok(Self {
            requests: counter(
                REQUESTS_TOTAL,
                "Requests answered to clients",
                &["route", "side", "status_class"],
            )?,
            request_duration: histogram(
                REQUEST_DURATION_SECONDS,
                "Time to answer a client",
                &["route", "side"],
            )?,
            shadow_duration: histogram(
                SHADOW_DURATION_SECONDS,
                "Time the shadow side took to answer",
                &["route", "side"],
            )?,
            shadows: counter(
                SHADOWS_TOTAL,
                "Shadow copies by outcome",
                &["route", "outcome"],
            )?,
            diff_pairs: counter(
                DIFF_PAIRS_TOTAL,
                "Compared answer pairs by verdict",
                &["route", "verdict"],
            )?,
            store_dropped: counter(
                DIFF_STORE_DROPPED_TOTAL,
                "Diff records the store could not take",
                &[],
            )?,
            fallbacks: counter(
                FALLBACKS_TOTAL,
                "Requests legacy served because new was unreachable",
                &["route"],
            )?,
            route_phase: gauge(
                ROUTE_PHASE,
                "1 for the phase in force of each route",
                &["route", "phase"],
            )?,
            route_new_percent: gauge(
                ROUTE_NEW_PERCENT,
                "Share of users the new backend serves, per route",
                &["route"],
            )?,
            rollbacks: counter(
                ROLLBACKS_TOTAL,
                "Phase changes back to legacy",
                &["route", "trigger"],
            )?,
            flag_source_up: gauge(
                FLAG_SOURCE_UP,
                "Whether each flag source loads",
                &["source"],
            )?,
            diff_duration,
            registry,
            exported: Mutex::new(HashMap::new()),
            store_exported: AtomicU64::new(0),
        })
    }

    /// One answered request of `route`, whose series are `series` (called once per
    /// request, after the answer).
    pub fn request(
        &self,
        series: &RouteSeries,
        route: &str,
        side: Side,
        status: u16,
        elapsed: Duration,
    ) {
        let class = class_index(status);
        series.requests[side_index(side)][class]
            .get_or_init(|| {
                self.requests
                    .with_label_values(&[route, side.name(), STATUS_CLASSES[class]])
            })
            .inc();
        series.duration[side_index(side)]
            .get_or_init(|| {
                self.request_duration
                    .with_label_values(&[route, side.name()])
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One answered shadow copy.
    pub fn shadow_answered(&self, route: &str, side: Side, elapsed: Duration) {
        self.shadow_duration
            .with_label_values(&[route, side.name()])
            .observe(elapsed.as_secs_f64());
    }

    /// Cumulative (answers, 5xx answers, latency sum in seconds, latency count) of one
    /// route and side, for the console's history.
    pub fn route_side(&self, route: &str, side: Side) -> (u64, u64, f64, u64) {
        let count = |class: &str| {
            self.requests
                .with_label_values(&[route, side.name(), class])
                .get()
        };
        let served = STATUS_CLASSES.iter().map(|c| count(c)).sum();
        let latency = self
            .request_duration
            .with_label_values(&[route, side.name()]);
        (
            served,
            count("5xx"),
            latency.get_sample_sum(),
            latency.get_sample_count(),
        )
    }

    /// A route rolled back by `trigger` (`manual` or `automatic`).
    pub fn rollback(&self, route: &str, trigger: &str) {
        self.rollbacks.with_label_values(&[route, trigger]).inc();
    }

    /// Records whether flag source `source` is healthy.
    pub fn flag_source(&self, source: &str, up: bool) {
        self.flag_source_up
            .with_label_values(&[source])
            .set(i64::from(up));
    }

    /// One compared pair.
    pub fn compared(&self, elapsed: Duration) {
        self.diff_duration.observe(elapsed.as_secs_f64());
    }

    /// Brings the exported counters and gauges up to date with the table in force, then
    /// renders the text exposition format.
    pub fn render(&self, table: &RouteTable, store_dropped: u64) -> String {
        self.refresh(table, store_dropped);
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    fn refresh(&self, table: &RouteTable, store_dropped: u64) {
        let mut exported = self
            .exported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut export = |route: &str, now: StatsSnapshot| {
            let before = exported.insert(route.to_owned(), now).unwrap_or_default();
            let add = |counter: &IntCounterVec, labels: &[&str], now: u64, before: u64| {
                if now > before {
                    counter.with_label_values(labels).inc_by(now - before);
                }
            };
            add(
                &self.shadows,
                &[route, "sent"],
                now.shadows_sent,
                before.shadows_sent,
            );
            let shadow_losses = now.losses().into_iter().zip(before.losses());
            for ((outcome, n), (_, b)) in shadow_losses {
                add(&self.shadows, &[route, outcome], n, b);
            }
            let verdicts = [
                ("equal", now.pairs_equal, before.pairs_equal),
                ("noise", now.pairs_noise, before.pairs_noise),
                ("regression", now.pairs_regression, before.pairs_regression),
                (
                    "provider_skipped",
                    now.pairs_provider_skipped,
                    before.pairs_provider_skipped,
                ),
            ];
            for (verdict, n, b) in verdicts {
                add(&self.diff_pairs, &[route, verdict], n, b);
            }
            add(&self.fallbacks, &[route], now.fallbacks, before.fallbacks);
            add(
                &self.rollbacks,
                &[route, "automatic"],
                now.auto_rollbacks,
                before.auto_rollbacks,
            );
        };
        for route in table.routes() {
            export(&route.spec.name, route.stats.snapshot());
            let current = route.phase.name();
            for phase in PHASES {
                let value = i64::from(phase == current && !route.spec.blocked);
                self.route_phase
                    .with_label_values(&[route.spec.name.as_str(), phase])
                    .set(value);
            }
            let percent = match route.phase {
                Phase::Legacy | Phase::Shadow => 0,
                Phase::Canary(percent) => i64::from(percent),
                Phase::Primary | Phase::Decommissioned => 100,
            };
            self.route_new_percent
                .with_label_values(&[route.spec.name.as_str()])
                .set(percent);
        }
        export("-", table.passthrough.snapshot());
        let before = self.store_exported.swap(store_dropped, Ordering::Relaxed);
        if store_dropped > before {
            self.store_dropped
                .with_label_values::<&str>(&[])
                .inc_by(store_dropped - before);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_are_bounded() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(0), "error");
    }
}
