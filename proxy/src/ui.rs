//! Server-rendered HTML pages of the admin port: the diff overview, a route's differing
//! paths, and a sample side by side with the differences highlighted. No scripts, no
//! inline styles (the console's Content-Security-Policy allows neither), no external
//! assets: one stylesheet served by the console itself (`/ui/style.css`); the pages work
//! with JavaScript off and from an air-gapped network.

use std::collections::HashSet;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use studyflow_diffing::report::{Overview, RouteSummary, StoredSample};

/// The console's stylesheet, served at `/ui/style.css`.
pub(crate) const STYLE: &str = r#"
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
a:focus,button:focus,input:focus,select:focus{outline:3px solid #0969da}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
figure{margin:0;background:#fff;border:1px solid #d0d7de;padding:.5rem}
form.inline{display:inline;margin-left:1rem}
svg.key{margin-right:.2rem}
"#;

pub(crate) fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · StudyFlow gateway" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header { nav aria-label="Main" { a href="/ui/diffs" { "Diff reports" } } }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A console request that cannot be served: the status and what was wrong.
pub fn error_page(status: http::StatusCode, message: &str) -> Markup {
    page(
        status.canonical_reason().unwrap_or("Error"),
        html! {
            p role="alert" { (message) }
            p { a href="/ui" { "Back to the routes" } }
        },
    )
}

fn query_value(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
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
                                th scope="row" { a href={ "/ui/diffs/" (query_value(&r.route)) "?since=" (query_value(since)) } { (r.route) } }
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
            @if exchange["sensitive"] == true {
                p role="note" { strong { "Sensitive route: " } "no value of this exchange was stored. Each value shows its type, a digest (equal digests, equal values) and its length." }
            }
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
    fn charts_without_points_render() {
        let html = chart("empty", &[("new", "#000", vec![])], "share").into_string();
        assert!(html.contains("no data yet"));
        let one = chart(
            "one",
            &[("new", "#000", vec![(5, 0.5), (15, 1.0)])],
            "share",
        )
        .into_string();
        assert!(one.contains("polyline"));
    }

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

/// One row of the routes page.
#[derive(Debug, Clone)]
pub struct RouteRow {
    pub name: String,
    pub path: String,
    /// `canary 25%`, `primary`, … or `blocked`.
    pub phase: String,
    pub source: String,
    pub blocked: bool,
    pub rates: Option<crate::history::Rates>,
    /// The promotion gate's verdict for the next step; `None` for blocked routes.
    pub gate: Option<GateView>,
    /// This instance's counters since it started.
    pub counters: crate::stats::StatsSnapshot,
}

/// A promotion gate as the console shows it, with the evidence behind it.
#[derive(Debug, Clone)]
pub enum GateView {
    Ready(String),
    NotYet(String),
    /// The diff store did not answer in time: no verdict.
    StoreUnavailable(String),
}

/// The differing paths of a route, or why there are none to show.
#[derive(Debug)]
pub enum DiffSection {
    Pairs(RouteSummary),
    NoPairs,
    NotConfigured,
    /// The diff store did not answer in time.
    Unavailable,
}

/// What the console says in place of a gate verdict when the diff store is down.
pub const STORE_UNAVAILABLE: &str = "diff store unavailable";

fn csrf_field(viewer: &crate::console::Viewer) -> Markup {
    html! { @if let Some(token) = &viewer.csrf { input type="hidden" name="csrf" value=(token); } @else { input type="hidden" name="csrf" value=""; } }
}

fn nav(viewer: &crate::console::Viewer) -> Markup {
    html! {
        p {
            a href="/ui" { "Routes" } " · " a href="/ui/progress" { "Progress" } " · " a href="/ui/diffs" { "Diff reports" }
            " · signed in as " strong { (viewer.who) }
            @if viewer.csrf.is_some() {
                form.inline method="post" action="/ui/logout" { (csrf_field(viewer)) button type="submit" { "Sign out" } }
            }
        }
    }
}

fn rate_cells(rates: Option<&crate::history::Rates>) -> Markup {
    match rates {
        Some(r) => html! {
            td.n { (format!("{:.1}", r.requests_per_sec)) }
            td.n { (percent(r.share_new)) }
            td.n class=@if r.new_error_rate > 0.01 { "regression" } { (percent(r.new_error_rate)) }
            td.n class=@if r.mismatch_rate > 0.0 { "regression" } { (percent(r.mismatch_rate)) }
        },
        None => html! { td.n { "–" } td.n { "–" } td.n { "–" } td.n { "–" } },
    }
}

/// The routes page: every route's phase and health, with the actions.
pub fn routes_page(
    viewer: &crate::console::Viewer,
    rows: &[RouteRow],
    flash: Option<&str>,
) -> Markup {
    page(
        "Routes",
        html! {
            (nav(viewer))
            @if let Some(message) = flash { p role="status" { strong { (message) } } }
            table {
                caption { "Every route, its phase and its health over the last interval" }
                thead { tr {
                    th scope="col" { "route" } th scope="col" { "phase" } th scope="col" { "source" }
                    th scope="col" { "req/s" } th scope="col" { "served by new" } th scope="col" { "new-side errors" }
                    th scope="col" { "mismatch (regressions)" } th scope="col" { "copies lost" } th scope="col" { "promotion gate" } th scope="col" { "roll back" }
                } }
                tbody {
                    @for row in rows {
                        tr {
                            th scope="row" { a href={ "/ui/routes/" (row.name) } { (row.name) } br; small { code { (row.path) } } }
                            td { (row.phase) } td { (row.source) }
                            (rate_cells(row.rates.as_ref()))
                            td.n { a href={ "/ui/routes/" (row.name) "#copies" } { (row.counters.shadows_lost()) } }
                            td { (gate_cell(row.gate.as_ref())) }
                            td {
                                @if !row.blocked && row.phase != "legacy" {
                                    form method="post" action={ "/ui/routes/" (row.name) "/rollback" } {
                                        (csrf_field(viewer))
                                        label { span.visually-hidden { "Reason for rolling back " (row.name) } input name="reason" required placeholder="reason" aria-label={ "Reason for rolling back " (row.name) }; }
                                        " " button type="submit" { "Roll back " (row.name) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Roll everything back" }
            form method="post" action="/ui/rollback" {
                (csrf_field(viewer))
                p { label for="global-reason" { "Reason" } " " input id="global-reason" name="reason" required; }
                p { label { input type="checkbox" name="confirm" value="yes" required; " I confirm: every route goes back to legacy now" } }
                p { button type="submit" { "Roll every route back to legacy" } }
            }
        },
    )
}

/// What became of the copies: sent, compared, and every cause of loss.
fn copies_table(counters: &crate::stats::StatsSnapshot) -> Markup {
    let compared = counters.pairs_equal + counters.pairs_different;
    html! {
        table {
            caption { "Copies sent to the other side since this instance started, and what became of them" }
            thead { tr { th scope="col" { "outcome" } th scope="col" { "copies" } } }
            tbody {
                tr { th scope="row" { "sent" } td.n { (counters.shadows_sent) } }
                tr { th scope="row" { "compared" } td.n { (compared) } }
                @for (cause, n) in counters.losses() {
                    tr { th scope="row" { "lost: " (cause.replace('_', " ")) } td.n class=@if n > 0 { "regression" } { (n) } }
                }
            }
        }
    }
}

fn gate_cell(gate: Option<&GateView>) -> Markup {
    html! {
        @match gate {
            Some(GateView::Ready(why)) => { span title=(why) { "ready" } },
            Some(GateView::NotYet(why)) => { span.noise title=(why) { "not yet" } },
            Some(GateView::StoreUnavailable(why)) => { span.regression title=(why) { (STORE_UNAVAILABLE) } },
            None => { "–" },
        }
    }
}

/// One line of a [`chart`]: label, CSS colour, (unix time, value) points.
pub type Series<'a> = (&'a str, &'a str, Vec<(i64, f64)>);

/// A small server-rendered line chart (SVG), time on x.
pub fn chart(title: &str, series: &[Series<'_>], unit: &str) -> Markup {
    let (w, h, pad) = (560.0, 180.0, 36.0);
    let points = series
        .iter()
        .flat_map(|s| s.2.iter())
        .filter(|(_, v)| v.is_finite());
    let (mut t0, mut t1, mut vmax) = (i64::MAX, i64::MIN, 0.0f64);
    for (t, v) in points {
        t0 = t0.min(*t);
        t1 = t1.max(*t);
        vmax = vmax.max(*v);
    }
    if vmax <= 0.0 {
        vmax = 1.0;
    }
    let empty = t0 > t1;
    if empty {
        (t0, t1) = (0, 1);
    }
    let span = (t1 - t0).max(1) as f64;
    let x = |t: i64| pad + (t - t0) as f64 / span * (w - 2.0 * pad);
    let y = |v: f64| h - pad / 2.0 - v / vmax * (h - pad);
    html! {
        figure {
            figcaption { (title) }
            svg role="img" aria-label=(title) width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } xmlns="http://www.w3.org/2000/svg" {
                line x1=(pad) y1=(y(0.0)) x2=(w - pad) y2=(y(0.0)) stroke="#8c959f" {}
                text x="2" y=(y(vmax) + 4.0) font-size="11" { (format!("{vmax:.2}")) " " (unit) }
                text x="2" y=(y(0.0)) font-size="11" { "0" }
                @if empty { text x=(w / 2.0 - 40.0) y=(h / 2.0) font-size="12" { "no data yet" } }
                @for (label, color, data) in series {
                    @let path: Vec<String> = data.iter().filter(|(_, v)| v.is_finite()).map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
                    @if path.len() > 1 { polyline fill="none" stroke=(color) stroke-width="2" points=(path.join(" ")) { title { (label) } } }
                }
            }
            p { @for (label, color, _) in series {
                svg.key width="10" height="10" aria-hidden="true" { rect width="10" height="10" fill=(color) {} }
                (label) " "
            } }
        }
    }
}

/// One route: actions, charts of the last hours, phase history, differing paths.
#[allow(clippy::too_many_arguments)]
pub fn route_page(
    viewer: &crate::console::Viewer,
    row: &RouteRow,
    history: &[crate::history::Rates],
    audit: &[studyflow_flags::AuditEntry],
    page_number: usize,
    pages: usize,
    diffs: &DiffSection,
    flash: Option<&str>,
) -> Markup {
    let series = |f: &dyn Fn(&crate::history::Rates) -> f64| {
        history.iter().map(|r| (r.at, f(r))).collect::<Vec<_>>()
    };
    page(
        &format!("Route {}", row.name),
        html! {
            (nav(viewer))
            @if let Some(message) = flash { p role="status" { strong { (message) } } }
            p { "Phase " strong { (row.phase) } " (" (row.source) "). " code { (row.path) } }
            @match &row.gate {
                Some(GateView::Ready(why)) => { p { "Promotion gate: " strong { "ready" } " — " (why) } },
                Some(GateView::NotYet(why)) => { p { "Promotion gate: " strong { "not yet" } " — " (why) } },
                Some(GateView::StoreUnavailable(why)) => { p role="status" { "Promotion gate: " strong.regression { (STORE_UNAVAILABLE) } " (no verdict; " (why) ")" } },
                None => {},
            }
            @if !row.blocked {
                h2 { "Change phase" }
                form method="post" action={ "/ui/routes/" (row.name) "/phase" } {
                    (csrf_field(viewer))
                    p {
                        label for="phase" { "Phase" } " "
                        select id="phase" name="phase" { @for p in ["legacy", "shadow", "canary", "primary", "decommissioned"] { option value=(p) { (p) } } }
                        " " label for="percent" { "canary %" } " " input id="percent" name="percent" inputmode="numeric" size="4";
                    }
                    p { label for="reason" { "Reason" } " " input id="reason" name="reason" required size="50"; }
                    p { label { input type="checkbox" name="force" value="yes"; " Force past the promotion gate (the reason is audited)" } }
                    p { button type="submit" { "Apply" } }
                }
                @if row.phase != "legacy" {
                    form method="post" action={ "/ui/routes/" (row.name) "/rollback" } {
                        (csrf_field(viewer))
                        p { label for="rollback-reason" { "Reason" } " " input id="rollback-reason" name="reason" required; " " button type="submit" { "Roll back to legacy" } }
                    }
                }
            }
            h2 id="copies" { "Shadow copies on this instance" }
            (copies_table(&row.counters))
            h2 { "Last hours" }
            div.sides {
                (chart("Traffic split: share served by new", &[("new", "#0969da", series(&|r| r.share_new))], "share"))
                (chart("Mean latency, legacy vs new", &[("legacy", "#8250df", series(&|r| r.mean_latency_ms[0])), ("new", "#0969da", series(&|r| r.mean_latency_ms[1]))], "ms"))
                (chart("Mismatch rate (regressions)", &[("regressions", "#cf222e", series(&|r| r.mismatch_rate))], "share"))
                (chart("Requests per second", &[("all", "#1a7f37", series(&|r| r.requests_per_sec))], "req/s"))
            }
            h2 { "Differing paths" }
            @match diffs {
                DiffSection::Pairs(summary) if !summary.paths.is_empty() => {
                    table {
                        thead { tr { th scope="col" { "path" } th scope="col" { "differing" } th scope="col" { "classification" } th scope="col" { "suggested rule" } th scope="col" { "samples" } } }
                        tbody { @for p in &summary.paths { tr {
                            th scope="row" { code { (p.shape) } }
                            td.n { (p.differing) }
                            td class=@if p.classification == "regression" { "regression" } @else { "noise" } { (p.classification) }
                            td { @if let Some(rule) = &p.suggested_rule { code { (rule) } } }
                            td { @for id in &p.samples { a href={ "/ui/samples/" (id) } { "#" (id) } " " } }
                        } } }
                    }
                },
                DiffSection::Pairs(_) => { p { "No differing paths in the last 24 hours." } },
                DiffSection::NoPairs => { p { "No compared pairs in the last 24 hours." } },
                DiffSection::NotConfigured => { p { "No diff store is configured." } },
                DiffSection::Unavailable => { p role="status" { strong.regression { (STORE_UNAVAILABLE) } ": differing paths cannot be shown now." } },
            }
            h2 { "Phase history" }
            table {
                thead { tr { th scope="col" { "when" } th scope="col" { "who" } th scope="col" { "what" } th scope="col" { "from" } th scope="col" { "to" } th scope="col" { "why" } } }
                tbody { @for e in audit { tr { td { (e.at) } td { (e.who) } td { (e.action) } td { (e.from) } td { (e.to) } td { (e.reason) } } } }
            }
            @if pages > 1 {
                nav aria-label="Phase history pages" { p {
                    @for n in 1..=pages { @if n == page_number { strong { (n) } " " } @else { a href={ "?page=" (n) } { (n) } " " } }
                } }
            }
        },
    )
}

/// How far the migration has gone.
pub fn progress_page(
    viewer: &crate::console::Viewer,
    per_phase: &[(&str, usize)],
    share: &[(i64, f64)],
) -> Markup {
    page(
        "Progress",
        html! {
            (nav(viewer))
            table {
                caption { "Routes per phase" }
                thead { tr { @for (phase, _) in per_phase { th scope="col" { (phase) } } } }
                tbody { tr { @for (_, n) in per_phase { td.n { (n) } } } }
            }
            (chart("Share of all traffic served by the new backend", &[("new", "#0969da", share.to_vec())], "share"))
        },
    )
}
