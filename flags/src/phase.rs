use serde::{Deserialize, Serialize};

/// Where a route stands in its migration from the legacy functions to the new backend.
///
/// The phases are ordered: a route moves forward one phase at a time and can be rolled
/// back to [`Phase::Legacy`] at any moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase", content = "percent")]
pub enum Phase {
    /// Not started: the legacy function serves every request.
    Legacy,
    /// Legacy serves; the new backend receives a copy of each request for comparison.
    Shadow,
    /// A sticky share of users (the percentage, 0–100) is served by the new backend; the
    /// other side is shadowed.
    Canary(u8),
    /// The new backend serves; legacy is shadowed so a rollback stays safe.
    Primary,
    /// The new backend alone serves; the legacy function is gone.
    Decommissioned,
}

/// One of the two upstreams a route can be served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Legacy,
    New,
}

impl Phase {
    /// One phase of each kind, from legacy to decommissioned (the canary at 0 %).
    pub const ALL: [Phase; 5] = [
        Phase::Legacy,
        Phase::Shadow,
        Phase::Canary(0),
        Phase::Primary,
        Phase::Decommissioned,
    ];

    /// The phases' names, in order: what files, forms, toggles and the admin API use.
    pub const NAMES: [&'static str; 5] = [
        Phase::Legacy.name(),
        Phase::Shadow.name(),
        Phase::Canary(0).name(),
        Phase::Primary.name(),
        Phase::Decommissioned.name(),
    ];

    /// The side that answers the client, given the user's canary bucket (1–100).
    ///
    /// A bucket is served by new when `bucket <= percent`, so raising the percentage only
    /// ever moves users from legacy to new, never back.
    pub fn serving_side(self, bucket: u8) -> Side {
        match self {
            Phase::Legacy | Phase::Shadow => Side::Legacy,
            Phase::Canary(percent) if bucket <= percent => Side::New,
            Phase::Canary(_) => Side::Legacy,
            Phase::Primary | Phase::Decommissioned => Side::New,
        }
    }

    /// Reads a phase from its name and, for `canary` only, a percentage (0–100). The error
    /// says what is wrong in words an operator can act on.
    pub fn from_parts(name: &str, percent: Option<u8>) -> Result<Phase, String> {
        let canary = Phase::Canary(0).name();
        match (Phase::named(name)?, percent) {
            (_, Some(percent)) if name == canary && percent <= 100 => Ok(Phase::Canary(percent)),
            (_, Some(percent)) if name == canary => Err(format!("percent {percent} is over 100")),
            (_, None) if name == canary => Err("canary needs a `percent`".into()),
            (_, Some(_)) => Err("`percent` goes only with phase `canary`".into()),
            (phase, None) => Ok(phase),
        }
    }

    /// The phase called `name` (one of [`Phase::NAMES`]); `canary` reads as a canary at
    /// 0 %, for callers that take the percentage from elsewhere.
    pub fn named(name: &str) -> Result<Phase, String> {
        Phase::ALL
            .into_iter()
            .find(|phase| phase.name() == name)
            .ok_or_else(|| format!("unknown phase `{name}` ({})", Phase::NAMES.join(", ")))
    }

    /// The canary percentage, for `canary` only.
    pub fn percent(self) -> Option<u8> {
        match self {
            Phase::Canary(percent) => Some(percent),
            _ => None,
        }
    }

    /// Position on the way from legacy (0) to decommissioned; a canary's grows with its
    /// percentage.
    pub fn rank(self) -> u16 {
        match self {
            Phase::Legacy => 0,
            Phase::Shadow => 1,
            Phase::Canary(percent) => 2 + u16::from(percent),
            Phase::Primary => 103,
            Phase::Decommissioned => 104,
        }
    }

    /// Whether going from `self` to `to` moves the route toward legacy (or keeps it
    /// where it is): fewer users on the new backend, never more.
    pub fn is_toward_legacy(self, to: Phase) -> bool {
        to.rank() <= self.rank()
    }

    /// Whether the new backend answers any user in this phase.
    pub fn serves_new(self) -> bool {
        match self {
            Phase::Legacy | Phase::Shadow | Phase::Canary(0) => false,
            Phase::Canary(_) | Phase::Primary | Phase::Decommissioned => true,
        }
    }

    /// The short name used in files, logs, metrics and the admin API.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Legacy => "legacy",
            Phase::Shadow => "shadow",
            Phase::Canary(_) => "canary",
            Phase::Primary => "primary",
            Phase::Decommissioned => "decommissioned",
        }
    }
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Legacy => "legacy",
            Side::New => "new",
        }
    }
}

/// Phases are ordered by [`Phase::rank`]: from legacy to decommissioned, canaries by
/// percentage.
impl PartialOrd for Phase {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Phase {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// Reads what [`Display`](std::fmt::Display) writes: a phase's name, and for a canary
/// its percentage (`canary 25%`; `canary 25` too).
impl std::str::FromStr for Phase {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        match text.split_once(' ') {
            Some((name, percent)) => {
                let digits = percent.trim().trim_end_matches('%');
                let percent = digits
                    .parse::<u8>()
                    .map_err(|_| format!("percent `{percent}` is not a number from 0 to 100"))?;
                Phase::from_parts(name, Some(percent))
            }
            None => Phase::from_parts(text, None),
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Canary(percent) => write!(f, "canary {percent}%"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_read_back_what_they_print_and_are_ordered() {
        for phase in [
            Phase::Legacy,
            Phase::Shadow,
            Phase::Canary(0),
            Phase::Canary(25),
            Phase::Canary(100),
            Phase::Primary,
            Phase::Decommissioned,
        ] {
            assert_eq!(phase.to_string().parse::<Phase>(), Ok(phase));
        }
        assert_eq!("canary 5".parse::<Phase>(), Ok(Phase::Canary(5)));
        for wrong in [
            "",
            "canary",
            "canary 101%",
            "canary x%",
            "primary 5%",
            "Primary",
            "beta",
        ] {
            assert!(wrong.parse::<Phase>().is_err(), "{wrong:?}");
        }
        let mut phases = [
            Phase::Decommissioned,
            Phase::Canary(50),
            Phase::Legacy,
            Phase::Primary,
            Phase::Canary(5),
            Phase::Shadow,
        ];
        phases.sort();
        assert_eq!(
            phases,
            [
                Phase::Legacy,
                Phase::Shadow,
                Phase::Canary(5),
                Phase::Canary(50),
                Phase::Primary,
                Phase::Decommissioned
            ]
        );
        assert_eq!(
            Phase::NAMES,
            ["legacy", "shadow", "canary", "primary", "decommissioned"]
        );
    }

    #[test]
    fn canary_serves_new_up_to_the_percentage() {
        let phase = Phase::Canary(25);
        assert_eq!(phase.serving_side(1), Side::New);
        assert_eq!(phase.serving_side(25), Side::New);
        assert_eq!(phase.serving_side(26), Side::Legacy);
        assert_eq!(Phase::Canary(0).serving_side(1), Side::Legacy);
        assert_eq!(Phase::Canary(100).serving_side(100), Side::New);
    }

    #[test]
    fn raising_the_percentage_never_moves_a_user_back() {
        for bucket in 1..=100 {
            let mut was_new = false;
            for percent in 0..=100 {
                let new = Phase::Canary(percent).serving_side(bucket) == Side::New;
                assert!(!was_new || new, "bucket {bucket} moved back at {percent}%");
                was_new = new;
            }
        }
    }

    #[test]
    fn fixed_phases_ignore_the_bucket() {
        for bucket in [1, 50, 100] {
            assert_eq!(Phase::Legacy.serving_side(bucket), Side::Legacy);
            assert_eq!(Phase::Shadow.serving_side(bucket), Side::Legacy);
            assert_eq!(Phase::Primary.serving_side(bucket), Side::New);
            assert_eq!(Phase::Decommissioned.serving_side(bucket), Side::New);
        }
    }
}
