//! The comparison stage, off the request path: each captured pair is compared under its
//! route's rules, classified (equal, noise, regression) with declared and learned noise,
//! counted, and handed to the diff store with a redacted sample
//! ([`Redactor::exchange`], [`Redactor::difference`]).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use studyflow_diffing::store::{DiffStore, Record, Sample, StoreSettings};
use studyflow_diffing::{NoiseTracker, Redactor, Verdict, classify, compare, compare_responses};
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
        // One wait for shutdown for the whole loop, polled first: a new one per pair, and
        // the random pick of an unbiased select, cost about 500 instructions a pair.
        let stopping = shutdown.changed();
        tokio::pin!(stopping);
        loop {
            let pair = tokio::select! {
                biased;
                _ = &mut stopping => None,
                pair = rx.recv() => pair,
            };
            let Some(pair) = pair else { break };
            self.handle(pair, store.as_ref());
        }
    }
}

/// The new side's mark on an answer whose provider call it skipped (a dry run).
pub static PROVIDER_SKIPPED_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-studyflow-provider");

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
            && exchange
                .shadow
                .headers
                .get(&PROVIDER_SKIPPED_HEADER)
                .is_some_and(|mark| mark.as_bytes() == b"skipped")
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
            exchange: self.redactor.exchange(&exchange, rules.sensitive),
            differences: comparison
                .differences
                .iter()
                .map(|d| self.redactor.difference(d, rules.sensitive))
                .collect(),
        });
        store.record(Record {
            route: exchange.route,
            phase: under.phase.to_string(),
            at: under.at,
            verdict: classified.verdict,
            shapes: classified.shapes,
            probe_shapes,
            sample,
            provider_skipped: false,
        });
    }
}

/// Loads the shapes already known to differ within one side, so classification survives
/// a restart.
async fn seed_noise(store: &DiffStore, noise: &NoiseTracker) {
    match store.learned_noise().await {
        Ok(rows) => {
            for (route, shape) in rows {
                noise.seed(&route, [shape]);
            }
        }
        Err(error) => tracing::warn!(%error, "could not load learned noise from the diff store"),
    }
}
