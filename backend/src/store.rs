//! The database work of one request, and the shadow dry run.
//!
//! A served request runs each statement on its own pooled connection (autocommit), as
//! the legacy's PostgREST calls do: a failed write does not undo an earlier one. A
//! shadowed request (`x-studyflow-shadow: 1`) runs everything in one transaction that is
//! rolled back at the end, each statement inside a savepoint so a failing statement
//! leaves the others working exactly as they would when served.
//!
//! Writes go through `json_populate_record`, the conversion PostgREST applies to the
//! JSON that supabase-js sends, so values convert (and fail) as they do for the legacy.
//! Every query is parameterised; table and column names come from this module only.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow};
use sqlx::query::Query;
use sqlx::{Acquire, PgPool, Postgres, Row, Transaction};

/// Tables the functions write to, with the columns they may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    ApiUsageLogs,
    SecurityAuditLog,
    Notifications,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::ApiUsageLogs => "api_usage_logs",
            Table::SecurityAuditLog => "security_audit_log",
            Table::Notifications => "notifications",
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            Table::ApiUsageLogs => &[
                "user_id",
                "provider",
                "model",
                "tokens_used",
                "success",
                "request_timestamp",
                "created_at",
            ],
            Table::SecurityAuditLog => &[
                "user_id",
                "event_type",
                "details",
                "severity",
                "ip_address",
                "user_agent",
            ],
            Table::Notifications => &[
                "user_id",
                "title",
                "message",
                "type",
                "priority",
                "read",
                "action_url",
                "metadata",
                "expires_at",
            ],
        }
    }
}

/// Reads that return rows as PostgREST renders them (`to_json(row)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsQuery {
    /// The user's study sessions completed since the given time.
    SessionsCompletedSince,
    /// All the user's tasks.
    Tasks,
    /// All the user's study goals.
    Goals,
}

/// The database handle of one request.
#[derive(Debug)]
pub struct RequestDb {
    pool: PgPool,
    shadow: Option<Transaction<'static, Postgres>>,
}

impl RequestDb {
    /// A handle for a served request; nothing is opened until the first statement.
    pub fn live(pool: &PgPool) -> Self {
        Self {
            pool: pool.clone(),
            shadow: None,
        }
    }

    /// A handle whose every statement is rolled back at [`RequestDb::finish`].
    pub async fn dry_run(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Ok(Self {
            pool: pool.clone(),
            shadow: Some(pool.begin().await?),
        })
    }

    pub fn is_dry_run(&self) -> bool {
        self.shadow.is_some()
    }

    /// Ends the request: a dry run's transaction is rolled back.
    pub async fn finish(self) {
        if let Some(transaction) = self.shadow
            && let Err(error) = transaction.rollback().await
        {
            tracing::warn!(%error, "rolling back a dry run failed (the connection drops it)");
        }
    }

    async fn execute(
        &mut self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<PgQueryResult, sqlx::Error> {
        match &mut self.shadow {
            None => query.execute(&self.pool).await,
            Some(transaction) => {
                let mut savepoint = transaction.begin().await?;
                let result = query.execute(&mut *savepoint).await;
                settle(savepoint, result.is_ok()).await?;
                result
            }
        }
    }

    async fn fetch_all(
        &mut self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        match &mut self.shadow {
            None => query.fetch_all(&self.pool).await,
            Some(transaction) => {
                let mut savepoint = transaction.begin().await?;
                let result = query.fetch_all(&mut *savepoint).await;
                settle(savepoint, result.is_ok()).await?;
                result
            }
        }
    }

    /// Whether `auth.users` has this id (Supabase Auth only knows existing users).
    pub async fn user_exists(&mut self, id: uuid::Uuid) -> Result<bool, sqlx::Error> {
        let rows = self
            .fetch_all(sqlx::query("select 1 from auth.users where id = $1").bind(id))
            .await?;
        Ok(!rows.is_empty())
    }

    /// Rows of the user, JSON-rendered in column order, ordered by `created_at, id`.
    pub async fn rows(
        &mut self,
        query: RowsQuery,
        user: uuid::Uuid,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Value>, sqlx::Error> {
        let sql = match query {
            RowsQuery::SessionsCompletedSince => {
                "select to_json(q) as r from (select * from public.study_sessions \
                 where user_id = $1 and completed_at >= $2 order by created_at, id) q"
            }
            RowsQuery::Tasks => {
                "select to_json(q) as r from (select * from public.tasks \
                 where user_id = $1 order by created_at, id) q"
            }
            RowsQuery::Goals => {
                "select to_json(q) as r from (select * from public.study_goals \
                 where user_id = $1 order by created_at, id) q"
            }
        };
        let mut statement = sqlx::query(sql).bind(user);
        if query == RowsQuery::SessionsCompletedSince {
            statement = statement.bind(since.unwrap_or_else(Utc::now));
        }
        self.fetch_all(statement)
            .await?
            .iter()
            .map(|row| row.try_get::<Value, _>("r"))
            .collect()
    }

    /// `supabase.from(table).insert(row)`: keys of `row` name the columns; values are
    /// converted by `json_populate_record`. Keys that are not columns of the table are
    /// refused (PostgREST answers such a write with an error too).
    pub async fn insert(
        &mut self,
        table: Table,
        row: &Map<String, Value>,
    ) -> Result<(), sqlx::Error> {
        let columns: Vec<&str> = row.keys().map(String::as_str).collect();
        if let Some(unknown) = columns.iter().find(|c| !table.columns().contains(c)) {
            return Err(sqlx::Error::ColumnNotFound((*unknown).to_owned()));
        }
        if columns.is_empty() {
            let sql = format!("insert into public.{} default values", table.name());
            return self.execute(sqlx::query(&sql)).await.map(drop);
        }
        let list = columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "insert into public.{table} ({list}) select {list} \
             from json_populate_record(null::public.{table}, $1::json)",
            table = table.name()
        );
        let body = crate::js::json::stringify(&Value::Object(row.clone()));
        self.execute(sqlx::query(&sql).bind(body)).await.map(drop)
    }

    /// The highest request count of the user's rate-limit rows of the last minute.
    pub async fn recent_request_count(&mut self, user: uuid::Uuid) -> Result<i64, sqlx::Error> {
        let rows = self
            .fetch_all(
                sqlx::query(
                    "select coalesce(max(requests_count), 0)::int8 as n from public.rate_limits \
                     where user_id = $1 and window_start >= now() - interval '60 seconds'",
                )
                .bind(user),
            )
            .await?;
        rows.first().map_or(Ok(0), |row| row.try_get("n"))
    }

    /// Counts one request in the user's row for the current minute (created at 1).
    pub async fn count_request(&mut self, user: uuid::Uuid) -> Result<(), sqlx::Error> {
        self.execute(
            sqlx::query(
                "insert into public.rate_limits (user_id, window_start, requests_count, updated_at) \
                 values ($1, date_trunc('minute', now()), 1, now()) \
                 on conflict (user_id, window_start) do update \
                 set requests_count = coalesce(rate_limits.requests_count, 0) + 1, updated_at = now()",
            )
            .bind(user),
        )
        .await
        .map(drop)
    }

    /// The latest future `blocked_until` of the user's rows for `action`, compared as
    /// text like PostgREST's `eq` filters (a user id that is not a uuid is an error).
    pub async fn blocked_until(
        &mut self,
        user: &str,
        action: &str,
    ) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let rows = self
            .fetch_all(
                sqlx::query(
                    "select blocked_until from public.rate_limits \
                     where user_id = $1::text::uuid and action = $2 and blocked_until > now() \
                     order by blocked_until desc limit 1",
                )
                .bind(user)
                .bind(action),
            )
            .await?;
        rows.first()
            .map(|row| row.try_get::<DateTime<Utc>, _>("blocked_until"))
            .transpose()
    }

    /// `duration` of the user's sessions created since `since` (nulls included).
    pub async fn session_durations_since(
        &mut self,
        user: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Option<i32>>, sqlx::Error> {
        let rows = self
            .fetch_all(
                sqlx::query(
                    "select duration from public.study_sessions \
                     where user_id = $1::text::uuid and created_at >= $2",
                )
                .bind(user)
                .bind(since),
            )
            .await?;
        rows.iter().map(|row| row.try_get("duration")).collect()
    }
}

/// Releases or rolls back a statement's savepoint.
async fn settle(savepoint: Transaction<'_, Postgres>, succeeded: bool) -> Result<(), sqlx::Error> {
    if succeeded {
        savepoint.commit().await
    } else {
        savepoint.rollback().await
    }
}
