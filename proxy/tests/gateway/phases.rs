//! Each phase serves from its side and shadows the other; pass-through, blocked routes,
//! response headers and the write policy.

use reqwest::Method;

use crate::harness::{Gateway, SHADOW_SECRET, TestUpstream, eventually};

const ROUTES: &str = r#"
routes:
  - {name: off, path: /functions/v1/off, phase: legacy}
  - {name: watch, path: /functions/v1/watch, phase: shadow}
  - {name: main, path: /functions/v1/main, phase: primary}
  - {name: done, path: /functions/v1/done, phase: decommissioned}
  - name: secured
    path: /functions/v1/secured
    phase: legacy
    response_headers:
      x-frame-options: DENY
      strict-transport-security: max-age=63072000; includeSubDomains; preload
  - {name: test-keys, path: /functions/v1/test-keys, blocked: true}
"#;

async fn setup() -> (TestUpstream, TestUpstream, Gateway) {
    let (legacy, new) = TestUpstream::pair().await;
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;
    (legacy, new, gateway)
}

#[tokio::test]
async fn each_phase_serves_from_its_side_and_copies_to_the_other() {
    let (legacy, new, gateway) = setup().await;
    let cases = [
        ("off", "legacy", None),
        ("watch", "legacy", Some(&new)),
        ("main", "new", Some(&legacy)),
        ("done", "new", None),
    ];
    for (route, serving, shadow_side) in cases {
        legacy.clear();
        new.clear();
        let (status, side, body) = gateway.get(&format!("/functions/v1/{route}?q=1")).await;
        assert_eq!((status, side.as_str()), (200, serving), "{route}");
        assert_eq!(
            body["side"], serving,
            "{route}: the {serving} upstream answered"
        );
        assert_eq!(body["uri"], format!("/functions/v1/{route}?q=1"));
        match shadow_side {
            Some(target) => {
                assert!(
                    eventually(|| target.shadows().len() == 1).await,
                    "{route}: one copy reaches the other side"
                );
                let copy = &target.shadows()[0];
                assert_eq!(copy.uri, format!("/functions/v1/{route}?q=1"));
                assert!(copy.request_id.is_some(), "the copy carries the request id");
                // The two test upstreams answer differently, so the pair is counted as such.
                assert_eq!(gateway.wait_counter(route, "pairs_different", 1).await, 1);
            }
            None => {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                assert!(
                    legacy.shadows().is_empty() && new.shadows().is_empty(),
                    "{route}: no copy"
                );
            }
        }
        let served = if serving == "legacy" { &legacy } else { &new };
        assert_eq!(served.seen().iter().filter(|s| !s.shadow).count(), 1);
    }
}

#[tokio::test]
async fn unmatched_paths_pass_through_to_legacy_untouched() {
    let (legacy, new, gateway) = setup().await;
    let (status, side, body) = gateway.get("/rest/v1/tasks?select=*&status=eq.todo").await;
    assert_eq!((status, side.as_str()), (200, "legacy"));
    assert_eq!(body["uri"], "/rest/v1/tasks?select=*&status=eq.todo");
    let (_, side, body) = gateway
        .call(
            Method::POST,
            "/auth/v1/token?grant_type=password",
            Some(br#"{"email":"a@b.c"}"#.to_vec()),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(side, "legacy");
    assert_eq!(body["body_len"], 17);
    assert!(
        new.seen().is_empty(),
        "pass-through traffic never reaches the new backend"
    );
    assert_eq!(legacy.seen().len(), 2);
}

#[tokio::test]
async fn blocked_routes_are_answered_by_the_gateway() {
    let (legacy, new, gateway) = setup().await;
    let (status, _, body) = gateway.get("/functions/v1/test-keys").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "NOT_FOUND");
    let (status, _, _) = gateway.post("/functions/v1/test-keys", b"{}").await;
    assert_eq!(status, 404);
    assert!(legacy.seen().is_empty() && new.seen().is_empty());
}

#[tokio::test]
async fn response_header_policy_is_applied() {
    let (_legacy, _new, gateway) = setup().await;
    let response = reqwest::get(format!("{}/functions/v1/secured", gateway.url))
        .await
        .expect("answer");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=63072000; includeSubDomains; preload"
    );
    assert_eq!(response.headers()["x-studyflow-route"], "secured");
    let other = reqwest::get(format!("{}/functions/v1/off", gateway.url))
        .await
        .expect("answer");
    assert!(other.headers().get("x-frame-options").is_none());
}

#[tokio::test]
async fn writes_are_never_copied_to_legacy_by_default() {
    let (legacy, new, gateway) = setup().await;
    // Primary: new serves; a POST is not copied to legacy, a GET is.
    let (_, side, _) = gateway.post("/functions/v1/main", b"{\"a\":1}").await;
    assert_eq!(side, "new");
    gateway.get("/functions/v1/main").await;
    assert!(eventually(|| legacy.shadows().len() == 1).await);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(legacy.shadows().len(), 1);
    assert_eq!(
        legacy.shadows()[0].method,
        "GET",
        "only the GET reached legacy"
    );

    // Shadow: a POST is copied to the new backend as a dry run (marked), with its body.
    let (_, side, _) = gateway.post("/functions/v1/watch", b"{\"a\":1}").await;
    assert_eq!(side, "legacy");
    assert!(eventually(|| new.shadows().len() == 1).await);
    assert_eq!(new.shadows()[0].body_len, 7);
}

#[tokio::test]
async fn a_copy_made_by_the_gateway_is_not_copied_again_and_a_forged_marker_changes_nothing() {
    let (_legacy, new, gateway) = setup().await;
    // A copy coming back (the new side is itself a gateway of this deployment).
    let (status, side, _) = gateway
        .get_with(
            "/functions/v1/watch",
            &[("x-studyflow-shadow", SHADOW_SECRET)],
        )
        .await;
    assert_eq!((status, side.as_str()), (200, "legacy"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(new.seen().is_empty());
    // A client's marker is removed: the request is an ordinary one, copied as usual.
    let (status, _, _) = gateway
        .get_with("/functions/v1/watch", &[("x-studyflow-shadow", "1")])
        .await;
    assert_eq!(status, 200);
    assert!(eventually(|| new.shadows().len() == 1).await);
}
