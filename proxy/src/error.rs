/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Routes(#[from] studyflow_flags::Error),
    #[error("upstream `{name}`: {reason}")]
    Upstream { name: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
