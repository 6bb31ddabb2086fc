//! Observability against a real Prometheus (Debian's `prometheus`): it scrapes the
//! gateway and the backend of a running stack while traffic moves one route through
//! every phase and back; then every dashboard panel query returns data, every alert rule
//! evaluates, and `promtool check rules` passes. Also: the dashboards and rules name only
//! metrics the binaries export.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Value, json};
use studyflow_testkit::stack::{self, DEV_ADMIN_TOKEN, Process, Stack, StackOptions};

fn dashboards_dir() -> PathBuf {
    stack::repo_root().join("dashboards")
}

/// What Grafana sends for the `route` variable's "All" (its `allValue`).
const ALL_ROUTES: &str = ".*";

/// Every PromQL expression of the dashboards (panel targets and annotations), each
/// with a route variable, `__inputs` for import, and phase-change and rollback
/// annotations.
fn dashboard_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dashboards_dir()).expect("dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
            .expect("dashboard JSON parses");
        let title = dashboard["title"].as_str().unwrap_or("?").to_owned();
        assert!(
            dashboard["templating"]["list"]
                .as_array()
                .is_some_and(|l| l.iter().any(|v| v["type"] == "datasource")),
            "{title}: the datasource is a variable"
        );
        assert!(
            dashboard["templating"]["list"].as_array().is_some_and(|l| l
                .iter()
                .any(|v| v["name"] == "route" && v["type"] == "query")),
            "{title}: a route variable"
        );
        assert!(
            dashboard["__inputs"].as_array().is_some_and(|l| l
                .iter()
                .any(|i| i["name"] == "DS_PROMETHEUS" && i["type"] == "datasource")),
            "{title}: the import asks for the Prometheus"
        );
        let names: Vec<&str> = dashboard["annotations"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["name"].as_str())
            .collect();
        assert!(
            names.contains(&"Phase changes") && names.contains(&"Rollbacks"),
            "{title}: phase-change and rollback annotations ({names:?})"
        );
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"]
                    .as_str()
                    .expect("expr")
                    .replace("$route", ALL_ROUTES);
                out.push((
                    format!("{title} / {}", panel["title"].as_str().unwrap_or("?")),
                    expr,
                ));
            }
        }
        for annotation in dashboard["annotations"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(expr) = annotation["expr"].as_str() {
                out.push((
                    format!(
                        "{title} / annotation {}",
                        annotation["name"].as_str().unwrap_or("?")
                    ),
                    expr.replace("$route", ALL_ROUTES),
                ));
            }
        }
    }
    out
}

fn metric_names_in(text: &str) -> BTreeSet<String> {
    let name = Regex::new(r"studyflow_[a-z_]+").expect("regex");
    name.find_iter(text)
        .map(|m| {
            let n = m.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| n.strip_suffix(suffix))
                .unwrap_or(n)
                .to_owned()
        })
        .collect()
}

#[test]
fn dashboards_and_alerts_use_only_exported_metrics() {
    let known: BTreeSet<&str> = studyflow_gateway::metrics::ALL
        .iter()
        .chain(studyflow_backend::metrics::ALL.iter())
        .copied()
        .collect();
    let mut used = BTreeSet::new();
    for (_, expr) in dashboard_queries() {
        used.extend(metric_names_in(&expr));
    }
    used.extend(metric_names_in(
        &std::fs::read_to_string(dashboards_dir().join("alerts.yml")).expect("alerts"),
    ));
    let unknown: Vec<&String> = used
        .iter()
        .filter(|n| !known.contains(n.as_str()))
        .collect();
    assert!(unknown.is_empty(), "metrics no binary exports: {unknown:?}");
    assert!(
        used.len() >= 15,
        "the dashboards cover the metrics ({used:?})"
    );
}

async fn start_prometheus(dir: &Path, stack: &Stack) -> (Process, String) {
    let port = stack::Ports::free().expect("port").gateway;
    let host = |url: &str| url.trim_start_matches("http://").to_owned();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\nscrape_configs:\n  \
         - job_name: gateway\n    static_configs: [{{targets: ['{gateway}']}}]\n  \
         - job_name: backend\n    static_configs: [{{targets: ['{backend}']}}]\n",
        rules = dashboards_dir().join("alerts.yml").display(),
        gateway = host(&stack.admin_url),
        backend = host(&stack.backend_url),
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("config");
    let mut command = tokio::process::Command::new("prometheus");
    command
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let url = format!("http://127.0.0.1:{port}");
    let process = Process::spawn(
        "prometheus",
        command,
        &format!("{url}/-/ready"),
        dir.join("prometheus.log"),
    )
    .await
    .expect("prometheus starts (Debian package `prometheus`, installed by make setup)");
    (process, url)
}

async fn query(prometheus: &str, expr: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .expect("prometheus answers")
        .json()
        .await
        .expect("json")
}

async fn set_phase(stack: &Stack, phase: &str, percent: Option<u8>) {
    let response = reqwest::Client::new()
        .put(format!("{}/routes/auth-validation", stack.admin_url))
        .bearer_auth(DEV_ADMIN_TOKEN)
        .json(&json!({"phase": phase, "percent": percent, "force": true, "reason": "observability test"}))
        .send()
        .await
        .expect("admin");
    assert!(response.status().is_success(), "set {phase}");
}

#[tokio::test]
async fn prometheus_sees_every_dashboard_and_alert_through_a_whole_cutover() {
    let mut options = StackOptions::for_test("observe").expect("options");
    let database = options.database.clone();
    let dir = options.log_dir.clone();
    std::fs::create_dir_all(&dir).expect("log dir");
    // The tutor stays in shadow: the backend gets its copies, so provider metrics move.
    options.routes_file = Some(crate::harness::routes_file_with(
        &dir,
        "ai-tutor-professional",
        "shadow",
    ));
    let stack = Stack::start(options).await.expect("stack");
    let (prometheus, prom_url) = start_prometheus(&dir, &stack).await;

    // Traffic from many users, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, gateway, anon) = (
            Arc::clone(&stop),
            stack.gateway_url.clone(),
            stack.anon_key(),
        );
        let tokens: Vec<String> = (0..20)
            .map(|i| {
                studyflow_testkit::tokens::access_token(
                    stack::DEV_JWT_SECRET,
                    &format!("user-{i}"),
                    "s@gmail.com",
                    3600,
                )
            })
            .collect();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let _ = client
                    .post(format!("{gateway}/functions/v1/auth-validation"))
                    .header("apikey", &anon)
                    .bearer_auth(&tokens[i % tokens.len()])
                    .json(&json!({"email": format!("student{i}@gmail.com"), "action": "signup"}))
                    .send()
                    .await;
                // Some tutor questions too, so the provider metrics move.
                if i.is_multiple_of(5) {
                    let _ = client
                        .post(format!("{gateway}/functions/v1/ai-tutor-professional"))
                        .header("apikey", &anon)
                        .json(&json!({"message": format!("Explain limits, part {i}")}))
                        .send()
                        .await;
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    // Let Prometheus scrape the legacy phase a few times first.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (phase, percent) in [
        ("shadow", None),
        ("canary", Some(50)),
        ("primary", None),
        ("decommissioned", None),
    ] {
        tokio::time::sleep(Duration::from_secs(3)).await;
        set_phase(&stack, phase, percent).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rollback = reqwest::Client::new()
        .post(format!("{}/rollback", stack.admin_url))
        .bearer_auth(DEV_ADMIN_TOKEN)
        .json(&json!({"reason": "back to legacy"}))
        .send()
        .await
        .expect("rollback");
    assert!(rollback.status().is_success());
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.expect("traffic");
    let window = started.elapsed();

    let mut empty = Vec::new();
    for (panel, expr) in dashboard_queries() {
        let answer = query(&prom_url, &expr).await;
        assert_eq!(answer["status"], "success", "{panel}: {expr}: {answer}");
        if answer["data"]["result"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            empty.push(format!("{panel}: {expr}"));
        }
    }
    // Annotations only have data when their event happened; panels must all have data.
    empty.retain(|p| !p.contains("/ annotation"));
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );

    let rules: Value = reqwest::get(format!("{prom_url}/api/v1/rules"))
        .await
        .expect("rules")
        .json()
        .await
        .expect("json");
    let rules: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .collect();
    assert_eq!(rules.len(), 5, "every alert rule is loaded");
    for rule in rules {
        assert_eq!(
            rule["health"], "ok",
            "{}: {}",
            rule["name"], rule["lastError"]
        );
    }
    let promtool = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(dashboards_dir().join("alerts.yml"))
        .stdout(Stdio::piped())
        .output()
        .expect("promtool");
    assert!(
        promtool.status.success(),
        "{}",
        String::from_utf8_lossy(&promtool.stdout)
    );

    // The cutover of the moved route, as Prometheus saw it: share served by new.
    let share = reqwest::Client::new()
        .get(format!("{prom_url}/api/v1/query_range"))
        .query(&[
            ("query", "(sum(rate(studyflow_gateway_requests_total{side=\"new\",route=\"auth-validation\"}[3s])) or sum(rate(studyflow_gateway_requests_total{route=\"auth-validation\"}[3s])) * 0) / sum(rate(studyflow_gateway_requests_total{route=\"auth-validation\"}[3s]))"),
            ("start", &(studyflow_testkit::tokens::now() - window.as_secs() as i64).to_string()),
            ("end", &studyflow_testkit::tokens::now().to_string()),
            ("step", "1"),
        ])
        .send()
        .await
        .expect("range")
        .json::<Value>()
        .await
        .expect("json");
    let points: Vec<(f64, f64)> = share["data"]["result"][0]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_f64()?, p[1].as_str()?.parse::<f64>().ok()?)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    let peak = points.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    println!(
        "share served by new: {} points, peak {peak:.2}",
        points.len()
    );
    assert!(
        peak > 0.9,
        "the new backend served the route in primary ({peak})"
    );
    // The points for docs/cutover-progress.png, which `studyflow-bench cutover-plot` draws
    // (the test suite builds no plotting code).
    let share_file = dir.join("cutover-share.json");
    std::fs::write(&share_file, serde_json::to_vec(&points).expect("points")).expect("write");
    println!(
        "cutover share written to {}; draw it with `target/release/studyflow-bench cutover-plot {} docs/cutover-progress.png`",
        share_file.display(),
        share_file.display()
    );

    prometheus.terminate().await;
    stack.stop().await;
    let _ = studyflow_testkit::database::drop(&database).await;
    let _ = studyflow_testkit::database::drop(&format!("{database}_diffs")).await;
}
