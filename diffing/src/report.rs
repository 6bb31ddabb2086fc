//! Diff reports from the store: per route, how many pairs were compared and how many
//! disagreed (regressions, noise apart), which path shapes differ, how each is classified
//! and what rule would silence a noisy one, with sample ids. Rendered as JSON (admin API)
//! and Markdown (CLI); the admin pages render the same [`Overview`].

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::noise::{Verdict, suggested_rule};
use crate::sample::{RedactedExchange, StoredDifference};
use crate::store::StoreError;

/// The report of every route (or one) since a moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overview {
    pub since: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    pub routes: Vec<RouteSummary>,
}

/// One route's numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteSummary {
    pub route: String,
    pub compared: i64,
    pub equal: i64,
    pub noise: i64,
    pub regression: i64,
    /// Pairs not compared because the new side's dry run skipped its provider call.
    #[serde(default)]
    pub provider_skipped: i64,
    /// Regressions per compared pair (noise excluded), 0–1.
    pub mismatch_rate: f64,
    pub paths: Vec<PathSummary>,
}

/// One differing path shape of a route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathSummary {
    pub shape: String,
    /// Pairs in which the shape differed between the two sides.
    pub differing: i64,
    /// Of those, classified as noise.
    pub noise: i64,
    /// Times the shape differed between two answers of the same side.
    pub same_side: i64,
    pub classification: Classification,
    /// A routes-file rule that would declare the shape noise, when the data suggests it.
    pub suggested_rule: Option<String>,
    /// Ids of the most recent samples showing the shape.
    pub samples: Vec<i64>,
}

/// A stored sample.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct StoredSample {
    pub id: i64,
    pub route: String,
    pub shape: String,
    pub shapes: Vec<String>,
    pub request_id: String,
    #[sqlx(try_from = "String")]
    pub verdict: Verdict,
    pub created_at: DateTime<Utc>,
    #[sqlx(json)]
    pub exchange: RedactedExchange,
    #[sqlx(json)]
    pub differences: Vec<StoredDifference>,
}

/// How a differing path shape is read, from its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Classification {
    /// Never noise: the new side answers differently.
    #[serde(rename = "regression")]
    Regression,
    /// Always noise, as the routes file declares.
    #[serde(rename = "noise (declared)")]
    NoiseDeclared,
    /// Always noise, because the same side answers it differently too.
    #[serde(rename = "noise (differs within one side)")]
    NoiseWithinOneSide,
    /// Sometimes noise, sometimes not.
    #[serde(rename = "mixed")]
    Mixed,
}

impl Classification {
    pub fn name(self) -> &'static str {
        match self {
            Classification::Regression => "regression",
            Classification::NoiseDeclared => "noise (declared)",
            Classification::NoiseWithinOneSide => "noise (differs within one side)",
            Classification::Mixed => "mixed",
        }
    }
}

impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn classify(
    route: &str,
    shape: &str,
    differing: i64,
    noise: i64,
    same_side: i64,
) -> (Classification, Option<String>) {
    match (noise, same_side) {
        (0, 0) => (Classification::Regression, None),
        (0, _) => (
            Classification::Regression,
            Some(suggested_rule(route, shape)),
        ),
        (n, 0) if n == differing => (Classification::NoiseDeclared, None),
        (n, _) if n == differing => (
            Classification::NoiseWithinOneSide,
            Some(suggested_rule(route, shape)),
        ),
        _ => (
            Classification::Mixed,
            (same_side > 0).then(|| suggested_rule(route, shape)),
        ),
    }
}

/// One row of the report's query: a route's totals, and one of its top differing shapes
/// with up to 5 sample ids (no shape when the route has none).
#[derive(Debug, sqlx::FromRow)]
struct ReportRow {
    route: String,
    compared: i64,
    equal: i64,
    noise: i64,
    regression: i64,
    provider_skipped: i64,
    shape: Option<String>,
    path_differing: Option<i64>,
    path_noise: Option<i64>,
    path_same_side: Option<i64>,
    samples: Vec<i64>,
}

/// Every route's totals since `$1` (only route `$2` when given), each with its top `$3`
/// differing shapes (regressions first) and their latest 5 samples: one round trip.
const REPORT_QUERY: &str = "
with routes as (
    select route, sum(compared)::bigint as compared, sum(equal)::bigint as equal,
           sum(noise)::bigint as noise, sum(regression)::bigint as regression,
           sum(provider_skipped)::bigint as provider_skipped
      from diffs.pair_counts
     where bucket >= date_trunc('minute', $1::timestamptz) and ($2::text is null or route = $2)
     group by route
), paths as (
    select route, shape, sum(differing)::bigint as differing, sum(noise)::bigint as noise,
           sum(probe)::bigint as same_side,
           row_number() over (partition by route
                              order by (sum(differing) - sum(noise)) desc, sum(differing) desc, shape) as rank
      from diffs.shape_counts
     where bucket >= date_trunc('minute', $1::timestamptz) and route in (select route from routes)
     group by route, shape
)
select r.route, r.compared, r.equal, r.noise, r.regression, r.provider_skipped,
       p.shape, p.differing as path_differing, p.noise as path_noise, p.same_side as path_same_side,
       coalesce(s.ids, '{}') as samples
  from routes r
  left join paths p on p.route = r.route and p.rank <= $3
  left join lateral (
        select array_agg(id order by id desc) as ids
          from (select id from diffs.samples
                 where route = r.route and p.shape = any(shapes) and created_at >= $1
                 order by id desc limit 5) latest
  ) s on true
 order by r.route, p.rank";

/// Builds the report from the store: routes with any compared pair since `since`, their
/// top `top_paths` differing shapes (regressions first) and up to 5 sample ids each.
pub async fn overview(
    pool: &PgPool,
    since: DateTime<Utc>,
    route: Option<&str>,
    top_paths: i64,
) -> Result<Overview, StoreError> {
    let rows: Vec<ReportRow> = sqlx::query_as(REPORT_QUERY)
        .bind(since)
        .bind(route)
        .bind(top_paths)
        .fetch_all(pool)
        .await?;
    Ok(Overview {
        since,
        generated_at: Utc::now(),
        routes: summaries(rows),
    })
}

/// Groups the report's rows (ordered by route) into one summary per route.
fn summaries(rows: Vec<ReportRow>) -> Vec<RouteSummary> {
    let mut routes: Vec<RouteSummary> = Vec::new();
    for row in rows {
        if routes.last().is_none_or(|r| r.route != row.route) {
            routes.push(RouteSummary {
                mismatch_rate: if row.compared > 0 {
                    row.regression as f64 / row.compared as f64
                } else {
                    0.0
                },
                route: row.route.clone(),
                compared: row.compared,
                equal: row.equal,
                noise: row.noise,
                regression: row.regression,
                provider_skipped: row.provider_skipped,
                paths: Vec::new(),
            });
        }
        let (Some(summary), Some(shape)) = (routes.last_mut(), row.shape) else {
            continue;
        };
        let differing = row.path_differing.unwrap_or(0);
        let noise = row.path_noise.unwrap_or(0);
        let same_side = row.path_same_side.unwrap_or(0);
        let (classification, suggested_rule) =
            classify(&summary.route, &shape, differing, noise, same_side);
        summary.paths.push(PathSummary {
            shape,
            differing,
            noise,
            same_side,
            classification,
            suggested_rule,
            samples: row.samples,
        });
    }
    routes
}

/// One sample by id.
pub async fn sample(pool: &PgPool, id: i64) -> Result<Option<StoredSample>, StoreError> {
    let sample = sqlx::query_as(
        "select id, route, shape, shapes, request_id, verdict, created_at, exchange, differences from diffs.samples where id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(sample)
}

fn percent(rate: f64) -> String {
    format!("{:.2} %", rate * 100.0)
}

/// The report as Markdown, to paste into a review.
pub fn markdown(overview: &Overview) -> String {
    let mut out = format!(
        "# Diff report\n\nPairs compared since {} (generated {}).\n\n",
        overview
            .since
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        overview
            .generated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    if overview.routes.is_empty() {
        out.push_str("No pairs were compared in this window.\n");
        return out;
    }
    out.push_str("| route | compared | equal | noise only | regressions | mismatch rate | not compared (provider skipped) |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for r in &overview.routes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.route,
            r.compared,
            r.equal,
            r.noise,
            r.regression,
            percent(r.mismatch_rate),
            r.provider_skipped
        );
    }
    for r in &overview.routes {
        let _ = write!(out, "\n## {}\n\n", r.route);
        if r.provider_skipped > 0 {
            let _ = writeln!(
                out,
                "Not compared (provider skipped): {} pairs whose new-side dry run skipped its provider call; they are neither evidence nor regressions.\n",
                r.provider_skipped
            );
        }
        if r.paths.is_empty() {
            out.push_str("No differing paths.\n");
            continue;
        }
        out.push_str("| path | differing | of which noise | same side differs | classification | samples |\n|---|---:|---:|---:|---|---|\n");
        for p in &r.paths {
            let samples = p
                .samples
                .iter()
                .map(|id| format!("#{id}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                p.shape, p.differing, p.noise, p.same_side, p.classification, samples
            );
        }
        let rules: Vec<&String> = r
            .paths
            .iter()
            .filter_map(|p| p.suggested_rule.as_ref())
            .collect();
        if !rules.is_empty() {
            out.push_str("\nSuggested rules (noise seen within one side):\n\n");
            for rule in rules {
                let _ = writeln!(out, "- `{rule}`");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified_from_their_counts() {
        assert_eq!(classify("r", "/a", 5, 0, 0).0, Classification::Regression);
        assert_eq!(
            classify("r", "/a", 5, 5, 0),
            (Classification::NoiseDeclared, None)
        );
        let (class, rule) = classify("r", "/id", 5, 5, 3);
        assert_eq!(class, Classification::NoiseWithinOneSide);
        assert!(rule.is_some_and(|r| r.contains("\"/id\"")));
        assert_eq!(classify("r", "/a", 5, 2, 0).0, Classification::Mixed);
        assert_eq!(
            serde_json::to_value(Classification::NoiseWithinOneSide).ok(),
            Some(serde_json::json!("noise (differs within one side)"))
        );
    }

    #[test]
    fn markdown_lists_routes_and_paths() {
        let overview = Overview {
            since: Utc::now(),
            generated_at: Utc::now(),
            routes: vec![RouteSummary {
                route: "tutor".into(),
                compared: 10,
                equal: 2,
                noise: 6,
                regression: 2,
                provider_skipped: 3,
                mismatch_rate: 0.2,
                paths: vec![PathSummary {
                    shape: "/metadata/requestId".into(),
                    differing: 8,
                    noise: 8,
                    same_side: 0,
                    classification: Classification::NoiseDeclared,
                    suggested_rule: None,
                    samples: vec![3, 1],
                }],
            }],
        };
        let text = markdown(&overview);
        assert!(
            text.contains("| tutor | 10 | 2 | 6 | 2 | 20.00 % | 3 |"),
            "{text}"
        );
        assert!(
            text.contains("Not compared (provider skipped): 3 pairs"),
            "{text}"
        );
        assert!(
            text.contains("| `/metadata/requestId` | 8 | 8 | 0 | noise (declared) | #3 #1 |"),
            "{text}"
        );
    }
}
