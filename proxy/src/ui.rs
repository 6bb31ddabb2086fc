//! Server-rendered HTML pages of the admin port: the diff overview, a route's differing
//! paths, and a sample side by side with the differences highlighted. No scripts, no
//! external assets: the pages work with JavaScript off and from an air-gapped network.

use std::collections::HashSet;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use studyflow_diffing::report::{Overview, RouteSummary, StoredSample};

const STYLE: &str = r#"
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fafbfc}
header{background:#1b1f24;color:#fff;padding:.6rem 1.2rem}header a{color:#fff;margin-right:1rem}
main{padding:1rem 1.2rem;max-width:1400px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;background:#fff}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.regression{color:#a40e26;font-weight:600}.noise{color:#57606a}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
pre{background:#fff;border:1px solid #d0d7de;padding:.6rem;overflow:auto;font-size:13px}
mark{background:#ffd8d3;outline:1px solid #cf222e}
a:focus,button:focus{outline:3px solid #0969da}
"#;

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · StudyFlow gateway" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header { nav aria-label="Main" { a href="/ui/diffs" { "Diff reports" } } }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn percent(rate: f64) -> String {
    format!("{:.2} %", rate * 100.0)
}

/// Every route with compared pairs.
pub fn overview(report: &Overview, since: &str) -> Markup {
    page(
        "Diff reports",
        html! {
            p { "Pairs compared since " (report.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) " (" (since) ")." }
            @if report.routes.is_empty() {
                p { "No pairs were compared in this window." }
            } @else {
                table {
                    caption { "Per route: compared pairs and how they agreed" }
                    thead { tr { th scope="col" { "route" } th scope="col" { "compared" } th scope="col" { "equal" } th scope="col" { "noise only" } th scope="col" { "regressions" } th scope="col" { "mismatch rate" } } }
                    tbody {
                        @for r in &report.routes {
                            tr {
                                th scope="row" { a href={ "/ui/diffs/" (r.route) "?since=" (since) } { (r.route) } }
                                td.n { (r.compared) } td.n { (r.equal) } td.n { (r.noise) }
                                td.n class=@if r.regression > 0 { "regression" } { (r.regression) }
                                td.n { (percent(r.mismatch_rate)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One route's differing paths, grouped by shape and classified.
pub fn route(summary: &RouteSummary, since: &str) -> Markup {
    page(
        &format!("Route {}", summary.route),
        html! {
            p { (summary.compared) " pairs compared since " (since) ": " (summary.equal) " equal, " (summary.noise) " noise only, "
                span.regression { (summary.regression) " regressions" } " (mismatch rate " (percent(summary.mismatch_rate)) ")." }
            @if summary.paths.is_empty() { p { "No differing paths." } } @else {
                table {
                    caption { "Differing paths (array indexes shown as *)" }
                    thead { tr { th scope="col" { "path" } th scope="col" { "differing" } th scope="col" { "of which noise" } th scope="col" { "same side differs" } th scope="col" { "classification" } th scope="col" { "suggested rule" } th scope="col" { "samples" } } }
                    tbody {
                        @for p in &summary.paths {
                            tr {
                                th scope="row" { code { (p.shape) } }
                                td.n { (p.differing) } td.n { (p.noise) } td.n { (p.same_side) }
                                td class=@if p.classification == "regression" { "regression" } @else { "noise" } { (p.classification) }
                                td { @if let Some(rule) = &p.suggested_rule { code { (rule) } } }
                                td { @for id in &p.samples { a href={ "/ui/samples/" (id) } { "#" (id) } " " } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A sample: the request, and both answers side by side with differing values marked.
pub fn sample(sample: &StoredSample) -> Markup {
    let exchange = &sample.exchange;
    let differing: HashSet<String> = sample
        .differences
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["section"] == "body")
        .filter_map(|d| d["path"].as_str().map(str::to_owned))
        .collect();
    let served_by = exchange["served_by"].as_str().unwrap_or("served");
    let other = if served_by == "legacy" {
        "new"
    } else {
        "legacy"
    };
    page(
        &format!("Sample #{} of {}", sample.id, sample.route),
        html! {
            p { "Request " code { (sample.request_id) } ", " (sample.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                ", verdict " strong class=(sample.verdict) { (sample.verdict) } ". Secrets are masked." }
            h2 { "Differences" }
            table {
                thead { tr { th scope="col" { "where" } th scope="col" { "path" } th scope="col" { "kind" } th scope="col" { (served_by) " (served)" } th scope="col" { (other) " (shadow)" } th scope="col" { "noise" } } }
                tbody {
                    @for d in sample.differences.as_array().into_iter().flatten() {
                        tr {
                            td { (d["section"].as_str().unwrap_or("")) }
                            td { code { (d["shape"].as_str().unwrap_or("")) } " " small { code { (d["path"].as_str().unwrap_or("")) } } }
                            td { (d["kind"].as_str().unwrap_or("")) }
                            td { code { (short(&d["left"])) } }
                            td { code { (short(&d["right"])) } }
                            td { @if d["declared_noise"].as_bool() == Some(true) { "declared" } }
                        }
                    }
                }
            }
            h2 { "Request" }
            pre { (exchange["request"]["method"].as_str().unwrap_or("")) " " (exchange["request"]["uri"].as_str().unwrap_or("")) "\n"
                  (headers(&exchange["request"]["headers"])) "\n" (pretty(&exchange["request"]["body"])) }
            h2 { "Answers" }
            div.sides {
                section aria-label="Served answer" { h3 { (served_by) " (served) — " (exchange["served"]["status"]) }
                    pre { (headers(&exchange["served"]["headers"])) "\n" (json_marked(&exchange["served"]["body"], &differing)) } }
                section aria-label="Shadow answer" { h3 { (other) " (shadow) — " (exchange["shadow"]["status"]) }
                    pre { (headers(&exchange["shadow"]["headers"])) "\n" (json_marked(&exchange["shadow"]["body"], &differing)) } }
            }
        },
    )
}

fn short(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

fn pretty(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

fn headers(value: &Value) -> String {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|pair| {
            format!(
                "{}: {}",
                pair[0].as_str().unwrap_or(""),
                pair[1].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pretty JSON with every value whose pointer is in `marked` wrapped in `<mark>`.
fn json_marked(value: &Value, marked: &HashSet<String>) -> Markup {
    fn walk(
        value: &Value,
        pointer: &str,
        depth: usize,
        marked: &HashSet<String>,
        out: &mut String,
    ) {
        let indent = "  ".repeat(depth + 1);
        let close = "  ".repeat(depth);
        let inner = match value {
            Value::Object(map) if !map.is_empty() => {
                let mut s = String::from("{\n");
                for (i, (key, v)) in map.iter().enumerate() {
                    let child = studyflow_diffing::pointer_push(pointer, key);
                    s.push_str(&indent);
                    s.push_str(
                        &maud::html! { (serde_json::to_string(key).unwrap_or_default()) }
                            .into_string(),
                    );
                    s.push_str(": ");
                    walk(v, &child, depth + 1, marked, &mut s);
                    s.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
                }
                s.push_str(&close);
                s.push('}');
                s
            }
            Value::Array(items) if !items.is_empty() => {
                let mut s = String::from("[\n");
                for (i, v) in items.iter().enumerate() {
                    let child = studyflow_diffing::pointer_push(pointer, &i.to_string());
                    s.push_str(&indent);
                    walk(v, &child, depth + 1, marked, &mut s);
                    s.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                s.push_str(&close);
                s.push(']');
                s
            }
            other => maud::html! { (other.to_string()) }.into_string(),
        };
        if marked.contains(pointer) {
            out.push_str("<mark>");
            out.push_str(&inner);
            out.push_str("</mark>");
        } else {
            out.push_str(&inner);
        }
    }
    let mut out = String::new();
    match value {
        Value::String(text) => out.push_str(&maud::html! { (text) }.into_string()),
        other => walk(other, "", 0, marked, &mut out),
    }
    PreEscaped(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn differing_values_are_marked_and_text_is_escaped() {
        let marked: HashSet<String> = ["/a/1".to_owned()].into();
        let html = json_marked(&json!({"a": [1, "<b>"], "c": "x"}), &marked).into_string();
        assert!(
            html.contains("<mark>&quot;&lt;b&gt;&quot;</mark>"),
            "{html}"
        );
        assert!(!html.contains("<b>"));
    }
}
