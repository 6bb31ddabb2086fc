//! The backend and the gateway's diff store in one Postgres database: each keeps its own
//! migration history (`public._sqlx_migrations` and `diffs._sqlx_migrations`), so either
//! migrates first, both at once, and both again on every restart, in any order.
//!
//! Each test gets a fresh, empty database from `#[sqlx::test]` (on the server
//! `DATABASE_URL` names; `make test` sets it), dropped again when the test passes.

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

/// What the backend does at start: its migrations on its own pool.
async fn start_backend(database: &PgConnectOptions) -> Result<(), String> {
    let pool = pool(database).await?;
    let result = studyflow_backend::db::migrate(&pool).await;
    pool.close().await;
    result.map_err(|e| format!("backend: {e}"))
}

/// What the gateway does at start: the diff store's migrations, here on a plain pool of
/// the same database.
async fn start_diff_store(database: &PgConnectOptions) -> Result<(), String> {
    let pool = pool(database).await?;
    let result = studyflow_diffing::store::migrate(&pool).await;
    pool.close().await;
    result.map_err(|e| format!("diff store: {e}"))
}

/// A pool of its own on the test's database.
async fn pool(database: &PgConnectOptions) -> Result<PgPool, String> {
    PgPool::connect_with(database.clone())
        .await
        .map_err(|e| e.to_string())
}

/// The versions recorded in one history table.
async fn history(database: &PgConnectOptions, table: &str) -> Vec<i64> {
    let pool = PgPool::connect_with(database.clone()).await.expect("pool");
    let versions = sqlx::query_scalar(&format!("select version from {table} order by version"))
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    pool.close().await;
    versions
}

/// Both sides' tables answer, and each history holds only its own migrations.
async fn assert_both_usable(database: &PgConnectOptions) {
    let pool = PgPool::connect_with(database.clone()).await.expect("pool");
    for table in [
        "public.profiles",
        "public.security_audit_log",
        "diffs.pair_counts",
        "diffs.samples",
    ] {
        sqlx::query(&format!("select count(*) from {table}"))
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
    pool.close().await;
    let backend: Vec<i64> = studyflow_backend::db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(history(database, "public._sqlx_migrations").await, backend);
    let diffs = history(database, "diffs._sqlx_migrations").await;
    assert!(!diffs.is_empty(), "the diff store's history is its own");
    assert!(diffs.iter().all(|v| !backend.contains(v)), "{diffs:?}");
}

/// Starts, then restarts in the other order; both work every time.
async fn share_in_order(database: PgConnectOptions, diff_store_first: bool) {
    let steps: [bool; 4] = if diff_store_first {
        [true, false, false, true]
    } else {
        [false, true, true, false]
    };
    for (step, diff_store) in steps.into_iter().enumerate() {
        let result = if diff_store {
            start_diff_store(&database).await
        } else {
            start_backend(&database).await
        };
        assert!(
            result.is_ok(),
            "diff store first: {diff_store_first}, step {step}: {result:?}"
        );
    }
    assert_both_usable(&database).await;
}

#[sqlx::test(migrations = false)]
async fn backend_and_diff_store_share_one_database_diff_store_first(
    _: sqlx::pool::PoolOptions<sqlx::Postgres>,
    database: PgConnectOptions,
) {
    share_in_order(database, true).await;
}

#[sqlx::test(migrations = false)]
async fn backend_and_diff_store_share_one_database_backend_first(
    _: sqlx::pool::PoolOptions<sqlx::Postgres>,
    database: PgConnectOptions,
) {
    share_in_order(database, false).await;
}

#[sqlx::test(migrations = false)]
async fn backend_and_diff_store_migrate_one_database_at_once(
    _: sqlx::pool::PoolOptions<sqlx::Postgres>,
    database: PgConnectOptions,
) {
    let (backend, diff_store) = tokio::join!(start_backend(&database), start_diff_store(&database));
    assert!(backend.is_ok(), "{backend:?}");
    assert!(diff_store.is_ok(), "{diff_store:?}");
    let (backend, diff_store) = tokio::join!(start_diff_store(&database), start_backend(&database));
    assert!(backend.is_ok(), "{backend:?}");
    assert!(diff_store.is_ok(), "{diff_store:?}");
    assert_both_usable(&database).await;
}

#[sqlx::test(migrations = false)]
async fn a_database_whose_history_both_shared_is_repaired_by_the_diff_store(
    _: sqlx::pool::PoolOptions<sqlx::Postgres>,
    database: PgConnectOptions,
) {
    // What earlier builds left: the diff store's migration recorded in the backend's
    // history table, on which the backend refuses to start.
    start_backend(&database).await.expect("backend migrates");
    let pool = PgPool::connect_with(database.clone()).await.expect("pool");
    let mut shared_history = sqlx::migrate!("../diffing/migrations");
    shared_history.set_ignore_missing(true);
    shared_history.run(&pool).await.expect("old layout");
    pool.close().await;
    let refused = start_backend(&database).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("previously applied but is missing")),
        "{refused:?}"
    );

    start_diff_store(&database)
        .await
        .expect("diff store migrates");
    start_backend(&database)
        .await
        .expect("backend starts again");
    assert_both_usable(&database).await;
}
