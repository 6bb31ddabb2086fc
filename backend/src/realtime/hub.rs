//! Rooms: who is joined to which topic on this instance, and the fan-out of broadcast,
//! presence and server-sent messages, locally and to the other instances through Redis.
//!
//! Every instance delivers to its own sockets directly and publishes the same message
//! on one Redis pub/sub channel; the other instances deliver it to theirs (an instance
//! ignores its own messages). Presence lives in a Redis hash per topic, so a socket
//! joining on any instance gets the whole room's state; each instance removes the
//! entries of its sockets when they leave, disconnect or time out. Without Redis, rooms
//! still work within one instance.
//!
//! Delivery never waits for a socket: each has a bounded queue ([`Outbox`]), and a
//! socket whose queue is full is told to disconnect (a slow client never slows a room).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

use super::changes::{Binding, Change};
use super::protocol::Frame;
use crate::config::BackendConfig;
use crate::redis_client::RedisClient;

/// One frame queued for a socket, with the `join_ref` of that socket's channel.
#[derive(Debug)]
pub struct Outgoing {
    pub join_ref: Value,
    pub frame: Arc<Frame>,
}

/// The sending end of a socket's bounded queue.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    kick: Arc<Notify>,
}

impl Outbox {
    /// A queue of `capacity` frames; `kick` is notified when it overflows.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Outgoing>, Arc<Notify>) {
        let (tx, rx) = mpsc::channel(capacity);
        let kick = Arc::new(Notify::new());
        (
            Self {
                tx,
                kick: kick.clone(),
            },
            rx,
            kick,
        )
    }

    fn send(&self, outgoing: Outgoing) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(outgoing) {
            self.kick.notify_one();
        }
    }
}

/// One socket's membership of one topic.
#[derive(Debug)]
pub struct Membership {
    pub conn: Uuid,
    pub user: Option<Uuid>,
    pub service_role: bool,
    pub join_ref: Value,
    pub outbox: Outbox,
    /// `config.broadcast.self`: receive one's own broadcasts.
    pub broadcast_self: bool,
    pub bindings: Vec<Binding>,
    /// The tracked presence: key and meta (with its `phx_ref`).
    presence: Option<(String, Value)>,
}

impl Membership {
    pub fn new(conn: Uuid, join_ref: Value, outbox: Outbox) -> Self {
        Self {
            conn,
            user: None,
            service_role: false,
            join_ref,
            outbox,
            broadcast_self: false,
            bindings: Vec::new(),
            presence: None,
        }
    }
}

/// Where a bus message goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Target {
    Room { topic: String },
    User { user: Uuid },
}

/// A message between instances.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: Uuid,
    target: Target,
    event: String,
    payload: Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct PresenceEntry {
    key: String,
    meta: Value,
    /// The instance holding the socket: entries of an instance that stopped renewing
    /// its liveness key (it crashed) are dropped.
    #[serde(default)]
    instance: Option<Uuid>,
}

/// How long an instance counts as alive after renewing its liveness key.
const INSTANCE_TTL_SECS: u64 = 30;

/// The realtime hub of one backend instance; cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    instance: Uuid,
    rooms: Mutex<HashMap<String, HashMap<Uuid, Membership>>>,
    redis: RedisClient,
    pubsub: Option<redis::Client>,
    bus_channel: String,
    presence_prefix: String,
    shutdown: watch::Sender<bool>,
    connections: AtomicUsize,
}

/// Counts a live socket while it exists.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Inner>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hub {
    pub fn new(config: &BackendConfig, redis: RedisClient) -> Self {
        let pubsub = redis::Client::open(config.redis.url.expose_secret()).ok();
        let (shutdown, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                instance: Uuid::new_v4(),
                rooms: Mutex::default(),
                bus_channel: redis.key("realtime:bus"),
                presence_prefix: redis.key("realtime:presence:"),
                redis,
                pubsub,
                shutdown,
                connections: AtomicUsize::new(0),
            }),
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<Uuid, Membership>>> {
        self.inner
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a live socket until the guard is dropped.
    pub fn connection_guard(&self) -> ConnectionGuard {
        self.inner.connections.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(self.inner.clone())
    }

    /// Live sockets on this instance.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    /// Changes to `true` when the server shuts down: sockets then close.
    pub fn shutdown_receiver(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Tells every socket to close (with a close frame) and waits, at most `grace`, for
    /// them to be gone.
    pub async fn close_all(&self, grace: Duration) {
        self.inner.shutdown.send_replace(true);
        let started = tokio::time::Instant::now();
        while self.connections() > 0 && started.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Adds (or replaces) a socket's membership of `topic`.
    pub fn join(&self, topic: &str, membership: Membership) {
        self.rooms()
            .entry(topic.to_owned())
            .or_default()
            .insert(membership.conn, membership);
    }

    /// Applies a refreshed token to a socket's membership of `topic`: what it may see
    /// follows the new identity.
    pub fn reauthorize(&self, topic: &str, conn: Uuid, user: Option<Uuid>, service_role: bool) {
        if let Some(member) = self.rooms().get_mut(topic).and_then(|r| r.get_mut(&conn)) {
            member.user = user;
            member.service_role = service_role;
        }
    }

    /// Removes a socket from `topic`, untracking its presence.
    pub async fn leave(&self, topic: &str, conn: Uuid) {
        self.untrack(topic, conn).await;
        let mut rooms = self.rooms();
        if let Some(room) = rooms.get_mut(topic) {
            room.remove(&conn);
            if room.is_empty() {
                rooms.remove(topic);
            }
        }
    }

    /// A user broadcast from socket `sender` (a client's `broadcast` push).
    pub async fn broadcast_from(&self, topic: &str, sender: Uuid, payload: Value) {
        let target = Target::Room {
            topic: topic.to_owned(),
        };
        self.deliver_local(&target, "broadcast", payload.clone(), Some(sender));
        self.publish(target, "broadcast", payload).await;
    }

    /// BroadcastToRoom: a broadcast `event` to every socket joined to `topic`, on every
    /// instance.
    pub async fn broadcast_to_room(&self, topic: &str, event: &str, payload: Value) {
        let payload = json!({"type": "broadcast", "event": event, "payload": payload});
        let target = Target::Room {
            topic: topic.to_owned(),
        };
        self.deliver_local(&target, "broadcast", payload.clone(), None);
        self.publish(target, "broadcast", payload).await;
    }

    /// SendToUser: a broadcast `event` on every channel `user` has joined, on every
    /// instance.
    pub async fn send_to_user(&self, user: Uuid, event: &str, payload: Value) {
        let payload = json!({"type": "broadcast", "event": event, "payload": payload});
        let target = Target::User { user };
        self.deliver_local(&target, "broadcast", payload.clone(), None);
        self.publish(target, "broadcast", payload).await;
    }

    /// Tracks (or re-tracks) a socket's presence in `topic`.
    pub async fn track(&self, topic: &str, conn: Uuid, key: &str, meta: Value) {
        let mut meta = match meta {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        meta.insert("phx_ref".into(), Value::String(phx_ref()));
        let meta = Value::Object(meta);
        let previous = {
            let mut rooms = self.rooms();
            let Some(member) = rooms.get_mut(topic).and_then(|r| r.get_mut(&conn)) else {
                return;
            };
            member.presence.replace((key.to_owned(), meta.clone()))
        };
        let entry = PresenceEntry {
            key: key.to_owned(),
            meta: meta.clone(),
            instance: Some(self.inner.instance),
        };
        let hash = format!("{}{topic}", self.inner.presence_prefix);
        let field = conn.to_string();
        let value = serde_json::to_string(&entry).unwrap_or_default();
        self.inner
            .redis
            .run("realtime_presence", |mut c| async move {
                redis::cmd("HSET")
                    .arg(hash)
                    .arg(field)
                    .arg(value)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
        let leaves = previous.map_or_else(|| json!({}), |(k, m)| json!({ k: {"metas": [m]} }));
        let diff = json!({"joins": { key: {"metas": [meta]} }, "leaves": leaves});
        self.presence_diff(topic, diff).await;
    }

    /// Removes a socket's presence from `topic`, if it tracked one.
    pub async fn untrack(&self, topic: &str, conn: Uuid) {
        let previous = {
            let mut rooms = self.rooms();
            rooms
                .get_mut(topic)
                .and_then(|r| r.get_mut(&conn))
                .and_then(|m| m.presence.take())
        };
        let Some((key, meta)) = previous else { return };
        let hash = format!("{}{topic}", self.inner.presence_prefix);
        let field = conn.to_string();
        self.inner
            .redis
            .run("realtime_presence", |mut c| async move {
                redis::cmd("HDEL")
                    .arg(hash)
                    .arg(field)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
        let diff = json!({"joins": {}, "leaves": { key: {"metas": [meta]} }});
        self.presence_diff(topic, diff).await;
    }

    async fn presence_diff(&self, topic: &str, diff: Value) {
        let target = Target::Room {
            topic: topic.to_owned(),
        };
        self.deliver_local(&target, "presence_diff", diff.clone(), None);
        self.publish(target, "presence_diff", diff).await;
    }

    /// The whole room's presence, `{key: {metas: [...]}}`: every instance's entries from
    /// Redis, and this instance's own when Redis is away.
    pub async fn presence_state(&self, topic: &str) -> Value {
        let mut entries: HashMap<String, PresenceEntry> = HashMap::new();
        let hash = format!("{}{topic}", self.inner.presence_prefix);
        let stored = self
            .inner
            .redis
            .run("realtime_presence", |mut c| async move {
                redis::cmd("HGETALL")
                    .arg(hash)
                    .query_async::<HashMap<String, String>>(&mut c)
                    .await
            })
            .await
            .unwrap_or_default();
        for (field, value) in stored {
            if let Ok(entry) = serde_json::from_str(&value) {
                entries.insert(field, entry);
            }
        }
        let mut instances: Vec<Uuid> = entries.values().filter_map(|e| e.instance).collect();
        instances.sort_unstable();
        instances.dedup();
        for instance in instances {
            if instance != self.inner.instance && self.instance_dead(instance).await {
                entries.retain(|_, e| e.instance != Some(instance));
            }
        }
        if let Some(room) = self.rooms().get(topic) {
            for member in room.values() {
                if let Some((key, meta)) = &member.presence {
                    entries.insert(
                        member.conn.to_string(),
                        PresenceEntry {
                            key: key.clone(),
                            meta: meta.clone(),
                            instance: None,
                        },
                    );
                }
            }
        }
        let mut state = Map::new();
        for entry in entries.into_values() {
            let slot = state
                .entry(entry.key)
                .or_insert_with(|| json!({"metas": []}));
            if let Some(metas) = slot["metas"].as_array_mut() {
                metas.push(entry.meta);
            }
        }
        Value::Object(state)
    }

    /// Pushes a row change to every socket whose bindings match and who may see it.
    pub fn deliver_change(&self, change: &Change) {
        let data = change.data();
        let rooms = self.rooms();
        for (topic, room) in rooms.iter() {
            for member in room.values() {
                if !change.visible_to(member.user, member.service_role) {
                    continue;
                }
                let ids: Vec<u32> = member
                    .bindings
                    .iter()
                    .filter(|b| b.matches(change))
                    .map(|b| b.id)
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                let frame = Frame::push(
                    topic,
                    Value::Null,
                    "postgres_changes",
                    json!({"ids": ids, "data": data}),
                );
                member.outbox.send(Outgoing {
                    join_ref: member.join_ref.clone(),
                    frame: Arc::new(frame),
                });
            }
        }
    }

    fn deliver_local(&self, target: &Target, event: &str, payload: Value, sender: Option<Uuid>) {
        let rooms = self.rooms();
        match target {
            Target::Room { topic } => {
                let Some(room) = rooms.get(topic) else { return };
                let frame = Arc::new(Frame::push(topic, Value::Null, event, payload));
                for member in room.values() {
                    if sender == Some(member.conn) && !member.broadcast_self {
                        continue;
                    }
                    member.outbox.send(Outgoing {
                        join_ref: member.join_ref.clone(),
                        frame: frame.clone(),
                    });
                }
            }
            Target::User { user } => {
                for (topic, room) in rooms.iter() {
                    let frame = Arc::new(Frame::push(topic, Value::Null, event, payload.clone()));
                    for member in room.values().filter(|m| m.user == Some(*user)) {
                        member.outbox.send(Outgoing {
                            join_ref: member.join_ref.clone(),
                            frame: frame.clone(),
                        });
                    }
                }
            }
        }
    }

    async fn publish(&self, target: Target, event: &str, payload: Value) {
        let envelope = Envelope {
            origin: self.inner.instance,
            target,
            event: event.to_owned(),
            payload,
        };
        let Ok(text) = serde_json::to_string(&envelope) else {
            return;
        };
        let channel = self.inner.bus_channel.clone();
        self.inner
            .redis
            .run("realtime_publish", |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(text)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
    }

    fn liveness_key(&self, instance: Uuid) -> String {
        self.inner
            .redis
            .key(&format!("realtime:instance:{instance}"))
    }

    /// Whether Redis says `instance` stopped renewing its liveness key (`false` when
    /// Redis cannot tell).
    async fn instance_dead(&self, instance: Uuid) -> bool {
        let key = self.liveness_key(instance);
        self.inner
            .redis
            .run("realtime_presence", |mut c| async move {
                redis::cmd("EXISTS")
                    .arg(key)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await
            == Some(0)
    }

    /// Renews this instance's liveness key until the task is aborted, so other instances
    /// keep its sockets' presence (a crashed instance's presence then disappears from
    /// `presence_state` within [`INSTANCE_TTL_SECS`]).
    pub async fn keep_alive(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(INSTANCE_TTL_SECS / 3));
        loop {
            tick.tick().await;
            let key = self.liveness_key(self.inner.instance);
            self.inner
                .redis
                .run("realtime_liveness", |mut c| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(1)
                        .arg("EX")
                        .arg(INSTANCE_TTL_SECS)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
        }
    }

    /// Delivers the other instances' messages until the task is aborted, resubscribing
    /// after a Redis failure.
    pub async fn run_bus(self) {
        let Some(client) = self.inner.pubsub.clone() else {
            return;
        };
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&self.inner.bus_channel).await {
                    Ok(()) => {
                        tracing::info!(channel = %self.inner.bus_channel, "realtime bus subscribed");
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let Ok(text) = message.get_payload::<String>() else {
                                continue;
                            };
                            match serde_json::from_str::<Envelope>(&text) {
                                Ok(envelope) if envelope.origin != self.inner.instance => self
                                    .deliver_local(
                                        &envelope.target,
                                        &envelope.event,
                                        envelope.payload,
                                        None,
                                    ),
                                Ok(_) => {}
                                Err(error) => {
                                    tracing::warn!(%error, "unreadable realtime bus message")
                                }
                            }
                        }
                        tracing::warn!("realtime bus subscription ended");
                    }
                    Err(error) => tracing::warn!(%error, "realtime bus subscribe failed"),
                },
                Err(error) => tracing::warn!(%error, "realtime bus connection failed"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A unique presence reference, as Phoenix gives each tracked meta.
fn phx_ref() -> String {
    Uuid::new_v4().simple().to_string()[..12].to_owned()
}
