//! What `live` provider calls of shadowed requests may cost: per function, at most
//! `SHADOW_LIVE_PER_MINUTE` calls in a calendar minute and `SHADOW_LIVE_PER_DAY` in a UTC
//! day, on this instance. Past either, the dry run skips its call like in `skip` mode
//! (and says so to the gateway), so an operator can compare real answers at a bounded
//! cost.

use std::collections::HashMap;
use std::sync::Mutex;

/// Live shadow calls left, per function.
#[derive(Debug)]
pub struct ShadowBudget {
    per_minute: u32,
    per_day: u32,
    spent: Mutex<HashMap<&'static str, Spent>>,
}

/// Calls made in the current minute and day (both as Unix minute and day numbers).
#[derive(Debug, Default, Clone, Copy)]
struct Spent {
    minute: i64,
    in_minute: u32,
    day: i64,
    in_day: u32,
}

impl ShadowBudget {
    pub fn new(per_minute: u32, per_day: u32) -> Self {
        Self {
            per_minute,
            per_day,
            spent: Mutex::default(),
        }
    }

    /// Takes one live call for `function` at `now_secs` (Unix seconds); `false` when the
    /// minute's or the day's budget is spent.
    pub fn take(&self, function: &'static str, now_secs: i64) -> bool {
        let (minute, day) = (now_secs.div_euclid(60), now_secs.div_euclid(86_400));
        let mut spent = self
            .spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = spent.entry(function).or_default();
        if entry.minute != minute {
            (entry.minute, entry.in_minute) = (minute, 0);
        }
        if entry.day != day {
            (entry.day, entry.in_day) = (day, 0);
        }
        if entry.in_minute >= self.per_minute || entry.in_day >= self.per_day {
            return false;
        }
        entry.in_minute += 1;
        entry.in_day += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minute_and_the_day_each_bound_live_calls() {
        let budget = ShadowBudget::new(2, 3);
        let t = 1_796_212_800; // a minute's and a day's start
        assert!(budget.take("ai-proxy", t));
        assert!(budget.take("ai-proxy", t + 10));
        assert!(
            !budget.take("ai-proxy", t + 20),
            "the minute's two are spent"
        );
        assert!(budget.take("ai-tutor-professional", t + 20), "per function");
        assert!(budget.take("ai-proxy", t + 60), "a new minute");
        assert!(
            !budget.take("ai-proxy", t + 120),
            "the day's three are spent"
        );
        assert!(budget.take("ai-proxy", t + 86_400), "a new day");
    }
}
