//! The backend and the gateway's diff store in one Postgres database: each keeps its own
//! migration history (`public._sqlx_migrations` and `diffs._sqlx_migrations`), so either
//! migrates first, both at once, and both again on every restart, in any order.

use sqlx::PgPool;
use studyflow_testkit::database;

/// A fresh, empty database of this test.
async fn fresh(label: &str) -> (String, String) {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("studyflow_test_c_shared_{label}_{}", &suffix[..8]);
    let url = database::create(&name).await.expect("database");
    (name, url)
}

/// What the backend does at start: its migrations on its own pool.
async fn start_backend(url: &str) -> Result<(), String> {
    let pool = PgPool::connect(url).await.map_err(|e| e.to_string())?;
    let result = studyflow_backend::db::migrate(&pool)
        .await
        .map_err(|e| format!("backend: {e}"));
    pool.close().await;
    result
}

/// What the gateway does at start: the diff store's migrations, here on a plain pool of
/// the same database.
async fn start_diff_store(url: &str) -> Result<(), String> {
    let pool = PgPool::connect(url).await.map_err(|e| e.to_string())?;
    let result = studyflow_diffing::store::migrate(&pool)
        .await
        .map_err(|e| format!("diff store: {e}"));
    pool.close().await;
    result
}

/// The versions recorded in one history table.
async fn history(url: &str, table: &str) -> Vec<i64> {
    let pool = PgPool::connect(url).await.expect("pool");
    let versions = sqlx::query_scalar(&format!("select version from {table} order by version"))
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    pool.close().await;
    versions
}

/// Both sides' tables answer, and each history holds only its own migrations.
async fn assert_both_usable(url: &str) {
    let pool = PgPool::connect(url).await.expect("pool");
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
    assert_eq!(history(url, "public._sqlx_migrations").await, backend);
    let diffs = history(url, "diffs._sqlx_migrations").await;
    assert!(!diffs.is_empty(), "the diff store's history is its own");
    assert!(diffs.iter().all(|v| !backend.contains(v)), "{diffs:?}");
}

#[tokio::test]
async fn backend_and_diff_store_share_one_database_in_either_order() {
    for diff_store_first in [true, false] {
        let (name, url) = fresh(if diff_store_first { "diff1" } else { "back1" }).await;
        let steps: [bool; 4] = if diff_store_first {
            // Start, then restart in the other order.
            [true, false, false, true]
        } else {
            [false, true, true, false]
        };
        for (step, diff_store) in steps.into_iter().enumerate() {
            let result = if diff_store {
                start_diff_store(&url).await
            } else {
                start_backend(&url).await
            };
            assert!(
                result.is_ok(),
                "diff store first: {diff_store_first}, step {step}: {result:?}"
            );
        }
        assert_both_usable(&url).await;
        database::drop(&name).await.expect("drop");
    }
}

#[tokio::test]
async fn backend_and_diff_store_migrate_one_database_at_once() {
    let (name, url) = fresh("both").await;
    let (backend, diff_store) = tokio::join!(start_backend(&url), start_diff_store(&url));
    assert!(backend.is_ok(), "{backend:?}");
    assert!(diff_store.is_ok(), "{diff_store:?}");
    let (backend, diff_store) = tokio::join!(start_diff_store(&url), start_backend(&url));
    assert!(backend.is_ok(), "{backend:?}");
    assert!(diff_store.is_ok(), "{diff_store:?}");
    assert_both_usable(&url).await;
    database::drop(&name).await.expect("drop");
}

#[tokio::test]
async fn a_database_whose_history_both_shared_is_repaired_by_the_diff_store() {
    // What earlier builds left: the diff store's migration recorded in the backend's
    // history table, on which the backend refuses to start.
    let (name, url) = fresh("legacy").await;
    start_backend(&url).await.expect("backend migrates");
    let pool = PgPool::connect(&url).await.expect("pool");
    let mut shared_history = sqlx::migrate!("../diffing/migrations");
    shared_history.set_ignore_missing(true);
    shared_history.run(&pool).await.expect("old layout");
    pool.close().await;
    let refused = start_backend(&url).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("previously applied but is missing")),
        "{refused:?}"
    );

    start_diff_store(&url).await.expect("diff store migrates");
    start_backend(&url).await.expect("backend starts again");
    assert_both_usable(&url).await;
    database::drop(&name).await.expect("drop");
}
