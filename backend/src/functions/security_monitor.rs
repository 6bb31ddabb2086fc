//! `security-monitor`: collects CSP reports and security events, answers rate-limit
//! checks and runs the session-duration anomaly check. No authentication; CORS *basic*.
//!
//! Quirk kept from the legacy: database write failures are ignored (the answer is still
//! 200). Interpretations as in tests/legacy/README.md: `security-event` also stores the
//! client's address and user agent; the anomaly check averages `duration`.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{Entry, Invocation, behind_cors, iso};
use crate::AppState;
use crate::cors::Cors;
use crate::js::errors::{cannot_destructure, get, get_opt};
use crate::js::json::parse_body;
use crate::js::value::{number, or, to_js_string, to_number, truthy};
use crate::store::{RequestDb, Table};

const NAME: &str = "security-monitor";

pub fn router() -> Router<AppState> {
    behind_cors(NAME, |_, _| Cors::basic(), Entry::Preflight, handle)
}

async fn handle(state: AppState, invocation: Invocation, cors: Cors) -> Response {
    let (status, body) = invocation
        .with_db(
            &state,
            || Err("Internal server error".to_owned()),
            async |db| monitor(&invocation, db).await,
        )
        .await
        .unwrap_or_else(|message| (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": message})));
    cors.json(status, body)
}

/// Copies the present keys of `source` into a row under new names.
fn pick(source: Option<&Value>, names: &[(&str, &str)]) -> Map<String, Value> {
    let mut row = Map::new();
    for (from, to) in names {
        if let Some(value) = get_opt(source, from) {
            row.insert((*to).to_owned(), value.clone());
        }
    }
    row
}

/// Destructures `data` (`const { first, … } = data`), throwing on null/undefined.
fn destructure<'a>(data: Option<&'a Value>, first: &str) -> Result<Option<&'a Value>, String> {
    match data {
        None | Some(Value::Null) => Err(cannot_destructure(first, "data", data)),
        Some(_) => Ok(data),
    }
}

async fn insert(db: &mut RequestDb, table: Table, row: &Map<String, Value>) {
    if let Err(error) = db.insert(table, row).await {
        // Ignored, as supabase-js returns the error and the legacy never reads it.
        tracing::warn!(table = ?table, %error, "write failed (ignored, as by the legacy)");
    }
}

/// Who sent the event, as the legacy records it on audit rows.
struct Sender {
    ip_address: Option<String>,
    user_agent: Option<String>,
}

impl Sender {
    fn stamp(&self, row: &mut Map<String, Value>) {
        row.insert("ip_address".into(), json!(self.ip_address));
        row.insert("user_agent".into(), json!(self.user_agent));
    }
}

async fn monitor(
    invocation: &Invocation,
    db: &mut RequestDb,
) -> Result<(StatusCode, Value), String> {
    let body = parse_body(&invocation.body)?;
    if body.is_null() {
        return Err(cannot_destructure(
            "type",
            "(intermediate value)",
            Some(&body),
        ));
    }
    let data = get_opt(Some(&body), "data");
    let sender = Sender {
        ip_address: invocation
            .non_empty_header("x-forwarded-for")
            .or_else(|| invocation.header("x-real-ip")),
        user_agent: invocation.header("user-agent"),
    };
    match get_opt(Some(&body), "type").and_then(Value::as_str) {
        Some("csp-report") => csp_report(db, data, &sender).await?,
        Some("security-event") => security_event(db, data, &sender).await?,
        Some("rate-limit-check") => {
            if let Some(refusal) = rate_limit_check(db, data).await? {
                return Ok(refusal);
            }
        }
        Some("anomaly-detection") => anomaly_detection(db, data).await?,
        _ => {
            return Ok((
                StatusCode::BAD_REQUEST,
                json!({"error": "Unknown event type"}),
            ));
        }
    }
    Ok((StatusCode::OK, json!({"success": true})))
}

/// A browser's CSP violation report: one `suspicious_activity` row.
async fn csp_report(
    db: &mut RequestDb,
    data: Option<&Value>,
    sender: &Sender,
) -> Result<(), String> {
    let report = get(data, "csp-report")?;
    if !truthy(report) {
        return Ok(());
    }
    let mut details = Map::new();
    details.insert("type".into(), json!("csp_violation"));
    details.extend(pick(
        report,
        &[
            ("blocked-uri", "blocked_uri"),
            ("violated-directive", "violated_directive"),
            ("source-file", "source_file"),
            ("line-number", "line_number"),
        ],
    ));
    let mut row = Map::new();
    row.insert("event_type".into(), json!("suspicious_activity"));
    row.insert("details".into(), Value::Object(details));
    row.insert("severity".into(), json!("medium"));
    sender.stamp(&mut row);
    insert(db, Table::SecurityAuditLog, &row).await;
    Ok(())
}

/// A security event: its audit row, and a notification when it is critical or high.
async fn security_event(
    db: &mut RequestDb,
    data: Option<&Value>,
    sender: &Sender,
) -> Result<(), String> {
    let data = destructure(data, "event_type")?;
    let severity = get_opt(data, "severity");
    let mut row = pick(
        data,
        &[
            ("event_type", "event_type"),
            ("user_id", "user_id"),
            ("details", "details"),
        ],
    );
    row.insert("severity".into(), or(severity, &json!("low")).clone());
    sender.stamp(&mut row);
    insert(db, Table::SecurityAuditLog, &row).await;

    if matches!(severity.and_then(Value::as_str), Some("critical" | "high")) {
        let reason = get(get_opt(data, "details"), "reason")?;
        let reason = to_js_string(Some(or(reason, &json!("Unknown"))));
        let mut notification = pick(data, &[("user_id", "user_id")]);
        notification.insert("title".into(), json!("Security Alert"));
        notification.insert(
            "message".into(),
            json!(format!("Suspicious activity detected: {reason}")),
        );
        notification.insert("type".into(), json!("system"));
        notification.insert("priority".into(), json!("urgent"));
        notification.insert("action_url".into(), json!("/settings"));
        insert(db, Table::Notifications, &notification).await;
    }
    Ok(())
}

/// The 429 answer when the user is blocked for the action; `None` lets it pass.
async fn rate_limit_check(
    db: &mut RequestDb,
    data: Option<&Value>,
) -> Result<Option<(StatusCode, Value)>, String> {
    let data = destructure(data, "user_id")?;
    let user = to_js_string(get_opt(data, "user_id"));
    let action = to_js_string(get_opt(data, "action"));
    match db.blocked_until(&user, &action).await {
        Ok(Some(until)) => Ok(Some((
            StatusCode::TOO_MANY_REQUESTS,
            json!({
                "allowed": false,
                "message": "Rate limit exceeded",
                "blocked_until": iso(until),
            }),
        ))),
        Ok(None) => Ok(None),
        // A lookup error (e.g. a user id that is not a uuid) lets the request pass.
        Err(error) => {
            tracing::debug!(%error, "rate-limit lookup failed");
            Ok(None)
        }
    }
}

/// A session far longer (3×) than the user's average of the last 7 days: one
/// `suspicious_activity` row.
async fn anomaly_detection(db: &mut RequestDb, data: Option<&Value>) -> Result<(), String> {
    let data = destructure(data, "user_id")?;
    let user_id = get_opt(data, "user_id");
    let since = chrono::Utc::now() - chrono::Duration::days(7);
    let durations = match db
        .session_durations_since(&to_js_string(user_id), since)
        .await
    {
        Ok(durations) => durations,
        Err(error) => {
            tracing::debug!(%error, "session lookup failed");
            return Ok(());
        }
    };
    let total: f64 = durations.iter().map(|d| f64::from(d.unwrap_or(0))).sum();
    let average = total / durations.len() as f64;
    let current = get(get_opt(data, "patterns"), "session_duration")?;
    // As the legacy compares: a current value that is not a number is no anomaly.
    let anomalous = !durations.is_empty() && to_number(current) > average * 3.0;
    if !anomalous {
        return Ok(());
    }
    let mut details = Map::new();
    details.insert("type".into(), json!("anomaly_detected"));
    details.insert("reason".into(), json!("Unusual session duration"));
    details.insert("expected".into(), number(average));
    if let Some(current) = current {
        details.insert("actual".into(), current.clone());
    }
    let mut row = Map::new();
    row.insert("event_type".into(), json!("suspicious_activity"));
    if let Some(user_id) = user_id {
        row.insert("user_id".into(), user_id.clone());
    }
    row.insert("details".into(), Value::Object(details));
    row.insert("severity".into(), json!("low"));
    insert(db, Table::SecurityAuditLog, &row).await;
    Ok(())
}
