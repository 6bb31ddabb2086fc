//! The diff store: counts per route and path shape over minute buckets, and a bounded
//! number of recent redacted samples, in Postgres (schema `diffs`).
//!
//! Everything of the store, its migration history (`diffs._sqlx_migrations`) included,
//! lives in that schema, so the store can share a database with the backend (whose
//! history is `public._sqlx_migrations`) and either can start or migrate first.
//!
//! [`DiffStore::record`] never waits: records go to a bounded queue and a writer task
//! aggregates them and writes them in batches. When the queue is full or Postgres is slow
//! or down, records are dropped and counted ([`DiffStore::dropped`]); the gateway keeps
//! serving.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;

use crate::noise::{ShapeHit, Verdict};
use crate::sample::{RedactedExchange, StoredDifference};

/// The store's errors are the crate's ([`crate::Error`]).
pub use crate::Error as StoreError;

/// Bounds and retention of the store.
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
    /// Records waiting to be written; beyond it records are dropped.
    pub queue_size: usize,
    /// How often the writer flushes.
    pub flush_interval: Duration,
    /// Samples kept per route and shape.
    pub samples_per_shape: i64,
    /// Counts and samples older than this are deleted.
    pub retention: Duration,
}

/// What the comparison stage hands to the store for one pair.
#[derive(Debug, Clone)]
pub struct Record {
    pub route: String,
    /// The phase the request was served under (`shadow`, `canary 25%`, …).
    pub phase: String,
    /// When the request was served (not when it was compared).
    pub at: DateTime<Utc>,
    pub verdict: Verdict,
    pub shapes: Vec<ShapeHit>,
    /// Shapes that differed between two answers of the same side (noise probe).
    pub probe_shapes: Vec<String>,
    /// Redacted sample, for pairs with differences.
    pub sample: Option<Sample>,
    /// The pair was not compared: the new side's dry run skipped its provider call.
    /// Only counted (`provider_skipped`); `verdict` and `shapes` mean nothing then.
    pub provider_skipped: bool,
}

impl Record {
    /// A pair left uncompared because the new side skipped its provider call.
    pub fn provider_skipped(route: String, phase: String, at: DateTime<Utc>) -> Self {
        Self {
            route,
            phase,
            at,
            verdict: Verdict::Equal,
            shapes: Vec::new(),
            probe_shapes: Vec::new(),
            sample: None,
            provider_skipped: true,
        }
    }
}

/// A stored example of a differing pair.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub request_id: String,
    pub exchange: RedactedExchange,
    pub differences: Vec<StoredDifference>,
}

/// Handle of the store; cheap to clone.
#[derive(Debug, Clone)]
pub struct DiffStore {
    pool: PgPool,
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

impl DiffStore {
    /// Connects (lazily: a database that is down at start only delays writes), applies
    /// the migrations when it can, and starts the writer on the current runtime.
    /// `dropped` counts records lost to a full queue or an unavailable database; share it
    /// to report it elsewhere.
    pub async fn open(
        database_url: &str,
        settings: StoreSettings,
        dropped: Arc<AtomicU64>,
    ) -> Result<Self, StoreError> {
        let pool = pool(database_url)?;
        let migrated = match migrate(&pool).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "diff store migrations not applied yet; will retry on the next flush");
                false
            }
        };
        let (tx, rx) = mpsc::channel(settings.queue_size.max(1));
        let store = Self { pool, tx, dropped };
        tokio::spawn(writer(store.clone(), rx, settings, migrated));
        Ok(store)
    }

    /// Queues a record without waiting; drops (and counts) it when the queue is full.
    pub fn record(&self, record: Record) {
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped so far (queue full or database unavailable).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Route and shape of every path seen differing between two answers of the same side
    /// (the noise probe), so classification survives a restart.
    pub async fn learned_noise(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows =
            sqlx::query_as("select distinct route, shape from diffs.shape_counts where probe > 0")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows)
    }
}

/// Which compared pairs are a route's evidence for the promotion gate.
#[derive(Debug, Clone, Copy)]
pub struct PhaseWindow<'a> {
    pub route: &'a str,
    /// The phase in force, as recorded (`shadow`, `canary 25%`, …).
    pub phase: &'a str,
    /// Pairs served under `phase` count from this second on (its last change).
    pub since: DateTime<Utc>,
    /// Pairs served in any canary count too, from this instant on.
    pub canary_since: Option<DateTime<Utc>>,
}

/// Compared pairs and regressions within `window`, as the whole fleet recorded them.
pub async fn phase_pairs(pool: &PgPool, window: PhaseWindow<'_>) -> Result<(u64, u64), StoreError> {
    let (compared, regressions): (i64, i64) = sqlx::query_as(
        "select coalesce(sum(compared), 0)::bigint, coalesce(sum(regression), 0)::bigint \
         from diffs.phase_pair_counts where route = $1 and \
         ((phase = $2 and second >= date_trunc('second', $3::timestamptz)) \
          or ($4::timestamptz is not null and phase like 'canary%' and second >= $4::timestamptz))",
    )
    .bind(window.route)
    .bind(window.phase)
    .bind(window.since)
    .bind(window.canary_since)
    .fetch_one(pool)
    .await?;
    Ok((
        u64::try_from(compared).unwrap_or(0),
        u64::try_from(regressions).unwrap_or(0),
    ))
}

/// The schema of the store's tables and of its migration history.
pub const SCHEMA: &str = "diffs";

/// The store's migrations (`diffing/migrations`), embedded. Applied migrations this
/// build does not know (a newer build migrated the store) are tolerated.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// A pool on the diff store's database that connects on first use, its sessions'
/// `search_path` set to [`SCHEMA`] (the store's queries name the schema anyway).
pub fn pool(database_url: &str) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(database_url)?
        .application_name("studyflow-diff-store")
        .options([("search_path", SCHEMA)]);
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options))
}

/// Applies the store's migrations, with their history in `diffs._sqlx_migrations`, on
/// any pool of the database: the migrating session's `search_path` is [`SCHEMA`] alone,
/// so sqlx's unqualified `_sqlx_migrations` is the store's own and the migrations of
/// other components in the same database (the backend's) are neither seen nor touched.
/// A store migrated by a newer build (more migrations than this one knows) still opens.
///
/// Earlier builds kept the store's history in `public._sqlx_migrations`, where a backend
/// sharing the database then found a migration it did not know and refused to start;
/// once migrated, the store's rows are removed from there (only rows whose version and
/// checksum are exactly the store's own).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    // A session of its own (closed afterwards, so it takes nothing back to `pool`).
    let options = (*pool.connect_options())
        .clone()
        .options([("search_path", SCHEMA)]);
    let session = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .connect_with(options)
        .await?;
    let result = migrate_in(&session).await;
    session.close().await;
    result
}

async fn migrate_in(session: &PgPool) -> Result<(), StoreError> {
    create_schema(session).await?;
    migrator().run(session).await?;
    forget_shared_history(session).await?;
    Ok(())
}

/// `create schema if not exists`, which two sessions running it at once can still make
/// fail (a unique violation in the catalogue): the loser finds the schema on retrying.
async fn create_schema(session: &PgPool) -> Result<(), sqlx::Error> {
    let statement = format!("create schema if not exists {SCHEMA}");
    let mut attempt = 0;
    loop {
        attempt += 1;
        match sqlx::query(&statement).execute(session).await {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::Database(e))
                if attempt < 3 && matches!(e.code().as_deref(), Some("23505" | "42P06")) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Removes the store's own rows from `public._sqlx_migrations` (written there by earlier
/// builds), leaving every other component's rows alone.
async fn forget_shared_history(session: &PgPool) -> Result<(), sqlx::Error> {
    let shared: Option<String> =
        sqlx::query_scalar("select to_regclass('public._sqlx_migrations')::text")
            .fetch_one(session)
            .await?;
    if shared.is_none() {
        return Ok(());
    }
    for migration in migrator().iter() {
        let removed =
            sqlx::query("delete from public._sqlx_migrations where version = $1 and checksum = $2")
                .bind(migration.version)
                .bind(migration.checksum.as_ref())
                .execute(session)
                .await?;
        if removed.rows_affected() > 0 {
            tracing::info!(
                version = migration.version,
                "diff store migration history moved from public._sqlx_migrations to {SCHEMA}._sqlx_migrations"
            );
        }
    }
    Ok(())
}

#[derive(Default)]
struct PairDelta {
    compared: i64,
    equal: i64,
    noise: i64,
    regression: i64,
    provider_skipped: i64,
}

impl PairDelta {
    fn count(&mut self, verdict: Verdict) {
        self.compared += 1;
        match verdict {
            Verdict::Equal => self.equal += 1,
            Verdict::Noise => self.noise += 1,
            Verdict::Regression => self.regression += 1,
        }
    }
}

#[derive(Default)]
struct ShapeDelta {
    differing: i64,
    noise: i64,
    probe: i64,
}

/// Writes the queued records in batches; migrates first when `open` could not.
async fn writer(
    store: DiffStore,
    mut rx: mpsc::Receiver<Record>,
    settings: StoreSettings,
    mut migrated: bool,
) {
    let mut last_cleanup = std::time::Instant::now();
    loop {
        let Some(first) = rx.recv().await else { return };
        // Records are summed as they come: a batch is its rows, not its records.
        let mut batch = Tally::default();
        batch.add(first);
        let mut size: u64 = 1;
        let deadline = tokio::time::sleep(settings.flush_interval);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                record = rx.recv() => match record {
                    Some(record) => {
                        batch.add(record);
                        size += 1;
                    }
                    None => break,
                },
                _ = &mut deadline => break,
            }
            if size >= 5000 {
                break;
            }
        }
        if !migrated {
            migrated = migrate(&store.pool).await.is_ok();
        }
        if let Err(error) = flush(&store.pool, batch, settings.samples_per_shape).await {
            store.dropped.fetch_add(size, Ordering::Relaxed);
            tracing::warn!(%error, records = size, "diff store unavailable; records dropped");
        }
        if last_cleanup.elapsed() > Duration::from_secs(600) {
            last_cleanup = std::time::Instant::now();
            if let Err(error) = cleanup(&store.pool, settings.retention).await {
                tracing::warn!(%error, "diff store retention cleanup failed");
            }
        }
    }
}

async fn flush(pool: &PgPool, tally: Tally, samples_per_shape: i64) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    tally.write_pairs(&mut tx).await?;
    tally.write_phase_pairs(&mut tx).await?;
    tally.write_shapes(&mut tx).await?;
    tally.write_samples(&mut tx, samples_per_shape).await?;
    tx.commit().await
}

/// A sample ready to store: route, primary shape, every shape, verdict, sample.
type PendingSample = (String, String, Vec<String>, Verdict, Sample);

/// A batch's rows by key. Hashed with foldhash rather than SipHash: every record looks up
/// four of them, the keys are the gateway's own (routes, minutes, phases, shapes), and a
/// batch lives one flush.
type Rows<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One batch of records summed per table row, so each row is written once per flush.
#[derive(Default)]
struct Tally {
    /// By route: a record finds its route's rows without a key of its own being built.
    routes: Rows<String, RouteTally>,
    samples: Vec<PendingSample>,
}

/// One route's rows of a batch.
#[derive(Default)]
struct RouteTally {
    /// Per minute.
    pairs: Rows<DateTime<Utc>, PairDelta>,
    /// Per phase and second (what the promotion gate counts).
    phase_pairs: Rows<(String, DateTime<Utc>), PairDelta>,
    /// Per path shape and minute.
    shapes: Rows<(String, DateTime<Utc>), ShapeDelta>,
}

impl Tally {
    fn add(&mut self, record: Record) {
        // The record's second and minute, floored on whole seconds since the epoch:
        // chrono's `duration_trunc` cost 300 instructions each.
        let seconds = record.at.timestamp();
        let at = |seconds| DateTime::from_timestamp(seconds, 0).unwrap_or(record.at);
        let second = at(seconds);
        let bucket = at(seconds - seconds.rem_euclid(60));
        // The route's rows, made on its first record.
        let rows = match self.routes.get_mut(&record.route) {
            Some(rows) => rows,
            None => self.routes.entry(record.route.clone()).or_default(),
        };
        if record.provider_skipped {
            rows.pairs.entry(bucket).or_default().provider_skipped += 1;
            return;
        }
        rows.pairs.entry(bucket).or_default().count(record.verdict);
        rows.phase_pairs
            .entry((record.phase, second))
            .or_default()
            .count(record.verdict);
        for hit in &record.shapes {
            let delta = rows.shapes.entry((hit.shape.clone(), bucket)).or_default();
            delta.differing += 1;
            delta.noise += i64::from(hit.noise);
        }
        for shape in record.probe_shapes {
            rows.shapes.entry((shape, bucket)).or_default().probe += 1;
        }
        if let Some(sample) = record.sample {
            // The sample is filed under its first regression's shape, else its first.
            let primary = record
                .shapes
                .iter()
                .find(|s| !s.noise)
                .or(record.shapes.first())
                .map(|s| s.shape.clone())
                .unwrap_or_default();
            let all: Vec<String> = record.shapes.iter().map(|s| s.shape.clone()).collect();
            self.samples
                .push((record.route, primary, all, record.verdict, sample));
        }
    }

    /// Every row of one table, with its route.
    fn rows<'a, K, V>(
        &'a self,
        table: impl Fn(&'a RouteTally) -> &'a Rows<K, V>,
    ) -> Vec<(&'a str, &'a K, &'a V)> {
        let mut out = Vec::new();
        for (route, rows) in &self.routes {
            out.extend(
                table(rows)
                    .iter()
                    .map(|(key, value)| (route.as_str(), key, value)),
            );
        }
        out
    }

    async fn write_pairs(&self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        for (route, bucket, d) in self.rows(|rows| &rows.pairs) {
            sqlx::query(
                "insert into diffs.pair_counts (route, bucket, compared, equal, noise, regression, provider_skipped) values ($1, $2, $3, $4, $5, $6, $7)
                 on conflict (route, bucket) do update set compared = pair_counts.compared + excluded.compared,
                   equal = pair_counts.equal + excluded.equal, noise = pair_counts.noise + excluded.noise,
                   regression = pair_counts.regression + excluded.regression,
                   provider_skipped = pair_counts.provider_skipped + excluded.provider_skipped",
            )
            .bind(route)
            .bind(bucket)
            .bind(d.compared)
            .bind(d.equal)
            .bind(d.noise)
            .bind(d.regression)
            .bind(d.provider_skipped)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    async fn write_phase_pairs(&self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        for (route, (phase, second), d) in self.rows(|rows| &rows.phase_pairs) {
            sqlx::query(
                "insert into diffs.phase_pair_counts (route, phase, second, compared, regression) values ($1, $2, $3, $4, $5)
                 on conflict (route, phase, second) do update set compared = phase_pair_counts.compared + excluded.compared,
                   regression = phase_pair_counts.regression + excluded.regression",
            )
            .bind(route)
            .bind(phase)
            .bind(second)
            .bind(d.compared)
            .bind(d.regression)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    async fn write_shapes(&self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        for (route, (shape, bucket), d) in self.rows(|rows| &rows.shapes) {
            sqlx::query(
                "insert into diffs.shape_counts (route, shape, bucket, differing, noise, probe) values ($1, $2, $3, $4, $5, $6)
                 on conflict (route, shape, bucket) do update set differing = shape_counts.differing + excluded.differing,
                   noise = shape_counts.noise + excluded.noise, probe = shape_counts.probe + excluded.probe",
            )
            .bind(route)
            .bind(shape)
            .bind(bucket)
            .bind(d.differing)
            .bind(d.noise)
            .bind(d.probe)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Stores the samples, then keeps only the newest `per_shape` of each shape touched.
    async fn write_samples(
        &self,
        tx: &mut PgConnection,
        per_shape: i64,
    ) -> Result<(), sqlx::Error> {
        let mut touched: Vec<(&str, &str)> = Vec::new();
        for (route, shape, all, verdict, sample) in &self.samples {
            sqlx::query(
                "insert into diffs.samples (route, shape, shapes, request_id, verdict, exchange, differences) values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(route)
            .bind(shape)
            .bind(all)
            .bind(&sample.request_id)
            .bind(verdict.name())
            .bind(sqlx::types::Json(&sample.exchange))
            .bind(sqlx::types::Json(&sample.differences))
            .execute(&mut *tx)
            .await?;
            if !touched.contains(&(route, shape)) {
                touched.push((route, shape));
            }
        }
        for (route, shape) in touched {
            sqlx::query(
                "delete from diffs.samples where route = $1 and shape = $2 and id not in
                   (select id from diffs.samples where route = $1 and shape = $2 order by id desc limit $3)",
            )
            .bind(route)
            .bind(shape)
            .bind(per_shape)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

async fn cleanup(pool: &PgPool, retention: Duration) -> Result<(), sqlx::Error> {
    // A retention too long to subtract from now keeps everything.
    let Some(cutoff) = chrono::TimeDelta::from_std(retention)
        .ok()
        .and_then(|retention| Utc::now().checked_sub_signed(retention))
    else {
        return Ok(());
    };
    for (table, column) in [
        ("pair_counts", "bucket"),
        ("shape_counts", "bucket"),
        ("phase_pair_counts", "second"),
    ] {
        sqlx::query(&format!("delete from diffs.{table} where {column} < $1"))
            .bind(cutoff)
            .execute(pool)
            .await?;
    }
    sqlx::query("delete from diffs.samples where created_at < $1")
        .bind(cutoff)
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("a timestamp")
    }

    fn record(when: &str) -> Record {
        Record {
            verdict: Verdict::Regression,
            provider_skipped: false,
            ..Record::provider_skipped("auth".into(), "shadow".into(), at(when))
        }
    }

    /// A batch sums records per minute, and per phase and second, floored: the last
    /// instant of a minute is in it, its end is in the next, and an instant before the
    /// epoch is floored too, not rounded toward it.
    #[test]
    fn records_are_summed_in_the_minute_and_second_they_were_served() {
        let mut tally = Tally::default();
        for when in [
            "2026-12-05T10:41:07.250Z",
            "2026-12-05T10:41:07.999Z",
            "2026-12-05T10:41:59.999Z",
            "2026-12-05T10:42:00Z",
            "1969-12-31T23:59:59.500Z",
        ] {
            tally.add(record(when));
        }
        let minutes: Vec<_> = {
            let mut rows: Vec<_> = tally
                .rows(|rows| &rows.pairs)
                .into_iter()
                .map(|(route, minute, d)| (route, *minute, d.regression))
                .collect();
            rows.sort();
            rows
        };
        assert_eq!(
            minutes,
            [
                ("auth", at("1969-12-31T23:59:00Z"), 1),
                ("auth", at("2026-12-05T10:41:00Z"), 3),
                ("auth", at("2026-12-05T10:42:00Z"), 1),
            ]
        );
        let mut seconds: Vec<_> = tally
            .rows(|rows| &rows.phase_pairs)
            .into_iter()
            .map(|(_, (phase, second), d)| (phase.as_str(), *second, d.compared))
            .collect();
        seconds.sort();
        assert_eq!(
            seconds,
            [
                ("shadow", at("1969-12-31T23:59:59Z"), 1),
                ("shadow", at("2026-12-05T10:41:07Z"), 2),
                ("shadow", at("2026-12-05T10:41:59Z"), 1),
                ("shadow", at("2026-12-05T10:42:00Z"), 1),
            ]
        );
    }
}
