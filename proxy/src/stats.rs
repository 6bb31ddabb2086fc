//! Live counters per route, shown by the admin API. Plain atomics: the request path only
//! ever increments.
//!
//! Besides totals since start, each route keeps what the automatic rollback guard and the
//! promotion gate read: the new side's outcomes and the comparison verdicts in a sliding
//! [`Window`] of per-second slots, and the same counts since the route's last phase
//! change. Recording is a handful of relaxed atomic operations, with no lock and no
//! allocation.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;
use studyflow_flags::Side;

/// Why a shadow copy was not sent or did not produce a comparable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowDrop {
    /// The shadow queue was full (the concurrency limit is reached and the queue is too).
    QueueFull,
    /// The request body was larger than the capture cap.
    BodyTooLarge,
    /// The shadow side did not answer within the timeout.
    Timeout,
    /// The shadow side could not be reached or the exchange failed.
    Error,
    /// The served request failed, so there is nothing to compare with.
    ServedFailed,
    /// The comparison queue was full.
    CompareQueueFull,
}

/// Counters of one route (or of pass-through traffic).
#[derive(Debug, Default)]
pub struct RouteStats {
    served_legacy: AtomicU64,
    served_new: AtomicU64,
    /// Requests meant for new that legacy served because new was unreachable.
    fallbacks: AtomicU64,
    shadows_sent: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_body_too_large: AtomicU64,
    shadow_timeouts: AtomicU64,
    shadow_errors: AtomicU64,
    served_failed: AtomicU64,
    compare_dropped: AtomicU64,
    pairs_equal: AtomicU64,
    pairs_noise: AtomicU64,
    pairs_regression: AtomicU64,
    /// Comparison time, microseconds, summed over `compared` pairs.
    compare_micros: AtomicU64,
    /// New-side answers that were errors: 5xx, timeouts, connection failures.
    new_server_errors: AtomicU64,
    new_timeouts: AtomicU64,
    new_connect_failures: AtomicU64,
    /// Automatic rollbacks of this route by this instance's guard.
    auto_rollbacks: AtomicU64,
    /// New-side outcomes and verdicts, per second, for the guard.
    pub window: Window,
    /// The same counts since the last phase change, for the promotion gate.
    since_change: Counts,
    /// When the phase in force last changed (Unix milliseconds).
    phase_since_ms: AtomicI64,
}

/// How the new side answered one request it served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewOutcome {
    Ok,
    /// A 5xx answer.
    ServerError,
    /// Connect or read timeout.
    Timeout,
    /// The connection could not be made (or broke).
    ConnectFailure,
}

impl NewOutcome {
    pub fn is_error(self) -> bool {
        self != NewOutcome::Ok
    }
}

/// New-side requests and errors, compared pairs and regressions.
#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    errors: AtomicU64,
    compared: AtomicU64,
    regressions: AtomicU64,
}

impl Counts {
    fn add(&self, requests: u64, errors: u64, compared: u64, regressions: u64) {
        for (counter, n) in [
            (&self.requests, requests),
            (&self.errors, errors),
            (&self.compared, compared),
            (&self.regressions, regressions),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn read(&self) -> Evidence {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Evidence {
            new_requests: read(&self.requests),
            new_errors: read(&self.errors),
            compared: read(&self.compared),
            regressions: read(&self.regressions),
        }
    }

    fn clear(&self) {
        for counter in [
            &self.requests,
            &self.errors,
            &self.compared,
            &self.regressions,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// What the guard and the gate judge a route by.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Evidence {
    /// Requests the new side served.
    pub new_requests: u64,
    /// Of which errors (5xx, timeouts, connection failures).
    pub new_errors: u64,
    /// Answer pairs compared.
    pub compared: u64,
    /// Of which regressions (noise-only differences are not counted).
    pub regressions: u64,
}

impl Evidence {
    pub fn error_rate(&self) -> f64 {
        rate(self.new_errors, self.new_requests)
    }

    pub fn mismatch_rate(&self) -> f64 {
        rate(self.regressions, self.compared)
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The longest sliding window, in seconds.
pub const MAX_WINDOW_SECS: u64 = 600;

/// One second of counts. `second` says which second the counts belong to; a slot found
/// holding an older second is cleared by the first writer of the new one.
#[derive(Debug, Default)]
struct Slot {
    second: AtomicU64,
    counts: Counts,
}

/// A ring of per-second slots covering the last [`MAX_WINDOW_SECS`] seconds. Allocated
/// once per route; recording never allocates or locks. At a second boundary, a count
/// racing with the slot's reset may be lost: negligible next to a window's sample size.
#[derive(Debug)]
pub struct Window {
    start: Instant,
    slots: Box<[Slot]>,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            slots: (0..=MAX_WINDOW_SECS).map(|_| Slot::default()).collect(),
        }
    }
}

impl Window {
    /// Seconds since the window was made, from 1 (0 marks an empty slot).
    fn now(&self) -> u64 {
        self.start.elapsed().as_secs() + 1
    }

    fn slot(&self, second: u64) -> &Slot {
        let slot = &self.slots[(second % self.slots.len() as u64) as usize];
        let seen = slot.second.load(Ordering::Acquire);
        if seen != second
            && slot
                .second
                .compare_exchange(seen, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.counts.clear();
        }
        slot
    }

    fn add(&self, requests: u64, errors: u64, compared: u64, regressions: u64) {
        self.slot(self.now())
            .counts
            .add(requests, errors, compared, regressions);
    }

    /// Totals over the last `secs` seconds (the current one included).
    pub fn totals(&self, secs: u64) -> Evidence {
        let now = self.now();
        let secs = secs.clamp(1, MAX_WINDOW_SECS);
        let mut total = Evidence::default();
        for slot in self.slots.iter() {
            let second = slot.second.load(Ordering::Acquire);
            if second != 0 && second + secs > now && second <= now {
                let counts = slot.counts.read();
                total.new_requests += counts.new_requests;
                total.new_errors += counts.new_errors;
                total.compared += counts.compared;
                total.regressions += counts.regressions;
            }
        }
        total
    }

    /// Forgets everything (the route's phase changed: old outcomes say nothing about it).
    pub fn clear(&self) {
        for slot in self.slots.iter() {
            slot.second.store(0, Ordering::Release);
            slot.counts.clear();
        }
    }
}

/// A point-in-time copy of [`RouteStats`], as the admin API shows it.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub served_legacy: u64,
    pub served_new: u64,
    pub fallbacks: u64,
    pub shadows_sent: u64,
    pub shadows_dropped_queue_full: u64,
    pub shadows_dropped_body_too_large: u64,
    pub shadow_timeouts: u64,
    pub shadow_errors: u64,
    pub served_failed: u64,
    pub compare_dropped: u64,
    pub pairs_equal: u64,
    /// Pairs whose every difference is noise.
    pub pairs_noise: u64,
    /// Pairs with at least one difference that is not noise.
    pub pairs_regression: u64,
    /// Pairs that differ at all (noise + regression).
    pub pairs_different: u64,
    /// Mean time to compare a pair, microseconds.
    pub compare_mean_micros: u64,
    pub new_server_errors: u64,
    pub new_timeouts: u64,
    pub new_connect_failures: u64,
    pub auto_rollbacks: u64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl RouteStats {
    pub fn served(&self, side: Side) {
        match side {
            Side::Legacy => bump(&self.served_legacy),
            Side::New => bump(&self.served_new),
        }
    }

    pub fn fallback(&self) {
        bump(&self.fallbacks);
    }

    /// Records how the new side answered a request it served (or failed to).
    pub fn new_outcome(&self, outcome: NewOutcome) {
        match outcome {
            NewOutcome::Ok => {}
            NewOutcome::ServerError => bump(&self.new_server_errors),
            NewOutcome::Timeout => bump(&self.new_timeouts),
            NewOutcome::ConnectFailure => bump(&self.new_connect_failures),
        }
        let errors = u64::from(outcome.is_error());
        self.window.add(1, errors, 0, 0);
        self.since_change.add(1, errors, 0, 0);
    }

    pub fn auto_rollback(&self) {
        bump(&self.auto_rollbacks);
    }

    /// The phase in force changed: the guard's window and the gate's counts start again.
    pub fn phase_changed(&self) {
        self.window.clear();
        self.since_change.clear();
        self.phase_since_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// Counts since the last phase change (or since start).
    pub fn since_phase_change(&self) -> Evidence {
        self.since_change.read()
    }

    /// When the phase last changed on this instance; `None` when it has not since start.
    pub fn phase_since(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.phase_since_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => chrono::DateTime::from_timestamp_millis(ms),
        }
    }

    pub fn shadow_sent(&self) {
        bump(&self.shadows_sent);
    }

    pub fn shadow_dropped(&self, why: ShadowDrop) {
        bump(match why {
            ShadowDrop::QueueFull => &self.dropped_queue_full,
            ShadowDrop::BodyTooLarge => &self.dropped_body_too_large,
            ShadowDrop::Timeout => &self.shadow_timeouts,
            ShadowDrop::Error => &self.shadow_errors,
            ShadowDrop::ServedFailed => &self.served_failed,
            ShadowDrop::CompareQueueFull => &self.compare_dropped,
        });
    }

    pub fn pair(&self, verdict: studyflow_diffing::Verdict, compare_micros: u64) {
        use studyflow_diffing::Verdict;
        bump(match verdict {
            Verdict::Equal => &self.pairs_equal,
            Verdict::Noise => &self.pairs_noise,
            Verdict::Regression => &self.pairs_regression,
        });
        self.compare_micros
            .fetch_add(compare_micros, Ordering::Relaxed);
        let regression = u64::from(verdict == Verdict::Regression);
        self.window.add(0, 0, 1, regression);
        self.since_change.add(0, 0, 1, regression);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            served_legacy: read(&self.served_legacy),
            served_new: read(&self.served_new),
            fallbacks: read(&self.fallbacks),
            shadows_sent: read(&self.shadows_sent),
            shadows_dropped_queue_full: read(&self.dropped_queue_full),
            shadows_dropped_body_too_large: read(&self.dropped_body_too_large),
            shadow_timeouts: read(&self.shadow_timeouts),
            shadow_errors: read(&self.shadow_errors),
            served_failed: read(&self.served_failed),
            compare_dropped: read(&self.compare_dropped),
            pairs_equal: read(&self.pairs_equal),
            pairs_noise: read(&self.pairs_noise),
            pairs_regression: read(&self.pairs_regression),
            pairs_different: read(&self.pairs_noise) + read(&self.pairs_regression),
            compare_mean_micros: {
                let n = read(&self.pairs_equal)
                    + read(&self.pairs_noise)
                    + read(&self.pairs_regression);
                read(&self.compare_micros).checked_div(n).unwrap_or(0)
            },
            new_server_errors: read(&self.new_server_errors),
            new_timeouts: read(&self.new_timeouts),
            new_connect_failures: read(&self.new_connect_failures),
            auto_rollbacks: read(&self.auto_rollbacks),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_outcomes_and_verdicts_and_forgets_on_a_phase_change() {
        let stats = RouteStats::default();
        for _ in 0..8 {
            stats.new_outcome(NewOutcome::Ok);
        }
        stats.new_outcome(NewOutcome::ServerError);
        stats.new_outcome(NewOutcome::Timeout);
        stats.pair(studyflow_diffing::Verdict::Noise, 1);
        stats.pair(studyflow_diffing::Verdict::Regression, 1);
        let window = stats.window.totals(60);
        assert_eq!(
            window,
            Evidence {
                new_requests: 10,
                new_errors: 2,
                compared: 2,
                regressions: 1
            }
        );
        assert!((window.error_rate() - 0.2).abs() < 1e-9);
        assert!((window.mismatch_rate() - 0.5).abs() < 1e-9);
        assert_eq!(stats.since_phase_change(), window);
        stats.phase_changed();
        assert_eq!(stats.window.totals(60), Evidence::default());
        assert_eq!(stats.since_phase_change(), Evidence::default());
        assert!(stats.phase_since().is_some());
        assert_eq!(stats.snapshot().new_server_errors, 1);
    }
}
