//! `studyflow-backend migrate up|status`: the migrations without the server, against a
//! database of the test's own.

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use studyflow_backend::db::MIGRATOR;
use studyflow_testkit::process::run_to_end;
use studyflow_testkit::stack::binary;

/// Runs the backend binary with `args` on `database`; whether it succeeded, and what it
/// printed.
async fn backend(database: &PgConnectOptions, args: &[&str]) -> (bool, String) {
    let url = format!(
        "postgres://{}@{}:{}/{}",
        database.get_username(),
        database.get_host(),
        database.get_port(),
        database.get_database().expect("a database name"),
    );
    let mut command = tokio::process::Command::new(binary("studyflow-backend").expect("built"));
    command
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn");
    run_to_end(&mut command).await
}

/// `migrate status` succeeds and reports `applied` and `pending` migrations, each on its
/// line and in the summary.
async fn status_shows(database: &PgConnectOptions, applied: usize, pending: usize) {
    let (ok, out) = backend(database, &["migrate", "status"]).await;
    assert!(ok, "{out}");
    assert_eq!(out.matches(": applied ").count(), applied, "{out}");
    assert_eq!(out.matches(": pending").count(), pending, "{out}");
    let summary = format!("{applied} applied, {pending} pending, 0 inconsistent");
    assert!(out.contains(&summary), "{out}");
}

#[sqlx::test(migrations = false)]
async fn migrate_status_and_up_report_and_apply_without_serving(
    _: sqlx::pool::PoolOptions<sqlx::Postgres>,
    database: PgConnectOptions,
) {
    let total = MIGRATOR.iter().count();
    assert!(total > 0);
    status_shows(&database, 0, total).await;

    let (ok, out) = backend(&database, &["migrate", "up"]).await;
    let applied = format!("{total} migration(s) applied");
    assert!(ok && out.contains(&applied), "{out}");
    let (ok, out) = backend(&database, &["migrate"]).await;
    assert!(
        ok && out.contains("0 migration(s) applied"),
        "up is the default: {out}"
    );
    status_shows(&database, total, 0).await;

    // A migration this build does not carry, and one whose SQL changed since: reported,
    // and the command fails so a deployment script stops.
    let pool = PgPool::connect_with(database.clone()).await.expect("pool");
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time) \
         values (99990101000000, 'from a newer build', true, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .expect("insert");
    let first = MIGRATOR.iter().next().expect("a migration").version;
    sqlx::query("update _sqlx_migrations set checksum = '\\x01' where version = $1")
        .bind(first)
        .execute(&pool)
        .await
        .expect("update");
    pool.close().await;
    let (ok, out) = backend(&database, &["migrate", "status"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("99990101000000 from a newer build: applied, but not in this build"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{first} ")) && out.contains("CHANGED since it was applied"),
        "{out}"
    );
    assert!(out.contains("2 inconsistent"), "{out}");
}
