//! Runs the `oha` load generator and reads its JSON summary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// How to drive one case.
#[derive(Debug, Clone)]
pub struct Load {
    pub url: String,
    pub method: &'static str,
    pub body: Option<PathBuf>,
    pub headers: Vec<(String, String)>,
    pub duration: Duration,
    pub connections: usize,
    /// Requests per second; `None` is as fast as the target answers (saturation).
    pub rate: Option<u32>,
}

/// What one run measured. Latencies in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub success_rate: f64,
    pub non_2xx: u64,
}

/// The `oha` binary `make bench` installs under `.stack/tools`, or one on PATH.
pub fn oha(root: &Path) -> anyhow::Result<PathBuf> {
    let local = root.join(".stack/tools/bin/oha");
    if local.exists() {
        return Ok(local);
    }
    which("oha").context("oha is not installed: run `make bench`, which installs it")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
}

/// Runs `load` with `oha` and returns its measurements.
pub async fn run(oha: &Path, load: &Load) -> anyhow::Result<Measured> {
    let mut command = tokio::process::Command::new(oha);
    command
        .args(["--no-tui", "--output-format", "json", "-m", load.method])
        .args(["-z", &format!("{}ms", load.duration.as_millis())])
        .args(["-c", &load.connections.to_string()]);
    if let Some(rate) = load.rate {
        command.args(["-q", &rate.to_string()]);
    }
    if let Some(body) = &load.body {
        command.arg("-D").arg(body);
    }
    for (name, value) in &load.headers {
        command.args(["-H", &format!("{name}: {value}")]);
    }
    command.arg(&load.url);
    let output = command.output().await.context("running oha")?;
    if !output.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let report: Value = serde_json::from_slice(&output.stdout).context("reading oha's JSON")?;
    let seconds = |v: &Value| v.as_f64().unwrap_or(f64::NAN) * 1000.0;
    let percentiles = &report["latencyPercentiles"];
    let non_2xx = report["statusCodeDistribution"]
        .as_object()
        .map(|codes| {
            codes
                .iter()
                .filter(|(code, _)| !code.starts_with('2'))
                .map(|(_, n)| n.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    Ok(Measured {
        requests_per_sec: report["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: seconds(&percentiles["p50"]),
        p99_ms: seconds(&percentiles["p99"]),
        p999_ms: seconds(&percentiles["p99.9"]),
        success_rate: report["summary"]["successRate"].as_f64().unwrap_or(0.0),
        non_2xx,
    })
}
