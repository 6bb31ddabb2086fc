//! Shadow traffic never slows or fails the client: slow or dead shadow sides, bounds, and
//! streams that pass through unbuffered. Also the fallback to legacy when new is down.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;

use crate::harness::{Gateway, RefusedPort, Relay, TestUpstream, eventually};

#[tokio::test]
async fn a_slow_or_dead_shadow_side_does_not_change_the_client_answer() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: slow, path: /slow-new, phase: shadow}\n  - {name: dead, path: /dead, phase: shadow, new: nowhere}\n";
    let dead = RefusedPort::hold();
    let extra = format!(
        "upstreams:\n  nowhere: {}\nshadow:\n  timeout_ms: 1000\n",
        dead.url()
    );
    let gateway = Gateway::start(routes, &legacy.url, &new.url, &extra).await;

    // Legacy answers /slow-new at once; the new side sleeps 5 s on it.
    let started = Instant::now();
    let (status, side, body) = gateway.get("/slow-new").await;
    let elapsed = started.elapsed();
    assert_eq!(
        (status, side.as_str(), body["side"].as_str()),
        (200, "legacy", Some("legacy"))
    );
    println!("client latency with a 5 s shadow side: {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(2),
        "the shadow side's 5 s do not reach the client ({elapsed:?})"
    );
    assert_eq!(gateway.wait_counter("slow", "shadow_timeouts", 1).await, 1);

    let started = Instant::now();
    let (status, side, body) = gateway.get("/dead").await;
    assert_eq!(
        (status, side.as_str(), body["side"].as_str()),
        (200, "legacy", Some("legacy"))
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(gateway.wait_counter("dead", "shadow_errors", 1).await, 1);
}

#[tokio::test]
async fn bounds_drop_shadows_and_count_them_without_failing_clients() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: big, path: /big, phase: shadow}\n  - {name: slow, path: /slow, phase: primary, shadow: {writes: never}}\n";
    let extra = "shadow:\n  max_body_bytes: 1024\n  max_concurrency: 1\n  queue_size: 1\n  timeout_ms: 8000\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, extra).await;

    let (status, side, body) = gateway
        .call(Method::POST, "/big", Some(vec![b'x'; 4096]), &[])
        .await;
    assert_eq!((status, side.as_str()), (200, "legacy"));
    assert_eq!(
        body["body_len"], 4096,
        "the client's body went through whole"
    );
    assert_eq!(
        gateway
            .wait_counter("big", "shadows_dropped_body_too_large", 1)
            .await,
        1
    );

    // /slow on primary: new serves (sleeping 5 s), copies go to legacy (also 5 s): with one
    // slot and a queue of one, most of ten concurrent copies are dropped.
    let calls = (0..10).map(|_| gateway.get("/slow"));
    let answers = futures_util::future::join_all(calls).await;
    assert!(
        answers
            .iter()
            .all(|(status, side, _)| *status == 200 && side == "new")
    );
    let route = gateway.route("slow").await;
    let dropped = route["counters"]["shadows_dropped_queue_full"]
        .as_u64()
        .unwrap_or(0);
    println!("queue overflow: {dropped} of 10 copies dropped");
    assert!(dropped >= 5, "{route}");
}

#[tokio::test]
async fn server_sent_events_reach_the_client_as_they_come() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: stream, path: /sse, phase: shadow}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, "").await;
    let started = Instant::now();
    let response = reqwest::get(format!("{}/sse", gateway.url))
        .await
        .expect("answer");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let first = stream.next().await.expect("a first chunk").expect("bytes");
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("\"n\":0"));
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.expect("bytes"));
    }
    let end_at = started.elapsed();
    println!("first event after {first_at:?}, stream ended after {end_at:?}");
    assert!(String::from_utf8_lossy(&rest).contains("\"n\":2"));
    assert!(
        end_at - first_at >= Duration::from_millis(1500),
        "the first event arrived before the stream ended"
    );
    // The copy to the new side was compared once the stream ended.
    assert_eq!(
        gateway.wait_counter("stream", "pairs_different", 1).await,
        1
    );
}

#[tokio::test]
async fn a_dead_new_side_falls_back_to_legacy_for_idempotent_requests() {
    let legacy = TestUpstream::start("legacy").await;
    let routes = "routes:\n  - {name: main, path: /functions/v1/main, phase: primary}\n";
    let dead = RefusedPort::hold();
    let gateway = Gateway::start(routes, &legacy.url, &dead.url(), "").await;
    let (status, side, body) = gateway.get("/functions/v1/main").await;
    assert_eq!(
        (status, side.as_str(), body["side"].as_str()),
        (200, "legacy", Some("legacy"))
    );
    assert_eq!(gateway.route("main").await["counters"]["fallbacks"], 1);
    let (status, _, _) = gateway.post("/functions/v1/main", b"{}").await;
    assert_eq!(status, 502, "a write is not replayed on the other side");
}

#[tokio::test]
async fn pairs_whose_provider_call_the_new_side_skipped_are_not_regressions() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: tutor, path: /ai, phase: shadow}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, "").await;

    // The legacy's provider fails (500) while the new side's dry run skipped its call: the
    // client gets the legacy's answer, and the pair is neither evidence nor a regression.
    for _ in 0..10 {
        let (status, side, _) = gateway.get("/ai").await;
        assert_eq!((status, side.as_str()), (500, "legacy"));
    }
    assert_eq!(
        gateway
            .wait_counter("tutor", "pairs_provider_skipped", 10)
            .await,
        10
    );
    // Answers given before any provider call are still compared.
    for _ in 0..3 {
        gateway.get("/ai?invalid").await;
    }
    assert_eq!(
        gateway.wait_counter("tutor", "pairs_regression", 3).await,
        3
    );
    let counters = &gateway.route("tutor").await["counters"];
    assert_eq!(counters["pairs_regression"], 3, "{counters}");
    assert_eq!(counters["pairs_equal"], 0, "{counters}");
}

/// Copies keep their connections to the shadow side between requests. When that side
/// closes them while they are idle (a restart, its idle timeout), the next copies go
/// out on new connections: none fails for having been sent on a closed one.
#[tokio::test]
async fn copies_outlive_the_shadow_side_closing_its_idle_connections() {
    let (legacy, new) = TestUpstream::pair().await;
    let relay = Relay::start(new.url.trim_start_matches("http://")).await;
    let routes = "routes:\n  - {name: kept, path: /kept, phase: shadow}\n";
    let gateway = Gateway::start(routes, &legacy.url, &format!("http://{}", relay.addr), "").await;
    let copies = || new.shadows().len();

    for _ in 0..3 {
        assert_eq!(gateway.get("/kept").await.1, "legacy");
    }
    assert!(eventually(|| copies() == 3).await, "3 copies: {}", copies());
    // Their answers are in too (the shadow side has them before the gateway does), so
    // the cut below finds their connections idle, not carrying an answer.
    assert_eq!(gateway.wait_counter("kept", "pairs_different", 3).await, 3);

    // The shadow side closes every connection, the gateway's idle ones among them, and
    // takes new ones again.
    // Restored only once refused, or its connections would never see the refusal.
    relay.cut_until_refused().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    relay.restore().await;

    for _ in 0..5 {
        assert_eq!(gateway.get("/kept").await.1, "legacy");
    }
    assert!(eventually(|| copies() == 8).await, "8 copies: {}", copies());
    let counters = &gateway.route("kept").await["counters"];
    assert_eq!(counters["shadows_sent"], 8);
    assert_eq!(counters["shadow_errors"], 0, "{counters}");
}

/// A new side that answers the first request on each connection and closes the
/// connection, unanswered, when a second one arrives on it: as a server closing an idle
/// connection does when a request crosses its close. Counts the requests it reads.
async fn closing_after_one_answer() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counted = std::sync::Arc::clone(&counted);
            tokio::spawn(async move {
                let mut answered = false;
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buffer[..n]);
                    // GETs without a body: a request ends with its head.
                    if !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        continue;
                    }
                    head.clear();
                    counted.fetch_add(1, Ordering::SeqCst);
                    if answered {
                        return;
                    }
                    answered = true;
                    let body = br#"{"side":"new"}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.write_all(body).await;
                }
            });
        }
    });
    (url, requests)
}

/// A copy sent on a kept-alive connection that the shadow side closes as the request
/// arrives is sent again on a new connection: compared, not lost as an error.
#[tokio::test]
async fn a_copy_whose_kept_connection_closes_as_it_is_sent_goes_out_again() {
    use std::sync::atomic::Ordering;

    let legacy = TestUpstream::start("legacy").await;
    let (new_url, received) = closing_after_one_answer().await;
    let routes = "routes:\n  - {name: crossing, path: /crossing, phase: shadow}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new_url, "").await;

    assert_eq!(gateway.get("/crossing").await.1, "legacy");
    // The first copy is answered and compared; its connection is kept by then.
    assert_eq!(
        gateway.wait_counter("crossing", "pairs_different", 1).await,
        1
    );
    // The second copy takes that connection, which the shadow side closes unanswered.
    assert_eq!(gateway.get("/crossing").await.1, "legacy");
    assert_eq!(
        gateway.wait_counter("crossing", "pairs_different", 2).await,
        2
    );
    let counters = &gateway.route("crossing").await["counters"];
    assert_eq!(counters["shadows_sent"], 2, "{counters}");
    assert_eq!(counters["shadow_errors"], 0, "{counters}");
    // Three requests read: the second copy once on the kept connection, once anew.
    assert_eq!(received.load(Ordering::SeqCst), 3);
}
