//! Live counters per route, shown by the admin API. Plain atomics: the request path only
//! ever increments.

use std::sync::atomic::{AtomicU64, Ordering};

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
        }
    }
}
