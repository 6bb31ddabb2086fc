//! The diffing crate's error: what opening or reading the diff store, or compiling the
//! redaction patterns, can fail with. Each variant keeps its cause as `source()`.

/// Why the store could not be opened or read, or the redactor built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("diff store database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("diff store migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("redaction pattern: {0}")]
    Pattern(#[from] regex::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
