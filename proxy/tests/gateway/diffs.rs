//! The diff pipeline end to end: pairs compared under the route's rules, regressions
//! told from declared and learned noise, redacted samples in the store, and the same
//! numbers in the JSON report, the CLI's Markdown and the HTML pages. A diff store that
//! is down never fails a client request.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::harness::{
    Gateway, SAMPLE_JWT, TestUpstream, bearer_for, dead_url, drop_database, fresh_database,
};

const ROUTES: &str = r#"
routes:
  - name: report
    path: /report
    phase: shadow
    diff:
      noise: [/at]
      arrays: [{path: /items, match_by: name}]
      idempotent: true
      probe_percent: 100
"#;

async fn report(gateway: &Gateway, query: &str) -> Value {
    reqwest::get(format!("{}/diffs?{query}", gateway.admin_url))
        .await
        .expect("report")
        .json()
        .await
        .expect("json")
}

async fn page(gateway: &Gateway, path: &str) -> String {
    // Console pages need a session or the admin token.
    let response = reqwest::Client::new()
        .get(format!("{}{path}", gateway.admin_url))
        .bearer_auth(crate::harness::TOKEN)
        .send()
        .await
        .expect("page");
    assert_eq!(response.status(), 200, "{path}");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/html"))
    );
    response.text().await.expect("html")
}

#[tokio::test]
async fn reports_separate_regressions_from_noise_with_redacted_samples() {
    let legacy = TestUpstream::start("legacy").await;
    let new = TestUpstream::start("new").await;
    let database = fresh_database().await;
    let extra = format!("diff_store:\n  database_url: {database}\n  flush_interval_ms: 100\n");
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, &extra).await;

    let token = bearer_for("student-1");
    for i in 0..10 {
        let (status, side, _) = gateway
            .call(
                Method::GET,
                &format!("/report?n={i}&apikey=sb-anon-key"),
                None,
                &[("authorization", &token)],
            )
            .await;
        assert_eq!((status, side.as_str()), (200, "legacy"));
    }
    // Every request was also sent a second time to legacy (probe): `id` differs there too.
    let started = Instant::now();
    let overview = loop {
        let overview = report(&gateway, "since=1h").await;
        if overview["routes"][0]["compared"] == 10 || started.elapsed() > Duration::from_secs(20) {
            break overview;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let route = &overview["routes"][0];
    assert_eq!(route["route"], "report");
    assert_eq!(
        (route["compared"].as_i64(), route["regression"].as_i64()),
        (Some(10), Some(10)),
        "{overview:#}"
    );
    assert_eq!(route["mismatch_rate"], 1.0);
    let path = |shape: &str| {
        route["paths"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["shape"] == shape))
            .cloned()
    };
    let value = path("/value").expect("/value differs");
    assert_eq!(
        (
            value["differing"].as_i64(),
            value["classification"].as_str()
        ),
        (Some(10), Some("regression"))
    );
    let id = path("/id").expect("/id differs");
    assert_eq!(id["classification"], "noise (differs within one side)");
    assert!(
        id["suggested_rule"]
            .as_str()
            .is_some_and(|r| r.contains("diff.noise: [\"/id\"]"))
    );
    assert_eq!(
        path("/at").expect("/at differs")["classification"],
        "noise (declared)"
    );
    assert!(
        path("/items/*/name").is_none(),
        "items matched by name do not differ"
    );

    // The sample: secrets masked in the request and in both answers.
    let sample_id = value["samples"][0].as_i64().expect("a sample");
    let sample: Value = reqwest::get(format!("{}/diffs/samples/{sample_id}", gateway.admin_url))
        .await
        .expect("sample")
        .json()
        .await
        .expect("json");
    let text = sample.to_string();
    assert!(
        !text.contains(SAMPLE_JWT) && !text.contains(token.trim_start_matches("Bearer ")),
        "secrets leaked: {text}"
    );
    assert!(!text.contains("sb-anon-key"));
    let headers = sample["exchange"]["request"]["headers"]
        .as_array()
        .expect("headers");
    assert!(
        headers
            .iter()
            .any(|h| h[0] == "authorization" && h[1] == "[REDACTED]")
    );
    assert_eq!(sample["exchange"]["served"]["body"]["token"], "[REDACTED]");
    assert!(
        sample["exchange"]["request"]["uri"]
            .as_str()
            .is_some_and(|u| u.contains("apikey=[REDACTED]"))
    );

    // The CLI's Markdown and the HTML pages show the same numbers.
    let (ok, markdown) = gateway.cli(&["diffs", "report", "--since", "1h"]).await;
    assert!(ok, "{markdown}");
    assert!(
        markdown.contains("| report | 10 | 0 | 0 | 10 | 100.00 % |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `/value` | 10 | 0 | 0 | regression |"),
        "{markdown}"
    );
    let overview_page = page(&gateway, "/ui/diffs?since=1h").await;
    for number in [">10<", ">100.00 %<"] {
        assert!(
            overview_page.contains(number),
            "{number} missing: {overview_page}"
        );
    }
    let route_page = page(&gateway, "/ui/diffs/report?since=1h").await;
    assert!(
        route_page.contains("/value") && route_page.contains("noise (differs within one side)")
    );
    let sample_page = page(&gateway, &format!("/ui/samples/{sample_id}")).await;
    assert!(sample_page.contains("<mark>") && sample_page.contains("[REDACTED]"));
    assert!(!sample_page.contains(SAMPLE_JWT));

    drop(gateway);
    drop_database(&database).await;
}

#[tokio::test]
async fn a_diff_store_that_is_down_never_fails_a_client_request() {
    let legacy = TestUpstream::start("legacy").await;
    let new = TestUpstream::start("new").await;
    let dead = dead_url().replace("http://", "postgres://postgres@");
    let extra = format!("diff_store:\n  database_url: {dead}/nowhere\n  flush_interval_ms: 100\n");
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, &extra).await;
    for i in 0..20 {
        let (status, side, body) = gateway.get(&format!("/report?n={i}")).await;
        assert_eq!(
            (status, side.as_str(), body["value"].as_i64()),
            (200, "legacy", Some(1))
        );
    }
    let started = Instant::now();
    let mut dropped = 0;
    while started.elapsed() < Duration::from_secs(20) {
        let routes: Value = reqwest::get(format!("{}/routes", gateway.admin_url))
            .await
            .expect("routes")
            .json()
            .await
            .expect("json");
        dropped = routes["diff_store"]["dropped"].as_u64().unwrap_or(0);
        if dropped >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        dropped >= 20,
        "records the store could not take are counted ({dropped})"
    );
    assert_eq!(
        gateway.route("report").await["counters"]["pairs_regression"],
        20,
        "comparison still counted"
    );
    let response = reqwest::get(format!("{}/diffs", gateway.admin_url))
        .await
        .expect("answer");
    assert_eq!(
        response.status(),
        503,
        "reports say the store is unavailable"
    );
}
