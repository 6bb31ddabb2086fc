use std::path::PathBuf;

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
    #[error("flag state {0}")]
    State(String),
    #[error("unleash: {0}")]
    Unleash(String),
    #[error("fleet store: {0}")]
    Fleet(String),
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
}
