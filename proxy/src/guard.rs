//! The automatic rollback guard.
//!
//! Every `guard.interval_ms`, for each route whose new side serves users (canary above
//! 0 %, primary), the guard reads the route's sliding window (see
//! [`Window`](crate::stats::Window)): the new side's served requests and errors (5xx,
//! timeouts, connection failures) recorded by the request path, and the compared pairs
//! and regressions recorded by the comparison stage (noise-only pairs are not
//! regressions). When a rate passes its threshold over at least the minimum sample, the
//! route goes back to its last safe phase through [`Control::auto_rollback`]: fleet-wide,
//! audited, logged and counted, and **held** there, so neither the guard nor Unleash nor
//! the routes file move it until an operator does. A decommissioned route has no legacy
//! left to go back to and is not guarded.

use std::sync::Arc;
use std::time::Duration;

use studyflow_flags::Phase;

use crate::config::{GuardConfig, GuardThresholds};
use crate::control::Control;
use crate::stats::Evidence;

/// Why the guard acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    Errors,
    Mismatches,
}

/// The guard's verdict on one window, or `None` when the route may stay.
pub fn judge(window: &Evidence, t: &GuardThresholds) -> Option<Trip> {
    if window.new_requests >= t.min_requests.max(1)
        && window.guard_error_rate(t.min_identities) > t.max_error_rate
    {
        return Some(Trip::Errors);
    }
    if window.compared >= t.min_pairs.max(1) && window.mismatch_rate() > t.max_mismatch_rate {
        return Some(Trip::Mismatches);
    }
    None
}

/// The last safe phase of a route in `phase` that tripped: shadow (users back on legacy,
/// comparison goes on), except for errors in primary, which go back to legacy.
pub fn safe_phase(phase: Phase, trip: Trip) -> Option<Phase> {
    match (phase, trip) {
        (Phase::Canary(_), _) | (Phase::Primary, Trip::Mismatches) => Some(Phase::Shadow),
        (Phase::Primary, Trip::Errors) => Some(Phase::Legacy),
        (Phase::Legacy | Phase::Shadow | Phase::Decommissioned, _) => None,
    }
}

/// Evaluates every guarded route once.
pub async fn evaluate(control: &Arc<Control>, config: &GuardConfig) {
    let table = control.table();
    for route in table.routes() {
        route.stats.guard_checked();
        // A route the legacy does not have has nowhere to go back to.
        if route.held || route.spec.blocked || !route.spec.legacy_twin || !route.phase.serves_new()
        {
            continue;
        }
        let Some(thresholds) = config.for_route(&route.spec.name) else {
            continue;
        };
        let window = route.stats.window.totals(thresholds.window_secs);
        let Some(trip) = judge(&window, &thresholds) else {
            continue;
        };
        let Some(to) = safe_phase(route.phase, trip) else {
            continue;
        };
        let reason = match trip {
            Trip::Errors => format!(
                "new-side error rate {:.1}% ({} of {} requests) over {} s is above {:.1}%",
                window.guard_error_rate(thresholds.min_identities) * 100.0,
                window.guard_errors(thresholds.min_identities),
                window.new_requests,
                thresholds.window_secs,
                thresholds.max_error_rate * 100.0
            ),
            Trip::Mismatches => format!(
                "mismatch rate {:.1}% ({} regressions in {} compared pairs) over {} s is above {:.1}%",
                window.mismatch_rate() * 100.0,
                window.regressions,
                window.compared,
                thresholds.window_secs,
                thresholds.max_mismatch_rate * 100.0
            ),
        };
        match control.auto_rollback(&route.spec.name, to, &reason).await {
            Ok(Some(entry)) => tracing::error!(
                route = %entry.route,
                from = %entry.from,
                to = %entry.to,
                reason = %entry.reason,
                "automatic rollback"
            ),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(route = %route.spec.name, %error, "automatic rollback failed")
            }
        }
    }
}

/// The guard as a service of the server: it runs on each instance, on that instance's
/// traffic, whether or not the fleet store or the admin API are up.
#[derive(Debug)]
pub struct GuardService {
    pub control: Arc<Control>,
    pub config: GuardConfig,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for GuardService {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        tokio::select! {
            () = run(Arc::clone(&self.control), self.config.clone()) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Runs the guard until the task is dropped.
pub async fn run(control: Arc<Control>, config: GuardConfig) {
    if !config.enabled && config.routes.values().all(|r| r.enabled != Some(true)) {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(config.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        evaluate(&control, &config).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds() -> GuardThresholds {
        GuardThresholds {
            min_identities: 5,
            window_secs: 30,
            min_requests: 10,
            max_error_rate: 0.2,
            min_pairs: 10,
            max_mismatch_rate: 0.1,
        }
    }

    fn evidence(new_requests: u64, new_errors: u64, compared: u64, regressions: u64) -> Evidence {
        Evidence {
            new_requests,
            new_errors,
            compared,
            regressions,
            ..Evidence::default()
        }
    }

    #[test]
    fn trips_only_past_a_threshold_over_enough_samples() {
        let t = thresholds();
        assert_eq!(judge(&evidence(9, 9, 0, 0), &t), None, "too few requests");
        assert_eq!(judge(&evidence(10, 2, 0, 0), &t), None, "at the threshold");
        assert_eq!(judge(&evidence(10, 3, 0, 0), &t), Some(Trip::Errors));
        assert_eq!(judge(&evidence(0, 0, 9, 9), &t), None, "too few pairs");
        assert_eq!(judge(&evidence(0, 0, 50, 5), &t), None);
        assert_eq!(judge(&evidence(0, 0, 50, 6), &t), Some(Trip::Mismatches));
    }

    #[test]
    fn a_route_goes_back_to_its_last_safe_phase() {
        assert_eq!(
            safe_phase(Phase::Canary(25), Trip::Errors),
            Some(Phase::Shadow)
        );
        assert_eq!(
            safe_phase(Phase::Primary, Trip::Mismatches),
            Some(Phase::Shadow)
        );
        assert_eq!(
            safe_phase(Phase::Primary, Trip::Errors),
            Some(Phase::Legacy)
        );
        assert_eq!(safe_phase(Phase::Decommissioned, Trip::Errors), None);
    }
}
