//! Realtime with the real supabase-js client: live notifications through the gateway
//! (route in primary), a study room spanning two backend instances (broadcast, presence,
//! the server-side send API), an expired token, and presence cleaned by the heartbeat
//! timeout.

use futures_util::{SinkExt, StreamExt};
use studyflow_testkit::stack::{DEMO_USER_EMAIL, DEMO_USER_ID, Stack, StackOptions};
use studyflow_testkit::{database, tokens};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{routes_file_with, run_node_test_with};

/// Short, so the heartbeat-timeout test does not wait long; clients beat every second.
const HEARTBEAT_TIMEOUT_SECS: &str = "3";

#[tokio::test]
async fn supabase_js_realtime_rooms_presence_and_notifications() {
    let mut options = StackOptions::for_test("realtime").expect("options");
    std::fs::create_dir_all(&options.log_dir).expect("log dir");
    options.routes_file = Some(routes_file_with(&options.log_dir, "realtime", "primary"));
    options.backend_env.push((
        "REALTIME_HEARTBEAT_TIMEOUT_SECS".into(),
        HEARTBEAT_TIMEOUT_SECS.into(),
    ));
    let database = options.database.clone();
    let stack = Stack::start(options).await.expect("stack starts");
    let (second, second_url) = stack
        .start_extra_backend("backend-2")
        .await
        .expect("second backend starts");

    let bob = uuid::Uuid::new_v4();
    database::ensure_user(&stack.database_url, bob, "bob@gmail.com")
        .await
        .expect("second user");
    let secret = &stack.jwt_secret;
    let env = [
        ("STUDYFLOW_BACKEND_URL", stack.backend_url.clone()),
        ("STUDYFLOW_BACKEND2_URL", second_url.clone()),
        ("STUDYFLOW_DATABASE_URL", stack.database_url.clone()),
        ("STUDYFLOW_SERVICE_KEY", stack.service_role_key()),
        ("STUDYFLOW_USER_A", DEMO_USER_ID.to_owned()),
        ("STUDYFLOW_TOKEN_A", stack.demo_token(3600)),
        ("STUDYFLOW_USER_B", bob.to_string()),
        (
            "STUDYFLOW_TOKEN_B",
            tokens::access_token(secret, &bob.to_string(), "bob@gmail.com", 3600),
        ),
        (
            "STUDYFLOW_EXPIRED_TOKEN",
            tokens::access_token(secret, DEMO_USER_ID, DEMO_USER_EMAIL, -120),
        ),
        (
            "STUDYFLOW_HEARTBEAT_TIMEOUT_SECS",
            HEARTBEAT_TIMEOUT_SECS.to_owned(),
        ),
    ];
    run_node_test_with(&stack, "realtime.test.mjs", "new", &env).await;

    let socket_url = format!(
        "{}/realtime/v1/websocket?apikey={}&vsn=1.0.0",
        second_url.replacen("http", "ws", 1),
        stack.anon_key()
    );
    // Too large a message closes the socket.
    let mut socket = connect(&socket_url).await;
    let huge = format!(
        r#"{{"topic":"phoenix","event":"heartbeat","payload":"{}","ref":"1"}}"#,
        "x".repeat(100 * 1024)
    );
    socket.send(Message::text(huge)).await.ok();
    assert!(
        closed_with(&mut socket)
            .await
            .is_none_or(|(code, _)| code == 1008)
    );
    // Flooding closes the socket with a policy close frame.
    let mut socket = connect(&socket_url).await;
    for i in 0..150 {
        let beat =
            format!(r#"{{"topic":"phoenix","event":"heartbeat","payload":{{}},"ref":"{i}"}}"#);
        if socket.send(Message::text(beat)).await.is_err() {
            break;
        }
    }
    assert_eq!(
        closed_with(&mut socket).await,
        Some((1008, "rate limit exceeded".to_owned()))
    );
    // A joined channel whose token expires is closed as on Supabase: `system`, then
    // `phx_close`.
    let first_url = format!(
        "{}/realtime/v1/websocket?apikey={}&vsn=1.0.0",
        stack.backend_url.replacen("http", "ws", 1),
        stack.anon_key()
    );
    let mut socket = connect(&first_url).await;
    let short = tokens::access_token(secret, DEMO_USER_ID, DEMO_USER_EMAIL, 2);
    let join = serde_json::json!({"topic": "realtime:room:short", "event": "phx_join", "ref": "1", "join_ref": "1", "payload": {"config": {}, "access_token": short}});
    socket
        .send(Message::text(join.to_string()))
        .await
        .expect("join");
    let events = events_until(&mut socket, "phx_close").await;
    assert_eq!(events[0]["event"], "phx_reply");
    assert_eq!(events[0]["payload"]["status"], "ok");
    let system = events
        .iter()
        .find(|e| e["event"] == "system")
        .expect("system message");
    assert_eq!(system["payload"]["message"], "Token has expired");

    // Presence held by an instance that crashed (its liveness key is gone) is not
    // reported to new joiners.
    let topic = format!("realtime:room:crashed-{}", uuid::Uuid::new_v4().simple());
    let hash = format!("studyflow:realtime:presence:{topic}");
    let redis = redis::Client::open(stack.options.redis_url.as_str()).expect("redis url");
    let mut redis = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis connects");
    let stale = serde_json::json!({"key": "gone", "meta": {"phx_ref": "stale"}, "instance": uuid::Uuid::new_v4()});
    redis::cmd("HSET")
        .arg(&hash)
        .arg("crashed-socket")
        .arg(stale.to_string())
        .query_async::<i64>(&mut redis)
        .await
        .expect("HSET");
    // An entry without an instance cannot be judged and stays (and shows the hash is read).
    let kept = serde_json::json!({"key": "kept", "meta": {"phx_ref": "kept"}});
    redis::cmd("HSET")
        .arg(&hash)
        .arg("unknown-socket")
        .arg(kept.to_string())
        .query_async::<i64>(&mut redis)
        .await
        .expect("HSET");
    let mut socket = connect(&first_url).await;
    let join = serde_json::json!({"topic": topic, "event": "phx_join", "ref": "1", "join_ref": "1", "payload": {"config": {"presence": {"key": "me", "enabled": true}}}});
    socket
        .send(Message::text(join.to_string()))
        .await
        .expect("join");
    let events = events_until(&mut socket, "presence_state").await;
    assert_eq!(
        events.last().expect("state")["payload"],
        serde_json::json!({"kept": {"metas": [{"phx_ref": "kept"}]}})
    );
    redis::cmd("DEL")
        .arg(&hash)
        .query_async::<i64>(&mut redis)
        .await
        .expect("DEL");

    // A client that stops reading while its room is flooded is disconnected, and the
    // room keeps going.
    let mut slow = connect(&first_url).await;
    let join = serde_json::json!({"topic": "realtime:room:flood", "event": "phx_join", "ref": "1", "join_ref": "1", "payload": {"config": {}}});
    slow.send(Message::text(join.to_string()))
        .await
        .expect("join");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let big = "x".repeat(50 * 1024);
    let mut sent = 0;
    for _ in 0..600 {
        let status = http
            .post(format!("{}/realtime/v1/api/send", stack.backend_url))
            .bearer_auth(stack.service_role_key())
            .json(&serde_json::json!({"topic": "room:flood", "event": "flood", "payload": {"data": big}}))
            .send()
            .await
            .expect("send api")
            .status();
        assert_eq!(status.as_u16(), 202);
        sent += 1;
    }
    let mut received = 0;
    let drained = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(Ok(message)) = slow.next().await {
            if message.is_text() {
                received += 1;
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the slow client was disconnected");
    assert!(
        received < sent,
        "it did not get the whole flood ({received} of {sent})"
    );

    // Shutting an instance down closes its sockets with "going away".
    let mut socket = connect(&socket_url).await;
    let reader = tokio::spawn(async move { closed_with(&mut socket).await });
    second.terminate().await;
    assert_eq!(
        reader.await.expect("reader"),
        Some((1001, "server shutting down".to_owned()))
    );

    stack.stop().await;
    database::drop(&database).await.expect("drop database");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Socket {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects")
        .0
}

/// Reads until the socket ends; the close frame's code and reason, if one came.
async fn closed_with(socket: &mut Socket) -> Option<(u16, String)> {
    let read = async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(frame)) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("socket closed in time")
}

/// Reads text frames (vsn 1.0.0 objects) until one with `event`; returns them all.
async fn events_until(socket: &mut Socket, event: &str) -> Vec<serde_json::Value> {
    let read = async {
        let mut events = Vec::new();
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message {
                let value: serde_json::Value =
                    serde_json::from_str(text.as_str()).expect("json frame");
                let done = value["event"] == event;
                events.push(value);
                if done {
                    break;
                }
            }
        }
        events
    };
    tokio::time::timeout(std::time::Duration::from_secs(15), read)
        .await
        .expect("event in time")
}
