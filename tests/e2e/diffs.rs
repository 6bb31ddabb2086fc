//! Diff reports on StudyFlow functions: two routes shadowed through the gateway, the new
//! backend deliberately answering one field of `auth-validation` differently (its
//! test-only switch). The report shows that path as a regression with a redacted sample,
//! the tutor's request id and timestamp as noise, and the CLI's Markdown and the HTML
//! page show the same numbers.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use studyflow_testkit::stack::{DEV_ADMIN_TOKEN, Stack, StackOptions};

use crate::harness::{diff_overview, route_summary, routes_file_with_phases};

fn path<'a>(route: &'a Value, shape: &str) -> &'a Value {
    route["paths"]
        .as_array()
        .and_then(|paths| paths.iter().find(|p| p["shape"] == shape))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn reports_show_a_deliberate_regression_and_the_contracts_noise() {
    let mut options = StackOptions::for_test("diffs").expect("options");
    options
        .backend_env
        .push(("TEST_ALTER_FIELD".into(), "auth-validation:/message".into()));
    // The tutor's copies call the (fake) provider, so its answers are compared; with the
    // default `skip` the pairs would be counted as not compared (provider skipped).
    options
        .backend_env
        .push(("SHADOW_PROVIDER_CALLS".into(), "live".into()));
    let database = options.database.clone();
    std::fs::create_dir_all(&options.log_dir).expect("log dir");
    let routes = routes_file_with_phases(
        &options.log_dir,
        &[
            ("auth-validation", "shadow"),
            ("ai-tutor-professional", "shadow"),
        ],
    );
    options.routes_file = Some(routes);
    let stack = Stack::start(options).await.expect("stack starts");
    let client = reqwest::Client::new();
    let anon = stack.anon_key();

    for i in 0..5 {
        let answer = client
            .post(format!(
                "{}/functions/v1/auth-validation",
                stack.gateway_url
            ))
            .header("apikey", &anon)
            .header("authorization", format!("Bearer {anon}"))
            .json(&json!({"email": format!("student{i}@gmail.com"), "action": "signup"}))
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["x-studyflow-served-by"], "legacy");
        let body: Value = answer.json().await.expect("json");
        assert_eq!(
            body["message"], "Email validation successful",
            "the client gets legacy's answer"
        );

        let answer = client
            .post(format!("{}/functions/v1/ai-tutor-professional", stack.gateway_url))
            .header("apikey", &anon)
            .json(&json!({"message": format!("Explain derivatives, part {i}"), "context": {"subject": "math"}}))
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), 200);
    }

    let started = Instant::now();
    let report = loop {
        let report = diff_overview(&stack).await;
        let done = ["auth-validation", "ai-tutor-professional"]
            .iter()
            .all(|name| route_summary(&report, name)["compared"] == 5);
        if done || started.elapsed() > Duration::from_secs(30) {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let validation = route_summary(&report, "auth-validation");
    assert_eq!(validation["regression"], 5, "{report:#}");
    let message = path(validation, "/message");
    assert_eq!(
        (
            message["differing"].as_i64(),
            message["classification"].as_str()
        ),
        (Some(5), Some("regression")),
        "{report:#}"
    );

    let tutor = route_summary(&report, "ai-tutor-professional");
    assert_eq!(tutor["compared"], 5, "{report:#}");
    for noisy in ["/metadata/requestId", "/metadata/timestamp"] {
        assert_eq!(
            path(tutor, noisy)["classification"],
            "noise (declared)",
            "{noisy}: {report:#}"
        );
    }

    // The sample of the regression: the differing field, and no credential anywhere.
    let sample_id = message["samples"][0].as_i64().expect("a sample");
    let sample: Value = reqwest::Client::new()
        .get(format!("{}/diffs/samples/{sample_id}", stack.admin_url))
        .bearer_auth(DEV_ADMIN_TOKEN)
        .send()
        .await
        .expect("sample")
        .json()
        .await
        .expect("json");
    assert_eq!(
        sample["exchange"]["shadow"]["body"]["message"],
        "Email validation successful (altered)"
    );
    let text = sample.to_string();
    assert!(!text.contains(&anon), "the anon key must be masked: {text}");
    assert!(text.contains("[REDACTED]"));

    // Markdown from the CLI and the HTML page carry the same numbers.
    let cli = tokio::process::Command::new(
        studyflow_testkit::stack::bin_dir()
            .expect("bins")
            .join("studyflow-gateway"),
    )
    .args(["diffs", "report", "--since", "1h"])
    .env("STUDYFLOW_ADMIN_URL", &stack.admin_url)
    .env("STUDYFLOW_ADMIN_TOKEN", DEV_ADMIN_TOKEN)
    .output()
    .await
    .expect("cli");
    let markdown = String::from_utf8_lossy(&cli.stdout).into_owned();
    println!("{markdown}");
    let html = reqwest::Client::new()
        .get(format!("{}/ui/diffs?since=1h", stack.admin_url))
        .bearer_auth(DEV_ADMIN_TOKEN)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    for summary in [validation, tutor] {
        let row = format!(
            "| {} | {} | {} | {} | {} |",
            summary["route"].as_str().unwrap_or(""),
            summary["compared"],
            summary["equal"],
            summary["noise"],
            summary["regression"]
        );
        assert!(markdown.contains(&row), "{row} missing from:\n{markdown}");
        let name = summary["route"].as_str().unwrap_or("");
        let start = html
            .find(&format!(">{name}</a>"))
            .expect("route in the page");
        let cells: Vec<&str> = html[start..]
            .split("<td")
            .skip(1)
            .take(4)
            .filter_map(|cell| cell.split('>').nth(1).and_then(|c| c.split('<').next()))
            .collect();
        let expected: Vec<String> = ["compared", "equal", "noise", "regression"]
            .iter()
            .map(|k| summary[*k].to_string())
            .collect();
        assert_eq!(cells, expected, "{name} in the HTML page");
    }

    stack.stop().await;
    let _ = studyflow_testkit::database::drop(&database).await;
    let _ = studyflow_testkit::database::drop(&format!("{database}_diffs")).await;
}
