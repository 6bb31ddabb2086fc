//! Diff-gated promotion: a route moves forward (a later phase, or a higher canary
//! percentage) only when its evidence says it is ready, or when an operator forces it
//! and the audit log says so. [`Operations`](crate::operations::Operations) is the one
//! way every surface (admin API `set` and `promote`, the console's form, the CLI through
//! the API) changes a phase: moving back is never gated, moving forward always is.
//!
//! The evidence counts from the exact instant of the route's last phase change, within
//! `promotion.window_secs`: compared answer pairs and regressions come from the diff
//! store (`diffs.phase_pair_counts`, fed by every gateway of the fleet, counted by the
//! phase each request was served under and the second it was served, so a pair served
//! before the change never counts for the phase after it) when one is configured, else
//! from this instance's counters (which keep the same rule); the new side's requests and
//! errors come from this instance's counters. The gate holds when there are at least
//! `min_pairs` compared pairs, the mismatch rate (regressions per compared pair) is at
//! most `max_mismatch_rate` and the new side's error rate at most `max_error_rate`.
//! A move after which the new side serves no user (legacy → shadow) needs no evidence;
//! skipping phases (legacy → primary) finds none and needs `force`.
//!
//! In primary, writes of a route that is not idempotent get no copies (the legacy would
//! write them twice), so the evidence for `primary → decommissioned` is the reads
//! compared in primary plus the pairs compared while the route was in canary.
//!
//! The diff store is asked with a time limit: a store that is down or unreachable costs
//! a caller that limit at most (the console checks every route's gate in parallel), and
//! the report says so (`diff_store_unavailable`) while the gate falls back to counters.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use studyflow_diffing::store::{self, PhaseWindow};
use studyflow_flags::{Phase, Side};

use crate::config::PromotionConfig;
use crate::routing::Route;
use crate::stats::Evidence;

/// Where a route goes when promoted from `current`: to `percent` when given (a canary
/// percentage above the current one), else one step forward (legacy → shadow → the
/// configured canary steps → primary → decommissioned).
pub fn next_phase(current: Phase, percent: Option<u8>, steps: &[u8]) -> Result<Phase, String> {
    if let Some(percent) = percent {
        if percent > 100 {
            return Err(format!("percent {percent} is over 100"));
        }
        return match current {
            Phase::Shadow => Ok(Phase::Canary(percent)),
            Phase::Canary(now) if percent > now => Ok(Phase::Canary(percent)),
            Phase::Canary(now) => Err(format!(
                "the route is at canary {now}%: promote only moves forward (use `rollback` or `routes set` to go back)"
            )),
            other => Err(format!(
                "a canary percentage applies from shadow or canary, not from {other}"
            )),
        };
    }
    match current {
        Phase::Legacy => Ok(Phase::Shadow),
        Phase::Shadow => Ok(steps.first().map_or(Phase::Primary, |s| Phase::Canary(*s))),
        Phase::Canary(now) => Ok(steps
            .iter()
            .find(|s| **s > now)
            .map_or(Phase::Primary, |s| Phase::Canary(*s))),
        Phase::Primary => Ok(Phase::Decommissioned),
        Phase::Decommissioned => {
            Err("the route is decommissioned: there is no further phase".into())
        }
    }
}

/// One condition of the gate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub required: String,
    pub observed: String,
    pub ok: bool,
}

/// Where a gate counted compared pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairsFrom {
    /// The fleet's diff store.
    DiffStore,
    /// This instance's counters (no store, or a store that did not answer).
    Counters,
}

impl std::fmt::Display for PairsFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PairsFrom::DiffStore => "diff_store",
            PairsFrom::Counters => "counters",
        })
    }
}

/// The gate's verdict with the evidence behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateReport {
    pub holds: bool,
    /// Whether this move needed the gate at all (legacy → shadow does not).
    pub required: bool,
    pub evidence: Evidence,
    /// Where compared pairs were counted.
    pub pairs_from: PairsFrom,
    /// Which pairs were counted, in words.
    pub counted: String,
    /// A diff store is configured but did not answer in time (or failed).
    pub diff_store_unavailable: bool,
    /// Evidence counts from here.
    pub since: Option<DateTime<Utc>>,
    pub window_secs: u64,
    pub checks: Vec<Check>,
}

/// Judges `evidence` against the gate.
pub fn judge(evidence: &Evidence, config: &PromotionConfig) -> Vec<Check> {
    vec![
        Check {
            name: "compared pairs".into(),
            required: format!("at least {}", config.min_pairs),
            observed: evidence.compared.to_string(),
            ok: evidence.compared >= config.min_pairs,
        },
        Check {
            name: "mismatch rate".into(),
            required: format!("at most {:.2}%", config.max_mismatch_rate * 100.0),
            observed: format!(
                "{:.2}% ({} regressions)",
                evidence.mismatch_rate() * 100.0,
                evidence.regressions
            ),
            ok: evidence.mismatch_rate() <= config.max_mismatch_rate,
        },
        Check {
            name: "new-side error rate".into(),
            required: format!("at most {:.2}%", config.max_error_rate * 100.0),
            observed: format!(
                "{:.2}% ({} of {} requests)",
                evidence.error_rate() * 100.0,
                evidence.new_errors,
                evidence.new_requests
            ),
            ok: evidence.error_rate() <= config.max_error_rate,
        },
    ]
}

/// Gathers the evidence of `route` and judges it for a move from its current phase to
/// `to`, waiting at most `wait` for the diff store. A move after which the new side still
/// serves no user (legacy → shadow, a canary at 0 %) needs no evidence; any other needs
/// evidence of the current phase (so skipping phases finds none).
pub async fn gate(
    route: &Route,
    to: Phase,
    diffs: Option<&PgPool>,
    config: &PromotionConfig,
    wait: Duration,
) -> GateReport {
    let now = Utc::now();
    // A window too long to subtract from now counts from the phase change alone.
    let window_start = i64::try_from(config.window_secs)
        .ok()
        .and_then(chrono::TimeDelta::try_seconds)
        .and_then(|window| now.checked_sub_signed(window))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let since = route
        .stats
        .phase_since()
        .map_or(window_start, |changed| changed.max(window_start));
    // Writes in primary get no copies unless the route is idempotent: its canary pairs
    // count too.
    let with_canary = route.phase == Phase::Primary && !route.spec.copies("POST", Side::Legacy);
    let mut evidence = route.stats.since_phase_change();
    let mut pairs_from = PairsFrom::Counters;
    let mut diff_store_unavailable = false;
    if let Some(pool) = diffs {
        let phase = route.phase.to_string();
        let query = store::phase_pairs(
            pool,
            PhaseWindow {
                route: &route.spec.name,
                phase: &phase,
                since,
                canary_since: with_canary.then_some(window_start),
            },
        );
        match tokio::time::timeout(wait, query).await {
            Ok(Ok((compared, regressions))) => {
                evidence.compared = compared;
                evidence.regressions = regressions;
                pairs_from = PairsFrom::DiffStore;
            }
            Ok(Err(error)) => {
                diff_store_unavailable = true;
                tracing::warn!(route = %route.spec.name, %error, "diff store unavailable; the gate uses this instance's counters");
            }
            Err(_) => {
                diff_store_unavailable = true;
                tracing::warn!(route = %route.spec.name, wait_ms = wait.as_millis() as u64, "diff store did not answer in time; the gate uses this instance's counters");
            }
        }
    }
    let required = to.serves_new();
    let checks = judge(&evidence, config);
    let counted = match (with_canary, pairs_from) {
        (true, PairsFrom::DiffStore) => format!(
            "pairs served in {} since the change, plus pairs served in canary within the window ({}; writes in primary get no copies)",
            route.phase,
            route.spec.copies_in(Phase::Primary)
        ),
        _ => format!("pairs served in {} since the change", route.phase),
    };
    GateReport {
        holds: !required || checks.iter().all(|c| c.ok),
        required,
        evidence,
        pairs_from,
        counted,
        diff_store_unavailable,
        since: Some(since),
        window_secs: config.window_secs,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_walks_the_phases_forward() {
        let steps = [5, 25, 50, 100];
        assert_eq!(next_phase(Phase::Legacy, None, &steps), Ok(Phase::Shadow));
        assert_eq!(
            next_phase(Phase::Shadow, None, &steps),
            Ok(Phase::Canary(5))
        );
        assert_eq!(
            next_phase(Phase::Canary(5), None, &steps),
            Ok(Phase::Canary(25))
        );
        assert_eq!(
            next_phase(Phase::Canary(30), None, &steps),
            Ok(Phase::Canary(50))
        );
        assert_eq!(
            next_phase(Phase::Canary(100), None, &steps),
            Ok(Phase::Primary)
        );
        assert_eq!(
            next_phase(Phase::Primary, None, &steps),
            Ok(Phase::Decommissioned)
        );
        assert!(next_phase(Phase::Decommissioned, None, &steps).is_err());
        assert_eq!(
            next_phase(Phase::Shadow, Some(10), &steps),
            Ok(Phase::Canary(10))
        );
        assert!(next_phase(Phase::Canary(25), Some(10), &steps).is_err());
        assert!(next_phase(Phase::Legacy, Some(10), &steps).is_err());
    }

    #[test]
    fn the_gate_needs_enough_clean_pairs() {
        let config = PromotionConfig {
            min_pairs: 10,
            max_mismatch_rate: 0.1,
            max_error_rate: 0.1,
            ..PromotionConfig::default()
        };
        let evidence = |compared, regressions| Evidence {
            new_requests: 0,
            new_errors: 0,
            compared,
            regressions,
            ..Evidence::default()
        };
        assert!(!judge(&evidence(9, 0), &config).iter().all(|c| c.ok));
        assert!(judge(&evidence(10, 1), &config).iter().all(|c| c.ok));
        assert!(!judge(&evidence(10, 2), &config).iter().all(|c| c.ok));
    }
}
