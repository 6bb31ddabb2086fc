//! The data API: the frontend's three most common queries through the backend
//! (`/rest/v1`, driven by wrk), beside the floor: the very same SQL (the backend's own
//! statement, in a transaction as the user with the claims set) run directly with a
//! pooled client of the backend's pool size. The difference is what HTTP, parsing,
//! token checks and planning cost per request.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method};
use sqlx::PgPool;
use studyflow_backend::rest::request::Query;
use studyflow_backend::rest::schema::Schema;
use studyflow_backend::rest::sql::{self, Body};
use studyflow_backend::rest::{self, Identity};
use studyflow_testkit::stack::DEMO_USER_ID;

use crate::load::{Generator, Load, Measured};
use crate::report::ms;

/// The three queries, as supabase-js sends them: (name, table, query string).
pub const QUERIES: [(&str, &str, &str); 3] = [
    (
        "recent study sessions with their subject",
        "study_sessions",
        "select=*,subjects(name)&order=started_at.desc&limit=20",
    ),
    (
        "open tasks by due date",
        "tasks",
        "select=*&status=neq.completed&order=due_date.asc",
    ),
    ("the user's settings", "user_settings", "select=*"),
];

/// One query measured one way.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub query: &'static str,
    pub how: &'static str,
    pub measured: Measured,
}

/// Rows for the benchmark user and 20 others, so row-level security has rows to hide.
async fn seed(pool: &PgPool) -> anyhow::Result<()> {
    // The demo user (a constant of the test kit) is the benchmark user.
    let script = format!(
        "do $$
         declare u uuid; s uuid; i int; n int;
         begin
           -- The other users of an earlier run (their rows go with them).
           delete from auth.users where email like '%@bench.test' and id <> '{DEMO_USER_ID}';
           for n in 0..20 loop
             u := case when n = 0 then '{DEMO_USER_ID}'::uuid else gen_random_uuid() end;
             insert into auth.users (id, email) values (u, u::text || '@bench.test') on conflict do nothing;
             delete from study_sessions where user_id = u;
             delete from tasks where user_id = u;
             delete from subjects where user_id = u;
             delete from user_settings where user_id = u;
             insert into subjects (user_id, name) values (u, 'Maths') returning id into s;
             insert into user_settings (user_id) values (u);
             for i in 1..200 loop
               insert into study_sessions (user_id, subject_id, title, duration, started_at)
               values (u, case when i % 3 = 0 then null else s end, 'Session ' || i, 25 + i % 40,
                       now() - make_interval(hours => i));
             end loop;
             for i in 1..100 loop
               insert into tasks (user_id, subject_id, title, status, due_date)
               values (u, s, 'Task ' || i,
                       (array['todo','in_progress','completed','on_hold'])[1 + i % 4]::task_status,
                       now() + make_interval(days => i));
             end loop;
           end loop;
         end $$;"
    );
    sqlx::raw_sql(&script).execute(pool).await?;
    Ok(())
}

/// The floor: `connections` tasks each running the backend's statement for `query`
/// in a transaction as the user, back to back, for `duration`.
async fn floor(
    pool: &PgPool,
    schema: &Arc<Schema>,
    table: &str,
    query: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let table = schema
        .table(table)
        .ok_or_else(|| anyhow::anyhow!("no table {table}"))?
        .clone();
    let parsed = Query::parse(Some(query), &HeaderMap::new())
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let identity = Identity::user(DEMO_USER_ID.parse()?);
    let deadline = Instant::now() + duration;
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (pool, schema, table, parsed, identity) = (
            pool.clone(),
            Arc::clone(schema),
            table.clone(),
            parsed.clone(),
            identity.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let statement = sql::read(&schema, &table, &parsed, false, Body::Array)
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
                let mut tx = pool.begin().await?;
                rest::become_identity(&mut tx, &identity, &Method::GET, &table).await?;
                let outcome = rest::run(&mut tx, statement).await?;
                tx.commit().await?;
                anyhow::ensure!(outcome.rows > 0, "the query found rows");
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await??);
    }
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Ok(Measured {
        requests_per_sec: all.len() as f64 / duration.as_secs_f64(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        failed: 0,
    })
}

/// Runs each query through the backend and at the floor, one after the other.
/// Work files go under `<root>/.stack/bench/data-api`.
pub async fn run(
    root: &Path,
    duration: Duration,
    connections: usize,
) -> anyhow::Result<Vec<QueryResult>> {
    let (generator, stack, _) = Generator::with_stack(root, "data-api").await?;
    // The backend's pool size (its default), for a like-for-like floor.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect(&stack.database_url)
        .await?;
    seed(&pool).await?;
    let schema = Arc::new(Schema::load(&pool).await?);
    let token = stack.demo_token(3600);
    let mut results = Vec::new();
    for (name, table, query) in QUERIES {
        let load = Load {
            url: format!("{}/rest/v1/{table}?{query}", stack.backend_url),
            method: "GET",
            body: None,
            headers: vec![
                ("authorization".into(), format!("Bearer {token}")),
                ("apikey".into(), stack.anon_key()),
            ],
            duration,
            connections,
            rate: None,
        };
        let through = generator.warm_then_run(&load).await?;
        anyhow::ensure!(through.failed == 0, "{name}: {} failed", through.failed);
        let direct = floor(&pool, &schema, table, query, connections, duration).await?;
        for (how, measured) in [
            ("backend /rest/v1 (HTTP)", through),
            ("pooled SQL (floor)", direct),
        ] {
            tracing::info!(
                query = name,
                how,
                rps = measured.requests_per_sec,
                p99 = measured.p99_ms,
                "measured"
            );
            results.push(QueryResult {
                query: name,
                how,
                measured,
            });
        }
    }
    pool.close().await;
    stack.stop().await;
    Ok(results)
}

pub fn table(results: &[QueryResult], duration: Duration, connections: usize) -> String {
    let mut out = format!(
        "## Data API\n\nThe frontend's three most common queries as the demo user (row-level security \
         hiding 20 other users' rows), through the backend's `/rest/v1` (wrk, {connections} connections, \
         saturation) beside the floor: the backend's own SQL statement for the query, in a transaction as \
         the user with the claims set, run directly by {connections} tasks on a pool of the backend's size \
         (10). {} s per case after a 1 s warm-up.\n\n\
         | query | how | req/s | p50 ms | p99 ms | p99.9 ms |\n|---|---|---:|---:|---:|---:|\n",
        duration.as_secs()
    );
    for r in results {
        let m = &r.measured;
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {} |",
            r.query,
            r.how,
            m.requests_per_sec,
            ms(m.p50_ms),
            ms(m.p99_ms),
            ms(m.p999_ms)
        );
    }
    out.push_str("\n| query | backend / floor throughput |\n|---|---:|\n");
    for (name, _, _) in QUERIES {
        let get = |how: &str| {
            results
                .iter()
                .find(|r| r.query == name && r.how.starts_with(how))
                .map(|r| r.measured.requests_per_sec)
        };
        if let (Some(backend), Some(floor)) = (get("backend"), get("pooled")) {
            let _ = writeln!(out, "| {name} | {:.2}× |", backend / floor);
        }
    }
    out
}
