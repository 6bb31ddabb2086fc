//! One WebSocket: the Phoenix channel conversation with a realtime-js client.
//!
//! The socket task reads client frames, answers them (`phx_reply`), and writes what the
//! [`Hub`] queues for it. It closes the socket, with a close frame, when the client
//! stops sending (heartbeat timeout), sends too much (rate limit), cannot keep up (its
//! queue is full) or the server shuts down; its channels and presence are then removed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use uuid::Uuid;

use super::changes::Binding;
use super::hub::{Membership, Outbox, Outgoing};
use super::protocol::{Frame, Vsn};
use crate::auth::{AuthError, TokenIdentity};
use crate::{ApiError, AppState};

/// How long one frame may take to write before the client counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the closing handshake may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Read and write buffer of one socket.
const IO_BUFFER_BYTES: usize = 8 * 1024;

/// Close codes (RFC 6455).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;

#[derive(Debug, Deserialize)]
pub struct ConnectParams {
    apikey: Option<String>,
    vsn: Option<String>,
}

/// `GET /realtime/v1/websocket?apikey=…&vsn=…`: the apikey must be a valid project key
/// (or access token); the socket then speaks `vsn` (1.0.0 or 2.0.0).
pub async fn upgrade(
    State(state): State<AppState>,
    Query(params): Query<ConnectParams>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(vsn) = Vsn::parse(params.vsn.as_deref()) else {
        return ApiError::Validation("unsupported vsn".into()).into_response();
    };
    let Some(apikey) = params.apikey else {
        return ApiError::Auth("apikey is required".into()).into_response();
    };
    if let Err(error) = state.auth.realtime_identity(&apikey).await {
        tracing::debug!(%error, "realtime apikey refused");
        return ApiError::Auth("invalid apikey".into()).into_response();
    }
    let limit = state.config.realtime.max_message_bytes;
    // Small I/O buffers: tungstenite's defaults (128 KiB each way) would dominate the
    // memory of a mostly idle socket; messages are small and bounded by `limit`.
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(IO_BUFFER_BYTES)
        .write_buffer_size(IO_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let (outbox, rx, kick) = Outbox::new(state.config.realtime.send_queue);
            let connection = Connection {
                id: Uuid::new_v4(),
                state,
                vsn,
                apikey,
                outbox,
                kick,
                channels: HashMap::new(),
                window: (Instant::now(), 0),
            };
            connection.run(socket, rx).await;
        })
}

/// A joined channel of this socket.
#[derive(Debug)]
struct Joined {
    join_ref: Value,
    presence_key: String,
    identity: TokenIdentity,
}

struct Connection {
    id: Uuid,
    state: AppState,
    vsn: Vsn,
    apikey: String,
    outbox: Outbox,
    kick: Arc<Notify>,
    channels: HashMap<String, Joined>,
    /// Start of the current one-second window and the frames received in it.
    window: (Instant, u32),
}

impl Connection {
    async fn run(mut self, socket: WebSocket, mut queue: mpsc::Receiver<Outgoing>) {
        let hub = self.state.realtime.clone();
        let _guard = hub.connection_guard();
        let mut shutdown = hub.shutdown_receiver();
        let (mut sink, mut stream) = socket.split();
        let heartbeat_timeout =
            Duration::from_secs(self.state.config.realtime.heartbeat_timeout_secs);
        let mut last_seen = Instant::now();
        let close: Option<(u16, &'static str)> = loop {
            let expiry = self.next_expiry();
            tokio::select! {
                incoming = stream.next() => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => {
                            tracing::debug!(%error, "realtime socket read failed");
                            break Some((CLOSE_POLICY, "protocol error or message too big"));
                        }
                        None => break None,
                    };
                    last_seen = Instant::now();
                    if !self.within_rate() {
                        break Some((CLOSE_POLICY, "rate limit exceeded"));
                    }
                    let frame = match message {
                        Message::Text(text) => Frame::decode_text(self.vsn, text.as_str()),
                        Message::Binary(bytes) => Frame::decode_binary(&bytes),
                        Message::Close(_) => break None,
                        Message::Ping(_) | Message::Pong(_) => continue,
                    };
                    let frame = match frame {
                        Ok(frame) => frame,
                        Err(error) => {
                            tracing::debug!(%error, "unreadable realtime frame");
                            continue;
                        }
                    };
                    for answer in self.handle(frame).await {
                        if !write(&mut sink, answer.encode(self.vsn)).await {
                            break;
                        }
                    }
                }
                Some(outgoing) = queue.recv() => {
                    let text = outgoing.frame.encode_for(self.vsn, &outgoing.join_ref);
                    if !write(&mut sink, text).await {
                        break None;
                    }
                }
                () = self.kick.notified() => break Some((CLOSE_POLICY, "too slow: send queue full")),
                () = tokio::time::sleep_until(last_seen + heartbeat_timeout) => {
                    break Some((CLOSE_NORMAL, "heartbeat timeout"));
                }
                () = sleep_until_opt(expiry) => {
                    for frame in self.expire_channels().await {
                        write(&mut sink, frame.encode(self.vsn)).await;
                    }
                }
                _ = shutdown.changed() => break Some((CLOSE_GOING_AWAY, "server shutting down")),
            }
        };
        if let Some((code, reason)) = close {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
            // The closing handshake: read (and drop) what the client still sends until its
            // close frame, so unread data does not turn the close into a reset that could
            // lose our close frame.
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        for topic in self.channels.keys() {
            hub.leave(topic, self.id).await;
        }
    }

    /// Counts one frame; false once the per-second budget is spent.
    fn within_rate(&mut self) -> bool {
        let (start, count) = &mut self.window;
        if start.elapsed() >= Duration::from_secs(1) {
            *start = Instant::now();
            *count = 0;
        }
        *count += 1;
        *count <= self.state.config.realtime.max_events_per_sec
    }

    /// When the earliest token of a joined channel expires.
    fn next_expiry(&self) -> Option<Instant> {
        let earliest = self
            .channels
            .values()
            .map(|j| j.identity.expires_at)
            .min()?;
        let left = earliest - chrono::Utc::now().timestamp();
        Some(Instant::now() + Duration::from_secs(left.max(0).unsigned_abs()))
    }

    /// Closes the channels whose token has expired, as Supabase does: a `system` error
    /// message, then `phx_close`.
    async fn expire_channels(&mut self) -> Vec<Frame> {
        let now = chrono::Utc::now().timestamp();
        let expired: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, j)| j.identity.expires_at <= now)
            .map(|(topic, _)| topic.clone())
            .collect();
        let mut frames = Vec::new();
        for topic in expired {
            frames.extend(self.close_channel(&topic, "Token has expired").await);
        }
        frames
    }

    async fn close_channel(&mut self, topic: &str, message: &str) -> Vec<Frame> {
        let Some(joined) = self.channels.remove(topic) else {
            return Vec::new();
        };
        self.state.realtime.leave(topic, self.id).await;
        let channel = topic.strip_prefix("realtime:").unwrap_or(topic);
        vec![
            Frame::push(
                topic,
                joined.join_ref.clone(),
                "system",
                json!({"message": message, "status": "error", "extension": "system", "channel": channel}),
            ),
            Frame::push(topic, joined.join_ref, "phx_close", json!({})),
        ]
    }

    /// Answers one client frame; returns what to write back at once.
    async fn handle(&mut self, frame: Frame) -> Vec<Frame> {
        if frame.topic == "phoenix" {
            // heartbeat: the only event Phoenix defines on this topic.
            return vec![frame.reply("ok", json!({}))];
        }
        if frame.event == "phx_join" {
            return self.join(frame).await;
        }
        if !self.channels.contains_key(&frame.topic) {
            return vec![frame.reply("error", json!({"reason": "unmatched topic"}))];
        }
        let hub = self.state.realtime.clone();
        match frame.event.as_str() {
            "phx_leave" => {
                self.channels.remove(&frame.topic);
                hub.leave(&frame.topic, self.id).await;
                vec![frame.reply("ok", json!({}))]
            }
            "broadcast" => {
                hub.broadcast_from(&frame.topic, self.id, frame.payload.clone())
                    .await;
                vec![frame.reply("ok", json!({}))]
            }
            "presence" => {
                match frame.payload.get("event").and_then(Value::as_str) {
                    Some("track") => {
                        let key = self.channels[&frame.topic].presence_key.clone();
                        let meta = frame.payload.get("payload").cloned().unwrap_or(json!({}));
                        hub.track(&frame.topic, self.id, &key, meta).await;
                    }
                    Some("untrack") => hub.untrack(&frame.topic, self.id).await,
                    _ => {
                        return vec![
                            frame.reply("error", json!({"reason": "unknown presence event"})),
                        ];
                    }
                }
                vec![frame.reply("ok", json!({}))]
            }
            "access_token" => {
                let token = frame
                    .payload
                    .get("access_token")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match self.state.auth.realtime_identity(token).await {
                    Ok(identity) => {
                        hub.reauthorize(
                            &frame.topic,
                            self.id,
                            identity.user,
                            identity.service_role,
                        );
                        if let Some(joined) = self.channels.get_mut(&frame.topic) {
                            joined.identity = identity;
                        }
                        vec![frame.reply("ok", json!({}))]
                    }
                    Err(error) => self.close_channel(&frame.topic, &refusal(&error)).await,
                }
            }
            _ => vec![frame.reply("error", json!({"reason": "unknown event"}))],
        }
    }

    async fn join(&mut self, frame: Frame) -> Vec<Frame> {
        let topic = frame.topic.clone();
        let config = frame.payload.get("config").cloned().unwrap_or(json!({}));
        let token = frame
            .payload
            .get("access_token")
            .and_then(Value::as_str)
            .unwrap_or(&self.apikey)
            .to_owned();
        let identity = match self.state.auth.realtime_identity(&token).await {
            Ok(identity) => identity,
            Err(error) => {
                tracing::debug!(%error, %topic, "realtime join refused");
                return vec![frame.reply("error", json!({"reason": refusal(&error)}))];
            }
        };
        let tables = &self.state.config.realtime.tables;
        let requested = config
            .get("postgres_changes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut bindings = Vec::new();
        let mut replies = Vec::new();
        for entry in &requested {
            match Binding::parse(entry, tables) {
                Ok(binding) => {
                    replies.push(binding.reply(entry));
                    bindings.push(binding);
                }
                Err(reason) => {
                    return vec![frame.reply(
                        "error",
                        json!({"reason": format!("Unable to subscribe to changes with given parameters: {reason}")}),
                    )];
                }
            }
        }
        let hub = self.state.realtime.clone();
        if self.channels.remove(&topic).is_some() {
            hub.leave(&topic, self.id).await;
        }
        let presence_key = config
            .pointer("/presence/key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
        let presence_enabled = config
            .pointer("/presence/enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut membership = Membership::new(self.id, frame.join_ref.clone(), self.outbox.clone());
        membership.user = identity.user;
        membership.service_role = identity.service_role;
        membership.broadcast_self = config
            .pointer("/broadcast/self")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        membership.bindings = bindings;
        hub.join(&topic, membership);
        self.channels.insert(
            topic.clone(),
            Joined {
                join_ref: frame.join_ref.clone(),
                presence_key,
                identity,
            },
        );
        let mut answers = vec![frame.reply("ok", json!({"postgres_changes": replies}))];
        if presence_enabled {
            let state = hub.presence_state(&topic).await;
            answers.push(Frame::push(&topic, frame.join_ref, "presence_state", state));
        }
        answers
    }
}

/// The reason a token is refused, in Supabase's words where it has some.
fn refusal(error: &AuthError) -> String {
    match error {
        AuthError::Invalid(e)
            if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) =>
        {
            "Token has expired".into()
        }
        _ => "Invalid token".into(),
    }
}

async fn write(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    text: String,
) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
