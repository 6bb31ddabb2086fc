//! Recent history of each route for the operator console: every few seconds the
//! cumulative counters of every route are recorded, so the console can show live rates
//! and small charts of the last hours without any external database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use studyflow_flags::Side;

use crate::control::Control;
use crate::metrics::Metrics;

/// How often a point is recorded.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// How many points are kept per route (6 hours).
const KEPT: usize = 6 * 360;

/// Cumulative counters of one route at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Point {
    /// Seconds since the Unix epoch.
    pub at: i64,
    pub served: [u64; 2],
    pub errors: [u64; 2],
    pub latency_sum: [f64; 2],
    pub latency_count: [u64; 2],
    pub compared: u64,
    pub regressions: u64,
}

/// Rates between two points.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub at: i64,
    /// Requests per second, all sides.
    pub requests_per_sec: f64,
    /// Share of requests the new side served (0–1).
    pub share_new: f64,
    /// 5xx answers per request of the new side (0–1).
    pub new_error_rate: f64,
    /// Mean latency per side, milliseconds (`NaN` without requests).
    pub mean_latency_ms: [f64; 2],
    /// Regressions per compared pair (0–1).
    pub mismatch_rate: f64,
}

fn index(side: Side) -> usize {
    match side {
        Side::Legacy => 0,
        Side::New => 1,
    }
}

impl Rates {
    /// The rates from `before` to `after`.
    pub fn between(before: &Point, after: &Point) -> Self {
        let seconds = (after.at - before.at).max(1) as f64;
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let served = [
            d(after.served[0], before.served[0]),
            d(after.served[1], before.served[1]),
        ];
        let total = served[0] + served[1];
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let mean = |i: usize| {
            let n = d(after.latency_count[i], before.latency_count[i]);
            if n > 0.0 {
                (after.latency_sum[i] - before.latency_sum[i]) / n * 1000.0
            } else {
                f64::NAN
            }
        };
        Self {
            at: after.at,
            requests_per_sec: total / seconds,
            share_new: ratio(served[1], total),
            new_error_rate: ratio(d(after.errors[1], before.errors[1]), served[1]),
            mean_latency_ms: [mean(0), mean(1)],
            mismatch_rate: ratio(
                d(after.regressions, before.regressions),
                d(after.compared, before.compared),
            ),
        }
    }
}

/// The recorded points of every route.
#[derive(Debug, Default)]
pub struct History {
    points: Mutex<HashMap<String, VecDeque<Point>>>,
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Point>>> {
        self.points
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a point for `route`.
    pub fn record(&self, route: &str, point: Point) {
        let mut points = self.lock();
        let series = points.entry(route.to_owned()).or_default();
        if series.len() == KEPT {
            series.pop_front();
        }
        series.push_back(point);
    }

    /// The rates between consecutive points of `route`, oldest first, at most `limit`
    /// (points are merged to fit).
    pub fn rates(&self, route: &str, limit: usize) -> Vec<Rates> {
        let points = self.lock();
        let Some(series) = points.get(route) else {
            return Vec::new();
        };
        let step = series.len().div_ceil(limit.max(1)).max(1);
        let picked: Vec<&Point> = series.iter().step_by(step).chain(series.back()).collect();
        picked
            .windows(2)
            .filter(|w| w[0].at < w[1].at)
            .map(|w| Rates::between(w[0], w[1]))
            .collect()
    }

    /// The most recent rates of `route` (over the last interval).
    pub fn latest(&self, route: &str) -> Option<Rates> {
        let points = self.lock();
        let series = points.get(route)?;
        let n = series.len();
        (n >= 2).then(|| Rates::between(&series[n - 2], &series[n - 1]))
    }

    /// Share of all traffic (every route) served by new, over time.
    pub fn overall_share(&self, limit: usize) -> Vec<(i64, f64)> {
        let points = self.lock();
        let mut by_time: std::collections::BTreeMap<i64, (u64, u64)> =
            std::collections::BTreeMap::new();
        for series in points.values() {
            for p in series {
                let entry = by_time.entry(p.at).or_default();
                entry.0 += p.served[0];
                entry.1 += p.served[1];
            }
        }
        let totals: Vec<(i64, (u64, u64))> = by_time.into_iter().collect();
        let step = totals.len().div_ceil(limit.max(1)).max(1);
        let picked: Vec<&(i64, (u64, u64))> =
            totals.iter().step_by(step).chain(totals.last()).collect();
        picked
            .windows(2)
            .filter(|w| w[0].0 < w[1].0)
            .map(|w| {
                let legacy = w[1].1.0.saturating_sub(w[0].1.0) as f64;
                let new = w[1].1.1.saturating_sub(w[0].1.1) as f64;
                (
                    w[1].0,
                    if legacy + new > 0.0 {
                        new / (legacy + new)
                    } else {
                        0.0
                    },
                )
            })
            .collect()
    }
}

/// Records a point for every route every [`INTERVAL`]; runs as a background service.
#[derive(Debug)]
pub struct Recorder {
    pub control: Arc<Control>,
    pub metrics: Arc<Metrics>,
    pub history: Arc<History>,
}

impl Recorder {
    /// Records one point for every route now.
    pub fn record_now(&self) {
        let at = chrono::Utc::now().timestamp();
        let table = self.control.table();
        for route in table.routes() {
            let stats = route.stats.snapshot();
            let name = route.spec.name.as_str();
            let mut point = Point {
                at,
                compared: stats.pairs_equal + stats.pairs_noise + stats.pairs_regression,
                regressions: stats.pairs_regression,
                ..Point::default()
            };
            for side in [Side::Legacy, Side::New] {
                let i = index(side);
                let (served, errors, sum, count) = self.metrics.route_side(name, side);
                point.served[i] = served;
                point.errors[i] = errors;
                point.latency_sum[i] = sum;
                point.latency_count[i] = count;
            }
            self.history.record(name, point);
        }
    }
}

#[async_trait]
impl BackgroundService for Recorder {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.record_now();
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = shutdown.changed() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: i64, legacy: u64, new: u64, new_errors: u64) -> Point {
        Point {
            at,
            served: [legacy, new],
            errors: [0, new_errors],
            latency_sum: [legacy as f64 * 0.002, new as f64 * 0.001],
            latency_count: [legacy, new],
            compared: legacy,
            regressions: 0,
        }
    }

    #[test]
    fn rates_come_from_consecutive_points() {
        let r = Rates::between(&point(0, 0, 0, 0), &point(10, 75, 25, 5));
        assert!((r.requests_per_sec - 10.0).abs() < 1e-9);
        assert!((r.share_new - 0.25).abs() < 1e-9);
        assert!((r.new_error_rate - 0.2).abs() < 1e-9);
        assert!((r.mean_latency_ms[0] - 2.0).abs() < 1e-9);
    }

    #[test]
    fn history_keeps_points_per_route_and_merges_to_a_limit() {
        let history = History::default();
        for i in 0..100 {
            history.record("a", point(i * 10, i as u64 * 10, i as u64 * 10, 0));
        }
        assert_eq!(history.rates("a", 10).len(), 10);
        assert!(
            history
                .latest("a")
                .is_some_and(|r| (r.share_new - 0.5).abs() < 1e-9)
        );
        assert!(history.rates("b", 10).is_empty());
        assert!(
            history
                .overall_share(5)
                .iter()
                .all(|(_, s)| (s - 0.5).abs() < 1e-9)
        );
    }
}
