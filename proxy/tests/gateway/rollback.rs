//! Flips and rollbacks through the admin API and the CLI: immediate, lossless under load,
//! audited, persisted, and refused when malformed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::{Gateway, TestUpstream};

const ROUTES: &str = "routes:\n  - {name: tutor, path: /functions/v1/tutor, phase: primary}\n  - {name: other, path: /functions/v1/other, phase: shadow}\n";

#[tokio::test]
async fn rollback_under_load_fails_no_request_and_applies_to_the_next_one() {
    let (legacy, new) = TestUpstream::pair().await;
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (stop, ok, failed, url) = (
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
            gateway.url.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let answer = client
                    .post(format!("{url}/functions/v1/tutor"))
                    .body("{}")
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = gateway.rollback("tutor", "error spike").await;
    assert_eq!(status, 200, "{body}");
    let (_, side, _) = gateway.post("/functions/v1/tutor", b"{}").await;
    assert_eq!(
        side, "legacy",
        "the first request after the rollback is served by legacy"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("{ok} requests succeeded, {failed} failed while rolling back");
    assert!(ok > 100, "load ran ({ok} requests)");
    assert_eq!(failed, 0);
    assert_eq!(gateway.route("tutor").await["phase"], "legacy");
}

#[tokio::test]
async fn cli_changes_are_audited_and_survive_a_restart() {
    let (legacy, new) = TestUpstream::pair().await;
    let mut gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;

    let (ok, out) = gateway
        .cli(&[
            "routes",
            "set",
            "other",
            "canary",
            "--percent",
            "25",
            "--force",
            "--reason",
            "first users",
        ])
        .await;
    assert!(ok, "{out}");
    assert!(out.contains("other: shadow -> canary 25%"), "{out}");
    let (ok, out) = gateway.cli(&["routes", "list"]).await;
    assert!(ok && out.contains("canary 25%"), "{out}");

    gateway.restart().await;
    let route = gateway.route("other").await;
    assert_eq!(
        (route["phase"].as_str(), route["percent"].as_u64()),
        (Some("canary"), Some(25))
    );
    assert_eq!(route["source"], "override");
    let entry = &route["audit"][0];
    assert_eq!(entry["who"], "cli-operator");
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("first users [forced past the gate")),
        "{entry}"
    );
    assert_eq!(
        (entry["from"].as_str(), entry["to"].as_str()),
        (Some("shadow"), Some("canary 25%"))
    );

    let (ok, out) = gateway
        .cli(&["rollback", "--all", "--reason", "incident 42"])
        .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("tutor: primary -> legacy") && out.contains("other: canary 25% -> legacy"),
        "{out}"
    );
    let (_, side, _) = gateway.get("/functions/v1/tutor").await;
    assert_eq!(side, "legacy");
    let (ok, out) = gateway.cli(&["audit"]).await;
    assert!(
        ok && out.contains("incident 42") && out.contains("first users"),
        "{out}"
    );

    let (ok, out) = gateway
        .cli(&["routes", "reset", "tutor", "--reason", "back to the file"])
        .await;
    assert!(ok, "{out}");
    assert_eq!(gateway.route("tutor").await["phase"], "primary");
}

#[tokio::test]
async fn malformed_changes_are_refused() {
    let (legacy, new) = TestUpstream::pair().await;
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;
    let client = reqwest::Client::new();
    let anonymous = client
        .post(format!("{}/rollback", gateway.admin_url))
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), 401);
    let cases = [
        (
            Method::POST,
            "/routes/tutor/rollback",
            json!({"reason": ""}),
            400,
        ),
        (Method::POST, "/routes/tutor/rollback", json!({}), 400),
        (
            Method::POST,
            "/routes/nope/rollback",
            json!({"reason": "x"}),
            404,
        ),
        (
            Method::PUT,
            "/routes/tutor",
            json!({"phase": "later", "reason": "x"}),
            400,
        ),
        (
            Method::PUT,
            "/routes/tutor",
            json!({"phase": "canary", "reason": "x"}),
            400,
        ),
        (
            Method::PUT,
            "/routes/tutor",
            json!({"phase": "canary", "percent": 120, "reason": "x"}),
            400,
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = gateway.admin(method, path, body.clone()).await;
        assert_eq!(status, expected, "{path} {body}: {answer}");
        assert!(answer["error"].is_string());
    }
    assert_eq!(
        gateway.route("tutor").await["phase"],
        "primary",
        "nothing changed"
    );
    let (ok, out) = gateway.cli(&["rollback", "tutor"]).await;
    assert!(
        !ok && out.contains("--reason"),
        "the CLI insists on a reason: {out}"
    );
}

#[tokio::test]
async fn a_broken_routes_file_keeps_the_table_in_force() {
    let (legacy, new) = TestUpstream::pair().await;
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;
    gateway
        .write_routes("routes:\n  - {name: tutor, path: /functions/v1/tutor, phase: sideways}\n");
    let (status, body) = gateway.admin(Method::POST, "/reload", json!({})).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown phase `sideways`")),
        "{body}"
    );
    let (_, side, _) = gateway.get("/functions/v1/tutor").await;
    assert_eq!(side, "new", "still served by the last good table");
    let routes: serde_json::Value = reqwest::get(format!("{}/routes", gateway.admin_url))
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert!(
        routes["reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("sideways"))
    );

    // A good file is picked up by the watcher without any call.
    gateway.write_routes("routes:\n  - {name: tutor, path: /functions/v1/tutor, phase: legacy}\n");
    let mut side = String::new();
    for _ in 0..100 {
        side = gateway.get("/functions/v1/tutor").await.1;
        if side == "legacy" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(side, "legacy");
}

#[tokio::test]
async fn a_routes_file_rewritten_under_its_old_modification_time_is_still_picked_up() {
    // `cp -p`, `rsync -t`, an unpacked archive, or a write that lands after the watcher
    // read the text but before it read the time: the file changes, its time does not.
    let (legacy, new) = TestUpstream::pair().await;
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;
    let file_phase = |view: &serde_json::Value| view["file_phase"].as_str().map(str::to_owned);
    assert_eq!(
        file_phase(&gateway.route("other").await).as_deref(),
        Some("shadow")
    );
    // The watcher (every 2 s) has read the file as it was.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let path = gateway.dir.join("routes.yaml");
    let before = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    gateway.write_routes(&ROUTES.replace("phase: shadow", "phase: legacy"));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(before))
        .expect("set mtime");
    let view = gateway
        .wait_route("other", Duration::from_secs(10), |v| {
            v["file_phase"] == "legacy"
        })
        .await;
    assert_eq!(
        file_phase(&view).as_deref(),
        Some("legacy"),
        "the watcher missed the new text: {view}"
    );
}

#[tokio::test]
async fn a_broken_routes_file_stops_start_up_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("sf-broken-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("routes.yaml"),
        "routes:\n  - {name: a, path: /a, phase: canary}\n",
    )
    .expect("write");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_studyflow-gateway"))
        .arg("--check-config")
        .env("STUDYFLOW_GATEWAY__ROUTES_FILE", dir.join("routes.yaml"))
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("route `a`: canary needs a `percent`"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
