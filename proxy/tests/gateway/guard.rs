//! The automatic rollback guard: a new side that fails on a route in canary is rolled
//! back within the window and held there; noise-only differences never trigger it, while
//! regressions do.

use std::time::Duration;

use crate::harness::{Gateway, TestUpstream, bearer_for};

const GUARD: &str = "guard:\n  interval_ms: 200\n  window_secs: 5\n  min_requests: 10\n  max_error_rate: 0.2\n  min_pairs: 10\n  max_mismatch_rate: 0.2\n";

/// Sends `n` GETs to `path`, each as a different user.
async fn traffic(gateway: &Gateway, path: &str, n: usize) -> Vec<(u16, String)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let token = bearer_for(&format!("student-{i}"));
        let (status, side, _) = gateway.get_with(path, &[("authorization", &token)]).await;
        out.push((status, side));
    }
    out
}

#[tokio::test]
async fn a_failing_new_side_is_rolled_back_within_the_window_and_stays_there() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: flaky, path: /functions/v1/flaky, phase: canary, percent: 100, shadow: {sample_percent: 0}}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, GUARD).await;

    // Healthy: the guard leaves the route alone.
    let answers = traffic(&gateway, "/functions/v1/flaky", 30).await;
    assert!(answers.iter().all(|(s, side)| *s == 200 && side == "new"));
    gateway.wait_guard_checks("flaky", 6).await;
    assert_eq!(gateway.route("flaky").await["phase"], "canary");

    // The new backend starts failing for every student: within the window the route is
    // back on shadow.
    new.fail(true);
    let mut failed = 0;
    let mut phase = String::new();
    for i in 0..100 {
        let token = bearer_for(&format!("failing-student-{i}"));
        let (status, _, _) = gateway
            .get_with("/functions/v1/flaky", &[("authorization", &token)])
            .await;
        failed += usize::from(status == 500);
        phase = gateway.route("flaky").await["phase"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if phase == "shadow" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("rolled back to {phase} after {failed} failed requests");
    assert_eq!(phase, "shadow", "{}", gateway.log());
    assert!(failed > 0, "clients saw the failures the guard acted on");
    let answers = traffic(&gateway, "/functions/v1/flaky", 10).await;
    assert!(
        answers
            .iter()
            .all(|(s, side)| *s == 200 && side == "legacy"),
        "users are served by legacy again: {answers:?}"
    );
    let route = gateway.route("flaky").await;
    assert_eq!(route["held"], true);
    assert_eq!(route["counters"]["auto_rollbacks"], 1);
    let entry = &route["audit"][0];
    assert_eq!(
        (entry["action"].as_str(), entry["who"].as_str()),
        (Some("auto_rollback"), Some("rollback-guard"))
    );
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.contains("error rate")),
        "{entry}"
    );
    assert!(gateway.log().contains("automatic rollback"));
    let (ok, list) = gateway.cli(&["routes", "list"]).await;
    assert!(ok && list.contains("shadow held"), "{list}");

    // No flapping: healthy again, the route stays where the guard put it.
    new.fail(false);
    traffic(&gateway, "/functions/v1/flaky", 20).await;
    gateway.wait_guard_checks("flaky", 15).await;
    let route = gateway.route("flaky").await;
    assert_eq!(
        (route["phase"].as_str(), route["held"].as_bool()),
        (Some("shadow"), Some(true))
    );

    // An operator moves it on (forcing: no pairs were compared), which lifts the hold.
    let (ok, out) = gateway
        .cli(&[
            "promote",
            "flaky",
            "--percent",
            "10",
            "--force",
            "--reason",
            "fixed the backend",
        ])
        .await;
    assert!(ok, "{out}");
    let route = gateway.route("flaky").await;
    assert_eq!(
        (route["percent"].as_u64(), route["held"].as_bool()),
        (Some(10), Some(false))
    );
}

#[tokio::test]
async fn noise_only_differences_never_trigger_a_rollback_but_regressions_do() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: noisy, path: /noisy, phase: canary, percent: 100, diff: {noise: [/id, /at]}}\n  - {name: report, path: /report, phase: canary, percent: 100, diff: {noise: [/id, /at]}}\n";
    let guard = GUARD.replace("window_secs: 5", "window_secs: 30");
    let gateway = Gateway::start(routes, &legacy.url, &new.url, &guard).await;

    traffic(&gateway, "/noisy", 30).await;
    traffic(&gateway, "/report", 30).await;
    assert!(gateway.wait_counter("noisy", "pairs_noise", 20).await >= 20);
    // The rollback applies at once; its audit entry is written to the store just after.
    let report = gateway
        .wait_route("report", Duration::from_secs(10), |r| {
            r["phase"] == "shadow" && r["audit"][0]["reason"].is_string()
        })
        .await;
    assert_eq!(report["phase"], "shadow", "regressions roll the route back");
    assert!(
        report["audit"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("mismatch rate")),
        "{report}"
    );
    // Several evaluations later, the noise-only route is still in canary.
    gateway.wait_guard_checks("noisy", 10).await;
    let noisy = gateway.route("noisy").await;
    assert_eq!(
        (
            noisy["phase"].as_str(),
            noisy["counters"]["pairs_regression"].as_u64()
        ),
        (Some("canary"), Some(0)),
        "{noisy}"
    );
    assert!(noisy["counters"]["pairs_noise"].as_u64() >= Some(20));
}
