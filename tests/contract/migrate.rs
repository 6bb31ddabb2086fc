//! `studyflow-backend migrate up|status`: the migrations without the server, against a
//! database of the test's own.

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use studyflow_backend::db::MIGRATOR;
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
    let output = tokio::process::Command::new(binary("studyflow-backend").expect("built"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the backend runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[sqlx::test(migrations = false)]
async fn migrate_status_and_up_report_and_apply_without_serving(
    _: sqlx::pool::PoolOptions<sqlx::Postgres>,
    database: PgConnectOptions,
) {
    let total = MIGRATOR.iter().count();
    assert!(total > 0);

    let (ok, out) = backend(&database, &["migrate", "status"]).await;
    assert!(ok, "{out}");
    assert_eq!(out.matches(": pending").count(), total, "{out}");
    assert!(
        out.contains(&format!("0 applied, {total} pending, 0 inconsistent")),
        "{out}"
    );

    let (ok, out) = backend(&database, &["migrate", "up"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{total} migration(s) applied")),
        "{out}"
    );
    let (ok, out) = backend(&database, &["migrate"]).await;
    assert!(
        ok && out.contains("0 migration(s) applied"),
        "up is the default: {out}"
    );

    let (ok, out) = backend(&database, &["migrate", "status"]).await;
    assert!(ok, "{out}");
    assert_eq!(out.matches(": applied ").count(), total, "{out}");
    assert!(
        out.contains(&format!("{total} applied, 0 pending, 0 inconsistent")),
        "{out}"
    );

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
