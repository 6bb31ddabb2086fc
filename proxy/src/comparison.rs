//! The comparison stage, off the request path: each captured pair is compared under its
//! route's rules, classified (equal, noise, regression) with declared and learned noise,
//! counted, and handed to the diff store with a redacted sample.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{Value, json};
use studyflow_diffing::store::{DiffStore, Record, Sample, StoreSettings};
use studyflow_diffing::{
    CapturedResponse, Difference, Exchange, NoiseTracker, Redactor, Verdict, classify, compare,
    compare_responses,
};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::shadow::ComparedPair;

/// Where comparisons go besides the counters.
#[derive(Debug, Clone)]
pub struct StoreTarget {
    pub database_url: String,
    pub settings: StoreSettings,
    /// Records the store dropped (shown by the admin API).
    pub dropped: Arc<AtomicU64>,
}

/// Compares pairs; runs as a pingora background service.
#[derive(Debug)]
pub struct Comparer {
    rx: Mutex<Option<mpsc::Receiver<ComparedPair>>>,
    store: Option<StoreTarget>,
    redactor: Redactor,
    noise: Arc<NoiseTracker>,
    metrics: Arc<Metrics>,
}

impl Comparer {
    pub fn new(
        rx: mpsc::Receiver<ComparedPair>,
        store: Option<StoreTarget>,
        redactor: Redactor,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            rx: Mutex::new(Some(rx)),
            store,
            redactor,
            noise: Arc::new(NoiseTracker::default()),
            metrics,
        }
    }
}

#[async_trait]
impl BackgroundService for Comparer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut rx| rx.take()) else {
            return;
        };
        let store = match &self.store {
            Some(target) => match DiffStore::open(
                &target.database_url,
                target.settings,
                Arc::clone(&target.dropped),
            )
            .await
            {
                Ok(store) => {
                    seed_noise(&store, &self.noise).await;
                    Some(store)
                }
                Err(error) => {
                    tracing::error!(%error, "diff store unavailable; only counters are kept");
                    None
                }
            },
            None => None,
        };
        loop {
            let pair = tokio::select! {
                pair = rx.recv() => pair,
                _ = shutdown.changed() => None,
            };
            let Some(pair) = pair else { break };
            self.handle(pair, store.as_ref());
        }
    }
}

impl Comparer {
    fn handle(&self, pair: ComparedPair, store: Option<&DiffStore>) {
        let started = Instant::now();
        let ComparedPair {
            exchange,
            stats,
            rules,
            probe,
        } = pair;
        let route = exchange.route.as_str();
        let probe_shapes = probe
            .as_ref()
            .map(|again| {
                self.noise
                    .learn(route, &compare_responses(&exchange.served, again, &rules))
            })
            .unwrap_or_default();
        let comparison = compare(&exchange, &rules);
        let classified = classify(route, &comparison, &self.noise);
        stats.pair(classified.verdict, started.elapsed().as_micros() as u64);
        self.metrics.compared(started.elapsed());
        if classified.verdict == Verdict::Regression {
            tracing::info!(
                route,
                request_id = %exchange.request_id,
                paths = ?classified.shapes.iter().filter(|s| !s.noise).map(|s| s.shape.as_str()).collect::<Vec<_>>(),
                "answers differ"
            );
        }
        let Some(store) = store else { return };
        let sample = (classified.verdict != Verdict::Equal).then(|| Sample {
            request_id: exchange.request_id.clone(),
            exchange: self.redacted_exchange(&exchange),
            differences: Value::Array(
                comparison
                    .differences
                    .iter()
                    .map(|d| self.redacted_difference(d))
                    .collect(),
            ),
        });
        store.record(Record {
            route: exchange.route.clone(),
            at: chrono::Utc::now(),
            verdict: classified.verdict,
            shapes: classified.shapes,
            probe_shapes,
            sample,
        });
    }

    fn redacted_response(&self, response: &CapturedResponse) -> Value {
        json!({
            "status": response.status,
            "headers": response.headers.iter().map(|(n, v)| json!([n, self.redactor.header(n, v)])).collect::<Vec<_>>(),
            "body": self.redactor.body(&response.decoded_body()),
            "truncated": response.truncated,
        })
    }

    fn redacted_exchange(&self, exchange: &Exchange) -> Value {
        let request = &exchange.request;
        json!({
            "served_by": exchange.served_by,
            "request": {
                "method": request.method,
                "uri": self.redactor.text(&request.uri),
                "headers": request.headers.iter().map(|(n, v)| json!([n, self.redactor.header(n, v)])).collect::<Vec<_>>(),
                "body": self.redactor.body(&request.body),
            },
            "served": self.redacted_response(&exchange.served),
            "shadow": self.redacted_response(&exchange.shadow),
        })
    }

    fn redacted_difference(&self, difference: &Difference) -> Value {
        let mut value = serde_json::to_value(difference).unwrap_or(Value::Null);
        let secret_header = difference.section == studyflow_diffing::Section::Header;
        for side in ["left", "right"] {
            if let Some(v) = value.get_mut(side) {
                *v = match (secret_header, v.as_str()) {
                    (true, Some(text)) => Value::from(self.redactor.header(&difference.path, text)),
                    _ => self.redactor.json(v),
                };
            }
        }
        if let Some(hunks) = value
            .get_mut("hunks")
            .and_then(|h| h.as_str().map(|t| self.redactor.text(t)))
        {
            value["hunks"] = Value::from(hunks);
        }
        value["shape"] = Value::from(difference.shape());
        value
    }
}

/// Loads the shapes already known to differ within one side, so classification survives
/// a restart.
async fn seed_noise(store: &DiffStore, noise: &NoiseTracker) {
    let rows: Result<Vec<(String, String)>, _> =
        sqlx::query_as("select distinct route, shape from diffs.shape_counts where probe > 0")
            .fetch_all(store.pool())
            .await;
    match rows {
        Ok(rows) => {
            for (route, shape) in rows {
                noise.seed(&route, [shape]);
            }
        }
        Err(error) => tracing::warn!(%error, "could not load learned noise from the diff store"),
    }
}
