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
    let mut options = PgConnectOptions::from_str(config.database.url.expose_secret())
        .map_err(|_| Error::Config("DATABASE_URL: not a Postgres URL".into()))?
        .application_name("studyflow-backend");
    if config.database.statement_timeout_ms > 0 {
        options = options.options([(
            "statement_timeout",
            config.database.statement_timeout_ms.to_string(),
        )]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(config.database.max_connections)
        .min_connections(config.database.min_connections)
        .acquire_timeout(Duration::from_secs(config.database.acquire_timeout_secs))
        .idle_timeout(Some(Duration::from_secs(config.database.idle_timeout_secs)))
        .connect_lazy_with(options);
    Ok(pool)
}

/// The statement of the first migration that creates Supabase's roles when absent: its
/// first `do $$ … $$;` block. Applied migrations never change (sqlx checks their
/// checksums), so this is read from the migration rather than written twice.
fn ensure_roles_statement() -> Option<&'static str> {
    let first = MIGRATOR.iter().next()?;
    let std::borrow::Cow::Borrowed(sql) = &first.sql else {
        return None;
    };
    let start = sql.find("do $$")?;
    let end = start + sql[start..].find("$$;")? + "$$".len();
    Some(&sql[start..end])
}

/// Applies every pending migration.
///
/// Roles belong to the whole server, not to one database, and the first migration
/// creates Supabase's roles when absent. On a server without them (a fresh CI machine),
/// several databases migrated at once (parallel tests, instances starting together)
/// would each create them inside their long migration transaction, queue behind one
/// another and fail. So the roles are first ensured in a statement of their own, which
/// commits at once; one that lost the race to another creator (a unique violation or
/// "already exists") runs again and finds them. The migration then has nothing to do.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let roles = ensure_roles_statement().unwrap_or("select 1");
    for attempt in 1.. {
        match sqlx::raw_sql(roles).execute(pool).await {
            Ok(_) => break,
            Err(sqlx::Error::Database(e))
                if attempt < 5 && matches!(e.code().as_deref(), Some("23505" | "42710")) =>
            {
                tracing::debug!("a role was created concurrently; checking again");
            }
            // Without the right to create roles the migration reports it.
            Err(e) => {
                tracing::debug!(error = %e, "roles not ensured before migrating");
                break;
            }
        }
    }
    MIGRATOR.run(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roles_statement_is_the_first_migration_s_role_block() {
        let statement = ensure_roles_statement().expect("found in the first migration");
        assert!(statement.starts_with("do $$") && statement.ends_with("$$"));
        for role in ["anon", "authenticated", "service_role"] {
            assert!(
                statement.contains(&format!("create role {role} nologin noinherit")),
                "{role}: {statement}"
            );
        }
        assert!(
            !statement.contains("create schema"),
            "roles only: {statement}"
        );
    }
}
