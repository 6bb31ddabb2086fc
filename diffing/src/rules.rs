//! Per-route comparison rules, written in the routes file under `diff:`.
//!
//! Paths are JSON pointers into the body in which `*` stands for any one segment
//! (`/items/*/id`). A rule on a path also covers everything below it.
//!
//! ```yaml
//! diff:
//!   ignore: [/debug]                 # not compared at all
//!   noise: [/metadata/requestId]     # compared, but a difference there is noise
//!   shape_only: [/content]           # same keys and types is enough (AI text)
//!   numeric_tolerance: 0.001         # numbers this close are equal
//!   timestamps: true                 # RFC 3339 strings compare as instants (default)
//!   arrays:
//!     - {path: /items, match_by: id} # match elements by their `id`
//!     - {path: /tags, as_set: true}  # order does not matter
//!   vectors:                         # arrays of numbers compared by direction
//!     - {path: /embedding, min_cosine: 0.99}
//!   headers:
//!     include: [content-type, access-control-allow-origin]
//!     exclude: [x-powered-by]
//! ```

use serde::{Deserialize, Serialize};

/// The rules as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffRules {
    pub ignore: Vec<String>,
    pub noise: Vec<String>,
    pub shape_only: Vec<String>,
    pub numeric_tolerance: f64,
    pub timestamps: Option<bool>,
    pub arrays: Vec<ArrayRule>,
    pub vectors: Vec<VectorRule>,
    pub headers: HeaderRules,
    /// Share (0–100) of compared requests also re-sent to the serving side, to learn
    /// which paths differ between two answers of the same side (noise). Only idempotent
    /// requests are re-sent: GET, HEAD, OPTIONS, or every method when `idempotent`.
    pub probe_percent: u8,
    /// The route has no side effects, so any method may be re-sent for noise probes.
    pub idempotent: bool,
}

/// How the elements of one array are paired.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArrayRule {
    pub path: String,
    /// Pair elements by the value of this field.
    #[serde(default)]
    pub match_by: Option<String>,
    /// Pair equal elements regardless of order.
    #[serde(default)]
    pub as_set: bool,
}

/// An array of numbers (an embedding) that is equal when it points the same way: its
/// cosine similarity with the other side's is at least `min_cosine`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VectorRule {
    pub path: String,
    pub min_cosine: f64,
}

/// Which response headers are compared. Names are case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderRules {
    /// Compared headers; empty means every header but the excluded and default-ignored.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// Headers that differ between any two answers and are never compared unless included:
/// hop-by-hop headers, dates, per-request ids, and the gateway's own.
pub const IGNORED_HEADERS: [&str; 17] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "date",
    "age",
    "expires",
    "last-modified",
    "etag",
    "server",
    "via",
    "content-length",
    "x-request-id",
    "set-cookie",
];

/// A path pattern split into segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<String>);

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        // `/` names the whole body, like the empty pointer.
        if text.is_empty() || text == "/" {
            return Ok(Self(Vec::new()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("path `{text}` must start with `/`"));
        };
        Ok(Self(
            rest.split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect(),
        ))
    }

    /// Whether the pattern covers `path` (the same segments, or a parent of it).
    pub fn covers(&self, path: &[String]) -> bool {
        self.0.len() <= path.len() && self.0.iter().zip(path).all(|(p, s)| p == "*" || p == s)
    }

    /// Whether the pattern names exactly `path` (not a parent).
    pub fn matches(&self, path: &[String]) -> bool {
        self.0.len() == path.len() && self.covers(path)
    }
}

/// Rules ready to apply.
#[derive(Debug, Clone)]
pub struct CompiledRules {
    pub ignore: Vec<Pattern>,
    pub noise: Vec<Pattern>,
    pub shape_only: Vec<Pattern>,
    pub numeric_tolerance: f64,
    pub timestamps: bool,
    pub arrays: Vec<(Pattern, ArrayMatch)>,
    /// Vector paths and their least cosine similarity.
    pub vectors: Vec<(Pattern, f64)>,
    pub include_headers: Vec<String>,
    pub exclude_headers: Vec<String>,
    pub probe_percent: u8,
    pub idempotent: bool,
    /// The route carries user secrets: its samples keep shapes and digests, never values
    /// (set from the route's `sensitive`, not from `diff:`).
    pub sensitive: bool,
}

/// How an array's elements are paired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayMatch {
    ByIndex,
    ByKey(String),
    AsSet,
}

impl Default for CompiledRules {
    fn default() -> Self {
        Self {
            ignore: Vec::new(),
            noise: Vec::new(),
            shape_only: Vec::new(),
            numeric_tolerance: 0.0,
            timestamps: true,
            arrays: Vec::new(),
            vectors: Vec::new(),
            include_headers: Vec::new(),
            exclude_headers: Vec::new(),
            probe_percent: 0,
            idempotent: false,
            sensitive: false,
        }
    }
}

impl DiffRules {
    /// Checks and compiles the rules; errors name the bad entry.
    pub fn compile(&self) -> Result<CompiledRules, String> {
        let patterns = |list: &[String]| {
            list.iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
        };
        if self.probe_percent > 100 {
            return Err("probe_percent is over 100".into());
        }
        if !(self.numeric_tolerance >= 0.0 && self.numeric_tolerance.is_finite()) {
            return Err("numeric_tolerance must be a number of at least 0".into());
        }
        let arrays = self
            .arrays
            .iter()
            .map(|rule| {
                let how = match (&rule.match_by, rule.as_set) {
                    (Some(_), true) => {
                        return Err(format!(
                            "array `{}`: match_by and as_set exclude each other",
                            rule.path
                        ));
                    }
                    (Some(key), false) => ArrayMatch::ByKey(key.clone()),
                    (None, true) => ArrayMatch::AsSet,
                    (None, false) => ArrayMatch::ByIndex,
                };
                Ok((Pattern::parse(&rule.path)?, how))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let vectors = self
            .vectors
            .iter()
            .map(|rule| {
                if !(rule.min_cosine > 0.0 && rule.min_cosine <= 1.0) {
                    return Err(format!(
                        "vector `{}`: min_cosine must be above 0 and at most 1",
                        rule.path
                    ));
                }
                Ok((Pattern::parse(&rule.path)?, rule.min_cosine))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lower = |list: &[String]| list.iter().map(|h| h.to_ascii_lowercase()).collect();
        Ok(CompiledRules {
            ignore: patterns(&self.ignore)?,
            noise: patterns(&self.noise)?,
            shape_only: patterns(&self.shape_only)?,
            numeric_tolerance: self.numeric_tolerance,
            timestamps: self.timestamps.unwrap_or(true),
            arrays,
            vectors,
            include_headers: lower(&self.headers.include),
            exclude_headers: lower(&self.headers.exclude),
            probe_percent: self.probe_percent,
            idempotent: self.idempotent,
            sensitive: false,
        })
    }
}

impl CompiledRules {
    /// Whether a request with `method` may be re-sent to the serving side as a probe.
    pub fn may_probe(&self, method: &str) -> bool {
        self.probe_percent > 0 && (self.idempotent || matches!(method, "GET" | "HEAD" | "OPTIONS"))
    }

    pub fn ignored(&self, path: &[String]) -> bool {
        self.ignore.iter().any(|p| p.covers(path))
    }

    pub fn declared_noise(&self, path: &[String]) -> bool {
        self.noise.iter().any(|p| p.covers(path))
    }

    /// The least cosine similarity of a vector at exactly `path`, if it is one.
    pub fn vector(&self, path: &[String]) -> Option<f64> {
        self.vectors
            .iter()
            .find(|(pattern, _)| pattern.matches(path))
            .map(|(_, min)| *min)
    }

    pub fn shape_only(&self, path: &[String]) -> bool {
        self.shape_only.iter().any(|p| p.covers(path))
    }

    pub fn array_match(&self, path: &[String]) -> ArrayMatch {
        self.arrays
            .iter()
            .find(|(p, _)| p.matches(path))
            .map_or(ArrayMatch::ByIndex, |(_, how)| how.clone())
    }

    /// Whether response header `name` (lower case) is compared.
    pub fn compares_header(&self, name: &str) -> bool {
        if self.include_headers.iter().any(|h| h == name) {
            return true;
        }
        self.include_headers.is_empty()
            && !IGNORED_HEADERS.contains(&name)
            && !name.starts_with("x-studyflow-")
            && !self.exclude_headers.iter().any(|h| h == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split('/').skip(1).map(str::to_owned).collect()
    }

    #[test]
    fn patterns_cover_their_subtree_and_stars_match_one_segment() {
        let p = Pattern::parse("/items/*/id").expect("pattern");
        assert!(p.covers(&path("/items/3/id")));
        assert!(p.covers(&path("/items/3/id/x")));
        assert!(!p.covers(&path("/items/3/name")));
        assert!(!p.covers(&path("/items")));
        assert!(Pattern::parse("items").is_err());
    }

    #[test]
    fn rules_are_validated() {
        let bad = DiffRules {
            arrays: vec![ArrayRule {
                path: "/a".into(),
                match_by: Some("id".into()),
                as_set: true,
            }],
            ..DiffRules::default()
        };
        assert!(
            bad.compile()
                .expect_err("refused")
                .contains("exclude each other")
        );
        let negative = DiffRules {
            numeric_tolerance: -1.0,
            ..DiffRules::default()
        };
        assert!(negative.compile().is_err());
    }

    #[test]
    fn default_headers_skip_hop_by_hop_and_dates() {
        let rules = DiffRules::default().compile().expect("rules");
        assert!(rules.compares_header("content-type"));
        assert!(!rules.compares_header("date"));
        assert!(!rules.compares_header("connection"));
        assert!(!rules.compares_header("x-studyflow-served-by"));
        let only = DiffRules {
            headers: HeaderRules {
                include: vec!["Content-Type".into()],
                exclude: vec![],
            },
            ..DiffRules::default()
        }
        .compile()
        .expect("rules");
        assert!(only.compares_header("content-type"));
        assert!(!only.compares_header("access-control-allow-origin"));
    }
}
