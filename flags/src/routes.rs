use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use studyflow_diffing::{CompiledRules, DiffRules};

use crate::{Error, PathMatcher, Phase, Result, Side};

/// The routes table shipped with the gateway: every StudyFlow Edge Function, starting in
/// the `legacy` phase.
pub const DEFAULT_ROUTES_FILE: &str = include_str!("../routes.yaml");

/// A validated routes file. Routes are matched in file order; the first match wins.
#[derive(Debug, Clone)]
pub struct RoutesFile {
    pub routes: Vec<RouteSpec>,
}

/// One validated route.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Unique name; also the Unleash toggle and canary group id.
    pub name: String,
    pub path: PathMatcher,
    /// Upper-case HTTP methods; empty means every method.
    pub methods: Vec<String>,
    pub phase: Phase,
    /// The gateway answers 404 itself and never forwards the request.
    pub blocked: bool,
    /// The route carries user secrets (card numbers, keys): its diff samples keep shapes
    /// and digests, never body, query or header values.
    pub sensitive: bool,
    /// Headers added to every response of this route (name, value).
    pub response_headers: Vec<(String, String)>,
    /// Upstream names (from the gateway's `upstreams`) for each side; `None` is the
    /// default `legacy`/`new` upstream.
    pub legacy_upstream: Option<String>,
    /// Whether the legacy has this function at all. A route written `legacy: none` is new
    /// (the Supabase project would answer 404): it is always decommissioned, receives no
    /// copies, and rollbacks and the guard leave it alone.
    pub legacy_twin: bool,
    pub new_upstream: Option<String>,
    /// Seconds an upstream may take to answer this route (connect and read).
    pub timeout_secs: Option<u64>,
    /// How the other side receives copies of this route's requests.
    pub shadow: ShadowPolicy,
    /// How the two sides' answers are compared, as written.
    pub diff: DiffRules,
    /// The same rules, checked and compiled.
    pub rules: Arc<CompiledRules>,
}

/// Shadow settings of one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowPolicy {
    /// Share of eligible requests copied to the other side, 0–100.
    pub sample_percent: u8,
    /// What happens to writes (any method but GET, HEAD, OPTIONS).
    pub writes: WritePolicy,
}

impl Default for ShadowPolicy {
    fn default() -> Self {
        Self {
            sample_percent: 100,
            writes: WritePolicy::DryRun,
        }
    }
}

/// Whether writes are shadowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WritePolicy {
    /// Writes are never copied.
    Never,
    /// Writes are copied to the new backend only, marked so it persists nothing.
    DryRun,
    /// Writes are copied to whichever side is not serving (explicit opt-in: the shadow
    /// side really writes).
    Mirror,
}

impl ShadowPolicy {
    /// Whether a request with `method` may be copied towards `target`.
    pub fn allows(&self, method: &str, target: Side) -> bool {
        if self.sample_percent == 0 {
            return false;
        }
        if matches!(method, "GET" | "HEAD" | "OPTIONS") {
            return true;
        }
        match self.writes {
            WritePolicy::Never => false,
            WritePolicy::DryRun => target == Side::New,
            WritePolicy::Mirror => true,
        }
    }
}

#[derive(Deserialize)]
struct RawFile {
    routes: Vec<RawRoute>,
    /// Keys starting with `x-` hold YAML anchors shared by routes.
    #[serde(flatten)]
    extensions: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    path: String,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    percent: Option<u8>,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    sensitive: bool,
    /// Whether an exact path also covers its sub-paths and trailing slash, as Supabase
    /// serves `/functions/v1/<name>/…` as the function `<name>`.
    #[serde(default = "covers_subpaths")]
    subpaths: bool,
    #[serde(default)]
    response_headers: BTreeMap<String, String>,
    #[serde(default)]
    legacy: Option<String>,
    #[serde(default)]
    new: Option<String>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    #[serde(default)]
    shadow: ShadowPolicy,
    #[serde(default)]
    diff: DiffRules,
}

fn covers_subpaths() -> bool {
    true
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

impl RoutesFile {
    /// The text of the file at `path`, not yet validated.
    pub fn read_text(path: &Path) -> Result<String> {
        std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })
    }

    /// Validates a routes file's text: names unique and non-empty, paths absolute,
    /// methods known, a percentage only (and always) with `canary`, at most 100.
    pub fn parse(text: &str) -> Result<Self> {
        let raw: RawFile = serde_yaml::from_str(text)?;
        if let Some(key) = raw.extensions.keys().find(|k| !k.starts_with("x-")) {
            return Err(Error::route(
                "<file>",
                format!("unknown key `{key}` (only `routes` and `x-` anchors)"),
            ));
        }
        let mut seen = HashSet::new();
        let routes = raw
            .routes
            .into_iter()
            .map(|route| {
                if route.name.trim().is_empty() {
                    return Err(Error::route("<unnamed>", "name must not be empty"));
                }
                if !seen.insert(route.name.clone()) {
                    return Err(Error::route(&route.name, "name is used by another route"));
                }
                RouteSpec::validate(route)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { routes })
    }

    /// The route serving `method` on `path`, if any.
    pub fn find(&self, method: &str, path: &str) -> Option<&RouteSpec> {
        self.routes.iter().find(|route| route.covers(method, path))
    }
}

impl RouteSpec {
    fn validate(raw: RawRoute) -> Result<Self> {
        let name = raw.name;
        let path = PathMatcher::parse(&raw.path).ok_or_else(|| {
            Error::route(&name, format!("path `{}` must start with `/`", raw.path))
        })?;
        // Requests are matched in canonical form: a route written otherwise would never
        // match.
        let written = path.to_string();
        match crate::canonical_path(&written) {
            Ok(canonical) if canonical == written => {}
            Ok(canonical) => {
                return Err(Error::route(
                    &name,
                    format!("path `{}` must be written `{canonical}`", raw.path),
                ));
            }
            Err(why) => {
                return Err(Error::route(&name, format!("path `{}`: {why}", raw.path)));
            }
        }
        let path = if raw.subpaths {
            path.with_subpaths()
        } else {
            path
        };
        let methods = raw
            .methods
            .into_iter()
            .map(|method| {
                let upper = method.to_ascii_uppercase();
                if METHODS.contains(&upper.as_str()) {
                    Ok(upper)
                } else {
                    Err(Error::route(&name, format!("unknown method `{method}`")))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let phase = parse_phase(&name, raw.phase.as_deref().unwrap_or("legacy"), raw.percent)?;
        let response_headers = raw
            .response_headers
            .into_iter()
            .map(|(header, value)| {
                let valid_name = !header.is_empty()
                    && header
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                let valid_value = value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..0x7f).contains(&b));
                if valid_name && valid_value {
                    Ok((header.to_ascii_lowercase(), value))
                } else {
                    Err(Error::route(
                        &name,
                        format!("invalid response header `{header}`"),
                    ))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if raw.shadow.sample_percent > 100 {
            return Err(Error::route(&name, "shadow.sample_percent is over 100"));
        }
        let mut rules = raw
            .diff
            .compile()
            .map_err(|e| Error::route(&name, format!("diff: {e}")))?;
        rules.sensitive = raw.sensitive;
        if raw.timeout_secs == Some(0) {
            return Err(Error::route(&name, "timeout_secs must be at least 1"));
        }
        let legacy_twin = raw.legacy.as_deref() != Some(NO_LEGACY);
        if !legacy_twin && phase != Phase::Decommissioned {
            return Err(Error::route(
                &name,
                format!(
                    "`legacy: none` (no legacy twin) needs `phase: decommissioned`, not `{phase}`"
                ),
            ));
        }
        Ok(Self {
            name,
            path,
            methods,
            phase,
            blocked: raw.blocked,
            sensitive: raw.sensitive,
            response_headers,
            legacy_upstream: raw.legacy.filter(|_| legacy_twin),
            legacy_twin,
            new_upstream: raw.new,
            timeout_secs: raw.timeout_secs,
            shadow: raw.shadow,
            diff: raw.diff,
            rules: Arc::new(rules),
        })
    }

    /// Whether a request with `method` is copied towards `target`: reads always, writes
    /// as `shadow.writes` says, and writes to legacy also when the route is declared
    /// idempotent (`diff.idempotent`: a second call changes nothing), so a route in
    /// primary keeps collecting evidence on every method.
    pub fn copies(&self, method: &str, target: Side) -> bool {
        self.shadow.allows(method, target)
            || (self.diff.idempotent
                && target == Side::Legacy
                && self.shadow.sample_percent > 0
                && self.shadow.writes != WritePolicy::Never)
    }

    /// Which methods get copies in `phase`, in words, for operators.
    pub fn copies_in(&self, phase: Phase) -> String {
        let to_new = match self.copies("POST", Side::New) {
            true => "every method served by legacy is copied to new (writes as dry runs)",
            false => "reads served by legacy are copied to new, writes are not",
        };
        let to_legacy = match (self.copies("POST", Side::Legacy), self.diff.idempotent) {
            (true, true) => {
                "every method served by new is copied to legacy (the route is idempotent)"
            }
            (true, false) => {
                "every method served by new is copied to legacy (shadow.writes: mirror)"
            }
            (false, _) => {
                "reads served by new are copied to legacy, writes are not (not idempotent: the legacy would write twice)"
            }
        };
        match phase {
            _ if !self.legacy_twin => "no copies: the legacy has no such function".into(),
            Phase::Legacy | Phase::Decommissioned => "no copies in this phase".into(),
            _ if self.shadow.sample_percent == 0 => "no copies (shadow.sample_percent is 0)".into(),
            Phase::Shadow => to_new.into(),
            Phase::Canary(_) => format!("{to_new}; {to_legacy}"),
            Phase::Primary => to_legacy.into(),
        }
    }

    /// Whether this route covers the request.
    pub fn covers(&self, method: &str, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && self.path.matches(path)
    }
}

/// The `legacy` value of a route the legacy does not have.
pub const NO_LEGACY: &str = "none";

fn parse_phase(route: &str, phase: &str, percent: Option<u8>) -> Result<Phase> {
    Phase::from_parts(phase, percent).map_err(|reason| Error::route(route, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        RoutesFile::parse(text)
            .expect_err("file must be refused")
            .to_string()
    }

    #[test]
    fn the_default_routes_file_is_valid() {
        let file = RoutesFile::parse(DEFAULT_ROUTES_FILE).expect("default routes file");
        let blocked = file
            .find("POST", "/functions/v1/test-keys")
            .expect("test-keys route");
        assert!(blocked.blocked);
        let tutor = file
            .find("POST", "/functions/v1/ai-tutor-professional")
            .expect("tutor route");
        assert_eq!(tutor.phase, Phase::Legacy);
        assert!(
            tutor
                .response_headers
                .iter()
                .any(|(n, v)| n == "x-frame-options" && v == "DENY")
        );
        assert!(
            tutor
                .rules
                .declared_noise(&["metadata".into(), "requestId".into()])
        );
        // Data API tables: reads and writes are routes of their own; other REST paths
        // pass through.
        let reads = file.find("GET", "/rest/v1/tasks").expect("tasks reads");
        assert_eq!(
            (reads.name.as_str(), reads.phase),
            ("rest-tasks", Phase::Legacy)
        );
        let writes = file.find("PATCH", "/rest/v1/tasks").expect("tasks writes");
        assert_eq!(writes.name, "rest-tasks-writes");
        assert!(file.find("GET", "/rest/v1/payments").is_none());
        let realtime = file
            .find("GET", "/realtime/v1/websocket")
            .expect("realtime route");
        assert_eq!(realtime.phase, Phase::Legacy);
        // Routes whose requests carry user secrets keep no values in their samples.
        let sensitive: Vec<&str> = file
            .routes
            .iter()
            .filter(|r| r.sensitive)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(sensitive, ["encryption", "test-keys"]);
        assert!(file.routes.iter().all(|r| r.rules.sensitive == r.sensitive));
    }

    #[test]
    fn phases_and_percentages_are_read() {
        let file = RoutesFile::parse(
            "routes:\n  - {name: a, path: /a, phase: canary, percent: 30}\n  - {name: b, path: /b, phase: primary}\n  - {name: c, path: /c}\n",
        )
        .expect("valid file");
        assert_eq!(file.routes[0].phase, Phase::Canary(30));
        assert_eq!(file.routes[1].phase, Phase::Primary);
        assert_eq!(file.routes[2].phase, Phase::Legacy);
    }

    #[test]
    fn mistakes_are_refused_with_the_route_named() {
        assert!(
            error_of("routes:\n  - {name: a, path: /a, phase: canary}\n")
                .contains("route `a`: canary needs")
        );
        assert!(
            error_of("routes:\n  - {name: a, path: /a, phase: canary, percent: 101}\n")
                .contains("over 100")
        );
        assert!(
            error_of("routes:\n  - {name: a, path: /a, phase: shadow, percent: 5}\n")
                .contains("only with phase")
        );
        assert!(
            error_of("routes:\n  - {name: a, path: /a, phase: later}\n")
                .contains("unknown phase `later`")
        );
        assert!(error_of("routes:\n  - {name: a, path: a}\n").contains("must start with"));
        assert!(
            error_of("routes:\n  - {name: a, path: /a}\n  - {name: a, path: /b}\n")
                .contains("used by another")
        );
        assert!(
            error_of("routes:\n  - {name: a, path: /a, methods: [FETCH]}\n")
                .contains("unknown method")
        );
        assert!(
            error_of("routes:\n  - {name: a, path: /a, colour: red}\n").contains("unknown field")
        );
        assert!(error_of("routes: [").contains("not valid YAML"));
        assert!(
            error_of("routes:\n  - {name: a, path: /a, diff: {noise: [nope]}}\n")
                .contains("route `a`: diff: path `nope`")
        );
    }

    #[test]
    fn writes_are_dry_run_towards_new_by_default() {
        let file = RoutesFile::parse("routes:\n  - {name: a, path: /a}\n  - {name: b, path: /b, shadow: {writes: mirror, sample_percent: 10}}\n")
            .expect("valid file");
        let default = file.routes[0].shadow;
        assert!(default.allows("GET", Side::Legacy));
        assert!(default.allows("POST", Side::New));
        assert!(!default.allows("POST", Side::Legacy));
        let mirror = file.routes[1].shadow;
        assert_eq!(mirror.sample_percent, 10);
        assert!(mirror.allows("DELETE", Side::Legacy));
        assert!(
            error_of("routes:\n  - {name: a, path: /a, shadow: {writes: always}}\n")
                .contains("unknown variant")
        );
    }

    #[test]
    fn methods_restrict_a_route() {
        let file = RoutesFile::parse("routes:\n  - {name: a, path: /a, methods: [post]}\n")
            .expect("valid file");
        assert!(file.find("POST", "/a").is_some());
        assert!(file.find("GET", "/a").is_none());
    }
}
