//! Diff reports and samples as the admin API and the console ask for them: the query
//! checked (window, route name, how many paths, format), then the diff store asked with
//! a time limit, so a store that does not answer costs one wait and a 503.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use studyflow_diffing::report;

use super::AdminState;
use super::error::AdminError;

/// The query of a diff report, as sent (the console's report pages take the same).
#[derive(Debug, Deserialize)]
pub(crate) struct ReportQuery {
    since: Option<String>,
    pub(crate) route: Option<String>,
    format: Option<String>,
    top: Option<i64>,
}

/// A diff report's query, checked.
#[derive(Debug)]
pub(crate) struct ReportInput {
    pub(crate) since: DateTime<Utc>,
    /// `since` as given (shown and kept in links).
    pub(crate) since_text: String,
    pub(crate) route: Option<String>,
    /// Differing paths per route.
    pub(crate) top: i64,
    pub(crate) markdown: bool,
}

/// How far back a report may reach.
const MAX_REPORT_DAYS: i64 = 3660;
/// Most differing paths per route in a report.
const MAX_TOP: i64 = 200;

impl ReportInput {
    pub(crate) fn parse(query: &ReportQuery) -> Result<Self, String> {
        let since_text = query.since.clone().unwrap_or_else(|| "24h".into());
        let since = parse_since(&since_text, Utc::now())?;
        let top = query.top.unwrap_or(20);
        if !(1..=MAX_TOP).contains(&top) {
            return Err(format!("top must be 1 to {MAX_TOP}, got {top}"));
        }
        let route = query
            .route
            .as_deref()
            .map(|r| route_name(r).map(str::to_owned))
            .transpose()?;
        let markdown = match query.format.as_deref() {
            None | Some("json") => false,
            Some("md") => true,
            Some(_) => return Err("format must be `json` or `md`".into()),
        };
        Ok(Self {
            since,
            since_text,
            route,
            top,
            markdown,
        })
    }
}

/// `since` as a duration back from `now` (`90m`, `24h`, `7d`) or an RFC 3339 instant, at
/// most [`MAX_REPORT_DAYS`] back and not in the future.
fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if text.is_empty() || text.len() > 64 {
        return Err("since must be a duration like 24h or an RFC 3339 time".into());
    }
    let at = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => {
            let duration = humantime::parse_duration(text).map_err(|_| {
                format!("since `{text}` is neither a duration like 24h nor an RFC 3339 time")
            })?;
            TimeDelta::from_std(duration)
                .ok()
                .and_then(|back| now.checked_sub_signed(back))
                .ok_or_else(|| format!("since `{text}` reaches too far back"))?
        }
    };
    let earliest = TimeDelta::try_days(MAX_REPORT_DAYS).and_then(|d| now.checked_sub_signed(d));
    if earliest.is_none_or(|earliest| at < earliest) {
        return Err(format!(
            "since `{text}` reaches more than {MAX_REPORT_DAYS} days back"
        ));
    }
    if now
        .checked_add_signed(TimeDelta::minutes(1))
        .is_none_or(|latest| at > latest)
    {
        return Err(format!("since `{text}` is in the future"));
    }
    Ok(at)
}

/// A route name as given in a path or query: 1 to 100 letters, digits, `-`, `_`, `.` or
/// `~` (what Unleash toggle names allow). Whether such a route exists is another matter.
pub(crate) fn route_name(text: &str) -> Result<&str, String> {
    let valid = !text.is_empty()
        && text.len() <= 100
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if valid {
        Ok(text)
    } else {
        Err("a route name is 1 to 100 letters, digits, `-`, `_`, `.` or `~`".into())
    }
}

/// A sample id: a positive integer.
pub(crate) fn sample_id(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err("a sample id is a positive integer".into()),
    }
}

fn diff_pool(state: &AdminState) -> Result<&PgPool, AdminError> {
    state.ops.diffs().ok_or_else(|| {
        AdminError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no diff store is configured (diff_store.database_url)".into(),
        )
    })
}

fn store_error(error: studyflow_diffing::store::StoreError) -> AdminError {
    tracing::warn!(%error, "diff store query failed");
    AdminError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the diff store is unavailable".into(),
    )
}

/// Runs a diff store query for at most `wait`: a store that does not answer costs one
/// wait and a 503, not the pool's own timeout.
async fn within<T>(
    wait: Duration,
    query: impl Future<Output = Result<T, studyflow_diffing::store::StoreError>>,
) -> Result<T, AdminError> {
    match tokio::time::timeout(wait, query).await {
        Ok(answer) => answer.map_err(store_error),
        Err(_) => Err(AdminError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the diff store did not answer within {} ms",
                wait.as_millis()
            ),
        )),
    }
}

/// The report of `input`, waiting at most `wait` for the diff store.
pub(crate) async fn load_overview(
    state: &AdminState,
    input: &ReportInput,
    wait: Duration,
) -> Result<report::Overview, AdminError> {
    let pool = diff_pool(state)?;
    within(
        wait,
        report::overview(pool, input.since, input.route.as_deref(), input.top),
    )
    .await
}

/// Sample `id`, waiting at most `wait` for the diff store.
pub(crate) async fn load_sample(
    state: &AdminState,
    id: i64,
    wait: Duration,
) -> Result<report::StoredSample, AdminError> {
    within(wait, report::sample(diff_pool(state)?, id))
        .await?
        .ok_or_else(|| AdminError(StatusCode::NOT_FOUND, format!("no sample #{id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_duration_or_a_time_within_reach() {
        let now = Utc::now();
        assert_eq!(parse_since("24h", now), Ok(now - TimeDelta::hours(24)));
        assert!(parse_since("2024-05-01T10:00:00Z", now).is_ok());
        let long = "9".repeat(100);
        for hostile in [
            "99999999999d",
            "18446744073709551615s",
            "3700d",
            "-1h",
            "",
            "soon",
            "2999-01-01T00:00:00Z",
            "1000-01-01T00:00:00Z",
            &long,
        ] {
            assert!(parse_since(hostile, now).is_err(), "{hostile}");
        }
    }

    #[test]
    fn route_names_and_ids_are_checked() {
        assert_eq!(route_name("ai-tutor_2.v1"), Ok("ai-tutor_2.v1"));
        let long = "a".repeat(101);
        for hostile in ["", "a/b", "a b", "\u{0}", "<script>", &long] {
            assert!(route_name(hostile).is_err(), "{hostile:?}");
        }
        assert_eq!(sample_id("12"), Ok(12));
        for hostile in ["0", "-3", "x", "99999999999999999999", "1e3", ""] {
            assert!(sample_id(hostile).is_err(), "{hostile}");
        }
    }

    #[test]
    fn report_queries_are_checked() {
        let query = |top: Option<i64>, format: Option<&str>| ReportQuery {
            since: None,
            route: None,
            format: format.map(str::to_owned),
            top,
        };
        assert!(ReportInput::parse(&query(None, None)).is_ok_and(|i| i.top == 20 && !i.markdown));
        assert!(ReportInput::parse(&query(None, Some("md"))).is_ok_and(|i| i.markdown));
        for (top, format) in [
            (Some(0), None),
            (Some(-1), None),
            (Some(201), None),
            (None, Some("xml")),
        ] {
            assert!(
                ReportInput::parse(&query(top, format)).is_err(),
                "{top:?} {format:?}"
            );
        }
    }
}
