//! Telling noise from regressions.
//!
//! A difference is *noise* when the route's rules declare its path noisy (the contract's
//! ids and timestamps), or when the same path also differs between two answers of the
//! *same* side to the same request (Diffy's noise cancellation: the gateway re-sends a
//! sample of idempotent requests to the serving side). Anything else is a *regression*.
//! Nothing is ignored silently: noise is counted and reported with the rule that would
//! silence it.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::compare::Comparison;
use crate::json::Difference;

/// The verdict on one pair of answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Equal,
    /// Every difference is noise.
    Noise,
    /// At least one difference is not noise.
    Regression,
}

impl TryFrom<String> for Verdict {
    type Error = String;

    /// Reads a verdict back from its [name](Verdict::name), as the diff store keeps it.
    fn try_from(name: String) -> Result<Self, Self::Error> {
        [Verdict::Equal, Verdict::Noise, Verdict::Regression]
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| format!("unknown verdict `{name}`"))
    }
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Equal => "equal",
            Verdict::Noise => "noise",
            Verdict::Regression => "regression",
        }
    }
}

/// Path shapes seen differing between two answers of the same side, per route.
#[derive(Debug, Default)]
pub struct NoiseTracker {
    learned: RwLock<HashMap<String, HashSet<String>>>,
}

impl NoiseTracker {
    /// Records the shapes that differed between two answers of the same side, and returns
    /// them.
    pub fn learn(&self, route: &str, same_side: &Comparison) -> Vec<String> {
        // Shapes the rules already declare noise need no learning.
        let mut shapes: Vec<String> = same_side
            .differences
            .iter()
            .filter(|d| !d.declared_noise)
            .map(Difference::shape)
            .collect();
        shapes.dedup();
        if !shapes.is_empty()
            && let Ok(mut learned) = self.learned.write()
        {
            learned
                .entry(route.to_owned())
                .or_default()
                .extend(shapes.iter().cloned());
        }
        shapes
    }

    /// Seeds the tracker (from the store, at start).
    pub fn seed(&self, route: &str, shapes: impl IntoIterator<Item = String>) {
        if let Ok(mut learned) = self.learned.write() {
            learned.entry(route.to_owned()).or_default().extend(shapes);
        }
    }

    pub fn is_noise(&self, route: &str, shape: &str) -> bool {
        self.learned
            .read()
            .map(|l| l.get(route).is_some_and(|shapes| shapes.contains(shape)))
            .unwrap_or(false)
    }
}

/// One differing path shape of a classified pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeHit {
    pub shape: String,
    pub noise: bool,
}

/// A pair's verdict and its differing shapes (each once).
#[derive(Debug, Clone, Serialize)]
pub struct Classified {
    pub verdict: Verdict,
    pub shapes: Vec<ShapeHit>,
}

/// Classifies `comparison` of `route` with the declared and learned noise.
pub fn classify(route: &str, comparison: &Comparison, tracker: &NoiseTracker) -> Classified {
    let mut shapes: Vec<ShapeHit> = Vec::new();
    for difference in &comparison.differences {
        let shape = difference.shape();
        if shapes.iter().any(|s| s.shape == shape) {
            continue;
        }
        let noise = difference.declared_noise || tracker.is_noise(route, &shape);
        shapes.push(ShapeHit { shape, noise });
    }
    let verdict = if shapes.is_empty() {
        Verdict::Equal
    } else if shapes.iter().all(|s| s.noise) {
        Verdict::Noise
    } else {
        Verdict::Regression
    };
    Classified { verdict, shapes }
}

/// The rule that would declare `shape` noise in the routes file.
pub fn suggested_rule(route: &str, shape: &str) -> String {
    match shape.strip_prefix("header:") {
        Some(header) => format!("routes[{route}].diff.headers.exclude: [{header}]"),
        None if shape == "status" => {
            format!("routes[{route}]: status differs; no rule should hide it")
        }
        None => format!("routes[{route}].diff.noise: [\"{shape}\"]"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::compare::BodyKind;
    use crate::diff_json;

    fn comparison(left: serde_json::Value, right: serde_json::Value) -> Comparison {
        Comparison {
            body: BodyKind::Json,
            differences: diff_json(&left, &right),
        }
    }

    #[test]
    fn paths_that_differ_within_one_side_become_noise() {
        let tracker = NoiseTracker::default();
        let pair = comparison(json!({"id": "a", "v": 1}), json!({"id": "b", "v": 2}));
        assert_eq!(classify("r", &pair, &tracker).verdict, Verdict::Regression);
        tracker.learn(
            "r",
            &comparison(json!({"id": "a", "v": 1}), json!({"id": "c", "v": 1})),
        );
        let classified = classify("r", &pair, &tracker);
        assert_eq!(classified.verdict, Verdict::Regression, "v still differs");
        assert!(
            classified
                .shapes
                .iter()
                .any(|s| s.shape == "/id" && s.noise)
        );
        let only_id = comparison(json!({"id": "a"}), json!({"id": "z"}));
        assert_eq!(classify("r", &only_id, &tracker).verdict, Verdict::Noise);
        assert_eq!(
            classify("other", &only_id, &tracker).verdict,
            Verdict::Regression,
            "noise is per route"
        );
    }

    #[test]
    fn rules_are_suggested_for_noisy_paths() {
        assert_eq!(
            suggested_rule("tutor", "/metadata/requestId"),
            "routes[tutor].diff.noise: [\"/metadata/requestId\"]"
        );
        assert!(suggested_rule("t", "header:etag").contains("headers.exclude"));
    }
}
