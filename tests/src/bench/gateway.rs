//! Gateway overhead: the same workload sent straight to the upstream and through the
//! gateway with its route in each phase, at saturation and at a fixed rate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::bench::load::{self, Load, Measured};
use crate::bench::process::{Sampler, Usage};
use crate::bench::report::ms;
use crate::stack::{DEV_ADMIN_TOKEN, Ports, Process};

/// How long and how hard each case runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub duration: Duration,
    pub connections: usize,
    /// Requests per second of the fixed-rate runs.
    pub rate: u32,
    pub bin_dir: PathBuf,
    pub oha: PathBuf,
    pub work_dir: PathBuf,
}

/// Where a case sends its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Direct,
    /// Through the gateway with the route in `phase` (`legacy`, `shadow`, …, with the
    /// canary percentage), and with answer capture and comparison on or off.
    Gateway {
        phase: &'static str,
        percent: Option<u8>,
        diffing: bool,
    },
}

impl Target {
    pub fn gateway(phase: &'static str, percent: Option<u8>, diffing: bool) -> Self {
        Self::Gateway {
            phase,
            percent,
            diffing,
        }
    }

    fn label(self) -> String {
        match self {
            Target::Direct => "upstream directly".into(),
            Target::Gateway {
                phase,
                percent,
                diffing,
            } => {
                let phase = match percent {
                    Some(percent) => format!("{phase} {percent}%"),
                    None => phase.to_owned(),
                };
                match (phase.as_str(), diffing) {
                    ("legacy", _) => "gateway, legacy".into(),
                    (_, true) => format!("gateway, {phase}, diffing on"),
                    (_, false) => format!("gateway, {phase}, diffing off"),
                }
            }
        }
    }
}

/// One measured case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub target: Target,
    pub mode: &'static str,
    pub measured: Measured,
    pub gateway: Option<Usage>,
    pub shadows_sent: u64,
    pub shadows_dropped: u64,
}

struct Running {
    _legacy: Process,
    _new: Process,
    gateway: Option<Process>,
    /// Whether the running gateway captures and compares answers.
    diffing: bool,
    ports: Ports,
    diffs_url: String,
    legacy_url: String,
    gateway_url: String,
    admin_url: String,
}

impl Running {
    /// (Re)starts the gateway with diffing on or off; keeps it when already so.
    async fn gateway(&mut self, settings: &Settings, diffing: bool) -> anyhow::Result<u32> {
        if self.gateway.is_none() || self.diffing != diffing {
            if let Some(old) = self.gateway.take() {
                old.terminate().await;
            }
            let ports = self.ports;
            let dir = &settings.work_dir;
            let _ = std::fs::remove_file(dir.join("state.json"));
            let mut command = Command::new(settings.bin_dir.join("studyflow-gateway"));
            command
                .env("RUST_LOG", "warn")
                .env(
                    "STUDYFLOW_GATEWAY__LISTEN",
                    format!("127.0.0.1:{}", ports.gateway),
                )
                .env(
                    "STUDYFLOW_GATEWAY__ADMIN_LISTEN",
                    format!("127.0.0.1:{}", ports.admin),
                )
                .env("STUDYFLOW_GATEWAY__ADMIN_TOKEN", DEV_ADMIN_TOKEN)
                .env("STUDYFLOW_GATEWAY__ROUTES_FILE", dir.join("routes.yaml"))
                .env("STUDYFLOW_GATEWAY__STATE_FILE", dir.join("state.json"))
                .env("STUDYFLOW_GATEWAY__LEGACY_URL", &self.legacy_url)
                .env(
                    "STUDYFLOW_GATEWAY__NEW_URL",
                    format!("http://127.0.0.1:{}", ports.backend),
                )
                .env("STUDYFLOW_GATEWAY__SHADOW__COMPARE", diffing.to_string());
            if diffing {
                command.env(
                    "STUDYFLOW_GATEWAY__DIFF_STORE__DATABASE_URL",
                    &self.diffs_url,
                );
            }
            let health = format!("{}/health", self.admin_url);
            self.gateway =
                Some(Process::spawn("gateway", command, &health, dir.join("gateway.log")).await?);
            self.diffing = diffing;
        }
        self.gateway
            .as_ref()
            .and_then(Process::pid)
            .context("gateway pid")
    }
}

async fn start(settings: &Settings) -> anyhow::Result<Running> {
    let ports = Ports::free()?;
    let dir = &settings.work_dir;
    std::fs::create_dir_all(dir)?;
    let upstream = |name: &'static str, port: u16| {
        let mut command = Command::new(settings.bin_dir.join("studyflow-bench"));
        command.args(["upstream", "--listen", &format!("127.0.0.1:{port}")]);
        (
            name,
            command,
            format!("http://127.0.0.1:{port}/bench/json"),
            dir.join(format!("{name}.log")),
        )
    };
    let (name, command, health, log) = upstream("upstream-legacy", ports.legacy);
    let legacy = Process::spawn(name, command, &health, log).await?;
    let (name, command, health, log) = upstream("upstream-new", ports.backend);
    let new = Process::spawn(name, command, &health, log).await?;

    std::fs::write(
        dir.join("routes.yaml"),
        "routes:\n  - {name: bench, path: /bench/*, phase: legacy}\n",
    )?;
    let diffs_url = crate::database::create("studyflow_bench_diffs").await?;
    Ok(Running {
        _legacy: legacy,
        _new: new,
        gateway: None,
        diffing: false,
        ports,
        diffs_url,
        legacy_url: format!("http://127.0.0.1:{}", ports.legacy),
        gateway_url: format!("http://127.0.0.1:{}", ports.gateway),
        admin_url: format!("http://127.0.0.1:{}", ports.admin),
    })
}

async fn set_phase(admin_url: &str, phase: &str, percent: Option<u8>) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .put(format!("{admin_url}/routes/bench"))
        .bearer_auth(DEV_ADMIN_TOKEN)
        .json(&json!({"phase": phase, "percent": percent, "reason": "benchmark"}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "setting phase {phase}: {}",
        response.text().await?
    );
    Ok(())
}

async fn shadow_counters(admin_url: &str) -> anyhow::Result<(u64, u64)> {
    let route: Value = reqwest::get(format!("{admin_url}/routes/bench"))
        .await?
        .json()
        .await?;
    let c = &route["counters"];
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    let dropped = n("shadows_dropped_queue_full")
        + n("shadows_dropped_body_too_large")
        + n("shadow_timeouts")
        + n("shadow_errors")
        + n("compare_dropped");
    Ok((n("shadows_sent"), dropped))
}

/// Runs every case and returns the results, direct first.
pub async fn run(
    settings: &Settings,
    path: &str,
    targets: &[Target],
) -> anyhow::Result<Vec<CaseResult>> {
    let mut running = start(settings)
        .await
        .context("starting the gateway benchmark processes")?;
    let mut results = Vec::new();
    for &target in targets {
        let (url, pid) = match target {
            Target::Direct => (format!("{}{path}", running.legacy_url), None),
            Target::Gateway {
                phase,
                percent,
                diffing,
            } => {
                let pid = running.gateway(settings, diffing).await?;
                set_phase(&running.admin_url, phase, percent).await?;
                (format!("{}{path}", running.gateway_url), Some(pid))
            }
        };
        for (mode, rate) in [("saturation", None), ("fixed rate", Some(settings.rate))] {
            let load = Load {
                url: url.clone(),
                method: "GET",
                body: None,
                headers: vec![],
                duration: settings.duration,
                connections: settings.connections,
                rate,
            };
            // Warm up connections and caches, then measure.
            load::run(
                &settings.oha,
                &Load {
                    duration: Duration::from_secs(1),
                    ..load.clone()
                },
            )
            .await?;
            let counters = |on: bool| {
                let admin = running.admin_url.clone();
                async move {
                    if on {
                        shadow_counters(&admin).await
                    } else {
                        Ok((0, 0))
                    }
                }
            };
            let before = counters(pid.is_some()).await?;
            let sampler = pid.map(Sampler::start);
            let measured = load::run(&settings.oha, &load).await?;
            let usage = match sampler {
                Some(sampler) => Some(sampler.finish().await),
                None => None,
            };
            let after = counters(pid.is_some()).await?;
            tracing::info!(case = %target.label(), mode, rps = measured.requests_per_sec, p99 = measured.p99_ms, "measured");
            results.push(CaseResult {
                target,
                mode,
                measured,
                gateway: usage,
                shadows_sent: after.0 - before.0,
                shadows_dropped: after.1 - before.1,
            });
        }
    }
    if let Some(gateway) = running.gateway.take() {
        gateway.terminate().await;
    }
    Ok(results)
}

/// The Markdown table of a gateway suite run.
pub fn table(title: &str, settings: &Settings, results: &[CaseResult]) -> String {
    let mut out = format!(
        "## {title}\n\n{} s per case after a 1 s warm-up, {} connections; fixed-rate runs at {} requests/s. \
         CPU is the gateway's CPU seconds per second of load (1.0 = one core).\n\n\
         | case | load | req/s | p50 ms | p99 ms | p99.9 ms | added p99 ms | gateway CPU | gateway peak RSS MiB | shadows sent | shadows dropped | non-2xx |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        settings.duration.as_secs(),
        settings.connections,
        settings.rate,
    );
    for result in results {
        let direct = results
            .iter()
            .find(|r| r.target == Target::Direct && r.mode == result.mode)
            .map_or(f64::NAN, |r| r.measured.p99_ms);
        let m = &result.measured;
        let (cpu, rss) = match result.gateway {
            Some(u) => (
                format!("{:.2}", u.cpu_seconds / settings.duration.as_secs_f64()),
                format!("{:.1}", u.peak_rss_kib as f64 / 1024.0),
            ),
            None => ("–".into(), "–".into()),
        };
        let added = if result.target == Target::Direct {
            "–".into()
        } else {
            ms(m.p99_ms - direct)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            result.target.label(),
            result.mode,
            m.requests_per_sec,
            ms(m.p50_ms),
            ms(m.p99_ms),
            ms(m.p999_ms),
            added,
            cpu,
            rss,
            result.shadows_sent,
            result.shadows_dropped,
            m.non_2xx,
        );
    }
    out
}

/// `docs/benchmarks.md` of this checkout.
pub fn doc_path(root: &Path) -> PathBuf {
    root.join("docs/benchmarks.md")
}
