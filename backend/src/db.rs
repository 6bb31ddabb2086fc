//! Postgres pool and the schema migrations shared with the tests.

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::BackendConfig;
use crate::{Error, Result};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A pool that connects on first use, sized and timed by the configuration. Sessions run
/// in UTC (sqlx's default), so rows render timestamps as PostgREST does.
pub fn pool(config: &BackendConfig) -> Result<PgPool> {
    let mut options = PgConnectOptions::from_str(config.database_url.expose_secret())
        .map_err(|_| Error::Config("DATABASE_URL: not a Postgres URL".into()))?
        .application_name("studyflow-backend");
    if config.db_statement_timeout_ms > 0 {
        options = options.options([(
            "statement_timeout",
            config.db_statement_timeout_ms.to_string(),
        )]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .min_connections(config.db_min_connections)
        .acquire_timeout(Duration::from_secs(config.db_acquire_timeout_secs))
        .idle_timeout(Some(Duration::from_secs(config.db_idle_timeout_secs)))
        .connect_lazy_with(options);
    Ok(pool)
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}
