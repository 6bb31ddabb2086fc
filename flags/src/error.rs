//! The flags crate's one error type. Each variant that wraps a lower error keeps it as
//! its `source()` (typed: an I/O error, a JSON or YAML error, a Redis or HTTP error), so
//! callers can tell causes apart; the message names the cause too, so a log line or a
//! health report reads whole without walking the chain.

use std::path::PathBuf;

/// A boxed lower error (HTTP client errors of several crates).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a routes file, a flag source or the flag state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read routes file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("routes file is not valid YAML for a route table: {0}")]
    Syntax(#[from] serde_yaml::Error),
    /// A state or snapshot file that could not be written.
    #[error("flag state: writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A state or snapshot file that does not hold what was written there.
    #[error("flag state: {path}: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// State that could not be encoded (to a file or for Redis).
    #[error("flag state: encoding: {0}")]
    Encode(#[source] serde_json::Error),
    /// Unleash answered what the gateway cannot use (a toggle it cannot read, a refusal).
    #[error("unleash: {0}")]
    Unleash(String),
    /// Unleash could not be reached or asked.
    #[error("unleash: {context}: {source}")]
    UnleashCall { context: String, source: Cause },
    /// The fleet's Redis store failed.
    #[error("fleet store: {context}: {source}")]
    Fleet {
        context: String,
        source: redis::RedisError,
    },
    /// An override in the fleet's store that does not decode.
    #[error("fleet store: override of `{route}` in redis: {source}")]
    FleetEntry {
        route: String,
        source: serde_json::Error,
    },
    /// The fleet's subscription ended or could not start (no lower error to name).
    #[error("fleet store: {0}")]
    FleetSubscription(&'static str),
    #[error("route `{route}`: {reason}")]
    Route { route: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn route(route: &str, reason: impl Into<String>) -> Self {
        Self::Route {
            route: route.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unleash_call(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::UnleashCall {
            context: context.into(),
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn the_cause_stays_reachable_and_named() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let error = Error::Write {
            path: "state.json".into(),
            source: io,
        };
        assert_eq!(error.to_string(), "flag state: writing state.json: denied");
        let cause = error.source().expect("a source");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("the I/O error");
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
    }
}
