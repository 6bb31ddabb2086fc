//! The gateway's rails tried as an attacker would, and with dependencies cut through
//! relays the tests own: every spelling of a path gets the decision of the path it names,
//! no client or upstream can speak in the gateway's headers, contract errors cannot roll a
//! route back, rollback works with the fleet's Redis down, early answers are still
//! compared, and a stalled shadow side cannot grow the gateway past its budget.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Gateway, RedisNamespace, Relay, SHADOW_SECRET, TestUpstream, bearer_for, client, eventually,
    forged_bearer_for,
};

const ROUTES: &str = "routes:\n  - {name: test-keys, path: /functions/v1/test-keys, blocked: true}\n  - {name: ai-proxy, path: /functions/v1/ai-proxy, phase: primary, response_headers: {x-frame-options: DENY}}\n  - {name: echo, path: /functions/v1/echo, phase: legacy}\n";

/// Sends a raw request and returns status, headers and body.
async fn send(
    gateway: &Gateway,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = client().request(method, format!("{}{path}", gateway.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Sends `method path` as written (HTTP clients normalise dot segments themselves) and
/// returns the status and the JSON body.
async fn raw(gateway: &Gateway, method: &str, path: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gateway.url.trim_start_matches("http://"))
        .await
        .expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: studyflow.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn every_spelling_of_a_route_gets_the_decision_of_the_path_it_names() {
    let (legacy, new) = TestUpstream::pair().await;
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;

    for spelling in [
        "/functions/v1/test-keys",
        "/functions/v1/test-keys/",
        "/functions/v1/test-keys/x",
        "//functions/v1/test-keys",
        "/functions/v1/./test-keys",
        "/functions/v1/x/../test-keys",
        "/functions/v1/test%2Dkeys",
        "/functions/v1/test%2dkeys?x=1",
    ] {
        let (status, body) = raw(&gateway, "POST", spelling).await;
        assert_eq!(status, 404, "{spelling} is blocked: {body}");
        assert_eq!(body["code"], "NOT_FOUND", "{spelling}");
    }
    let (status, headers, body) =
        send(&gateway, Method::POST, "/functions/v1/test-keys/x", &[]).await;
    assert_eq!(status, 404);
    let id = headers["x-request-id"].to_str().expect("request id");
    assert_eq!(
        body["request_id"], id,
        "the gateway's answer names the request"
    );
    assert!(
        legacy.seen().is_empty() && new.seen().is_empty(),
        "no spelling of a blocked route reached an upstream: {:?} {:?}",
        legacy.seen(),
        new.seen()
    );

    // A sub-path of a function is the function: served by its phase's side, with its
    // headers, and forwarded in canonical form.
    for (spelling, forwarded) in [
        ("/functions/v1/ai-proxy/x", "/functions/v1/ai-proxy/x"),
        ("//functions/v1/ai-proxy", "/functions/v1/ai-proxy"),
        (
            "/functions/v1/ai%2Dproxy/./y?q=1",
            "/functions/v1/ai-proxy/y?q=1",
        ),
        ("/functions/v1/x/../ai-proxy", "/functions/v1/ai-proxy"),
    ] {
        new.clear();
        let (status, body) = raw(&gateway, "POST", spelling).await;
        assert_eq!(status, 200, "{spelling}");
        assert_eq!(body["uri"], forwarded, "{spelling}");
        let (status, headers, body) = send(&gateway, Method::POST, spelling, &[]).await;
        assert_eq!(status, 200, "{spelling}");
        assert_eq!(body["side"], "new", "{spelling}");
        assert_eq!(headers["x-studyflow-route"], "ai-proxy", "{spelling}");
        assert_eq!(headers["x-frame-options"], "DENY", "{spelling}");
        assert_eq!(body["uri"], forwarded, "{spelling}");
    }

    // Spellings whose meaning depends on the reader are refused, never passed on.
    legacy.clear();
    new.clear();
    for spelling in [
        "/functions/v1/ai-proxy%2Fx",
        "/functions/v1/test-keys%5Cx",
        "/functions/v1/%2e%2e/%2e%2e/%2e%2e/etc",
        "/../../etc/passwd",
        "/functions/v1/a%zz",
        "/functions/v1/a%00b",
    ] {
        let (status, body) = raw(&gateway, "GET", spelling).await;
        assert_eq!(status, 400, "{spelling}: {body}");
        assert_eq!(body["code"], "INVALID_PATH", "{spelling}");
        assert!(body["request_id"].is_string(), "{spelling}");
    }
    assert!(legacy.seen().is_empty() && new.seen().is_empty());
}

#[tokio::test]
async fn internal_headers_from_clients_and_upstreams_never_pass() {
    let (legacy, new) = TestUpstream::pair().await;
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;

    // A client's dry-run marker never reaches the serving side.
    for value in ["1", "true", SHADOW_SECRET] {
        let (status, _, body) = send(
            &gateway,
            Method::POST,
            "/functions/v1/ai-proxy",
            &[("x-studyflow-shadow", value), ("x-studyflow-route", "echo")],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["side"], "new");
        assert_eq!(body["shadow"], false, "marker `{value}` was forwarded");
    }

    // An upstream's answer cannot speak for the gateway.
    let (status, headers, _) = send(&gateway, Method::GET, "/internal-headers", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-studyflow-served-by"], "legacy");
    assert!(!headers.contains_key("x-studyflow-internal-token"));

    // The upstream learns the client's address from the gateway: a client's own
    // `X-Forwarded-For` is replaced (no proxy in front of this gateway is trusted).
    legacy.clear();
    send(
        &gateway,
        Method::GET,
        "/functions/v1/echo",
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    let seen = legacy.seen();
    assert_eq!(
        seen[0].forwarded_for.as_deref(),
        Some("127.0.0.1"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_port_that_cannot_be_bound_stops_start_up_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = std::env::temp_dir().join(format!("sf-gw-port-{port}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        format!("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:{port}\n"),
    )
    .expect("config");
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_studyflow-gateway"))
            .arg("--config")
            .arg(&config)
            .output(),
    )
    .await
    .expect("the gateway stops by itself")
    .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("admin_listen") && text.contains(&port.to_string()),
        "{text}"
    );
}

const GUARD: &str = "guard:\n  interval_ms: 100\n  window_secs: 5\n  min_requests: 10\n  max_error_rate: 0.2\n  min_pairs: 1000\n  max_mismatch_rate: 1.0\n";

#[tokio::test]
async fn errors_the_legacy_gives_too_never_roll_a_route_back() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: analytics, path: /status/500, phase: primary}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, GUARD).await;

    // Both sides answer 500 (the contract's answer to an unauthenticated call): GETs get
    // a legacy copy that agrees; POSTs get none and come from one caller.
    for i in 0..100 {
        let method = if i % 2 == 0 {
            Method::GET
        } else {
            Method::POST
        };
        let (status, side, _) = gateway.call(method, "/status/500", None, &[]).await;
        assert_eq!((status, side.as_str()), (500, "new"));
    }
    // Forged tokens claiming 20 different students, all from one machine: one caller.
    let forged: Vec<String> = (0..20)
        .map(|i| forged_bearer_for(&format!("forged-{i}")))
        .collect();
    for i in 0..60 {
        let token = &forged[i % forged.len()];
        gateway
            .call(
                Method::POST,
                "/status/500",
                None,
                &[("authorization", token)],
            )
            .await;
    }
    gateway.wait_guard_checks("analytics", 8).await;
    let view = gateway.route("analytics").await;
    assert_eq!(view["phase"], "primary", "{view}\n{}", gateway.log());
    assert_eq!(view["held"], false);
    assert!(view["counters"]["new_errors_shared"].as_u64().unwrap_or(0) > 0);
}

#[tokio::test]
async fn a_new_side_that_really_fails_is_rolled_back() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: reads, path: /functions/v1/reads, phase: primary}\n  - {name: writes, path: /functions/v1/writes, phase: primary}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, GUARD).await;
    new.fail(true);

    // Reads: the legacy, given a copy, answers 200 while new answers 500.
    let rolled = async |route: &str, method: Method, callers: usize| {
        let started = Instant::now();
        let mut i = 0;
        while started.elapsed() < Duration::from_secs(10) {
            let token = bearer_for(&format!("student-{}", i % callers));
            gateway
                .call(
                    method.clone(),
                    &format!("/functions/v1/{route}"),
                    None,
                    &[("authorization", &token)],
                )
                .await;
            i += 1;
            if gateway.route(route).await["phase"] != "primary" {
                return true;
            }
        }
        false
    };
    assert!(rolled("reads", Method::GET, 1).await, "{}", gateway.log());
    // Writes (no copy to legacy): rolled back once enough distinct callers failed.
    assert!(rolled("writes", Method::POST, 8).await, "{}", gateway.log());
    assert_eq!(gateway.route("writes").await["phase"], "legacy");
}

#[tokio::test]
async fn rollback_works_with_the_fleet_redis_down_and_reaches_the_fleet_when_it_returns() {
    let (legacy, new) = TestUpstream::pair().await;
    // The new backend behind a relay, so the test can kill it.
    let new_relay = Relay::start(new.url.trim_start_matches("http://")).await;
    let new_url = format!("http://{}", new_relay.addr);
    let redis = RedisNamespace::new();
    let target = RedisNamespace::url()
        .trim_start_matches("redis://")
        .to_owned();
    let relay = Relay::start(&target).await;
    let fleet = format!(
        "fleet:\n  redis_url: redis://{}\n  prefix: \"{}\"\n  resync_secs: 1\n  timeout_ms: 300\n",
        relay.addr, redis.prefix
    );
    let routes = "routes:\n  - {name: tutor, path: /functions/v1/tutor, phase: legacy, shadow: {sample_percent: 0}}\n  - {name: other, path: /functions/v1/other, phase: legacy}\n";
    let config = format!("{fleet}{GUARD}");
    let one = Gateway::start(routes, &legacy.url, &new_url, &config).await;
    let two = Gateway::start(routes, &legacy.url, &new_url, &config).await;
    for route in ["tutor", "other"] {
        let (status, body) = one
            .set_phase(
                route,
                json!({"phase": "canary", "percent": 100, "force": true, "reason": "canary"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    for gateway in [&one, &two] {
        let view = gateway
            .wait_route("other", Duration::from_secs(5), |v| v["phase"] == "canary")
            .await;
        assert_eq!(view["phase"], "canary");
    }

    relay.cut();
    // An operator rollback is in force at once, and says the fleet has not heard yet.
    let (status, body) = one.rollback("other", "incident, redis down").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fleet_sync"], "pending", "{body}");
    let (_, side, _) = one.get("/functions/v1/other").await;
    assert_eq!(side, "legacy");
    // Moving forward is refused while the store is down.
    let (status, body) = one
        .set_phase(
            "other",
            json!({"phase": "primary", "force": true, "reason": "forward"}),
        )
        .await;
    assert_eq!(status, 503, "{body}");

    // The new backend dies under load: the guard rolls back locally, Redis or not. Until
    // then, the gateway's own answer says what happened and names the request.
    new_relay.cut();
    let (status, _, body) = one.post("/functions/v1/tutor", b"{}").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "UPSTREAM_UNAVAILABLE", "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    let started = Instant::now();
    let mut phase = Value::Null;
    while started.elapsed() < Duration::from_secs(10) {
        one.post("/functions/v1/tutor", b"{}").await;
        phase = one.route("tutor").await["phase"].clone();
        if phase != "canary" {
            break;
        }
    }
    assert_eq!(phase, "shadow", "{}", one.log());
    let (status, side, _) = one.post("/functions/v1/tutor", b"{}").await;
    assert_eq!((status, side.as_str()), (200, "legacy"));

    // Redis returns: the second instance hears of the operator's rollback.
    relay.restore().await;
    let view = two
        .wait_route("other", Duration::from_secs(10), |v| v["phase"] == "legacy")
        .await;
    assert_eq!(view["phase"], "legacy", "{view}");
    let view = two
        .wait_route("tutor", Duration::from_secs(10), |v| v["phase"] == "shadow")
        .await;
    assert_eq!(view["phase"], "shadow", "{view}");
}

#[tokio::test]
async fn a_pair_is_compared_when_the_served_side_answers_before_the_body_is_read() {
    let (legacy, new) = TestUpstream::pair().await;
    let routes = "routes:\n  - {name: early, path: /early, phase: shadow}\n";
    let gateway = Gateway::start(routes, &legacy.url, &new.url, "").await;
    for _ in 0..50 {
        // The body follows the headers 5 ms later; the legacy answers 401 without it.
        let body = futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(br#"{"question":"x"}"#))
        });
        let response = client()
            .post(format!("{}/early", gateway.url))
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 401);
    }
    let compared = gateway.wait_counter("early", "pairs_equal", 50).await;
    let counters = gateway.route("early").await["counters"].clone();
    assert_eq!(compared, 50, "{counters}");
    assert_eq!(counters["served_failed"], 0, "{counters}");
}

#[tokio::test]
async fn a_stalled_shadow_side_cannot_grow_the_gateway_past_its_budget() {
    // A new side that accepts connections and never answers.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stalled_url = format!("http://{}", stalled.local_addr().expect("addr"));
    let mut held = Vec::new();
    tokio::spawn(async move {
        while let Ok((socket, _)) = stalled.accept().await {
            held.push(socket);
        }
    });
    let legacy = TestUpstream::start("legacy").await;
    let routes = "routes:\n  - {name: upload, path: /upload, phase: shadow}\n";
    // The default budget, 64 MiB; 200 copies of 1 MiB would hold 200 MiB without it.
    let budget_mib = 64;
    let config = "shadow:\n  timeout_ms: 60000\n  max_concurrency: 8\n";
    let gateway = Gateway::start(routes, &legacy.url, &stalled_url, config).await;
    let idle = gateway.rss_kib();
    let body = vec![b'x'; 1024 * 1024];
    for _ in 0..200 {
        let (status, side, _) = gateway
            .call(Method::POST, "/upload", Some(body.clone()), &[])
            .await;
        assert_eq!((status, side.as_str()), (200, "legacy"));
    }
    let grown = gateway.rss_kib().saturating_sub(idle) / 1024;
    let counters = gateway.route("upload").await["counters"].clone();
    println!("gateway grew {grown} MiB over idle; {counters}");
    // The budget, plus allocator slack and the pingora buffers of one request at a time.
    assert!(grown < budget_mib + 32, "grew {grown} MiB: {counters}");
    assert!(
        counters["shadows_dropped_over_budget"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{counters}"
    );
    assert!(eventually(|| legacy.seen().len() == 200).await);
}

/// Writes `bytes` on a fresh connection and reads whatever comes back within a second.
async fn raw_bytes(gateway: &Gateway, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) =
        tokio::net::TcpStream::connect(gateway.url.trim_start_matches("http://")).await
    else {
        return String::new();
    };
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A request for the blocked route, hidden where a parser that disagrees with the
/// gateway's would see a second request.
const HIDDEN: &str = "GET /functions/v1/test-keys HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn no_request_is_smuggled_past_the_gateway_and_legitimate_traffic_is_served() {
    let (legacy, new) = TestUpstream::pair().await;
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;
    let head = "POST /functions/v1/echo HTTP/1.1\r\nHost: x\r\n";
    let hidden_len = HIDDEN.len();
    let chunk = format!("{:x}\r\n{HIDDEN}\r\n0\r\n\r\n", HIDDEN.len());
    let attacks: Vec<(&str, String)> = vec![
        (
            "CL then TE",
            format!(
                "{head}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{HIDDEN}",
                5 + hidden_len
            ),
        ),
        (
            "TE then CL",
            format!("{head}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{chunk}"),
        ),
        (
            "duplicate CL",
            format!("{head}Content-Length: 0\r\nContent-Length: {hidden_len}\r\n\r\n{HIDDEN}"),
        ),
        (
            "negative CL",
            format!("{head}Content-Length: -1\r\n\r\n{HIDDEN}"),
        ),
        (
            "hex CL",
            format!("{head}Content-Length: 0x{hidden_len:x}\r\n\r\n{HIDDEN}"),
        ),
        (
            "CL with sign",
            format!("{head}Content-Length: +0\r\n\r\n{HIDDEN}"),
        ),
        (
            "TE xchunked",
            format!("{head}Transfer-Encoding: xchunked\r\nContent-Length: 0\r\n\r\n{chunk}"),
        ),
        (
            "TE space before colon",
            format!("{head}Transfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n{chunk}"),
        ),
        (
            "TE tab",
            format!("{head}Transfer-Encoding:\tchunked\r\nContent-Length: 0\r\n\r\n{chunk}"),
        ),
        (
            "TE list",
            format!(
                "{head}Transfer-Encoding: chunked, identity\r\nContent-Length: 0\r\n\r\n{chunk}"
            ),
        ),
        (
            "TE twice",
            format!(
                "{head}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 0\r\n\r\n{chunk}"
            ),
        ),
        (
            "bare LF",
            format!("POST /functions/v1/echo HTTP/1.1\nHost: x\nContent-Length: 0\n\n{HIDDEN}"),
        ),
        (
            "obs-fold CL",
            format!("{head}Content-Length: 0\r\n {hidden_len}\r\n\r\n{HIDDEN}"),
        ),
        (
            "obs-fold TE",
            format!(
                "{head}Content-Length: 0\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n{chunk}"
            ),
        ),
        (
            "oversized header",
            format!("{head}X-Big: {}\r\n\r\n", "a".repeat(200 * 1024)),
        ),
        (
            "NUL in header",
            format!("{head}X-Bad: a\0b\r\nContent-Length: 0\r\n\r\n"),
        ),
    ];

    // Legitimate students keep being served while the attacks and a slow-loris run.
    let load = {
        let url = format!("{}/functions/v1/echo", gateway.url);
        tokio::spawn(async move {
            let client = client();
            let mut served = 0;
            for _ in 0..200 {
                let ok = client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                served += usize::from(ok);
            }
            served
        })
    };
    let slow = {
        let addr = gateway.url.trim_start_matches("http://").to_owned();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut sockets = Vec::new();
            for _ in 0..50 {
                if let Ok(socket) = tokio::net::TcpStream::connect(&addr).await {
                    sockets.push(socket);
                }
            }
            for byte in b"GET /functions/v1/echo HTTP/1.1\r\nX-Slow: " {
                for socket in &mut sockets {
                    let _ = socket.write_all(&[*byte]).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut answers = Vec::new();
    for (name, attack) in &attacks {
        let answer = raw_bytes(&gateway, attack.as_bytes()).await;
        answers.push(format!(
            "{name}: {}",
            answer.lines().next().unwrap_or("(closed)")
        ));
    }
    // Invalid UTF-8 in the path and in a header value.
    for bytes in [
        &b"GET /functions/v1/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"GET /functions/v1/echo HTTP/1.1\r\nHost: x\r\nX-Name: \xc3\x28\r\n\r\n"[..],
    ] {
        let answer = raw_bytes(&gateway, bytes).await;
        answers.push(answer.lines().next().unwrap_or("(closed)").to_owned());
    }
    let oversized = answers
        .iter()
        .find(|a| a.starts_with("oversized header"))
        .expect("answer");
    assert!(oversized.contains(" 431 "), "{oversized}");
    let served = load.await.expect("load");
    slow.abort();
    println!("{}", answers.join("\n"));
    for seen in legacy.seen().into_iter().chain(new.seen()) {
        assert!(
            !seen.uri.contains("test-keys"),
            "a request for a blocked route was smuggled to an upstream: {seen:?}\n{}",
            answers.join("\n")
        );
    }
    assert_eq!(served, 200, "every legitimate request was served");
}
