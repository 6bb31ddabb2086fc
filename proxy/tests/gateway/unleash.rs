//! Route phases from a real Unleash 7.5.1: `flags sync` creates the toggles, a rollout
//! changed in Unleash changes the gateway's split (exactly as Unleash itself evaluates
//! users), Unleash going down leaves serving unchanged, and a gateway restarted while it
//! is down serves from its snapshot (or, without one, from the routes file).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use studyflow_gateway::identity::bucket;

use crate::harness::{Gateway, TestUpstream, UnleashServer, bearer_for};

/// Which side serves each of `users` on `path`.
async fn sides(gateway: &Gateway, path: &str, users: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(users.len());
    for user in users {
        let token = bearer_for(user);
        let (_, side, _) = gateway.get_with(path, &[("authorization", &token)]).await;
        out.push(side);
    }
    out
}

/// Whether Unleash's own evaluation (playground) enables `toggle` for `user`.
async fn unleash_enables(unleash: &UnleashServer, toggle: &str, user: &str) -> bool {
    let (status, body) = unleash
        .admin(
            Method::POST,
            "/playground",
            Some(json!({"projects": "*", "environment": "development", "context": {"appName": "gateway", "userId": user}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["features"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == toggle)
        .is_some_and(|f| f["isEnabled"] == true)
}

#[tokio::test]
async fn flags_sync_creates_the_toggles_and_unleash_drives_the_split() {
    let unleash = UnleashServer::start().await;
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: split, path: /functions/v1/split, phase: canary, percent: 30, shadow: {sample_percent: 0}}\n  - {name: later, path: /functions/v1/later}\n  - {name: gone, path: /functions/v1/gone, blocked: true}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, &unleash.gateway_config(300)).await;
    assert_eq!(
        gateway.route("split").await["source"],
        "file",
        "no toggles yet"
    );

    // `flags sync` creates one toggle per route from the routes file.
    let (ok, out) = gateway.cli_configured(&["flags", "sync"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("gateway.split") && out.contains("created") && out.contains("canary 30%"),
        "{out}"
    );
    let features = "/projects/default/features";
    let (status, split) = unleash
        .admin(Method::GET, &format!("{features}/gateway.split"), None)
        .await;
    assert_eq!(status, 200, "{split}");
    let development = split["environments"]
        .as_array()
        .and_then(|envs| envs.iter().find(|e| e["name"] == "development"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(development["enabled"], true, "{split}");
    let strategy = &development["strategies"][0];
    assert_eq!(
        (
            strategy["name"].as_str(),
            strategy["parameters"]["rollout"].as_str(),
            strategy["parameters"]["stickiness"].as_str(),
            strategy["parameters"]["groupId"].as_str(),
            strategy["parameters"]["phase"].as_str(),
            strategy["variants"][0]["name"].as_str(),
        ),
        (
            Some("flexibleRollout"),
            Some("30"),
            Some("userId"),
            Some("split"),
            Some("canary"),
            Some("canary")
        ),
        "{strategy}"
    );
    let (_, later) = unleash
        .admin(Method::GET, &format!("{features}/gateway.later"), None)
        .await;
    assert!(
        later["environments"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["name"] == "development" && e["enabled"] == false),
        "a legacy route's toggle is off: {later}"
    );
    let (status, _) = unleash
        .admin(Method::GET, &format!("{features}/gateway.gone"), None)
        .await;
    assert_eq!(status, 404, "blocked routes get no toggle");
    // Running it again updates in place.
    let (ok, out) = gateway.cli_configured(&["flags", "sync"]).await;
    assert!(ok && out.contains("updated"), "{out}");

    // `flags sync` writes a new toggle in steps (create it switched off, put its
    // strategy, switch it on); a poll between two steps sees the route on legacy (the
    // safe side) for a moment. Wait for the finished state.
    let route = gateway
        .wait_route("split", Duration::from_secs(10), |r| {
            r["source"] == "unleash" && r["percent"] == 30
        })
        .await;
    assert_eq!(
        (route["source"].as_str(), route["percent"].as_u64()),
        (Some("unleash"), Some(30))
    );

    // Change the rollout in Unleash: the gateway's split follows.
    let users: Vec<String> = (0..300).map(|i| format!("user-{i:04}")).collect();
    let at_30 = sides(&gateway, "/functions/v1/split", &users).await;
    let strategy_id = strategy["id"].as_str().expect("strategy id");
    let (status, body) = unleash
        .admin(
            Method::PATCH,
            &format!("{features}/gateway.split/environments/development/strategies/{strategy_id}"),
            Some(json!([{"op": "replace", "path": "/parameters/rollout", "value": "70"}])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let route = gateway
        .wait_route("split", Duration::from_secs(10), |r| r["percent"] == 70)
        .await;
    assert_eq!(route["percent"], 70, "{}", gateway.log());
    let at_70 = sides(&gateway, "/functions/v1/split", &users).await;
    for (i, user) in users.iter().enumerate() {
        let b = bucket("split", user);
        assert_eq!(
            at_30[i],
            if b <= 30 { "new" } else { "legacy" },
            "{user} at 30%"
        );
        assert_eq!(
            at_70[i],
            if b <= 70 { "new" } else { "legacy" },
            "{user} at 70%"
        );
    }
    let share = |sides: &[String]| sides.iter().filter(|s| *s == "new").count();
    println!(
        "split: {} of {} users on new at 30%, {} at 70%",
        share(&at_30),
        users.len(),
        share(&at_70)
    );
    assert!(share(&at_70) > share(&at_30));
    // Unleash's own evaluation agrees user by user.
    for (i, user) in users.iter().enumerate().take(40) {
        assert_eq!(
            unleash_enables(&unleash, "gateway.split", user).await,
            at_70[i] == "new",
            "{user}"
        );
    }

    // The phase is carried by the strategy variant, which the Unleash UI edits.
    let (status, body) = unleash
        .admin(
            Method::PATCH,
            &format!("{features}/gateway.split/environments/development/strategies/{strategy_id}"),
            Some(json!([{"op": "replace", "path": "/variants", "value": [
                {"name": "primary", "weight": 1000, "weightType": "variable", "stickiness": "userId",
                 "payload": {"type": "string", "value": "primary"}}]}])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let route = gateway
        .wait_route("split", Duration::from_secs(10), |r| {
            r["phase"] == "primary"
        })
        .await;
    assert_eq!(route["phase"], "primary");
}

#[tokio::test]
async fn unleash_down_leaves_serving_unchanged_and_a_restart_serves_from_the_snapshot() {
    let mut unleash = UnleashServer::start().await;
    let (legacy, new) = TestUpstream::pair().await;
    // The file says legacy; Unleash says primary.
    let routes =
        "routes:\n  - {name: main, path: /functions/v1/main, shadow: {sample_percent: 0}}\n";
    let config = unleash.gateway_config(200);
    let mut gateway = Gateway::start(routes, &legacy.url, &new.url, &config).await;
    let settings = studyflow_flags::unleash::UnleashSettings {
        url: unleash.url.clone(),
        client_token: crate::harness::UNLEASH_CLIENT_TOKEN.into(),
        admin_token: Some(crate::harness::UNLEASH_ADMIN_TOKEN.into()),
        app_name: "test".into(),
        instance_id: "test".into(),
        project: "default".into(),
        environment: "development".into(),
        refresh: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    };
    studyflow_flags::unleash::UnleashAdmin::new(&settings)
        .expect("admin")
        .expect("admin token")
        .write("main", studyflow_flags::Phase::Primary, true)
        .await
        .expect("toggle written");
    let route = gateway
        .wait_route("main", Duration::from_secs(10), |r| r["phase"] == "primary")
        .await;
    assert_eq!(route["source"], "unleash", "{route}");
    let (status, ready) = gateway.ready().await;
    assert_eq!(
        (status, &ready["sources"]["unleash"]["serving"]),
        (200, &json!("live"))
    );

    // Unleash stops: serving goes on unchanged; /ready reports the failing source.
    unleash.stop().await;
    // The event: the gateway's next poll of Unleash fails.
    let started = std::time::Instant::now();
    while gateway.ready().await.1["sources"]["unleash"]["failures"].as_u64() < Some(1)
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        let (status, side, _) = gateway.get("/functions/v1/main").await;
        assert_eq!((status, side.as_str()), (200, "new"));
    }
    let (status, ready) = gateway.ready().await;
    let source = &ready["sources"]["unleash"];
    assert_eq!(status, 200, "a failing source does not fail readiness");
    assert_eq!(
        (source["ok"].as_bool(), source["serving"].as_str()),
        (Some(false), Some("last_good")),
        "{ready}"
    );
    assert!(source["failures"].as_u64() >= Some(1));
    assert_eq!(ready["degraded"], true);
    assert!(gateway.log().contains("flag source failing"));

    // Restarted while Unleash is down: the snapshot serves.
    gateway.restart().await;
    let (_, side, _) = gateway.get("/functions/v1/main").await;
    assert_eq!(side, "new", "served from the snapshot");
    let (_, ready) = gateway.ready().await;
    assert_eq!(
        ready["sources"]["unleash"]["serving"], "snapshot",
        "{ready}"
    );

    // Without a snapshot, the routes file serves.
    let fresh = Gateway::start(routes, &legacy.url, &new.url, &config).await;
    let (_, side, _) = fresh.get("/functions/v1/main").await;
    assert_eq!(side, "legacy", "served from the routes file");
    let (status, ready) = fresh.ready().await;
    assert_eq!(
        (status, &ready["sources"]["unleash"]["serving"]),
        (200, &json!("nothing"))
    );
}
