//! Diff reports from the store: per route, how many pairs were compared and how many
//! disagreed (regressions, noise apart), which path shapes differ, how each is classified
//! and what rule would silence a noisy one, with sample ids. Rendered as JSON (admin API)
//! and Markdown (CLI); the admin pages render the same [`Overview`].

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgPool, Row};

use crate::noise::suggested_rule;
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
    /// `regression`, `noise (declared)`, `noise (differs within one side)`, or `mixed`.
    pub classification: String,
    /// A routes-file rule that would declare the shape noise, when the data suggests it.
    pub suggested_rule: Option<String>,
    /// Ids of the most recent samples showing the shape.
    pub samples: Vec<i64>,
}

/// A stored sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSample {
    pub id: i64,
    pub route: String,
    pub shape: String,
    pub shapes: Vec<String>,
    pub request_id: String,
    pub verdict: String,
    pub created_at: DateTime<Utc>,
    pub exchange: Value,
    pub differences: Value,
}

fn classify(
    route: &str,
    shape: &str,
    differing: i64,
    noise: i64,
    same_side: i64,
) -> (String, Option<String>) {
    match (noise, same_side) {
        (0, 0) => ("regression".into(), None),
        (0, _) => ("regression".into(), Some(suggested_rule(route, shape))),
        (n, 0) if n == differing => ("noise (declared)".into(), None),
        (n, _) if n == differing => (
            "noise (differs within one side)".into(),
            Some(suggested_rule(route, shape)),
        ),
        _ => (
            "mixed".into(),
            (same_side > 0).then(|| suggested_rule(route, shape)),
        ),
    }
}

/// Builds the report from the store: routes with any compared pair since `since`, their
/// top `top_paths` differing shapes (regressions first) and up to 5 sample ids each.
pub async fn overview(
    pool: &PgPool,
    since: DateTime<Utc>,
    route: Option<&str>,
    top_paths: i64,
) -> Result<Overview, StoreError> {
    let rows = sqlx::query(
        "select route, sum(compared)::bigint as compared, sum(equal)::bigint as equal, sum(noise)::bigint as noise,
                sum(regression)::bigint as regression, sum(provider_skipped)::bigint as provider_skipped
           from diffs.pair_counts where bucket >= date_trunc('minute', $1::timestamptz) and ($2::text is null or route = $2)
          group by route order by route",
    )
    .bind(since)
    .bind(route)
    .fetch_all(pool)
    .await?;
    let mut routes = Vec::new();
    for row in rows {
        let name: String = row.try_get("route")?;
        let compared: i64 = row.try_get("compared")?;
        let regression: i64 = row.try_get("regression")?;
        let path_rows = sqlx::query(
            "select shape, sum(differing)::bigint as differing, sum(noise)::bigint as noise, sum(probe)::bigint as probe
               from diffs.shape_counts where route = $1 and bucket >= date_trunc('minute', $2::timestamptz)
              group by shape
              order by (sum(differing) - sum(noise)) desc, sum(differing) desc, shape
              limit $3",
        )
        .bind(&name)
        .bind(since)
        .bind(top_paths)
        .fetch_all(pool)
        .await?;
        let mut paths = Vec::new();
        for p in path_rows {
            let shape: String = p.try_get("shape")?;
            let (differing, noise, same_side): (i64, i64, i64) = (
                p.try_get("differing")?,
                p.try_get("noise")?,
                p.try_get("probe")?,
            );
            let samples: Vec<i64> = sqlx::query_scalar(
                "select id from diffs.samples where route = $1 and $2 = any(shapes) and created_at >= $3 order by id desc limit 5",
            )
            .bind(&name)
            .bind(&shape)
            .bind(since)
            .fetch_all(pool)
            .await?;
            let (classification, suggested_rule) =
                classify(&name, &shape, differing, noise, same_side);
            paths.push(PathSummary {
                shape,
                differing,
                noise,
                same_side,
                classification,
                suggested_rule,
                samples,
            });
        }
        routes.push(RouteSummary {
            mismatch_rate: if compared > 0 {
                regression as f64 / compared as f64
            } else {
                0.0
            },
            route: name,
            compared,
            equal: row.try_get("equal")?,
            noise: row.try_get("noise")?,
            regression,
            provider_skipped: row.try_get("provider_skipped")?,
            paths,
        });
    }
    Ok(Overview {
        since,
        generated_at: Utc::now(),
        routes,
    })
}

/// One sample by id.
pub async fn sample(pool: &PgPool, id: i64) -> Result<Option<StoredSample>, StoreError> {
    let row = sqlx::query(
        "select id, route, shape, shapes, request_id, verdict, created_at, exchange, differences from diffs.samples where id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(StoredSample {
        id: r.try_get("id")?,
        route: r.try_get("route")?,
        shape: r.try_get("shape")?,
        shapes: r.try_get("shapes")?,
        request_id: r.try_get("request_id")?,
        verdict: r.try_get("verdict")?,
        created_at: r.try_get("created_at")?,
        exchange: r.try_get("exchange")?,
        differences: r.try_get("differences")?,
    }))
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
        assert_eq!(classify("r", "/a", 5, 0, 0).0, "regression");
        assert_eq!(
            classify("r", "/a", 5, 5, 0),
            ("noise (declared)".into(), None)
        );
        let (class, rule) = classify("r", "/id", 5, 5, 3);
        assert_eq!(class, "noise (differs within one side)");
        assert!(rule.is_some_and(|r| r.contains("\"/id\"")));
        assert_eq!(classify("r", "/a", 5, 2, 0).0, "mixed");
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
                    classification: "noise (declared)".into(),
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
