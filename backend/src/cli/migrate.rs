//! `studyflow-backend migrate up|status`: the SQL migrations of `migrations/` without
//! starting the server. `up` applies what is pending; `status` compares what the
//! database recorded (`public._sqlx_migrations`) with what this build carries.

use std::collections::BTreeMap;

use clap::Subcommand;
use sqlx::PgPool;

use crate::db::{self, MIGRATOR};
use crate::{Error, Result};

/// What `migrate` does (`up` when none is given).
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum MigrateCommand {
    /// Apply every pending migration.
    Up,
    /// List each migration as applied or pending, and fail when the database holds one
    /// this build does not know, one that changed since it was applied, or a failed one.
    Status,
}

/// One migration as the database recorded it.
#[derive(Debug, sqlx::FromRow)]
struct Applied {
    version: i64,
    description: String,
    installed_on: chrono::DateTime<chrono::Utc>,
    success: bool,
    checksum: Vec<u8>,
    execution_time: i64,
}

/// A migration's state, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Applied {
        on: String,
        millis: i64,
    },
    Pending,
    /// Applied, but this build's SQL differs from what was applied.
    Changed,
    /// Recorded as failed (`success = false`).
    Failed,
    /// Applied, but this build does not carry it.
    Unknown,
}

impl State {
    fn is_problem(&self) -> bool {
        matches!(self, State::Changed | State::Failed | State::Unknown)
    }
}

/// Runs `command` against `pool`; what it reports goes to stdout.
pub async fn run(pool: &PgPool, command: MigrateCommand) -> Result<()> {
    match command {
        MigrateCommand::Up => {
            let before = pending(pool).await?;
            db::migrate(pool).await?;
            println!("{before} migration(s) applied; the database is up to date");
            Ok(())
        }
        MigrateCommand::Status => {
            let rows = status(pool).await?;
            for (version, description, state) in &rows {
                println!("{version} {description}: {}", describe(state));
            }
            let pending = rows.iter().filter(|r| r.2 == State::Pending).count();
            let problems = rows.iter().filter(|r| r.2.is_problem()).count();
            println!(
                "{} applied, {pending} pending, {problems} inconsistent",
                rows.len() - pending - problems
            );
            if problems > 0 {
                return Err(Error::Config(format!(
                    "{problems} migration(s) do not match this build"
                )));
            }
            Ok(())
        }
    }
}

fn describe(state: &State) -> String {
    match state {
        State::Applied { on, millis } => format!("applied {on} ({millis} ms)"),
        State::Pending => "pending".into(),
        State::Changed => "CHANGED since it was applied".into(),
        State::Failed => "FAILED".into(),
        State::Unknown => "applied, but not in this build".into(),
    }
}

/// Every migration this build carries or the database recorded, by version.
pub async fn status(pool: &PgPool) -> Result<Vec<(i64, String, State)>> {
    let mut applied: BTreeMap<i64, Applied> = recorded(pool)
        .await?
        .into_iter()
        .map(|row| (row.version, row))
        .collect();
    let mut rows = Vec::new();
    for migration in MIGRATOR.iter() {
        let state = match applied.remove(&migration.version) {
            None => State::Pending,
            Some(row) if !row.success => State::Failed,
            Some(row) if row.checksum.as_slice() != &*migration.checksum => State::Changed,
            Some(row) => State::Applied {
                on: row.installed_on.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                millis: row.execution_time / 1_000_000,
            },
        };
        rows.push((migration.version, migration.description.to_string(), state));
    }
    rows.extend(
        applied
            .into_values()
            .map(|row| (row.version, row.description, State::Unknown)),
    );
    rows.sort_by_key(|row| row.0);
    Ok(rows)
}

/// How many of this build's migrations the database has not applied.
async fn pending(pool: &PgPool) -> Result<usize> {
    let rows = status(pool).await?;
    Ok(rows.iter().filter(|r| r.2 == State::Pending).count())
}

/// The database's migration history; empty before the first migration.
async fn recorded(pool: &PgPool) -> Result<Vec<Applied>> {
    let exists: bool =
        sqlx::query_scalar("select to_regclass('public._sqlx_migrations') is not null")
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "select version, description, installed_on, success, checksum, execution_time \
         from public._sqlx_migrations order by version",
    )
    .fetch_all(pool)
    .await?)
}
