//! Runs the `wrk` load generator (Debian's package) with the suite's script (`wrk.lua`)
//! and reads the JSON summary the script prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The load modes of the suites: as fast as the target answers, and a fixed rate.
pub const SATURATION: &str = "saturation";
pub const FIXED_RATE: &str = "fixed rate";

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
    /// Answers with a 4xx or 5xx status, plus requests that failed at the socket
    /// (refused, reset, timed out).
    pub failed: u64,
}

/// The load generator: `wrk` and the script it runs.
#[derive(Debug, Clone)]
pub struct Generator {
    wrk: PathBuf,
    script: PathBuf,
}

/// wrk's threads; each sends its share of the connections and of the rate.
const THREADS: usize = 2;

/// A request slower than this counts as failed (wrk's own default is 2 s, which a
/// saturated 2-core machine can reach without anything being wrong).
const TIMEOUT: &str = "10s";

impl Generator {
    /// Finds `wrk` on PATH (`make bench` installs it) and writes the script under
    /// `work_dir`.
    pub fn new(work_dir: &Path) -> anyhow::Result<Self> {
        let wrk =
            which("wrk").context("wrk is not installed: run `make bench`, which installs it")?;
        std::fs::create_dir_all(work_dir)?;
        let script = work_dir.join("wrk.lua");
        std::fs::write(&script, include_str!("wrk.lua"))?;
        Ok(Self { wrk, script })
    }

    /// The generator and a whole stack for the suite `suite`, with their work files
    /// under `<root>/.stack/bench/<suite>` (returned too).
    pub async fn with_stack(
        root: &Path,
        suite: &str,
    ) -> anyhow::Result<(Self, studyflow_testkit::stack::Stack, PathBuf)> {
        let bench = root.join(".stack/bench");
        let generator = Self::new(&bench)?;
        let work_dir = bench.join(suite);
        std::fs::create_dir_all(&work_dir)?;
        let options = studyflow_testkit::stack::StackOptions::for_bench(&work_dir);
        let stack = studyflow_testkit::stack::Stack::start(options).await?;
        Ok((generator, stack, work_dir))
    }

    /// Runs `load` for one second, unmeasured (connections, pools and caches warm up),
    /// then measures it.
    pub async fn warm_then_run(&self, load: &Load) -> anyhow::Result<Measured> {
        self.run(&Load {
            duration: Duration::from_secs(1),
            ..load.clone()
        })
        .await?;
        self.run(load).await
    }

    /// Runs `load` and returns its measurements.
    pub async fn run(&self, load: &Load) -> anyhow::Result<Measured> {
        let threads = THREADS.min(load.connections).max(1);
        let mut command = tokio::process::Command::new(&self.wrk);
        command
            .arg("-s")
            .arg(&self.script)
            .args(["-t", &threads.to_string()])
            .args(["-c", &load.connections.to_string()])
            // wrk takes whole seconds (units s, m, h).
            .args(["-d", &format!("{}s", load.duration.as_secs().max(1))])
            .args(["--timeout", TIMEOUT])
            .env("STUDYFLOW_WRK_METHOD", load.method)
            .env(
                "STUDYFLOW_WRK_RATE",
                load.rate
                    .map_or(0.0, |rate| f64::from(rate) / threads as f64)
                    .to_string(),
            );
        match &load.body {
            Some(body) => command.env("STUDYFLOW_WRK_BODY", body),
            None => command.env_remove("STUDYFLOW_WRK_BODY"),
        };
        for (name, value) in &load.headers {
            command.args(["-H", &format!("{name}: {value}")]);
        }
        command.arg(&load.url);
        let output = command.output().await.context("running wrk")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk failed: {}{}",
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        parse(&stdout)
    }
}

/// The summary line `wrk.lua` prints from `done`, after wrk's own report.
#[derive(Debug, Deserialize)]
struct Summary {
    requests: u64,
    duration_us: u64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    error_statuses: u64,
    socket_errors: u64,
}

fn parse(stdout: &str) -> anyhow::Result<Measured> {
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .with_context(|| format!("wrk printed no summary line:\n{stdout}"))?;
    let summary: Summary = serde_json::from_str(line).context("reading wrk's summary")?;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(Measured {
        requests_per_sec: summary.requests as f64 / (summary.duration_us.max(1) as f64 / 1e6),
        p50_ms: ms(summary.p50_us),
        p99_ms: ms(summary.p99_us),
        p999_ms: ms(summary.p999_us),
        failed: summary.error_statuses + summary.socket_errors,
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_line_after_wrks_report() {
        let stdout = "Running 6s test @ http://127.0.0.1:1/bench/json\n  2 threads and 64 connections\n\
                      Requests/sec:  12000.00\n\
                      {\"requests\":72000,\"duration_us\":6000000,\"p50_us\":1500,\"p99_us\":4200,\"p999_us\":9100,\"error_statuses\":3,\"socket_errors\":2}\n";
        let measured = parse(stdout).expect("the summary line parses");
        assert_eq!(measured.requests_per_sec, 12_000.0);
        assert_eq!(
            (measured.p50_ms, measured.p99_ms, measured.p999_ms),
            (1.5, 4.2, 9.1)
        );
        assert_eq!(measured.failed, 5);
    }

    #[test]
    fn a_run_without_the_summary_line_is_an_error_that_shows_what_wrk_said() {
        let error = parse("unable to connect to 127.0.0.1:1 Connection refused\n")
            .expect_err("no summary line");
        assert!(format!("{error:#}").contains("Connection refused"));
    }
}
