//! Realtime with the real supabase-js client: live notifications through the gateway
//! (route in primary), a study room spanning two backend instances (broadcast, presence,
//! the server-side send API), an expired token, and presence cleaned by the heartbeat
//! timeout.

use futures_util::{SinkExt, StreamExt};
use studyflow_e2e::stack::{DEMO_USER_EMAIL, DEMO_USER_ID, Stack, StackOptions};
use studyflow_e2e::{database, tokens};
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
