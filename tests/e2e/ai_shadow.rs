//! AI routes in shadow through the gateway, against the real legacy stand-in (Deno) and
//! the backend, both calling the fake providers: when the provider answers an error and
//! when it answers JSON, the default `skip` gives no regression (the pairs are counted as
//! not compared, provider skipped) and the promotion gate moves on the pairs that were
//! compared; `live` compares the real answers of both sides. semantic-search (no
//! provider: the stand-in computes with the NumPy reference, the backend with candle) is
//! compared by its vector rule, with no regression.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use studyflow_testkit::stack::{DEV_ADMIN_TOKEN, Stack, StackOptions};

use crate::harness::{diff_overview, route_summary, routes_file_with_phases};

const TUTOR: &str = "ai-tutor-professional";
const RECOMMENDATIONS: &str = "ai-study-recommendations";
const SEARCH: &str = "semantic-search";

/// Requests per route: `(answered by the provider, before the provider call)`.
const WITH_PROVIDER: i64 = 4;
const BEFORE_PROVIDER: i64 = 3;
const SEARCHES: i64 = 5;

/// Sends the cases through the gateway and waits for the store to hold every pair;
/// returns the report.
async fn shadow_the_cases(stack: &Stack, expect_skipped: bool) -> Value {
    let client = reqwest::Client::new();
    let post = |function: &str, body: String| {
        client
            .post(format!("{}/functions/v1/{function}", stack.gateway_url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for i in 0..WITH_PROVIDER {
        // The provider answers 503: the legacy answers its 500 `DeepSeek API error: 503 …`.
        let body = json!({"message": format!("Explain osmosis, take {i} [[fake:status=503]]")});
        let answer = post(TUTOR, body.to_string()).await.expect("answer");
        assert_eq!(answer.status(), 500);
        assert_eq!(answer.headers()["x-studyflow-served-by"], "legacy");
        let text = answer.text().await.expect("body");
        assert!(text.contains("DeepSeek API error: 503"), "{text}");
        // The provider answers a JSON object, which becomes the recommendations.
        let body = json!({"subjects": ["Biology", format!("Chemistry {i}")], "goals": []});
        let answer = post(RECOMMENDATIONS, body.to_string())
            .await
            .expect("answer");
        assert_eq!(answer.status(), 200);
        let answer: Value = answer.json().await.expect("json");
        assert!(answer["recommendations"]["digest"].is_string(), "{answer}");
    }
    for _ in 0..BEFORE_PROVIDER {
        // Validation errors come before any provider call: compared in either mode.
        let answer = post(TUTOR, json!({"context": {}}).to_string())
            .await
            .expect("answer");
        assert_eq!(answer.status(), 400);
        let answer = post(RECOMMENDATIONS, "{not json".into())
            .await
            .expect("answer");
        assert_eq!(answer.status(), 400);
    }
    for query in [
        "What is osmosis?",
        "",
        "Spaced repetition beats cramming. ".repeat(60).as_str(),
        "東京は日本の首都です。",
        "Photosynthesis turns light into chemical energy",
    ]
    .iter()
    .take(SEARCHES as usize)
    {
        let answer = post(SEARCH, json!({"query": query}).to_string())
            .await
            .expect("answer");
        assert_eq!(answer.status(), 200);
    }
    let started = Instant::now();
    loop {
        let overview = diff_overview(stack).await;
        let counted =
            |name: &str, key: &str| route_summary(&overview, name)[key].as_i64().unwrap_or(0);
        let all = |name: &str| counted(name, "compared") + counted(name, "provider_skipped");
        let done = all(TUTOR) >= WITH_PROVIDER + BEFORE_PROVIDER
            && all(RECOMMENDATIONS) >= WITH_PROVIDER + BEFORE_PROVIDER
            && counted(SEARCH, "compared") >= SEARCHES;
        if done || started.elapsed() > Duration::from_secs(60) {
            let skipped =
                counted(TUTOR, "provider_skipped") + counted(RECOMMENDATIONS, "provider_skipped");
            assert_eq!(skipped > 0, expect_skipped, "{overview:#}");
            return overview;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start(mode: &str) -> (Stack, String) {
    let mut options = StackOptions::for_test(&format!("aishadow{mode}")).expect("options");
    options
        .backend_env
        .push(("SHADOW_PROVIDER_CALLS".into(), mode.into()));
    // A small gate, so the few compared pairs of this test are enough evidence.
    options.gateway_env.push((
        "STUDYFLOW_GATEWAY__PROMOTION__MIN_PAIRS".into(),
        BEFORE_PROVIDER.to_string(),
    ));
    let database = options.database.clone();
    std::fs::create_dir_all(&options.log_dir).expect("log dir");
    options.routes_file = Some(routes_file_with_phases(
        &options.log_dir,
        &[
            (TUTOR, "shadow"),
            (RECOMMENDATIONS, "shadow"),
            (SEARCH, "shadow"),
        ],
    ));
    (Stack::start(options).await.expect("stack starts"), database)
}

async fn finish(stack: Stack, database: &str) {
    stack.stop().await;
    studyflow_testkit::database::drop(database)
        .await
        .expect("drop database");
}

#[tokio::test]
async fn skipped_provider_calls_are_not_regressions_and_do_not_block_the_gate() {
    let (stack, database) = start("skip").await;
    let overview = shadow_the_cases(&stack, true).await;
    for name in [TUTOR, RECOMMENDATIONS] {
        let route = route_summary(&overview, name);
        assert_eq!(route["regression"], 0, "{name}: {route:#}");
        assert_eq!(
            route["provider_skipped"], WITH_PROVIDER,
            "{name}: {route:#}"
        );
        assert_eq!(route["compared"], BEFORE_PROVIDER, "{name}: {route:#}");
    }
    let search = route_summary(&overview, SEARCH);
    assert_eq!(search["compared"], SEARCHES, "{search:#}");
    assert_eq!(search["regression"], 0, "{search:#}");

    // The gate counts the compared pairs only: the route moves on.
    let promoted = reqwest::Client::new()
        .post(format!(
            "{}/routes/{RECOMMENDATIONS}/promote",
            stack.admin_url
        ))
        .bearer_auth(DEV_ADMIN_TOKEN)
        .json(&json!({"reason": "shadow pairs agree"}))
        .send()
        .await
        .expect("admin answers");
    let status = promoted.status().as_u16();
    let body: Value = promoted.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{body:#}");
    finish(stack, &database).await;
}

#[tokio::test]
async fn live_provider_calls_are_compared_honestly() {
    let (stack, database) = start("live").await;
    let overview = shadow_the_cases(&stack, false).await;
    for name in [TUTOR, RECOMMENDATIONS] {
        let route = route_summary(&overview, name);
        assert_eq!(route["provider_skipped"], 0, "{name}: {route:#}");
        assert_eq!(
            route["compared"],
            WITH_PROVIDER + BEFORE_PROVIDER,
            "{name}: {route:#}"
        );
        assert_eq!(route["regression"], 0, "{name}: {route:#}");
    }
    finish(stack, &database).await;
}
