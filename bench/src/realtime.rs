//! Realtime fan-out: many WebSocket clients (tokio-tungstenite, protocol 2.0.0) in one
//! study room spread over two backend instances, one sender broadcasting; records the
//! broadcast's delivery latency to every client (half of them through Redis) and the
//! backends' memory per connection. A load test, not a timed test: the numbers depend on
//! the machine, which also runs the clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::process::rss_kib;
use studyflow_testkit::stack::{Stack, StackOptions};

const TOPIC: &str = "realtime:room:bench";

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RealtimeResult {
    pub clients: usize,
    pub broadcasts: usize,
    pub delivered: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Resident memory added per connection, KiB, per instance.
    pub kib_per_connection: [f64; 2],
    pub connect_secs: f64,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and joins the room; returns once the join is acknowledged.
async fn join(url: &str) -> anyhow::Result<Socket> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let frame = json!(["1", "1", TOPIC, "phx_join", {"config": {"broadcast": {"self": false}, "presence": {"key": "", "enabled": false}, "postgres_changes": []}}]);
    socket.send(Message::text(frame.to_string())).await?;
    while let Some(message) = socket.next().await {
        if let Message::Text(text) = message? {
            let value: Value = serde_json::from_str(text.as_str())?;
            if value[3] == "phx_reply" {
                if value[4]["status"] != "ok" {
                    bail!("join refused: {value}");
                }
                return Ok(socket);
            }
        }
    }
    bail!("socket closed before the join reply")
}

/// Runs the benchmark with `clients` receivers and `broadcasts` messages.
pub async fn run(clients: usize, broadcasts: usize) -> anyhow::Result<RealtimeResult> {
    let stack = Stack::start(StackOptions::for_test("bench_realtime")?).await?;
    let (second, second_url) = stack.start_extra_backend("backend-2").await?;
    let pids = [
        stack.pid("backend").context("backend pid")?,
        second.pid().context("second backend pid")?,
    ];
    let urls = [&stack.backend_url, &second_url].map(|base| {
        format!(
            "{}/realtime/v1/websocket?apikey={}&vsn=2.0.0",
            base.replacen("http", "ws", 1),
            stack.anon_key()
        )
    });
    let rss_before = pids.map(|pid| rss_kib(pid).unwrap_or(0));

    let origin = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(clients * broadcasts)));
    let delivered = Arc::new(AtomicUsize::new(0));
    let connect_started = Instant::now();
    let mut readers = Vec::with_capacity(clients);
    for batch in (0..clients).collect::<Vec<_>>().chunks(100) {
        let joins = batch.iter().map(|i| join(&urls[i % 2]));
        for socket in futures_util::future::try_join_all(joins).await? {
            readers.push(tokio::spawn(receive(
                socket,
                origin,
                latencies.clone(),
                delivered.clone(),
            )));
        }
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = pids.map(|pid| rss_kib(pid).unwrap_or(0));
    let per_instance = (clients / 2).max(1) as f64;
    let kib_per_connection =
        [0, 1].map(|i| rss_after[i].saturating_sub(rss_before[i]) as f64 / per_instance);

    let mut sender = join(&urls[0]).await?;
    for i in 0..broadcasts {
        let t = origin.elapsed().as_micros() as u64;
        let frame = json!(["1", i.to_string(), TOPIC, "broadcast", {"type": "broadcast", "event": "tick", "payload": {"t": t}}]);
        sender.send(Message::text(frame.to_string())).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let expected = clients * broadcasts;
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for reader in &readers {
        reader.abort();
    }
    let mut values = latencies.lock().await.clone();
    values.sort_unstable();
    let at = |q: f64| {
        values
            .get(((values.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or(f64::NAN, |us| *us as f64 / 1000.0)
    };
    let result = RealtimeResult {
        clients,
        broadcasts,
        delivered: delivered.load(Ordering::Relaxed),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
        kib_per_connection,
        connect_secs,
    };
    second.terminate().await;
    let database = stack.options.database.clone();
    stack.stop().await;
    studyflow_testkit::database::drop(&database).await.ok();
    Ok(result)
}

/// Reads a client's frames, recording each broadcast's latency, and beats every 20 s.
async fn receive(
    socket: Socket,
    origin: Instant,
    latencies: Arc<Mutex<Vec<u64>>>,
    delivered: Arc<AtomicUsize>,
) {
    let (mut sink, mut stream) = socket.split();
    let mut beat = tokio::time::interval(Duration::from_secs(20));
    let mut reference = 100u64;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(Ok(Message::Text(text))) = message else {
                    if message.is_none() { return; }
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                if value[3] == "broadcast"
                    && let Some(t) = value[4]["payload"]["t"].as_u64()
                {
                    let now = origin.elapsed().as_micros() as u64;
                    latencies.lock().await.push(now.saturating_sub(t));
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = beat.tick() => {
                reference += 1;
                let frame = json!([null, reference.to_string(), "phoenix", "heartbeat", {}]);
                if sink.send(Message::text(frame.to_string())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The Markdown section of `docs/benchmarks.md`.
pub fn table(result: &RealtimeResult) -> String {
    format!(
        "## Realtime fan-out\n\n{clients} WebSocket clients (tokio-tungstenite, protocol 2.0.0) in one \
         room, half on each of two backend instances ({profile} build), one sender \
         on instance 1 broadcasting {broadcasts} messages 250 ms apart; the other instance gets \
         them through Redis pub/sub. Latency is from the sender's write to each client's read, \
         clients and backends sharing this machine's cores.\n\n\
         | clients | broadcasts | delivered | p50 ms | p99 ms | max ms | KiB per connection (instance 1 / 2) | connect all, s |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {clients} | {broadcasts} | {delivered} / {expected} | {p50:.2} | {p99:.2} | {max:.2} | {k1:.1} / {k2:.1} | {connect:.1} |",
        clients = result.clients,
        broadcasts = result.broadcasts,
        delivered = result.delivered,
        expected = result.clients * result.broadcasts,
        p50 = result.p50_ms,
        p99 = result.p99_ms,
        max = result.max_ms,
        k1 = result.kib_per_connection[0],
        k2 = result.kib_per_connection[1],
        connect = result.connect_secs,
        profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )
}
