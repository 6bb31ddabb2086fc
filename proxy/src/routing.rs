//! The route table in force: routes from the file, each with its phase resolved from the
//! flag sources (override > Unleash > file) and bound to its upstreams and counters. Built by [`crate::control::Control`] and swapped
//! atomically; requests keep the table they started with.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use pingora::http::KnownHeaderName;
use studyflow_flags::{Layer, Phase, RouteSpec, RoutesFile, Side, SourceKind, resolve};

use crate::identity::bucket;
use crate::metrics::RouteSeries;
use crate::stats::RouteStats;
use crate::upstream::{Upstream, Upstreams};
use crate::{Error, Result};

/// One route ready to serve.
#[derive(Debug)]
pub struct Route {
    pub spec: RouteSpec,
    /// The phase in force: the override's, else Unleash's, else the file's.
    pub phase: Phase,
    pub source: SourceKind,
    /// Rolled back by the guard and held there until an operator moves it.
    pub held: bool,
    pub legacy: Arc<Upstream>,
    pub new: Arc<Upstream>,
    pub stats: Arc<RouteStats>,
    /// What the gateway adds to each of the route's answers.
    pub answer_headers: AnswerHeaders,
    /// The route's request metrics.
    pub series: RouteSeries,
}

/// The headers the gateway adds to every answer of a route, built when the route table
/// is, so a request only clones them.
#[derive(Debug)]
pub struct AnswerHeaders {
    /// The route's name, for `x-studyflow-route`.
    pub route: HeaderValue,
    /// The route's `response_headers`, names spelled as in the routes file.
    pub extra: Vec<(KnownHeaderName, HeaderValue)>,
}

impl AnswerHeaders {
    fn of(spec: &RouteSpec) -> Result<Self> {
        let value = |text: &str| {
            HeaderValue::from_str(text).map_err(|_| {
                Error::Config(format!(
                    "route `{}`: `{text}` is not a header value",
                    spec.name
                ))
            })
        };
        Ok(Self {
            route: value(&spec.name)?,
            extra: spec
                .response_headers
                .iter()
                .map(|(name, text)| {
                    let known = KnownHeaderName::new(name.clone()).map_err(|_| {
                        Error::Config(format!(
                            "route `{}`: `{name}` is not a header name",
                            spec.name
                        ))
                    })?;
                    Ok((known, value(text)?))
                })
                .collect::<Result<_>>()?,
        })
    }
}

impl Route {
    pub fn upstream(&self, side: Side) -> &Arc<Upstream> {
        match side {
            Side::Legacy => &self.legacy,
            Side::New => &self.new,
        }
    }

    /// The side that receives copies in this route's phase, if any.
    pub fn shadow_target(&self, serving: Side) -> Option<Side> {
        if !self.spec.legacy_twin {
            return None;
        }
        match (self.phase, serving) {
            (Phase::Legacy | Phase::Decommissioned, _) => None,
            (Phase::Shadow | Phase::Canary(_) | Phase::Primary, Side::Legacy) => Some(Side::New),
            (Phase::Shadow | Phase::Canary(_) | Phase::Primary, Side::New) => Some(Side::Legacy),
        }
    }
}

/// The compiled table.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Counters of requests that match no route.
    pub passthrough: Arc<RouteStats>,
    /// Request metrics of pass-through traffic.
    pub passthrough_series: RouteSeries,
    pub default_legacy: Arc<Upstream>,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The route is blocked: answer 404 from the gateway.
    Blocked { route: usize },
    /// Forward to `side`. `route` is `None` for pass-through traffic (auth, REST, …).
    Serve { route: Option<usize>, side: Side },
}

impl RouteTable {
    /// Binds the file's routes to upstreams and counters (kept by route name across
    /// rebuilds) and resolves each phase from the Unleash layer and the overrides.
    pub fn compile(
        file: &RoutesFile,
        unleash: Option<&Layer>,
        overrides: &Layer,
        upstreams: &Upstreams,
        stats: &mut HashMap<String, Arc<RouteStats>>,
    ) -> Result<Self> {
        let routes = file
            .routes
            .iter()
            .map(|spec| {
                let pick = |name: &Option<String>, side: Side| -> Result<Arc<Upstream>> {
                    match name {
                        None => Ok(upstreams.default(side)),
                        Some(name) => upstreams.named(name).ok_or_else(|| {
                            Error::Config(format!(
                                "route `{}` names upstream `{name}`, which `upstreams` does not define",
                                spec.name
                            ))
                        }),
                    }
                };
                let mut resolved = resolve(&spec.name, spec.phase, unleash, overrides);
                if !spec.legacy_twin && resolved.phase != Phase::Decommissioned {
                    // The legacy would answer 404: no source can move such a route.
                    tracing::warn!(route = %spec.name, phase = %resolved.phase, source = ?resolved.source, "route has no legacy twin; it stays decommissioned");
                    resolved.phase = Phase::Decommissioned;
                }
                Ok(Route {
                    legacy: pick(&spec.legacy_upstream, Side::Legacy)?,
                    new: pick(&spec.new_upstream, Side::New)?,
                    stats: Arc::clone(stats.entry(spec.name.clone()).or_default()),
                    answer_headers: AnswerHeaders::of(spec)?,
                    series: RouteSeries::default(),
                    spec: spec.clone(),
                    phase: resolved.phase,
                    source: resolved.source,
                    held: resolved.held,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            routes,
            passthrough: Arc::clone(stats.entry(String::new()).or_default()),
            passthrough_series: RouteSeries::default(),
            default_legacy: upstreams.default(Side::Legacy),
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn route(&self, index: usize) -> &Route {
        &self.routes[index]
    }

    /// Names of the routes the legacy does not have (`legacy: none`), which no rollback
    /// moves.
    pub fn without_legacy(&self) -> Vec<&str> {
        self.routes
            .iter()
            .filter(|r| !r.spec.legacy_twin)
            .map(|r| r.spec.name.as_str())
            .collect()
    }

    pub fn find(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.spec.name == name)
    }

    /// Decides where a request goes. `identity` is only called for canary routes, so the
    /// common path does no token parsing or hashing.
    pub fn decide<'a>(
        &self,
        method: &str,
        path: &str,
        identity: impl FnOnce() -> Option<Cow<'a, str>>,
    ) -> Decision {
        let Some((index, route)) = self
            .routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.spec.covers(method, path))
        else {
            return Decision::Serve {
                route: None,
                side: Side::Legacy,
            };
        };
        if route.spec.blocked {
            return Decision::Blocked { route: index };
        }
        let side = match route.phase {
            Phase::Canary(_) => {
                // Without any identity there is nothing to keep sticky: stay on legacy.
                let user_bucket = identity().map_or(u8::MAX, |id| bucket(&route.spec.name, &id));
                route.phase.serving_side(user_bucket)
            }
            fixed => fixed.serving_side(1),
        };
        Decision::Serve {
            route: Some(index),
            side,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    fn upstreams() -> Upstreams {
        let up = |side, url| {
            Upstream::from_url(side, url, Duration::from_secs(1), Duration::from_secs(1))
                .expect("upstream")
        };
        Upstreams::new(
            up(Side::Legacy, "http://127.0.0.1:1"),
            up(Side::New, "http://127.0.0.1:2"),
            BTreeMap::new(),
        )
    }

    fn table(yaml: &str) -> RouteTable {
        let upstreams = upstreams();
        let file = RoutesFile::parse(yaml).expect("valid routes");
        RouteTable::compile(&file, None, &Layer::new(), &upstreams, &mut HashMap::new())
            .expect("compiles")
    }

    #[test]
    fn unmatched_requests_pass_through_to_legacy() {
        let t = table("routes:\n  - {name: a, path: /functions/v1/a, phase: primary}\n");
        assert_eq!(
            t.decide("GET", "/rest/v1/tasks", || None),
            Decision::Serve {
                route: None,
                side: Side::Legacy
            }
        );
        assert_eq!(
            t.decide("POST", "/functions/v1/a", || None),
            Decision::Serve {
                route: Some(0),
                side: Side::New
            }
        );
    }

    #[test]
    fn blocked_routes_are_never_forwarded() {
        let t = table("routes:\n  - {name: k, path: /functions/v1/test-keys, blocked: true}\n");
        assert_eq!(
            t.decide("GET", "/functions/v1/test-keys", || None),
            Decision::Blocked { route: 0 }
        );
    }

    #[test]
    fn unknown_upstream_names_are_refused() {
        let upstreams = upstreams();
        let file =
            RoutesFile::parse("routes:\n  - {name: a, path: /a, new: elsewhere}\n").expect("valid");
        let err = RouteTable::compile(&file, None, &Layer::new(), &upstreams, &mut HashMap::new())
            .expect_err("refused")
            .to_string();
        assert!(err.contains("upstream `elsewhere`"), "{err}");
    }

    #[test]
    fn shadow_targets_follow_the_phase() {
        let t = table(
            "routes:\n  - {name: a, path: /a, phase: shadow}\n  - {name: b, path: /b, phase: primary}\n  - {name: c, path: /c, phase: decommissioned}\n  - {name: d, path: /d}\n",
        );
        assert_eq!(t.route(0).shadow_target(Side::Legacy), Some(Side::New));
        assert_eq!(t.route(1).shadow_target(Side::New), Some(Side::Legacy));
        assert_eq!(t.route(2).shadow_target(Side::New), None);
        assert_eq!(t.route(3).shadow_target(Side::Legacy), None);
    }

    #[test]
    fn canary_is_sticky_per_identity() {
        let t = table("routes:\n  - {name: a, path: /a, phase: canary, percent: 50}\n");
        for user in ["u1", "u2", "u3", "u4"] {
            let first = t.decide("POST", "/a", || Some(user.into()));
            for _ in 0..5 {
                assert_eq!(t.decide("POST", "/a", || Some(user.into())), first);
            }
        }
        assert_eq!(
            t.decide("POST", "/a", || None),
            Decision::Serve {
                route: Some(0),
                side: Side::Legacy
            }
        );
    }
}
