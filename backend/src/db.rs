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

/// Supabase's roles, created when absent, as the first migration does. Kept in step
/// with `migrations/20261128000001_auth_shim.sql`.
const ENSURE_ROLES: &str = "do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'service_role') then
        if (select rolsuper from pg_roles where rolname = current_user) then
            create role service_role nologin noinherit bypassrls;
        else
            create role service_role nologin noinherit;
        end if;
    end if;
end
$$";

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
    for attempt in 1.. {
        match sqlx::raw_sql(ENSURE_ROLES).execute(pool).await {
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
