//! Operator rails that tell the truth: the promotion gate counts only pairs served after
//! the exact instant of the last step; every step forward passes the gate or is audited
//! as forced, whatever the surface; idempotent routes keep collecting evidence in
//! primary and the others are judged on their canary pairs; a route with no legacy twin
//! cannot be rolled back into a 404; persisted overrides are announced and can be
//! dropped at once; the CLI names what is wrong.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Gateway, TOKEN, TestUpstream, drop_database, fresh_database};

const PROMOTION: &str = "promotion:\n  min_pairs: 10\n  max_mismatch_rate: 0.1\n  max_error_rate: 0.1\n  canary_steps: [5, 50, 100]\n";

/// A gateway whose diff store is a fresh database, flushed every 100 ms.
async fn with_store(routes: &str, legacy: &str, new: &str) -> (Gateway, String) {
    let database = fresh_database().await;
    let extra =
        format!("{PROMOTION}diff_store:\n  database_url: {database}\n  flush_interval_ms: 100\n");
    (Gateway::start(routes, legacy, new, &extra).await, database)
}

/// Waits until the diff store holds `at_least` compared pairs of `route`.
async fn stored_pairs(gateway: &Gateway, route: &str, at_least: u64) -> u64 {
    let started = Instant::now();
    loop {
        let (status, report) = gateway
            .admin(
                Method::GET,
                &format!("/diffs?since=1h&route={route}"),
                json!({}),
            )
            .await;
        let compared = report["routes"][0]["compared"].as_u64().unwrap_or(0);
        if status == 200 && compared >= at_least {
            return compared;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the store never held {at_least} pairs of {route}: {status} {report}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /routes/<route>/promote`: status and answer.
async fn promote(gateway: &Gateway, route: &str, body: Value) -> (u16, Value) {
    gateway
        .admin(Method::POST, &format!("/routes/{route}/promote"), body)
        .await
}

#[tokio::test]
async fn the_gate_counts_only_pairs_served_after_the_last_step() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes =
        "routes:\n  - {name: tasks, path: /noisy, phase: shadow, diff: {noise: [/id, /at]}}\n";
    let (gateway, database) = with_store(routes, &legacy.url, &new.url).await;

    for _ in 0..30 {
        gateway.get("/noisy").await;
    }
    stored_pairs(&gateway, "tasks", 30).await;
    let (status, answer) = promote(&gateway, "tasks", json!({"reason": "30 pairs"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["gate"]["evidence"]["compared"], 30, "{answer}");
    assert_eq!(answer["gate"]["pairs_from"], "diff_store");

    // One second later, in the same minute: none of the 30 pairs is evidence for canary.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, answer) = promote(&gateway, "tasks", json!({"reason": "too soon"})).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["gate"]["evidence"]["compared"], 0, "{answer}");

    // Pairs served in canary 5 % count, exactly.
    for _ in 0..12 {
        gateway.get("/noisy").await;
    }
    stored_pairs(&gateway, "tasks", 42).await;
    let (status, answer) = promote(&gateway, "tasks", json!({"reason": "12 more"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["gate"]["evidence"]["compared"], 12, "{answer}");
    assert_eq!(answer["to"], "canary 50%");
    drop(gateway);
    drop_database(&database).await;
}

#[tokio::test]
async fn routes_that_are_not_idempotent_are_judged_on_their_canary_pairs_in_primary() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: writes, path: /noisy, phase: canary, percent: 50, diff: {noise: [/id, /at]}}\n  - {name: checks, path: /functions/v1/checks, phase: primary, diff: {noise: [/side], idempotent: true}}\n";
    let (gateway, database) = with_store(routes, &legacy.url, &new.url).await;

    // An idempotent route in primary copies writes to legacy; the other does not.
    let (status, _, _) = gateway.post("/functions/v1/checks", b"{}").await;
    assert_eq!(status, 200);
    let posted = |seen: Vec<crate::harness::Seen>, path: &str| {
        seen.iter()
            .filter(|s| s.method == "POST" && s.uri.starts_with(path))
            .count()
    };
    assert!(
        crate::harness::eventually(|| posted(legacy.shadows(), "/functions/v1/checks") == 1).await,
        "the idempotent route's write reached legacy as a copy"
    );
    let view = gateway.route("checks").await;
    assert!(
        view["copies"]
            .as_str()
            .is_some_and(|c| c.contains("every method served by new is copied to legacy")),
        "{view}"
    );

    // Canary pairs of the write route, then primary where its writes get no copies.
    for i in 0..20 {
        let token = crate::harness::bearer_for(&format!("student-{i}"));
        gateway
            .get_with("/noisy", &[("authorization", token.as_str())])
            .await;
    }
    stored_pairs(&gateway, "writes", 20).await;
    let (status, answer) = promote(&gateway, "writes", json!({"reason": "to primary"})).await;
    assert_eq!((status, answer["to"].as_str()), (200, Some("canary 100%")));
    let (status, answer) = gateway
        .set_phase(
            "writes",
            json!({"phase": "primary", "force": true, "reason": "primary"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    legacy.clear();
    for _ in 0..5 {
        gateway.post("/noisy", b"{}").await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(posted(legacy.shadows(), "/noisy"), 0, "no copy of a write");
    let view = gateway.route("writes").await;
    assert!(
        view["copies"]
            .as_str()
            .is_some_and(|c| c.contains("writes are not (not idempotent")),
        "{view}"
    );
    // Its gate for decommissioning counts the canary pairs and says so.
    let (status, answer) = promote(&gateway, "writes", json!({"reason": "done"})).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["gate"]["evidence"]["compared"]
            .as_u64()
            .is_some_and(|n| n >= 20),
        "{answer}"
    );
    assert!(
        answer["gate"]["counted"]
            .as_str()
            .is_some_and(|c| c.contains("pairs served in canary")),
        "{answer}"
    );
    drop(gateway);
    drop_database(&database).await;
}

#[tokio::test]
async fn every_step_forward_passes_the_gate_or_is_audited_as_forced() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: auth, path: /functions/v1/auth, phase: legacy}\n  - {name: monitor, path: /functions/v1/monitor, phase: legacy}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, PROMOTION).await;

    // The admin API's `set` straight to decommissioned: refused with the evidence.
    let (status, answer) = gateway
        .set_phase(
            "auth",
            json!({"phase": "decommissioned", "reason": "skip ahead"}),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["gate"]["evidence"]["compared"], 0);
    assert_eq!(gateway.route("auth").await["phase"], "legacy");
    // The CLI says the same.
    let (ok, out) = gateway
        .cli(&[
            "routes",
            "set",
            "auth",
            "decommissioned",
            "--reason",
            "skip",
        ])
        .await;
    assert!(!ok && out.contains("[FAIL] compared pairs"), "{out}");
    // Forced, it goes, and the audit log says it was forced past which checks.
    let (ok, out) = gateway
        .cli(&[
            "routes",
            "set",
            "auth",
            "decommissioned",
            "--force",
            "--reason",
            "drill",
        ])
        .await;
    assert!(ok, "{out}");
    let entry = &gateway.route("auth").await["audit"][0];
    assert_eq!(entry["action"], "promote_forced", "{entry}");
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("drill [forced past the gate: compared pairs 0")),
        "{entry}"
    );
    // Moving back never needs the gate.
    let (status, answer) = gateway
        .set_phase("auth", json!({"phase": "legacy", "reason": "back"}))
        .await;
    assert_eq!((status, answer["action"].as_str()), (200, Some("set")));
    // legacy → shadow serves no user on new: no evidence needed.
    let (status, answer) = gateway
        .set_phase(
            "auth",
            json!({"phase": "shadow", "reason": "start comparing"}),
        )
        .await;
    assert_eq!((status, answer["action"].as_str()), (200, Some("promote")));

    // The console's form, "force" unticked: refused, nothing audited.
    let (session, csrf) = crate::console::sign_in(&gateway, "ada").await;
    let answer = crate::console::browser()
        .post(format!("{}/ui/routes/monitor/phase", gateway.admin_url))
        .header("cookie", session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("phase", "primary"),
            ("reason", "looks done"),
        ])
        .send()
        .await
        .expect("console");
    assert_eq!(answer.status(), 303);
    let view = gateway.route("monitor").await;
    assert_eq!(view["phase"], "legacy", "{view}");
    assert_eq!(view["audit"].as_array().map(Vec::len), Some(0), "{view}");
}

#[tokio::test]
async fn a_route_with_no_legacy_twin_is_never_rolled_back_into_a_404() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: stream, path: /functions/v1/stream, legacy: none, phase: decommissioned}\n  - {name: tutor, path: /functions/v1/tutor, phase: primary}\n";
    let gateway = Gateway::start(
        routes,
        &legacy.url,
        &new.url,
        "guard:\n  interval_ms: 100\n  window_secs: 5\n  min_requests: 5\n  max_error_rate: 0.1\n  min_identities: 1\n",
    )
    .await;

    let (status, answer) = gateway.rollback("stream", "incident").await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("no legacy twin")),
        "{answer}"
    );
    let (status, _) = gateway
        .set_phase("stream", json!({"phase": "legacy", "reason": "x"}))
        .await;
    assert_eq!(status, 409);
    let (ok, out) = gateway
        .cli(&["rollback", "--all", "--reason", "incident"])
        .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("tutor: primary -> legacy") && out.contains("left alone: stream"),
        "{out}"
    );
    assert_eq!(gateway.route("stream").await["phase"], "decommissioned");
    let (status, side, _) = gateway.get("/functions/v1/stream").await;
    assert_eq!((status, side.as_str()), (200, "new"));

    // The guard leaves it alone too, however it fails.
    new.fail(true);
    for _ in 0..30 {
        gateway.get("/functions/v1/stream").await;
    }
    gateway.wait_guard_checks("stream", 5).await;
    assert_eq!(gateway.route("stream").await["phase"], "decommissioned");

    // The console offers no rollback for it.
    let page = gateway
        .read("/ui/routes/stream")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        !page.contains("/ui/routes/stream/rollback") && page.contains("no legacy twin"),
        "{page}"
    );

    // A routes file that puts such a route anywhere but decommissioned is refused.
    gateway.write_routes(
        "routes:\n  - {name: stream, path: /functions/v1/stream, legacy: none, phase: legacy}\n",
    );
    let (ok, out) = gateway.cli(&["reload"]).await;
    assert!(!ok && out.contains("no legacy twin"), "{out}");
}

#[tokio::test]
async fn persisted_overrides_are_announced_at_start_and_can_all_be_dropped() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: auth, path: /functions/v1/auth, phase: legacy}\n  - {name: goals, path: /functions/v1/goals, phase: legacy}\n";
    let mut gateway = Gateway::start(routes, &legacy.url, &new.url, "").await;
    for route in ["auth", "goals"] {
        let (ok, out) = gateway
            .cli(&["routes", "set", route, "shadow", "--reason", "try it"])
            .await;
        assert!(ok, "{out}");
    }
    gateway.restart().await;
    let log = gateway.log();
    assert!(
        log.contains("operator override in force") && log.contains("try it"),
        "{log}"
    );
    let (ok, out) = gateway.cli(&["routes", "list"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("Overrides in force") && out.contains("by cli-operator"),
        "{out}"
    );
    let (ok, out) = gateway
        .cli(&["routes", "reset", "--all", "--reason", "start clean"])
        .await;
    assert!(ok, "{out}");
    let (_, out) = gateway.cli(&["routes", "list"]).await;
    assert!(!out.contains("Overrides in force"), "{out}");
    assert_eq!(gateway.route("auth").await["phase"], "legacy");
}

#[tokio::test]
async fn output_cut_short_by_its_reader_is_not_an_error() {
    // `$gw diffs report ... | head -8` under `set -o pipefail`: once `head` has its lines
    // the CLI's next write finds the pipe closed, which ended it in a panic (exit 101).
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: auth, path: /functions/v1/auth, phase: legacy}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, "").await;
    for args in [&["routes", "list"][..], &["routes", "show", "auth"]] {
        let (ok, stderr) = gateway.cli_unread(args).await;
        assert!(ok && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn the_cli_names_what_is_wrong_and_shows_a_route_readably() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: auth, path: /functions/v1/auth, phase: shadow}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, "").await;

    let (ok, out) = gateway
        .cli(&["routes", "set", "auth", "canry", "--reason", "typo"])
        .await;
    assert!(!ok && out.contains("unknown phase `canry`"), "{out}");
    let (ok, out) = gateway.cli(&["diffs", "report", "--route", "nope"]).await;
    assert!(!ok && out.contains("no route named `nope`"), "{out}");
    let (ok, out) = gateway.cli(&["routes", "show", "auth"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("phase      shadow (from file)")
            && out.contains("copies     every method served by legacy is copied to new")
            && out.lines().count() < 20,
        "{out}"
    );
    let (ok, out) = gateway
        .cli(&["routes", "show", "auth", "--format", "json"])
        .await;
    assert!(ok && out.trim_start().starts_with('{'), "{out}");

    // No name, no change: the audit log never records a made-up operator.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_studyflow-gateway"))
        .args(["rollback", "auth", "--reason", "who?"])
        .env("STUDYFLOW_ADMIN_URL", &gateway.admin_url)
        .env("STUDYFLOW_ADMIN_TOKEN", TOKEN)
        .env_remove("STUDYFLOW_OPERATOR")
        .env_remove("USER")
        .output()
        .await
        .expect("cli runs");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && err.contains("--as NAME"),
        "{err}"
    );
    assert_eq!(gateway.route("auth").await["phase"], "shadow");

    // Help on every argument, and a version.
    for args in [
        &["routes", "set", "-h"][..],
        &["routes", "reset", "-h"],
        &["routes", "show", "-h"],
        &["rollback", "-h"],
        &["promote", "-h"],
        &["audit", "-h"],
        &["diffs", "report", "-h"],
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_studyflow-gateway"))
            .args(args)
            .output()
            .await
            .expect("cli runs");
        let help = String::from_utf8_lossy(&output.stdout);
        let undocumented: Vec<&str> = help
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                (l.starts_with("--") || l.starts_with('<')) && !l.contains("  ")
            })
            .collect();
        assert!(
            undocumented.is_empty(),
            "{args:?}: {undocumented:?}\n{help}"
        );
    }
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_studyflow-gateway"))
        .arg("--version")
        .output()
        .await
        .expect("cli runs");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("studyflow-gateway "));
}
