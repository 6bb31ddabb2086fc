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
    let (legacy, new) = TestUpstream::pair().await;
    let gateway = Gateway::start("routes: []\n", &legacy.url, &new.url, "").await;
    // The first frame follows the 101 at once, every time: when the upstream's 101 was read
    // before the end of the upgrade request's own empty body, pingora used to close the
    // tunnel (cloudflare/pingora#946, patched in vendor/pingora-proxy). Forty sockets in a
    // row, no retry.
    for socket in 0..40 {
        if let Err(error) = echo_through(&gateway).await {
            panic!("socket {socket}: {error}\n{}", gateway.log());
        }
    }
}
