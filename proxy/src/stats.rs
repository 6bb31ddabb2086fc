//! Live counters per route, shown by the admin API. Plain atomics: the request path only
//! ever increments.
//!
//! Besides totals since start, each route keeps what the automatic rollback guard and the
//! promotion gate read: the new side's outcomes and the comparison verdicts in a sliding
//! [`Window`] of per-second slots, and the same counts since the route's last phase
//! change. Recording is a handful of relaxed atomic operations, with no lock and no
//! allocation.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
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
    /// Holding the copy would have taken the bytes buffered for shadowing over
    /// `shadow.max_buffered_bytes`.
    OverBudget,
    /// The copy would go to the new side, but no `shadow.secret` is configured to mark it
    /// as a dry run.
    NoSecret,
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
    dropped_over_budget: AtomicU64,
    dropped_no_secret: AtomicU64,
    pairs_equal: AtomicU64,
    pairs_noise: AtomicU64,
    pairs_regression: AtomicU64,
    pairs_provider_skipped: AtomicU64,
    /// Comparison time, microseconds, summed over `compared` pairs.
    compare_micros: AtomicU64,
    /// New-side answers that were errors: 5xx, timeouts, connection failures.
    new_server_errors: AtomicU64,
    /// New-side 5xx answers the legacy gave too (the contract's own errors): not faults.
    new_errors_shared: AtomicU64,
    /// New-side 5xx answers with no legacy answer to compare with.
    new_errors_unconfirmed: AtomicU64,
    new_timeouts: AtomicU64,
    new_connect_failures: AtomicU64,
    /// Automatic rollbacks of this route by this instance's guard.
    auto_rollbacks: AtomicU64,
    /// Times this instance's guard has looked at the route (it ticks every
    /// `guard.interval_ms`); what a wait for "the guard has had its say" waits on.
    guard_checks: AtomicU64,
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
    /// A 5xx answer where the legacy answered the same request otherwise.
    ServerError,
    /// A 5xx answer the legacy gave as well: the contract's answer, not a fault.
    SharedError,
    /// A 5xx answer with no legacy answer to hold it against, from the caller whose
    /// identity hashes to this value. Such errors count for the guard only once enough
    /// distinct callers had them, so one client cannot roll a route back.
    UnconfirmedError(u64),
    /// Connect or read timeout.
    Timeout,
    /// The connection could not be made (or broke).
    ConnectFailure,
}

impl NewOutcome {
    /// Whether the outcome is a fault of the new side for certain.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            NewOutcome::ServerError | NewOutcome::Timeout | NewOutcome::ConnectFailure
        )
    }
}

/// One recorded outcome or verdict, as counts.
#[derive(Debug, Clone, Copy, Default)]
struct Record {
    requests: u64,
    errors: u64,
    unconfirmed: u64,
    compared: u64,
    regressions: u64,
}

/// New-side requests and errors, compared pairs and regressions.
#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    errors: AtomicU64,
    unconfirmed: AtomicU64,
    compared: AtomicU64,
    regressions: AtomicU64,
}

impl Counts {
    fn counters(&self) -> [&AtomicU64; 5] {
        [
            &self.requests,
            &self.errors,
            &self.unconfirmed,
            &self.compared,
            &self.regressions,
        ]
    }

    fn add(&self, r: Record) {
        let values = [
            r.requests,
            r.errors,
            r.unconfirmed,
            r.compared,
            r.regressions,
        ];
        for (counter, n) in self.counters().into_iter().zip(values) {
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
            unconfirmed_errors: read(&self.unconfirmed),
            unconfirmed_callers: 0,
            compared: read(&self.compared),
            regressions: read(&self.regressions),
        }
    }

    fn clear(&self) {
        for counter in self.counters() {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// What the guard and the gate judge a route by.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Evidence {
    /// Requests the new side served.
    pub new_requests: u64,
    /// Of which certain faults: timeouts, connection failures, and 5xx answers where the
    /// legacy answered otherwise.
    pub new_errors: u64,
    /// Of which 5xx answers that had no legacy answer to compare with.
    pub unconfirmed_errors: u64,
    /// Distinct callers among those (counted in the guard's window only).
    pub unconfirmed_callers: u64,
    /// Answer pairs compared.
    pub compared: u64,
    /// Of which regressions (noise-only differences are not counted).
    pub regressions: u64,
}

impl Evidence {
    /// Every error, unconfirmed ones included: what the promotion gate holds against a
    /// route before it moves forward.
    pub fn error_rate(&self) -> f64 {
        rate(self.new_errors + self.unconfirmed_errors, self.new_requests)
    }

    /// The errors the guard acts on: certain faults, plus unconfirmed errors once at least
    /// `min_callers` distinct callers had them.
    pub fn guard_errors(&self, min_callers: u64) -> u64 {
        let unconfirmed = if self.unconfirmed_callers >= min_callers.max(1) {
            self.unconfirmed_errors
        } else {
            0
        };
        self.new_errors + unconfirmed
    }

    pub fn guard_error_rate(&self, min_callers: u64) -> f64 {
        rate(self.guard_errors(min_callers), self.new_requests)
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

/// Callers of unconfirmed errors kept per route (the oldest go first).
const CALLERS_KEPT: usize = 4096;

/// A ring of per-second slots covering the last [`MAX_WINDOW_SECS`] seconds. Allocated
/// once per route; recording never allocates or locks, except for an unconfirmed error,
/// whose caller is kept in a short bounded list. At a second boundary, a count racing
/// with the slot's reset may be lost: negligible next to a window's sample size.
#[derive(Debug)]
pub struct Window {
    start: Instant,
    slots: Box<[Slot]>,
    /// `(second, caller hash)` of unconfirmed errors, oldest first.
    callers: Mutex<VecDeque<(u64, u64)>>,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            slots: (0..=MAX_WINDOW_SECS).map(|_| Slot::default()).collect(),
            callers: Mutex::new(VecDeque::new()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    fn add(&self, record: Record) {
        self.slot(self.now()).counts.add(record);
    }

    fn add_caller(&self, caller: u64) {
        let mut callers = lock(&self.callers);
        if callers.len() == CALLERS_KEPT {
            callers.pop_front();
        }
        callers.push_back((self.now(), caller));
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
                total.unconfirmed_errors += counts.unconfirmed_errors;
                total.compared += counts.compared;
                total.regressions += counts.regressions;
            }
        }
        let callers = lock(&self.callers);
        total.unconfirmed_callers = callers
            .iter()
            .filter(|(second, _)| second + secs > now)
            .map(|(_, caller)| caller)
            .collect::<HashSet<_>>()
            .len() as u64;
        total
    }

    /// Forgets everything (the route's phase changed: old outcomes say nothing about it).
    pub fn clear(&self) {
        for slot in self.slots.iter() {
            slot.second.store(0, Ordering::Release);
            slot.counts.clear();
        }
        lock(&self.callers).clear();
    }
}

impl StatsSnapshot {
    /// Every way a copy can fail to become a compared pair, with its count: the names are
    /// the `outcome` label of [`crate::metrics::SHADOWS_TOTAL`] and the keys of the admin
    /// API's `losses`.
    pub fn losses(&self) -> [(&'static str, u64); 8] {
        [
            ("dropped_queue_full", self.shadows_dropped_queue_full),
            (
                "dropped_body_too_large",
                self.shadows_dropped_body_too_large,
            ),
            ("dropped_over_budget", self.shadows_dropped_over_budget),
            ("dropped_no_secret", self.shadows_dropped_no_secret),
            ("timeout", self.shadow_timeouts),
            ("error", self.shadow_errors),
            ("served_failed", self.served_failed),
            ("compare_dropped", self.compare_dropped),
        ]
    }

    /// Copies that were not compared, whatever the reason.
    pub fn shadows_lost(&self) -> u64 {
        self.losses().iter().map(|(_, n)| n).sum()
    }
}

/// A point-in-time copy of [`RouteStats`], as the admin API shows it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
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
    pub shadows_dropped_over_budget: u64,
    pub shadows_dropped_no_secret: u64,
    pub pairs_equal: u64,
    /// Pairs whose every difference is noise.
    pub pairs_noise: u64,
    /// Pairs with at least one difference that is not noise.
    pub pairs_regression: u64,
    /// Pairs that differ at all (noise + regression).
    pub pairs_different: u64,
    /// Pairs not compared because the new side's dry run skipped its provider call (its
    /// AI content is a placeholder): neither evidence nor regression.
    pub pairs_provider_skipped: u64,
    /// Mean time to compare a pair, microseconds.
    pub compare_mean_micros: u64,
    pub new_server_errors: u64,
    /// 5xx answers the legacy gave too (not counted as faults).
    pub new_errors_shared: u64,
    /// 5xx answers with no legacy answer to compare with.
    pub new_errors_unconfirmed: u64,
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
        let mut record = Record {
            requests: 1,
            errors: u64::from(outcome.is_error()),
            ..Record::default()
        };
        match outcome {
            NewOutcome::Ok => {}
            NewOutcome::ServerError => bump(&self.new_server_errors),
            NewOutcome::SharedError => bump(&self.new_errors_shared),
            NewOutcome::UnconfirmedError(caller) => {
                bump(&self.new_errors_unconfirmed);
                record.unconfirmed = 1;
                self.window.add_caller(caller);
            }
            NewOutcome::Timeout => bump(&self.new_timeouts),
            NewOutcome::ConnectFailure => bump(&self.new_connect_failures),
        }
        self.window.add(record);
        self.since_change.add(record);
    }

    pub fn auto_rollback(&self) {
        bump(&self.auto_rollbacks);
    }

    /// The guard looked at the route (whether or not it could act on it).
    pub fn guard_checked(&self) {
        bump(&self.guard_checks);
    }

    pub fn guard_checks(&self) -> u64 {
        self.guard_checks.load(Ordering::Relaxed)
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
            ShadowDrop::OverBudget => &self.dropped_over_budget,
            ShadowDrop::NoSecret => &self.dropped_no_secret,
        });
    }

    /// A pair left uncompared: the new side's dry run skipped its provider call.
    pub fn provider_skipped(&self) {
        bump(&self.pairs_provider_skipped);
    }

    /// A compared pair, served at `served_at`: evidence for the guard and the gate only
    /// when it was served under the phase in force (a pair served before the last phase
    /// change and compared after it counts in the totals alone).
    pub fn pair(
        &self,
        verdict: studyflow_diffing::Verdict,
        compare_micros: u64,
        served_at: chrono::DateTime<chrono::Utc>,
    ) {
        use studyflow_diffing::Verdict;
        bump(match verdict {
            Verdict::Equal => &self.pairs_equal,
            Verdict::Noise => &self.pairs_noise,
            Verdict::Regression => &self.pairs_regression,
        });
        self.compare_micros
            .fetch_add(compare_micros, Ordering::Relaxed);
        let record = Record {
            compared: 1,
            regressions: u64::from(verdict == Verdict::Regression),
            ..Record::default()
        };
        if served_at.timestamp_millis() >= self.phase_since_ms.load(Ordering::Relaxed) {
            self.window.add(record);
            self.since_change.add(record);
        }
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
            shadows_dropped_over_budget: read(&self.dropped_over_budget),
            shadows_dropped_no_secret: read(&self.dropped_no_secret),
            pairs_equal: read(&self.pairs_equal),
            pairs_noise: read(&self.pairs_noise),
            pairs_regression: read(&self.pairs_regression),
            pairs_different: read(&self.pairs_noise) + read(&self.pairs_regression),
            pairs_provider_skipped: read(&self.pairs_provider_skipped),
            compare_mean_micros: {
                let n = read(&self.pairs_equal)
                    + read(&self.pairs_noise)
                    + read(&self.pairs_regression);
                read(&self.compare_micros).checked_div(n).unwrap_or(0)
            },
            new_server_errors: read(&self.new_server_errors),
            new_errors_shared: read(&self.new_errors_shared),
            new_errors_unconfirmed: read(&self.new_errors_unconfirmed),
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
        let served = chrono::Utc::now();
        stats.pair(studyflow_diffing::Verdict::Noise, 1, served);
        stats.pair(studyflow_diffing::Verdict::Regression, 1, served);
        let window = stats.window.totals(60);
        assert_eq!(
            window,
            Evidence {
                new_requests: 10,
                new_errors: 2,
                compared: 2,
                regressions: 1,
                ..Evidence::default()
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
        // A pair served before the change but compared after it is no evidence for the
        // new phase.
        stats.pair(
            studyflow_diffing::Verdict::Equal,
            1,
            served - chrono::TimeDelta::seconds(1),
        );
        assert_eq!(stats.since_phase_change(), Evidence::default());
        assert_eq!(stats.snapshot().pairs_equal, 1);
        stats.pair(studyflow_diffing::Verdict::Equal, 1, chrono::Utc::now());
        assert_eq!(stats.since_phase_change().compared, 1);
    }

    #[test]
    fn unconfirmed_errors_count_for_the_guard_only_from_enough_callers() {
        let stats = RouteStats::default();
        for _ in 0..50 {
            stats.new_outcome(NewOutcome::UnconfirmedError(7));
        }
        stats.new_outcome(NewOutcome::SharedError);
        let window = stats.window.totals(60);
        assert_eq!(window.new_requests, 51);
        assert_eq!(window.unconfirmed_errors, 50);
        assert_eq!(window.unconfirmed_callers, 1);
        assert_eq!(
            window.guard_errors(5),
            0,
            "one caller cannot trip the guard"
        );
        for caller in 1..5 {
            stats.new_outcome(NewOutcome::UnconfirmedError(caller));
        }
        let window = stats.window.totals(60);
        assert_eq!(window.unconfirmed_callers, 5);
        assert_eq!(window.guard_errors(5), 54);
        assert_eq!(stats.snapshot().new_errors_shared, 1);
    }
}
