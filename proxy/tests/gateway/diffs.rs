//! The diff pipeline end to end: pairs compared under the route's rules, regressions
//! told from declared and learned noise, redacted samples in the store, and the same
//! numbers in the JSON report, the CLI's Markdown and the HTML pages. Reports, samples
//! and the audit log need the admin token; samples of a `sensitive` route keep shapes
//! and digests, never values. A diff store that is down never fails a client request.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::harness::{
    Gateway, RefusedPort, SAMPLE_JWT, TestUpstream, bearer_for, client, diff_store, drop_database,
    fresh_database,
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
    admin_read(gateway, &format!("/diffs?{query}")).await.1
}

/// A read of the admin API with the token: status and JSON body.
async fn admin_read(gateway: &Gateway, path: &str) -> (u16, Value) {
    let response = gateway.read(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the report of `route` counts `pairs` compared pairs; returns it.
async fn wait_for_pairs(gateway: &Gateway, route: &str, pairs: i64) -> Value {
    let started = Instant::now();
    loop {
        let overview = report(gateway, &format!("since=1h&route={route}")).await;
        let compared = overview["routes"][0]["compared"].as_i64().unwrap_or(0);
        if compared >= pairs || started.elapsed() > Duration::from_secs(20) {
            return overview["routes"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let (legacy, new) = TestUpstream::pair().await;
    let database = fresh_database().await;
    let extra = diff_store(&database);
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, &extra).await;

    let token = bearer_for("student-1");
    for i in 0..10 {
        let (status, side, _) = gateway
            .get_with(
                &format!("/report?n={i}&apikey=sb-anon-key"),
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
    let (_, sample) = admin_read(&gateway, &format!("/diffs/samples/{sample_id}")).await;
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
    let (legacy, new) = TestUpstream::pair().await;
    let dead = RefusedPort::hold();
    let extra = format!(
        "diff_store:\n  database_url: postgres://postgres@127.0.0.1:{}/nowhere\n  flush_interval_ms: 100\n",
        dead.port()
    );
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
    let (status, _) = admin_read(&gateway, "/diffs").await;
    assert_eq!(status, 503, "reports say the store is unavailable");
}

#[tokio::test]
async fn diff_reports_samples_and_the_audit_log_need_the_admin_token() {
    let (legacy, new) = TestUpstream::pair().await;
    let database = fresh_database().await;
    let extra = diff_store(&database);
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, &extra).await;
    for i in 0..3 {
        assert_eq!(gateway.get(&format!("/report?n={i}")).await.0, 200);
    }
    let route = wait_for_pairs(&gateway, "report", 3).await;
    let sample_id = route["paths"][0]["samples"][0].as_i64().expect("a sample");
    let (status, _) = gateway
        .admin(
            Method::POST,
            "/routes/report/rollback",
            serde_json::json!({"reason": "leaves an audit entry"}),
        )
        .await;
    assert_eq!(status, 200);

    let private = [
        "/diffs?since=1h".to_owned(),
        "/diffs?since=1h&format=md".to_owned(),
        format!("/diffs/samples/{sample_id}"),
        "/audit".to_owned(),
        "/audit?route=report".to_owned(),
    ];
    for path in &private {
        for token in [None, Some("wrong-token"), Some("")] {
            let mut request = client().get(format!("{}{path}", gateway.admin_url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("answer");
            assert_eq!(response.status(), 401, "{path} with {token:?}");
            assert!(response.headers().contains_key("www-authenticate"));
            let body = response.text().await.expect("body");
            assert!(
                body.contains("admin token") && !body.contains("report"),
                "{path}: only the refusal, no data: {body}"
            );
        }
        let (status, _) = admin_read(&gateway, path).await;
        assert_eq!(status, 200, "{path} with the token");
    }
    // The route's state stays readable; its audit entries do not.
    let open: Value = client()
        .get(format!("{}/routes/report", gateway.admin_url))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(open["phase"], "legacy");
    assert!(open.get("audit").is_none(), "{open}");
    assert_eq!(
        gateway.route("report").await["audit"][0]["reason"],
        "leaves an audit entry"
    );
    for path in ["/health", "/ready", "/metrics", "/routes"] {
        let response = client()
            .get(format!("{}{path}", gateway.admin_url))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200, "{path} stays open");
    }
    // The CLI sends its token for reads too.
    let (ok, markdown) = gateway.cli(&["diffs", "report", "--since", "1h"]).await;
    assert!(ok && markdown.contains("| report | 3 |"), "{markdown}");
    let (ok, audit) = gateway.cli(&["audit", "--route", "report"]).await;
    assert!(ok && audit.contains("leaves an audit entry"), "{audit}");

    drop(gateway);
    drop_database(&database).await;
}

const SENSITIVE_ROUTES: &str = r#"
routes:
  - name: encryption
    path: /functions/v1/encryption
    phase: shadow
    sensitive: true
  - name: report
    path: /report
    phase: shadow
"#;

/// A card number the encryption route is asked to encrypt, and a refresh token in a
/// custom header: neither may reach a stored sample.
const CARD: &str = "4111111111111111";
const REFRESH_TOKEN: &str = "rt-7c1e9a52d4b86f30";

#[tokio::test]
async fn samples_of_sensitive_routes_keep_shapes_and_digests_never_values() {
    let (legacy, new) = TestUpstream::pair().await;
    let database = fresh_database().await;
    let extra = diff_store(&database);
    let gateway = Gateway::start(SENSITIVE_ROUTES, &legacy.url, &new.url, &extra).await;

    let body = serde_json::json!({"action": "encrypt", "data": CARD}).to_string();
    let (status, side, _) = gateway
        .call(
            Method::POST,
            &format!("/functions/v1/encryption?card={CARD}"),
            Some(body.into_bytes()),
            &[
                ("content-type", "application/json"),
                ("x-refresh-token", REFRESH_TOKEN),
                ("x-card-holder", CARD),
            ],
        )
        .await;
    assert_eq!((status, side.as_str()), (200, "legacy"));
    let (status, _, _) = gateway
        .get_with("/report", &[("x-refresh-token", REFRESH_TOKEN)])
        .await;
    assert_eq!(status, 200);

    let encryption = wait_for_pairs(&gateway, "encryption", 1).await;
    let sample_id = encryption["paths"][0]["samples"][0]
        .as_i64()
        .unwrap_or_else(|| panic!("a sample of the encryption route: {encryption}"));
    let (status, sample) = admin_read(&gateway, &format!("/diffs/samples/{sample_id}")).await;
    assert_eq!(status, 200);
    let text = sample.to_string();
    assert!(
        !text.contains(CARD) && !text.contains(REFRESH_TOKEN),
        "values leaked: {text}"
    );
    // The structure is all there: keys, types, lengths, digests.
    let request = &sample["exchange"]["request"];
    assert_eq!(sample["exchange"]["sensitive"], true);
    assert!(
        request["body"]["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("<string sha256:") && a.ends_with(" len=7>")),
        "{request}"
    );
    assert!(
        request["body"]["data"]
            .as_str()
            .is_some_and(|d| d.starts_with("<string sha256:") && d.ends_with(" len=16>")),
        "{request}"
    );
    assert!(
        request["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("/functions/v1/encryption?card=<text sha256:")),
        "{request}"
    );
    let header = |name: &str| {
        request["headers"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h[0] == name))
            .map(|h| h[1].clone())
    };
    assert_eq!(header("x-refresh-token"), Some("[REDACTED]".into()));
    assert_eq!(header("content-type"), Some("application/json".into()));
    assert!(
        header("x-card-holder")
            .is_some_and(|v| v.as_str().is_some_and(|v| v.starts_with("<text sha256:")))
    );
    let served = &sample["exchange"]["served"]["body"];
    assert!(
        served["side"]
            .as_str()
            .is_some_and(|s| s.starts_with("<string sha256:")),
        "answers keep their shape: {served}"
    );
    // Nothing in the store itself either: samples and their differences, once the
    // other route's pair is stored too.
    let report = wait_for_pairs(&gateway, "report", 1).await;
    let stored: Vec<String> = {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&database)
            .await
            .expect("database");
        sqlx::query_scalar("select exchange::text || differences::text from diffs.samples")
            .fetch_all(&mut connection)
            .await
            .expect("samples")
    };
    assert!(stored.len() >= 2, "both routes have samples");
    for row in &stored {
        assert!(
            !row.contains(CARD) && !row.contains(REFRESH_TOKEN),
            "stored: {row}"
        );
    }
    // A route that is not sensitive keeps its values, but never a secret-looking header.
    let report_sample = report["paths"][0]["samples"][0].as_i64().expect("a sample");
    let (_, report_sample) = admin_read(&gateway, &format!("/diffs/samples/{report_sample}")).await;
    assert_eq!(report_sample["exchange"]["served"]["body"]["value"], 1);
    assert!(!report_sample.to_string().contains(REFRESH_TOKEN));
    // The console page says what was kept.
    let page = gateway
        .read(&format!("/ui/samples/{sample_id}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains("Sensitive route") && !page.contains(CARD));

    drop(gateway);
    drop_database(&database).await;
}

/// Pairs whose new-side dry run skipped its provider call reach the store as their own
/// count: the report says how many were not compared, and none is a compared pair or a
/// regression. Answers given before the provider call are compared as usual.
#[tokio::test]
async fn the_report_counts_pairs_not_compared_because_the_provider_was_skipped() {
    let (legacy, new) = TestUpstream::pair().await;
    let database = fresh_database().await;
    let extra = diff_store(&database);
    let routes = "routes:\n  - {name: tutor, path: /ai, phase: shadow}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, &extra).await;
    for _ in 0..6 {
        gateway.get("/ai").await;
    }
    for _ in 0..2 {
        gateway.get("/ai?invalid").await;
    }
    let started = Instant::now();
    let summary = loop {
        let overview = report(&gateway, "since=1h&route=tutor").await;
        let summary = overview["routes"][0].clone();
        let done = summary["provider_skipped"].as_i64() == Some(6)
            && summary["compared"].as_i64() == Some(2);
        if done || started.elapsed() > Duration::from_secs(20) {
            break summary;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(summary["provider_skipped"], 6, "{summary}");
    assert_eq!(summary["compared"], 2, "{summary}");
    assert_eq!(summary["regression"], 2, "{summary}");
    let markdown = gateway
        .read("/diffs?since=1h&format=md")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        markdown.contains("Not compared (provider skipped): 6 pairs"),
        "{markdown}"
    );
    let html = page(&gateway, "/ui/diffs/tutor?since=1h").await;
    assert!(
        html.contains("6 more not compared (provider skipped in the dry run)"),
        "{html}"
    );
    drop(gateway);
    drop_database(&database).await;
}
