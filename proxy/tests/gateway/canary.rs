//! Canary: sticky buckets equal to Unleash's, the observed split, and raising the
//! percentage.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use studyflow_gateway::identity::bucket;

use crate::harness::{Gateway, TestUpstream, bearer_for};

#[test]
fn buckets_match_the_unleash_client_specification() {
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/unleash-bucket-vectors.json"))
            .expect("fixture");
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10);
    for case in cases {
        let (group, user) = (
            case["group"].as_str().expect("group"),
            case["user"].as_str().expect("user"),
        );
        let percentage = case["percentage"].as_u64().expect("percentage");
        let enabled = u64::from(bucket(group, user)) <= percentage && percentage > 0;
        assert_eq!(
            enabled,
            case["enabled"].as_bool().expect("enabled"),
            "{}",
            case["from"]
        );
    }
    for vector in fixture["normalized"].as_array().expect("normalized") {
        let got = bucket(
            vector["group"].as_str().expect("group"),
            vector["user"].as_str().expect("user"),
        );
        assert_eq!(
            u64::from(got),
            vector["bucket"].as_u64().expect("bucket"),
            "{}",
            vector["from"]
        );
    }
}

/// Which side serves each of `users`, asked through the gateway with their tokens.
async fn sides(gateway: &Gateway, users: &[String]) -> HashMap<String, String> {
    let gateway = Arc::new(gateway.url.clone());
    let client = reqwest::Client::new();
    let mut out = HashMap::new();
    for batch in users.chunks(64) {
        let calls = batch.iter().map(|user| {
            let (client, url, user) = (client.clone(), Arc::clone(&gateway), user.clone());
            async move {
                let response = client
                    .request(Method::GET, format!("{url}/functions/v1/split"))
                    .header("authorization", bearer_for(&user))
                    .send()
                    .await
                    .expect("answer");
                let side = response.headers()["x-studyflow-served-by"]
                    .to_str()
                    .expect("header")
                    .to_owned();
                (user, side)
            }
        });
        out.extend(futures_util::future::join_all(calls).await);
    }
    out
}

#[tokio::test]
async fn canary_split_is_sticky_close_to_the_setting_and_only_grows() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: split, path: /functions/v1/split, phase: canary, percent: 30, shadow: {sample_percent: 0}}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, "").await;

    let users: Vec<String> = (0..10_000).map(|i| format!("user-{i:05}")).collect();
    let at_30 = sides(&gateway, &users).await;
    let on_new = at_30.values().filter(|s| *s == "new").count();
    let share = on_new as f64 / users.len() as f64 * 100.0;
    println!(
        "canary 30%: {on_new} of {} users on new ({share:.2}%)",
        users.len()
    );
    assert!(
        (28.0..=32.0).contains(&share),
        "share {share:.2}% is not within 30 ± 2"
    );
    for (user, side) in &at_30 {
        let expected = if bucket("split", user) <= 30 {
            "new"
        } else {
            "legacy"
        };
        assert_eq!(side, expected, "{user} is bucketed as Unleash would");
    }

    // Sticky: asking again gives every user the same side.
    let again = sides(&gateway, &users[..1000]).await;
    assert!(again.iter().all(|(user, side)| &at_30[user] == side));

    // Raising the percentage keeps everyone who was on new there.
    let (status, _) = gateway
        .set_phase(
            "split",
            json!({"phase": "canary", "percent": 60, "force": true, "reason": "widen"}),
        )
        .await;
    assert_eq!(status, 200);
    let at_60 = sides(&gateway, &users).await;
    assert!(
        at_30
            .iter()
            .filter(|(_, s)| *s == "new")
            .all(|(user, _)| at_60[user] == "new")
    );
    let share = at_60.values().filter(|s| *s == "new").count() as f64 / users.len() as f64 * 100.0;
    println!("canary 60%: {share:.2}% on new");
    assert!(
        (58.0..=62.0).contains(&share),
        "share {share:.2}% is not within 60 ± 2"
    );
}
