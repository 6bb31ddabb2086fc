//! `postgres_changes`: row changes of the configured tables, from the
//! `studyflow_realtime_notify` trigger (migrations) through `LISTEN/NOTIFY`.
//!
//! The trigger notifies `{schema, table, type, id, user_id, commit_timestamp, record,
//! old_record}` on [`CHANNEL`]; a row too large for `NOTIFY` (8 000 bytes) comes without
//! its records (`large: true`) and is read back by id. Every backend instance listens
//! itself, so changes need no Redis hop. A user receives a row only when they own it
//! (`user_id = sub`, the tables' RLS rule); rows without a `user_id` column are public.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgListener;

/// The `NOTIFY` channel of the trigger.
pub const CHANNEL: &str = "studyflow_realtime";

static NEXT_BINDING_ID: AtomicU32 = AtomicU32::new(1);

/// One `postgres_changes` entry of a join's config, as accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The id the client matches pushes against (`payload.ids`).
    pub id: u32,
    /// `*`, `INSERT`, `UPDATE` or `DELETE`.
    pub event: String,
    pub schema: String,
    /// `None` or `*`: every configured table.
    pub table: Option<String>,
    pub filter: Option<Filter>,
    /// The filter text as the client sent it (echoed in the join reply).
    pub filter_text: Option<String>,
}

/// `column=eq.value`: the only filter operator supported.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
struct Requested {
    event: String,
    schema: String,
    table: Option<String>,
    filter: Option<String>,
}

impl Binding {
    /// Validates one requested entry against the configured tables.
    pub fn parse(requested: &Value, tables: &[String]) -> Result<Self, String> {
        let requested: Requested = serde_json::from_value(requested.clone())
            .map_err(|e| format!("invalid postgres_changes entry: {e}"))?;
        let event = requested.event.to_uppercase();
        if !matches!(event.as_str(), "*" | "INSERT" | "UPDATE" | "DELETE") {
            return Err(format!("unknown event `{}`", requested.event));
        }
        if requested.schema != "public" {
            return Err(format!("schema `{}` is not published", requested.schema));
        }
        let table = requested.table.filter(|t| t != "*");
        if let Some(table) = &table
            && !tables.iter().any(|t| t == table)
        {
            return Err(format!("table `{table}` is not published"));
        }
        let filter = requested
            .filter
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(Filter::parse)
            .transpose()?;
        Ok(Self {
            id: NEXT_BINDING_ID.fetch_add(1, Ordering::Relaxed),
            event: requested.event,
            schema: requested.schema,
            table,
            filter,
            filter_text: requested.filter,
        })
    }

    /// The entry of the join reply: the client checks it equals what it asked for.
    pub fn reply(&self, requested: &Value) -> Value {
        json!({
            "id": self.id,
            "event": self.event,
            "schema": self.schema,
            "table": requested.get("table").cloned().unwrap_or(Value::Null),
            "filter": self.filter_text,
        })
    }

    /// Whether `change` is one this binding follows (ownership is checked apart).
    pub fn matches(&self, change: &Change) -> bool {
        let event_ok = self.event == "*" || self.event.eq_ignore_ascii_case(&change.kind);
        let table_ok = self.table.as_deref().is_none_or(|t| t == change.table);
        let filter_ok = self.filter.as_ref().is_none_or(|f| {
            change
                .row()
                .and_then(|row| row.get(&f.column))
                .is_some_and(|v| value_text(v) == f.value)
        });
        event_ok && table_ok && filter_ok
    }
}

impl Filter {
    /// `column=eq.value`; other PostgREST operators are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (column, rest) = text
            .split_once('=')
            .ok_or_else(|| format!("filter `{text}` is not column=eq.value"))?;
        let value = rest
            .strip_prefix("eq.")
            .ok_or_else(|| format!("filter `{text}`: only the eq operator is supported"))?;
        if column.is_empty() {
            return Err(format!("filter `{text}` names no column"));
        }
        Ok(Self {
            column: column.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// A value as PostgREST filters compare it: strings bare, everything else as JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One row change, as notified by the trigger.
#[derive(Debug, Clone, Deserialize)]
pub struct Change {
    pub schema: String,
    pub table: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub user_id: Option<String>,
    pub commit_timestamp: String,
    #[serde(default)]
    pub record: Option<Value>,
    #[serde(default)]
    pub old_record: Option<Value>,
    #[serde(default)]
    pub large: bool,
}

impl Change {
    /// The row the filter applies to: the new one, or the old one of a delete.
    fn row(&self) -> Option<&Value> {
        self.record.as_ref().or(self.old_record.as_ref())
    }

    /// Whether `user` (`None`: anon key) may see this row; the service role sees all.
    pub fn visible_to(&self, user: Option<uuid::Uuid>, service_role: bool) -> bool {
        if service_role {
            return true;
        }
        match &self.user_id {
            None => true,
            Some(owner) => user.is_some_and(|u| u.to_string() == *owner),
        }
    }

    /// The `data` of a `postgres_changes` push (columns are not typed: values arrive
    /// already in their JSON form).
    pub fn data(&self) -> Value {
        let mut data = json!({
            "schema": self.schema,
            "table": self.table,
            "commit_timestamp": self.commit_timestamp,
            "type": self.kind,
            "columns": [],
            "errors": null,
        });
        if self.kind != "DELETE" {
            data["record"] = self.record.clone().unwrap_or_else(|| json!({}));
        }
        if self.kind != "INSERT" {
            data["old_record"] = self
                .old_record
                .clone()
                .unwrap_or_else(|| json!({"id": self.id}));
        }
        data
    }
}

/// Listens for changes until the task is aborted, reconnecting after failures, and hands
/// each change of `tables` to `deliver` (the hub's [`super::Hub::deliver_change`]).
pub async fn listen(pool: PgPool, tables: Vec<String>, deliver: impl Fn(&Change)) {
    loop {
        if let Err(error) = listen_once(&pool, &tables, &deliver).await {
            tracing::warn!(%error, "realtime change listener failed; retrying");
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    pool: &PgPool,
    tables: &[String],
    deliver: &impl Fn(&Change),
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    tracing::info!(channel = CHANNEL, "realtime change listener ready");
    loop {
        let notification = listener.recv().await?;
        let mut change: Change = match serde_json::from_str(notification.payload()) {
            Ok(change) => change,
            Err(error) => {
                tracing::warn!(%error, "unreadable realtime notification");
                continue;
            }
        };
        if !tables.contains(&change.table) {
            continue;
        }
        if change.large {
            fetch_large(pool, &mut change).await;
        }
        deliver(&change);
    }
}

/// Reads back the row of a notification that was too large to carry it.
async fn fetch_large(pool: &PgPool, change: &mut Change) {
    let Some(id) = change.id.clone() else { return };
    if change.kind == "DELETE" {
        return;
    }
    // The table name was checked against the configured (validated) list.
    let sql = format!(
        "select to_jsonb(t) from public.\"{}\" t where t.id::text = $1",
        change.table
    );
    match sqlx::query_scalar::<_, Value>(&sql)
        .bind(&id)
        .fetch_optional(pool)
        .await
    {
        Ok(row) => change.record = row,
        Err(error) => {
            tracing::warn!(%error, table = %change.table, "reading a large changed row failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Vec<String> {
        vec!["notifications".into()]
    }

    fn change(user: &str) -> Change {
        serde_json::from_value(json!({
            "schema": "public", "table": "notifications", "type": "INSERT", "id": "n1",
            "user_id": user, "commit_timestamp": "2026-11-28T08:00:00Z",
            "record": {"id": "n1", "user_id": user, "title": "Hi", "read": false}
        }))
        .expect("change")
    }

    #[test]
    fn bindings_match_event_table_and_eq_filter() {
        let user = "5f8c1a52-7c3e-4b6e-9a51-3d2f0c9b8e01";
        let all = Binding::parse(
            &json!({"event": "*", "schema": "public", "table": "notifications"}),
            &tables(),
        )
        .expect("valid");
        assert!(all.matches(&change(user)));
        let filtered = Binding::parse(
            &json!({"event": "INSERT", "schema": "public", "table": "notifications", "filter": format!("user_id=eq.{user}")}),
            &tables(),
        )
        .expect("valid");
        assert!(filtered.matches(&change(user)));
        assert!(!filtered.matches(&change("00000000-0000-0000-0000-000000000000")));
        let updates = Binding::parse(
            &json!({"event": "UPDATE", "schema": "public", "table": "notifications"}),
            &tables(),
        )
        .expect("valid");
        assert!(!updates.matches(&change(user)));
        let read = Binding::parse(
            &json!({"event": "*", "schema": "public", "table": "notifications", "filter": "read=eq.false"}),
            &tables(),
        )
        .expect("valid");
        assert!(read.matches(&change(user)));
    }

    #[test]
    fn unpublished_tables_and_operators_are_refused() {
        let bad = [
            json!({"event": "*", "schema": "public", "table": "profiles"}),
            json!({"event": "*", "schema": "auth", "table": "notifications"}),
            json!({"event": "*", "schema": "public", "table": "notifications", "filter": "id=gt.3"}),
            json!({"event": "TRUNCATE", "schema": "public"}),
        ];
        for entry in bad {
            assert!(Binding::parse(&entry, &tables()).is_err(), "{entry}");
        }
    }

    #[test]
    fn rows_are_visible_to_their_owner_only() {
        let owner = uuid::Uuid::parse_str("5f8c1a52-7c3e-4b6e-9a51-3d2f0c9b8e01").expect("uuid");
        let row = change(&owner.to_string());
        assert!(row.visible_to(Some(owner), false));
        assert!(!row.visible_to(Some(uuid::Uuid::new_v4()), false));
        assert!(!row.visible_to(None, false));
        assert!(row.visible_to(None, true));
    }
}
