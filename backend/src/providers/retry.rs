//! Retries of one provider: exponential backoff with jitter (the `backon` crate), on
//! 408/429/5xx, timeouts and network errors, with the provider's `Retry-After` taking the
//! place of the computed delay. A wait that would be longer than `AI_RETRY_MAX_DELAY_MS`
//! or run past the chain's deadline is not made: the chain moves on to its next provider
//! instead (see [`super::chain`]).

use std::time::Duration;

use backon::ExponentialBuilder;
use tokio::time::Instant;

use crate::config::BackendConfig;

/// How one provider is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &BackendConfig) -> Self {
        Self {
            max_retries: config.ai.retry.max,
            base_delay: Duration::from_millis(config.ai.retry.base_ms),
            max_delay: Duration::from_millis(config.ai.retry.max_delay_ms),
        }
    }

    /// The backoff schedule: base, 2×base, 4×base … (capped), each with random jitter.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_retries as usize)
            .with_jitter()
    }

    /// The wait before the next try: the provider's `Retry-After` when it sent one, else
    /// the backoff's `computed` delay; `None` (give up on this provider) when the backoff
    /// is exhausted, the wait exceeds `max_delay`, or it would end past `deadline`.
    pub fn next_wait(
        &self,
        computed: Option<Duration>,
        retry_after: Option<Duration>,
        deadline: Instant,
    ) -> Option<Duration> {
        let computed = computed?;
        let wait = match retry_after {
            Some(asked) if asked > self.max_delay => return None,
            Some(asked) => asked,
            // Jitter may carry the computed delay past the cap.
            None => computed.min(self.max_delay),
        };
        if Instant::now() + wait >= deadline {
            return None;
        }
        Some(wait)
    }
}

/// `Retry-After`: a number of seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some(Duration::from_secs_f64(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }

    #[test]
    fn retry_after_comes_as_seconds_or_a_date() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let wait = parse_retry_after(&later).expect("a date");
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[tokio::test]
    async fn waits_honour_retry_after_the_cap_and_the_deadline() {
        let policy = policy();
        let far = Instant::now() + Duration::from_secs(60);
        let computed = Some(Duration::from_millis(100));
        assert_eq!(policy.next_wait(computed, None, far), computed);
        assert_eq!(
            policy.next_wait(computed, Some(Duration::from_secs(1)), far),
            Some(Duration::from_secs(1)),
            "Retry-After replaces the backoff"
        );
        assert_eq!(
            policy.next_wait(computed, Some(Duration::from_secs(5)), far),
            None,
            "longer than the cap: move on"
        );
        let near = Instant::now() + Duration::from_millis(50);
        assert_eq!(
            policy.next_wait(computed, None, near),
            None,
            "past the deadline"
        );
        assert_eq!(policy.next_wait(None, None, far), None, "retries used up");
    }

    #[test]
    fn the_backoff_grows_and_stops() {
        let delays: Vec<Duration> = policy().backoff().build().collect();
        assert_eq!(delays.len(), 3);
        // Jitter adds up to one delay on top of base × 2^n.
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(200));
        assert!(delays[2] >= Duration::from_millis(400));
        let capped = policy().next_wait(
            Some(Duration::from_secs(3)),
            None,
            Instant::now() + Duration::from_secs(60),
        );
        assert_eq!(
            capped,
            Some(Duration::from_secs(2)),
            "jitter stays under the cap"
        );
    }
}
