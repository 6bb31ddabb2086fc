//! The comparison stage, off the request path: each captured pair is compared under its
//! route's rules, classified (equal, noise, regression) with declared and learned noise,
//! counted, and handed to the diff store with a redacted sample (for a `sensitive` route,
//! a sample of shapes and digests only: see [`Redactor::private_body`]).

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

/// The new side's mark on an answer whose provider call it skipped (a dry run).
pub const PROVIDER_SKIPPED_HEADER: &str = "x-studyflow-provider";

impl Comparer {
    fn handle(&self, pair: ComparedPair, store: Option<&DiffStore>) {
        let started = Instant::now();
        // The pair's bytes go back to the shadow budget when `_reservation` drops.
        let ComparedPair {
            exchange,
            under,
            stats,
            rules,
            probe,
            reservation: _reservation,
        } = pair;
        let route = exchange.route.as_str();
        // A copy the new side answered as a dry run that skipped its provider call: its
        // AI content is a placeholder, not the new side's answer. Such a pair is neither
        // evidence nor a regression (answers given before any provider call, like
        // validation errors, carry no mark and are compared).
        if exchange.served_by == "legacy"
            && exchange.shadow.header(PROVIDER_SKIPPED_HEADER) == Some("skipped")
        {
            stats.provider_skipped();
            if let Some(store) = store {
                store.record(Record::provider_skipped(
                    exchange.route.clone(),
                    under.phase.to_string(),
                    under.at,
                ));
            }
            return;
        }
        let probe_shapes = probe
            .as_ref()
            .map(|again| {
                self.noise
                    .learn(route, &compare_responses(&exchange.served, again, &rules))
            })
            .unwrap_or_default();
        let comparison = compare(&exchange, &rules);
        let classified = classify(route, &comparison, &self.noise);
        stats.pair(
            classified.verdict,
            started.elapsed().as_micros() as u64,
            under.at,
        );
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
            exchange: self.redacted_exchange(&exchange, rules.sensitive),
            differences: Value::Array(
                comparison
                    .differences
                    .iter()
                    .map(|d| self.redacted_difference(d, rules.sensitive))
                    .collect(),
            ),
        });
        store.record(Record {
            route: exchange.route.clone(),
            phase: under.phase.to_string(),
            at: under.at,
            verdict: classified.verdict,
            shapes: classified.shapes,
            probe_shapes,
            sample,
            provider_skipped: false,
        });
    }

    fn headers(&self, headers: &[(String, String)], sensitive: bool) -> Vec<Value> {
        headers
            .iter()
            .map(|(n, v)| {
                let value = if sensitive {
                    self.redactor.private_header(n, v)
                } else {
                    self.redactor.header(n, v)
                };
                json!([n, value])
            })
            .collect()
    }

    fn body(&self, bytes: &[u8], sensitive: bool) -> Value {
        if sensitive {
            self.redactor.private_body(bytes)
        } else {
            self.redactor.body(bytes)
        }
    }

    fn redacted_response(&self, response: &CapturedResponse, sensitive: bool) -> Value {
        json!({
            "status": response.status,
            "headers": self.headers(&response.headers, sensitive),
            "body": self.body(&response.decoded_body(), sensitive),
            "truncated": response.truncated,
        })
    }

    fn redacted_exchange(&self, exchange: &Exchange, sensitive: bool) -> Value {
        let request = &exchange.request;
        let uri = if sensitive {
            self.redactor.private_uri(&request.uri)
        } else {
            self.redactor.text(&request.uri)
        };
        json!({
            "served_by": exchange.served_by,
            "sensitive": sensitive,
            "request": {
                "method": request.method,
                "uri": uri,
                "headers": self.headers(&request.headers, sensitive),
                "body": self.body(&request.body, sensitive),
            },
            "served": self.redacted_response(&exchange.served, sensitive),
            "shadow": self.redacted_response(&exchange.shadow, sensitive),
        })
    }

    fn redacted_difference(&self, difference: &Difference, sensitive: bool) -> Value {
        use studyflow_diffing::Section;
        let mut value = serde_json::to_value(difference).unwrap_or(Value::Null);
        for side in ["left", "right"] {
            if let Some(v) = value.get_mut(side) {
                *v = match (difference.section, v.as_str(), sensitive) {
                    // A status code says nothing about the user.
                    (Section::Status, _, _) => v.clone(),
                    (Section::Header, Some(text), false) => {
                        Value::from(self.redactor.header(&difference.path, text))
                    }
                    (Section::Header, Some(text), true) => {
                        Value::from(self.redactor.private_header(&difference.path, text))
                    }
                    (_, _, true) => self.redactor.private_json(v),
                    (_, _, false) => self.redactor.json(v),
                };
            }
        }
        if let Some(hunks) = value.get_mut("hunks").and_then(|h| {
            h.as_str().map(|t| {
                if sensitive {
                    self.redactor.private_body(t.as_bytes())
                } else {
                    Value::from(self.redactor.text(t))
                }
            })
        }) {
            value["hunks"] = hunks;
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
