//! A circuit breaker per provider, so a provider that is down is skipped at once instead
//! of costing every student a timeout.
//!
//! - **Closed**: calls go through. It opens after `AI_BREAKER_FAILURES` consecutive
//!   failures, or when failures make up `AI_BREAKER_ERROR_RATE` of the calls of the last
//!   `AI_BREAKER_WINDOW_SECS` (once the window holds `AI_BREAKER_MIN_CALLS` calls).
//! - **Open** for `AI_BREAKER_OPEN_SECS`: calls are refused without touching the network.
//! - **Half-open**: then up to `AI_BREAKER_HALF_OPEN_PROBES` probe calls at a time go
//!   through; a probe that succeeds closes the breaker, one that fails opens it again.
//!
//! Separately, a provider's `Retry-After` holds it off for that long ([`Breaker::hold_off`]):
//! other requests do not call it sooner either.
//!
//! Only the provider's own trouble counts as a failure (429, 5xx, timeouts, network
//! errors, malformed answers), never a request it refused as invalid.
//!
//! Hand-written rather than a crate: the one maintained candidate (`failsafe`) does not
//! expose its state (we report it as a metric and in `availability`), cannot bound the
//! number of half-open probes, and would still need the `Retry-After` hold-off beside it;
//! the state machine is small enough to read in one go.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::Provider;
use super::chat::Availability;
use crate::config::BackendConfig;
use crate::metrics::Metrics;

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    pub consecutive_failures: u32,
    pub error_rate: f64,
    pub min_calls: u32,
    pub window: Duration,
    pub open_for: Duration,
    pub half_open_probes: u32,
}

impl BreakerSettings {
    pub fn from_config(config: &BackendConfig) -> Self {
        Self {
            consecutive_failures: config.ai.breaker.failures,
            error_rate: config.ai.breaker.error_rate,
            min_calls: config.ai.breaker.min_calls,
            window: Duration::from_secs(config.ai.breaker.window_secs),
            open_for: Duration::from_secs(config.ai.breaker.open_secs),
            half_open_probes: config.ai.breaker.half_open_probes,
        }
    }
}

/// The breaker's state, as reported (metric value in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through (0).
    Closed,
    /// Probes go through (1).
    HalfOpen,
    /// Calls are refused (2).
    Open,
}

impl BreakerState {
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32 },
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
    /// (when, failed) of the calls in the window.
    window: VecDeque<(Instant, bool)>,
    /// `Retry-After` from the provider: no call before this.
    hold_off_until: Option<Instant>,
}

/// One provider's breaker. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Breaker {
    provider: Provider,
    settings: BreakerSettings,
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_in: Duration,
}

/// Permission for one call; report its outcome with [`Permit::record`]. A permit dropped
/// without an outcome (the caller went away) frees its probe slot and counts as nothing.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    done: bool,
}

/// How a call ended, as the breaker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
    /// Neither (the request was refused as invalid, or the call was abandoned).
    Neutral,
}

impl Breaker {
    pub fn new(provider: Provider, settings: BreakerSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        let breaker = Arc::new(Self {
            provider,
            settings,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive_failures: 0,
                window: VecDeque::new(),
                hold_off_until: None,
            }),
            metrics,
        });
        breaker
            .metrics
            .breaker_state(provider.label(), BreakerState::Closed.gauge());
        breaker
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state now (an open breaker whose time is up reads as half-open).
    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        match inner.state {
            State::Closed => BreakerState::Closed,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
            State::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
        }
    }

    /// What [`super::chat::ChatProvider::availability`] reports for the breaker part.
    pub fn availability(&self) -> Availability {
        let now = Instant::now();
        let inner = self.lock();
        if let Some(until) = inner.hold_off_until.filter(|u| *u > now) {
            return Availability::CircuitOpen {
                retry_in: until - now,
            };
        }
        match inner.state {
            State::Closed => Availability::Available,
            State::HalfOpen { .. } => Availability::Probing,
            State::Open { until } if now >= until => Availability::Probing,
            State::Open { until } => Availability::CircuitOpen {
                retry_in: until - now,
            },
        }
    }

    /// Asks to make one call.
    pub fn try_acquire(self: &Arc<Self>) -> Result<Permit, Refused> {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(until) = inner.hold_off_until {
            if until > now {
                return Err(Refused {
                    retry_in: until - now,
                });
            }
            inner.hold_off_until = None;
        }
        let probe = match inner.state {
            State::Closed => false,
            State::Open { until } if now < until => {
                return Err(Refused {
                    retry_in: until - now,
                });
            }
            State::Open { .. } => {
                self.transition(&mut inner, State::HalfOpen { in_flight: 1 });
                true
            }
            State::HalfOpen { ref mut in_flight } => {
                if *in_flight >= self.settings.half_open_probes {
                    return Err(Refused {
                        retry_in: Duration::ZERO,
                    });
                }
                *in_flight += 1;
                true
            }
        };
        Ok(Permit {
            breaker: Arc::clone(self),
            probe,
            done: false,
        })
    }

    /// The provider asked not to be called for `wait` (`Retry-After`).
    pub fn hold_off(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut inner = self.lock();
        if inner.hold_off_until.is_none_or(|current| current < until) {
            inner.hold_off_until = Some(until);
        }
    }

    /// A failure outside a permit (a stream that broke off after its first token).
    pub fn record_failure(&self) {
        self.settle(false, Verdict::Failure);
    }

    fn settle(&self, probe: bool, verdict: Verdict) {
        let now = Instant::now();
        let mut inner = self.lock();
        if probe && let State::HalfOpen { in_flight } = &mut inner.state {
            *in_flight = in_flight.saturating_sub(1);
        }
        let failed = match verdict {
            Verdict::Neutral => return,
            Verdict::Success => false,
            Verdict::Failure => true,
        };
        let window = self.settings.window;
        while inner
            .window
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > window)
        {
            inner.window.pop_front();
        }
        inner.window.push_back((now, failed));
        if failed {
            inner.consecutive_failures += 1;
        } else {
            inner.consecutive_failures = 0;
        }
        match inner.state {
            State::HalfOpen { .. } if failed => {
                let until = now + self.settings.open_for;
                self.transition(&mut inner, State::Open { until });
            }
            State::HalfOpen { .. } if probe => {
                inner.window.clear();
                self.transition(&mut inner, State::Closed);
            }
            State::Closed if failed && self.should_open(&inner) => {
                let until = now + self.settings.open_for;
                self.transition(&mut inner, State::Open { until });
            }
            _ => {}
        }
    }

    fn should_open(&self, inner: &Inner) -> bool {
        if inner.consecutive_failures >= self.settings.consecutive_failures {
            return true;
        }
        let calls = inner.window.len();
        if calls < self.settings.min_calls as usize || calls == 0 {
            return false;
        }
        let failures = inner.window.iter().filter(|(_, failed)| *failed).count();
        failures as f64 / calls as f64 >= self.settings.error_rate
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        let label = match to {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        };
        inner.state = to;
        if label == BreakerState::Closed {
            inner.consecutive_failures = 0;
        }
        self.metrics
            .breaker_transition(self.provider.label(), label.label(), label.gauge());
        match label {
            BreakerState::Open => tracing::warn!(
                provider = self.provider.label(),
                open_for_secs = self.settings.open_for.as_secs(),
                "circuit breaker opened"
            ),
            _ => tracing::info!(
                provider = self.provider.label(),
                state = label.label(),
                "circuit breaker changed state"
            ),
        }
    }
}

impl Permit {
    /// Reports how the call ended.
    pub fn record(mut self, verdict: Verdict) {
        self.done = true;
        self.breaker.settle(self.probe, verdict);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.settle(self.probe, Verdict::Neutral);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_for: Duration) -> Arc<Breaker> {
        let settings = BreakerSettings {
            consecutive_failures: 3,
            error_rate: 0.5,
            min_calls: 6,
            window: Duration::from_secs(60),
            open_for,
            half_open_probes: 1,
        };
        Breaker::new(
            Provider::OpenAi,
            settings,
            Arc::new(Metrics::new().expect("metrics")),
        )
    }

    fn call(breaker: &Arc<Breaker>, verdict: Verdict) {
        breaker.try_acquire().expect("allowed").record(verdict);
    }

    #[tokio::test]
    async fn opens_after_consecutive_failures_then_probes_and_closes() {
        let breaker = breaker(Duration::from_millis(50));
        call(&breaker, Verdict::Failure);
        call(&breaker, Verdict::Failure);
        call(&breaker, Verdict::Success);
        call(&breaker, Verdict::Failure);
        call(&breaker, Verdict::Failure);
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "a success resets the run"
        );
        call(&breaker, Verdict::Failure);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(breaker.try_acquire().is_err());
        assert!(matches!(
            breaker.availability(),
            Availability::CircuitOpen { .. }
        ));

        tokio::time::sleep(Duration::from_millis(60)).await;
        let probe = breaker.try_acquire().expect("a probe goes through");
        assert!(
            breaker.try_acquire().is_err(),
            "one probe at a time while half-open"
        );
        probe.record(Verdict::Failure);
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "a failed probe reopens"
        );

        tokio::time::sleep(Duration::from_millis(60)).await;
        call(&breaker, Verdict::Success);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.availability(), Availability::Available);
    }

    #[tokio::test]
    async fn opens_on_the_error_rate_of_the_window() {
        let breaker = breaker(Duration::from_secs(60));
        for verdict in [
            Verdict::Failure,
            Verdict::Success,
            Verdict::Failure,
            Verdict::Success,
            Verdict::Failure,
        ] {
            call(&breaker, verdict);
        }
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "fewer calls than min_calls"
        );
        call(&breaker, Verdict::Failure);
        assert_eq!(breaker.state(), BreakerState::Open, "4 of 6 failed");
    }

    #[tokio::test]
    async fn abandoned_probes_free_their_slot_and_neutral_calls_do_not_count() {
        let breaker = breaker(Duration::from_millis(10));
        for _ in 0..3 {
            call(&breaker, Verdict::Failure);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(breaker.try_acquire().expect("probe"));
        let probe = breaker.try_acquire().expect("the slot is free again");
        probe.record(Verdict::Neutral);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        call(&breaker, Verdict::Success);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn retry_after_holds_the_provider_off() {
        let breaker = breaker(Duration::from_secs(60));
        breaker.hold_off(Duration::from_millis(40));
        let refused = breaker.try_acquire().expect_err("held off");
        assert!(refused.retry_in <= Duration::from_millis(40));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(breaker.try_acquire().is_ok());
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
