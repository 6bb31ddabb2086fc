/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Routes(#[from] studyflow_flags::Error),
    #[error("upstream `{name}`: {reason}")]
    Upstream { name: String, reason: String },
    /// A socket or runtime the gateway needs at start; the message names what for.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
