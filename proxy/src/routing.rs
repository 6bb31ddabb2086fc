//! Which route a request belongs to and which side serves it.

use std::borrow::Cow;

use studyflow_flags::{Phase, RouteSpec, RoutesFile, Side};

use crate::identity::bucket;

/// The route table in force. Cheap to share: requests hold an `Arc` of the table they
/// started with, so a change never affects a request already under way.
#[derive(Debug)]
pub struct RouteTable {
    file: RoutesFile,
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
    pub fn new(file: RoutesFile) -> Self {
        Self { file }
    }

    pub fn routes(&self) -> &[RouteSpec] {
        &self.file.routes
    }

    pub fn route(&self, index: usize) -> &RouteSpec {
        &self.file.routes[index]
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
            .file
            .routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.covers(method, path))
        else {
            return Decision::Serve {
                route: None,
                side: Side::Legacy,
            };
        };
        if route.blocked {
            return Decision::Blocked { route: index };
        }
        let side = match route.phase {
            Phase::Canary(_) => {
                // Without any identity there is nothing to keep sticky: stay on legacy.
                let user_bucket = identity().map_or(u8::MAX, |id| bucket(&route.name, &id));
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
    use super::*;

    fn table(yaml: &str) -> RouteTable {
        RouteTable::new(RoutesFile::parse(yaml).expect("valid routes"))
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
