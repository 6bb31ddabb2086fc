//! Server-rendered HTML pages of the admin port: the diff overview, a route's differing
//! paths, and a sample side by side with the differences highlighted. No scripts, no
//! inline styles (the console's Content-Security-Policy allows neither), no external
//! assets: one stylesheet served by the console itself (`/ui/style.css`); the pages work
//! with JavaScript off and from an air-gapped network.

use std::collections::HashSet;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use studyflow_diffing::Section;
use studyflow_diffing::report::{Classification, Overview, RouteSummary, StoredSample};

use super::session::{LoginQuery, Viewer, safe_next};

/// The console's stylesheet, served at `/ui/style.css`.
pub(crate) const STYLE: &str = r#"
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fafbfc}
header{background:#1b1f24;color:#fff;padding:.6rem 1.2rem}header a{color:#fff;margin-right:1rem}
main{padding:1rem 1.2rem;max-width:1400px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;background:#fff}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.regression{color:#a40e26;font-weight:600}.noise{color:#57606a}
.sides{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1rem}
.sides>*{min-width:0}
pre{background:#fff;border:1px solid #d0d7de;padding:.6rem;overflow:auto;font-size:13px;white-space:pre-wrap;overflow-wrap:anywhere}
table.fixed{table-layout:fixed;width:100%}td code,th code{overflow-wrap:anywhere}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;font-size:13px;font-weight:600;color:#fff;background:#57606a}
.badge.legacy{background:#6e7781}.badge.shadow{background:#8250df}.badge.canary{background:#bf8700}
.badge.primary{background:#0969da}.badge.decommissioned{background:#1a7f37}.badge.blocked{background:#a40e26}
.progress{display:flex;gap:2px;margin-top:.2rem}.progress span{width:1.2rem;height:.35rem;background:#d0d7de}
.progress span.done{background:#1a7f37}
form.window{margin:.5rem 0}
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
                header { nav aria-label="Main" {
                    a href="/ui" { "Routes" } a href="/ui/progress" { "Progress" } a href="/ui/diffs" { "Diff reports" }
                } }
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

/// The time window of a diff page: a form that reloads `action` with `since`.
fn window_form(action: &str, since: &str) -> Markup {
    html! {
        form.window method="get" action=(action) {
            label for="since" { "Window" } " "
            select id="since" name="since" {
                @for (value, text) in [("1h", "last hour"), ("6h", "last 6 hours"), ("24h", "last 24 hours"), ("7d", "last 7 days"), ("30d", "last 30 days")] {
                    option value=(value) selected[value == since] { (text) }
                }
            }
            " " button type="submit" { "Show" }
        }
    }
}

/// Every route with compared pairs.
pub fn overview(report: &Overview, since: &str) -> Markup {
    page(
        "Diff reports",
        html! {
            (window_form("/ui/diffs", since))
            p { "Pairs compared since " (report.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) " (" (since) ")." }
            @if report.routes.is_empty() {
                p { "No pairs were compared in this window." }
            } @else {
                table {
                    caption { "Per route: compared pairs and how they agreed" }
                    thead { tr { th scope="col" { "route" } th scope="col" { "compared" } th scope="col" { "equal" } th scope="col" { "noise only" } th scope="col" { "regressions" } th scope="col" { "mismatch rate" } th scope="col" { "not compared (provider skipped)" } } }
                    tbody {
                        @for r in &report.routes {
                            tr {
                                th scope="row" { a href={ "/ui/diffs/" (query_value(&r.route)) "?since=" (query_value(since)) } { (r.route) } }
                                td.n { (r.compared) } td.n { (r.equal) } td.n { (r.noise) }
                                td class=@if r.regression > 0 { "n regression" } @else { "n" } { (r.regression) }
                                td.n { (percent(r.mismatch_rate)) }
                                td.n { (r.provider_skipped) }
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
            (window_form(&format!("/ui/diffs/{}", query_value(&summary.route)), since))
            p { (summary.compared) " pairs compared since " (since) ": " (summary.equal) " equal, " (summary.noise) " noise only, "
                span class=@if summary.regression > 0 { "regression" } { (summary.regression) " regressions" } " (mismatch rate " (percent(summary.mismatch_rate)) ")."
                @if summary.provider_skipped > 0 { " " (summary.provider_skipped) " more not compared (provider skipped in the dry run)." } }
            @if summary.paths.is_empty() { p { "No differing paths." } } @else {
                table {
                    caption { "Differing paths (array indexes shown as *)" }
                    thead { tr { th scope="col" { "path" } th scope="col" { "differing" } th scope="col" { "of which noise" } th scope="col" { "same side differs" } th scope="col" { "classification" } th scope="col" { "suggested rule" } th scope="col" { "samples" } } }
                    tbody {
                        @for p in &summary.paths {
                            tr {
                                th scope="row" { code { (p.shape) } }
                                td.n { (p.differing) } td.n { (p.noise) } td.n { (p.same_side) }
                                td class=@if p.classification == Classification::Regression { "regression" } @else { "noise" } { (p.classification) }
                                td { (rule_cell(p)) }
                                td { @for id in &p.samples { a href={ "/ui/samples/" (id) } { "#" (id) } " " } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// What to do about a differing path: the routes-file rule that would declare it noise
/// (when the side itself varies there), or why there is none.
fn rule_cell(path: &studyflow_diffing::report::PathSummary) -> Markup {
    html! {
        @match (&path.suggested_rule, path.classification) {
            (Some(rule), _) => { code { (rule) } },
            (None, Classification::NoiseDeclared) => { small.noise { "already declared noise in the routes file" } },
            (None, _) => { small { "none: the same side answers this path consistently, so fix the new side" } },
        }
    }
}

/// A sample: the request, and both answers side by side with differing values marked.
pub fn sample(sample: &StoredSample) -> Markup {
    let exchange = &sample.exchange;
    let differing: HashSet<String> = sample
        .differences
        .iter()
        .filter(|d| d.section == Section::Body)
        .map(|d| d.path.clone())
        .collect();
    let served_by = exchange.served_by.as_str();
    let other = exchange.shadowed_by();
    let verdict = sample.verdict.name();
    page(
        &format!("Sample #{} of {}", sample.id, sample.route),
        html! {
            p { "Request " code { (sample.request_id) } ", " (sample.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                ", verdict " strong class=(verdict) { (verdict) } ". Secrets are masked." }
            @if exchange.sensitive {
                p role="note" { strong { "Sensitive route: " } "no value of this exchange was stored. Each value shows its type, a digest (equal digests, equal values) and its length." }
            }
            h2 { "Differences" }
            table.fixed {
                thead { tr { th scope="col" { "where" } th scope="col" { "path" } th scope="col" { "kind" } th scope="col" { (served_by) " (served)" } th scope="col" { (other) " (shadow)" } th scope="col" { "noise" } } }
                tbody {
                    @for d in &sample.differences {
                        tr {
                            td { (name_of(&d.section)) }
                            td { code { (d.path) } @if d.shape != d.path { br; small { "shape " code { (d.shape) } } } }
                            td { (name_of(&d.kind)) }
                            td { code { (short(d.left.as_ref())) } }
                            td { code { (short(d.right.as_ref())) } }
                            td { @if d.declared_noise { "declared" } }
                        }
                    }
                }
            }
            h2 { "Request" }
            pre { (exchange.request.method) " " (exchange.request.uri) "\n"
                  (headers(&exchange.request.headers)) "\n" (pretty(&exchange.request.body)) }
            h2 { "Answers" }
            div.sides {
                section aria-label="Served answer" { h3 { (served_by) " (served) — " (exchange.served.status) }
                    pre { (headers(&exchange.served.headers)) "\n" (json_marked(&exchange.served.body, &differing)) } }
                section aria-label="Shadow answer" { h3 { (other) " (shadow) — " (exchange.shadow.status) }
                    pre { (headers(&exchange.shadow.headers)) "\n" (json_marked(&exchange.shadow.body, &differing)) } }
            }
        },
    )
}

/// The name serde gives a unit variant (`body`, `changed`, …).
fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}

fn short(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
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

fn headers(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
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

/// The sign-in page.
pub fn login_page(query: &LoginQuery) -> Markup {
    page(
        "Sign in",
        html! {
            @if query.error.is_some() { p.regression role="alert" { "That token is not the admin token." } }
            form method="post" action="/ui/login" {
                input type="hidden" name="next" value=(safe_next(query.next.as_deref()));
                p { label for="name" { "Your name (recorded in the audit log)" } br; input id="name" name="name" required autocomplete="username"; }
                p { label for="token" { "Admin token" } br; input id="token" name="token" type="password" required autocomplete="current-password"; }
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn charts_have_a_time_axis_phase_markers_and_gaps() {
        let html = chart("empty", &[("new", "#000", vec![])], "share", &[], None).into_string();
        assert!(html.contains("no data yet"));
        // 12:00:00, 12:00:10, then no traffic, then 12:00:30 and 12:00:40 UTC.
        let t = 1_796_212_800;
        let points = vec![
            (t, 0.5),
            (t + 10, 1.0),
            (t + 20, f64::NAN),
            (t + 30, 0.2),
            (t + 40, 0.4),
        ];
        let markers = vec![(t + 25, "shadow → canary 5%".to_owned())];
        let html =
            chart("split", &[("new", "#000", points)], "share", &markers, None).into_string();
        assert_eq!(
            html.matches("<polyline").count(),
            2,
            "a gap, not a zero: {html}"
        );
        assert!(html.contains(">12:00<") && html.contains("UTC"), "{html}");
        assert!(
            html.contains("class=\"marker\"") && html.contains("canary 5%"),
            "{html}"
        );
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
    /// Whether the legacy has this function (rollback has somewhere to go).
    pub legacy_twin: bool,
    /// The next step forward, which the phase control offers first.
    pub next: Option<studyflow_flags::Phase>,
    /// Which requests get copies in the current phase, in words.
    pub copies: String,
    /// Held by the rollback guard until an operator moves it.
    pub held: bool,
}

impl RouteRow {
    /// The phase's short name (`canary`, not `canary 25%`).
    fn phase_name(&self) -> &str {
        self.phase.split(' ').next().unwrap_or("")
    }
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

fn csrf_field(viewer: &Viewer) -> Markup {
    html! { @if let Some(token) = &viewer.csrf { input type="hidden" name="csrf" value=(token); } @else { input type="hidden" name="csrf" value=""; } }
}

fn nav(viewer: &Viewer) -> Markup {
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
            td class=@if r.new_error_rate > 0.01 { "n regression" } @else { "n" } { (percent(r.new_error_rate)) }
            td class=@if r.mismatch_rate > 0.0 { "n regression" } @else { "n" } { (percent(r.mismatch_rate)) }
        },
        None => html! { td.n { "–" } td.n { "–" } td.n { "–" } td.n { "–" } },
    }
}

/// The routes page: every route's phase and health, with the actions.
pub fn routes_page(viewer: &Viewer, rows: &[RouteRow], flash: Option<&str>) -> Markup {
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
                            td { (phase_badge(row)) (progress_bar(row)) } td { (row.source) }
                            (rate_cells(row.rates.as_ref()))
                            td.n { a href={ "/ui/routes/" (row.name) "#copies" } { (row.counters.shadows_lost()) } }
                            td { (gate_cell(row.gate.as_ref())) }
                            td {
                                @if !row.legacy_twin {
                                    small { "new only: no legacy twin" }
                                } @else if !row.blocked && row.phase != "legacy" {
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
                tr { th scope="row" { "not compared: provider skipped in the dry run" } td.n { (counters.pairs_provider_skipped) } }
                @for (cause, n) in counters.losses() {
                    tr { th scope="row" { "lost: " (cause.replace('_', " ")) } td class=@if n > 0 { "n regression" } @else { "n" } { (n) } }
                }
            }
        }
    }
}

/// The phase as a coloured badge (`canary 25%`, `blocked`, …).
fn phase_badge(row: &RouteRow) -> Markup {
    html! { span class={ "badge " (row.phase_name()) } { (row.phase) } @if row.held { " held" } }
}

/// How far along the way from legacy to decommissioned a route is: one step per phase.
fn progress_bar(row: &RouteRow) -> Markup {
    const STEPS: [&str; 5] = ["legacy", "shadow", "canary", "primary", "decommissioned"];
    let reached = STEPS
        .iter()
        .position(|p| *p == row.phase_name())
        .unwrap_or(0);
    html! {
        @if !row.blocked {
            div.progress role="img" aria-label={ (row.name) ": step " (reached + 1) " of 5 (" (row.phase) ")" } {
                @for (i, step) in STEPS.iter().enumerate() { span class=@if i <= reached { "done" } title=(step) {} }
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

/// One line of a [`chart`]: label, CSS colour, (unix time, value) points; a value that
/// is not finite (no traffic then) leaves a gap rather than a zero.
pub type Series<'a> = (&'a str, &'a str, Vec<(i64, f64)>);

/// The last ten minutes, the least a console chart shows.
fn recent() -> (i64, i64) {
    let now = chrono::Utc::now().timestamp();
    (now - 600, now)
}

/// A moment marked on a [`chart`] (a phase change): unix time and what happened.
pub type Marker = (i64, String);

/// A small server-rendered line chart (SVG): time on x with its axis (UTC), the value
/// on y, phase changes as dashed vertical lines, gaps where there was no data.
/// `range` (unix times) is the stretch of time shown at least, so a chart with few points
/// still spans a readable window and places its markers.
pub fn chart(
    title: &str,
    series: &[Series<'_>],
    unit: &str,
    markers: &[Marker],
    range: Option<(i64, i64)>,
) -> Markup {
    let (w, h, left, right, top, bottom) = (560.0, 190.0, 44.0, 12.0, 12.0, 30.0);
    let (mut t0, mut t1) = range.unwrap_or((i64::MAX, i64::MIN));
    let mut vmax = 0.0f64;
    for (t, v) in series.iter().flat_map(|s| s.2.iter()) {
        t0 = t0.min(*t);
        t1 = t1.max(*t);
        if v.is_finite() {
            vmax = vmax.max(*v);
        }
    }
    if vmax <= 0.0 {
        vmax = 1.0;
    }
    let empty = series.iter().all(|s| s.2.is_empty());
    if t0 > t1 {
        (t0, t1) = (0, 1);
    }
    let span = (t1 - t0).max(1) as f64;
    let x = |t: i64| left + (t - t0) as f64 / span * (w - left - right);
    let y = |v: f64| top + (1.0 - v / vmax) * (h - top - bottom);
    let clock = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map_or_else(String::new, |d| d.format("%H:%M").to_string())
    };
    let ticks: Vec<i64> = if empty {
        Vec::new()
    } else {
        vec![t0, t0 + (t1 - t0) / 2, t1]
    };
    // Runs of finite values: each is one line; a gap separates them.
    let segments = |data: &[(i64, f64)]| -> Vec<String> {
        data.split(|(_, v)| !v.is_finite())
            .filter(|run| !run.is_empty())
            .map(|run| {
                run.iter()
                    .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    html! {
        figure {
            figcaption { (title) }
            svg role="img" aria-label=(title) width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } xmlns="http://www.w3.org/2000/svg" {
                line x1=(left) y1=(y(0.0)) x2=(w - right) y2=(y(0.0)) stroke="#8c959f" {}
                line x1=(left) y1=(top) x2=(left) y2=(y(0.0)) stroke="#8c959f" {}
                text x="2" y=(y(vmax) + 4.0) font-size="11" { (format!("{vmax:.2}")) }
                text x="2" y=(y(0.0)) font-size="11" { "0" }
                text x="2" y=(y(vmax / 2.0) + 4.0) font-size="10" fill="#57606a" { (unit) }
                @for t in &ticks {
                    line x1=(x(*t)) y1=(y(0.0)) x2=(x(*t)) y2=(y(0.0) + 4.0) stroke="#8c959f" {}
                    text x=(x(*t) - 14.0) y=(h - 12.0) font-size="11" { (clock(*t)) }
                }
                @if !empty { text x=(w - right - 24.0) y=(h - 1.0) font-size="10" fill="#57606a" { "UTC" } }
                @for (t, what) in markers.iter().filter(|(t, _)| !empty && (t0..=t1).contains(t)) {
                    line.marker x1=(x(*t)) y1=(top) x2=(x(*t)) y2=(y(0.0)) stroke="#bf8700" stroke-dasharray="4 3" { title { (clock(*t)) " " (what) } }
                }
                @if empty { text x=(w / 2.0 - 40.0) y=(h / 2.0) font-size="12" { "no data yet" } }
                @for (label, color, data) in series {
                    @for points in segments(data) {
                        polyline fill="none" stroke=(color) stroke-width="2" points=(points) { title { (label) } }
                    }
                }
            }
            p { @for (label, color, _) in series {
                svg.key width="10" height="10" aria-hidden="true" { rect width="10" height="10" fill=(color) {} }
                (label) " "
            }
            @if !markers.is_empty() { svg.key width="10" height="10" aria-hidden="true" { rect width="3" height="10" fill="#bf8700" {} } "phase change" } }
        }
    }
}

/// One route: actions, charts of the last hours, phase history, differing paths.
#[allow(clippy::too_many_arguments)]
pub fn route_page(
    viewer: &Viewer,
    row: &RouteRow,
    history: &[crate::history::Rates],
    audit: &[studyflow_flags::AuditEntry],
    page_number: usize,
    pages: usize,
    diffs: &DiffSection,
    flash: Option<&str>,
) -> Markup {
    // No traffic in an interval is a gap, not a zero.
    let series = |f: &dyn Fn(&crate::history::Rates) -> f64| {
        history
            .iter()
            .map(|r| {
                (
                    r.at,
                    if r.requests_per_sec > 0.0 {
                        f(r)
                    } else {
                        f64::NAN
                    },
                )
            })
            .collect::<Vec<_>>()
    };
    let window = Some(recent());
    let markers: Vec<Marker> = audit
        .iter()
        .filter_map(|e| {
            let at = chrono::DateTime::parse_from_rfc3339(&e.at)
                .ok()?
                .timestamp();
            Some((at, format!("{} → {} ({})", e.from, e.to, e.action)))
        })
        .collect();
    page(
        &format!("Route {}", row.name),
        html! {
            (nav(viewer))
            @if let Some(message) = flash { p role="status" { strong { (message) } } }
            p { "Phase " (phase_badge(row)) " (" (row.source) "). " code { (row.path) } }
            (progress_bar(row))
            @match &row.gate {
                Some(GateView::Ready(why)) => { p { "Promotion gate: " strong { "ready" } " — " (why) } },
                Some(GateView::NotYet(why)) => { p { "Promotion gate: " strong { "not yet" } " — " (why) } },
                Some(GateView::StoreUnavailable(why)) => { p role="status" { "Promotion gate: " strong.regression { (STORE_UNAVAILABLE) } " (no verdict; " (why) ")" } },
                None => {},
            }
            p { "Copies: " (row.copies) "." }
            @if !row.legacy_twin {
                p { "This route has no legacy twin (" code { "legacy: none" } "): the legacy would answer 404, so it is never rolled back and stays decommissioned." }
            }
            @if !row.blocked && row.legacy_twin {
                h2 { "Change phase" }
                form method="post" action={ "/ui/routes/" (row.name) "/phase" } {
                    (csrf_field(viewer))
                    @let chosen = row.next.map_or(row.phase_name(), |n| n.name());
                    @let percent = row.next.and_then(|n| n.percent());
                    p {
                        "Now " strong { (row.phase) } ". "
                        label for="phase" { "Move to" } " "
                        select id="phase" name="phase" {
                            @for p in ["legacy", "shadow", "canary", "primary", "decommissioned"] {
                                option value=(p) selected[p == chosen] {
                                    (p) @if row.next.is_some_and(|n| n.name() == p) { " (next step)" }
                                }
                            }
                        }
                        " " label for="percent" { "canary %" } " " input id="percent" name="percent" inputmode="numeric" size="4" value=[percent];
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
                (chart("Traffic split: share served by new", &[("new", "#0969da", series(&|r| r.share_new))], "share", &markers, window))
                (chart("Mean latency, legacy vs new", &[("legacy", "#8250df", series(&|r| r.mean_latency_ms[0])), ("new", "#0969da", series(&|r| r.mean_latency_ms[1]))], "ms", &markers, window))
                (chart("Mismatch rate (regressions)", &[("regressions", "#cf222e", series(&|r| r.mismatch_rate))], "share", &markers, window))
                (chart("Requests per second", &[("all", "#1a7f37", history.iter().map(|r| (r.at, r.requests_per_sec)).collect())], "req/s", &markers, window))
            }
            h2 { "Differing paths" }
            @match diffs {
                DiffSection::Pairs(summary) if !summary.paths.is_empty() => {
                    table {
                        thead { tr { th scope="col" { "path" } th scope="col" { "differing" } th scope="col" { "classification" } th scope="col" { "suggested rule" } th scope="col" { "samples" } } }
                        tbody { @for p in &summary.paths { tr {
                            th scope="row" { code { (p.shape) } }
                            td.n { (p.differing) }
                            td class=@if p.classification == Classification::Regression { "regression" } @else { "noise" } { (p.classification) }
                            td { (rule_cell(p)) }
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
pub fn progress_page(viewer: &Viewer, per_phase: &[(&str, usize)], share: &[(i64, f64)]) -> Markup {
    page(
        "Progress",
        html! {
            (nav(viewer))
            table {
                caption { "Routes per phase" }
                thead { tr { @for (phase, _) in per_phase { th scope="col" { (phase) } } } }
                tbody { tr { @for (_, n) in per_phase { td.n { (n) } } } }
            }
            (chart("Share of all traffic served by the new backend", &[("new", "#0969da", share.to_vec())], "share", &[], Some(recent())))
        },
    )
}
