//! Waiting on the wall clock, for tests of what is counted per calendar minute.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MINUTE: Duration = Duration::from_secs(60);

/// Returns once at least `needed` is left before the wall clock's minute turns, sleeping
/// into the next minute when less is left, so that steps counted per calendar minute
/// land in one minute.
///
/// # Panics
/// When `needed` is a minute or more: no minute has that much left.
pub async fn clear_of_minute_turn(needed: Duration) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    if let Some(wait) = wait_for(since_epoch, needed) {
        tokio::time::sleep(wait).await;
    }
}

/// How long to wait at `since_epoch` for `needed` to be left in a minute: none when it
/// is, else until just past the turn.
fn wait_for(since_epoch: Duration, needed: Duration) -> Option<Duration> {
    assert!(needed < MINUTE, "a minute has less: {needed:?}");
    let into_minute = Duration::from_nanos((since_epoch.as_nanos() % MINUTE.as_nanos()) as u64);
    let left = MINUTE - into_minute;
    // A few milliseconds past the turn, so that the next minute has begun.
    (left < needed).then(|| left + Duration::from_millis(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_only_when_the_minute_is_about_to_turn() {
        let needed = Duration::from_secs(5);
        // 1_780_000_020 s after the epoch is the start of a minute.
        let at = |ms| {
            wait_for(
                Duration::from_secs(1_780_000_020) + Duration::from_millis(ms),
                needed,
            )
        };
        assert_eq!(at(0), None);
        assert_eq!(at(54_900), None);
        assert_eq!(at(55_000), None, "exactly enough is left");
        assert_eq!(at(57_500), Some(Duration::from_millis(2_520)));
        assert_eq!(at(59_990), Some(Duration::from_millis(30)));
    }
}
