//! Fresh databases for the stack and the tests, migrated with the backend's migrations.

use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection, PgPool};

/// Postgres server the stack uses (trust auth on 127.0.0.1 by default).
pub fn server_url() -> String {
    std::env::var("STUDYFLOW_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Creates database `name` when absent (empty) and returns its URL.
pub async fn create(name: &str) -> anyhow::Result<String> {
    let server = server_url();
    let mut admin = PgConnection::connect(&format!("{server}/postgres"))
        .await
        .with_context(|| format!("connecting to Postgres at {server}"))?;
    let exists: Option<i32> = sqlx::query_scalar("select 1 from pg_database where datname = $1")
        .bind(name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        admin
            .execute(format!("create database \"{name}\"").as_str())
            .await
            .with_context(|| format!("creating database {name}"))?;
    }
    Ok(format!("{server}/{name}"))
}

/// Creates database `name` when absent, applies the migrations, and returns its URL.
pub async fn prepare(name: &str) -> anyhow::Result<String> {
    let url = create(name).await?;
    let pool = PgPool::connect(&url).await?;
    studyflow_backend::db::migrate(&pool)
        .await
        .context("applying migrations")?;
    pool.close().await;
    Ok(url)
}

/// Drops database `name`, closing its connections first.
pub async fn drop(name: &str) -> anyhow::Result<()> {
    let server = server_url();
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    admin
        .execute(format!("drop database if exists \"{name}\" with (force)").as_str())
        .await?;
    Ok(())
}

/// Makes sure `id` exists in `auth.users` with a profile, as a sign-up would leave it.
pub async fn ensure_user(url: &str, id: uuid::Uuid, email: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::query("insert into auth.users (id, email) values ($1, $2) on conflict (id) do nothing")
        .bind(id)
        .bind(email)
        .execute(&mut conn)
        .await?;
    sqlx::query(
        "insert into public.profiles (id, email) values ($1, $2) on conflict (id) do nothing",
    )
    .bind(id)
    .bind(email)
    .execute(&mut conn)
    .await?;
    Ok(())
}
