//! WebSocket upgrades (Supabase Realtime) pass through the gateway.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Gateway, TestUpstream};

#[tokio::test]
async fn websocket_upgrades_pass_through_to_legacy() {
    let legacy = TestUpstream::start("legacy").await;
    let new = TestUpstream::start("new").await;
    let gateway = Gateway::start("routes: []\n", &legacy.url, &new.url, "").await;
    let url = format!(
        "{}/realtime/v1/websocket?apikey=anon&vsn=1.0.0",
        gateway.url.replace("http://", "ws://")
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade through the gateway");
    assert_eq!(response.status(), 101);
    for text in ["hello", "phx_join"] {
        socket.send(Message::Text(text.into())).await.expect("send");
        let reply = socket.next().await.expect("reply").expect("frame");
        assert_eq!(
            reply.into_text().expect("text").as_str(),
            format!("legacy:{text}")
        );
    }
    // The echo is what matters; the close handshake may race the upstream closing.
    let _ = socket.close(None).await;
}
