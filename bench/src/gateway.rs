//! Proxy overhead: the same workloads sent straight to the upstream, through nginx as a
//! plain reverse proxy, and through the gateway with its route in each phase, at
//! saturation and at a fixed rate, all in one run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::load::{self, FIXED_RATE, Load, Measured, SATURATION};
use crate::process::{Sampler, Usage};
use crate::report::ms;
use studyflow_testkit::stack::{DEV_ADMIN_TOKEN, Ports, Process, gateway_command};

/// How long and how hard each case runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub duration: Duration,
    pub connections: usize,
    pub bin_dir: PathBuf,
    pub generator: load::Generator,
    pub work_dir: PathBuf,
    /// Compare with nginx (needs the `nginx` binary).
    pub nginx: bool,
}

/// What the load sends.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub body: Option<PathBuf>,
    /// Requests per second of the fixed-rate runs.
    pub rate: u32,
}

/// The workloads of the suite: a small JSON GET, a 64 KiB JSON POST and a server-sent
/// event stream (20 events, 5 ms apart).
pub fn workloads(work_dir: &Path) -> anyhow::Result<Vec<Workload>> {
    std::fs::create_dir_all(work_dir)?;
    let body = work_dir.join("body-64k.json");
    let item =
        json!({"title": "Read chapter 4", "notes": "x".repeat(200), "tags": ["physics", "exam"]});
    let items: Vec<Value> = std::iter::repeat_n(item, 1)
        .cycle()
        .take(64 * 1024 / 260)
        .collect();
    std::fs::write(&body, json!({"tasks": items}).to_string())?;
    Ok(vec![
        Workload {
            name: "small JSON GET",
            method: "GET",
            path: "/bench/json",
            body: None,
            rate: 2000,
        },
        Workload {
            name: "64 KiB JSON POST",
            method: "POST",
            path: "/bench/upload",
            body: Some(body),
            rate: 500,
        },
        Workload {
            name: "SSE stream (20 events)",
            method: "GET",
            path: "/bench/sse",
            body: None,
            rate: 200,
        },
    ])
}

/// Where a case sends its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Direct,
    Nginx,
    /// The smallest pingora proxy (`bare-pingora`): the gateway's floor.
    BarePingora,
    /// Bare pingora doing what the gateway's contract asks of every request: the seven
    /// headers it adds, and the upstream connect and read timeouts (instruction counts
    /// and the paired rounds).
    BarePingoraContract,
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

    pub fn label(self) -> String {
        match self {
            Target::Direct => "upstream directly".into(),
            Target::Nginx => "nginx reverse proxy".into(),
            Target::BarePingora => "bare pingora proxy".into(),
            Target::BarePingoraContract => {
                "bare pingora + the contract (7 headers, timeouts)".into()
            }
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
    pub workload: &'static str,
    pub target: Target,
    pub mode: &'static str,
    pub measured: Measured,
    /// CPU and memory of the proxy under test (gateway or nginx).
    pub proxy: Option<Usage>,
    pub shadows_sent: u64,
    pub shadows_dropped: u64,
}

impl CaseResult {
    /// The proxy's own CPU time per answered request, in microseconds (user and system
    /// time of its processes over one round's requests): what a request costs the proxy,
    /// apart from the upstreams and the load generator that share the cores.
    pub fn cpu_per_request_us(&self, duration: Duration) -> Option<f64> {
        let requests = self.measured.requests_per_sec * duration.as_secs_f64();
        let usage = self.proxy?;
        (requests > 0.0).then(|| usage.cpu_seconds / requests * 1e6)
    }
}

/// The processes of a suite run.
#[derive(Debug)]
pub struct Running {
    _legacy: Process,
    _new: Process,
    nginx: Option<Process>,
    bare: Process,
    /// Bare pingora doing the contract's work, started on first use.
    bare_contract: Option<(Process, u16)>,
    gateway: Option<Process>,
    /// Whether the running gateway captures and compares answers.
    diffing: bool,
    ports: Ports,
    nginx_port: u16,
    bare_port: u16,
    diffs_url: String,
    legacy_url: String,
    pub gateway_url: String,
    pub admin_url: String,
}

impl Running {
    /// Starts both upstreams (and nginx when asked); the gateway starts on first use.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let ports = Ports::free()?;
        let dir = &settings.work_dir;
        std::fs::create_dir_all(dir)?;
        let upstream = |name: &'static str, port: u16| async move {
            let mut command = Command::new(settings.bin_dir.join("studyflow-bench"));
            command.args(["upstream", "--listen", &format!("127.0.0.1:{port}")]);
            let health = format!("http://127.0.0.1:{port}/bench/json");
            Process::spawn(name, command, &health, dir.join(format!("{name}.log"))).await
        };
        let legacy = upstream("upstream-legacy", ports.legacy).await?;
        let new = upstream("upstream-new", ports.backend).await?;
        std::fs::write(
            dir.join("routes.yaml"),
            "routes:\n  - {name: bench, path: /bench/*, phase: legacy}\n",
        )?;
        let diffs_url = studyflow_testkit::database::create("studyflow_bench_diffs").await?;
        let free = studyflow_testkit::stack::Ports::free()?;
        let (nginx_port, bare_port) = (free.gateway, free.admin);
        let bare = spawn_bare(settings, Target::BarePingora, bare_port, ports.legacy).await?;
        let mut running = Self {
            _legacy: legacy,
            _new: new,
            nginx: None,
            bare,
            bare_contract: None,
            bare_port,
            gateway: None,
            diffing: false,
            ports,
            nginx_port,
            diffs_url,
            legacy_url: format!("http://127.0.0.1:{}", ports.legacy),
            gateway_url: format!("http://127.0.0.1:{}", ports.gateway),
            admin_url: format!("http://127.0.0.1:{}", ports.admin),
        };
        if settings.nginx {
            running.nginx = Some(running.start_nginx(dir).await?);
        }
        Ok(running)
    }

    async fn start_nginx(&self, dir: &Path) -> anyhow::Result<Process> {
        let nginx_dir = dir.join("nginx");
        for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(nginx_dir.join(sub))?;
        }
        // A plain reverse proxy tuned like the gateway: two workers, kept-alive upstream
        // connections, no buffering (streams pass through), no access log.
        let conf = format!(
            "user root;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream legacy {{ server 127.0.0.1:{up}; keepalive 128; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 16m;\n\
                 location / {{ proxy_pass http://legacy; proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
                   proxy_buffering off; proxy_request_buffering off; }}\n  }}\n}}\n",
            d = nginx_dir.display(),
            up = self.ports.legacy,
            port = self.nginx_port,
        );
        let conf_path = nginx_dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut command = Command::new("nginx");
        command
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"]);
        let health = format!("http://127.0.0.1:{}/bench/json", self.nginx_port);
        Process::spawn("nginx", command, &health, dir.join("nginx.log")).await
    }

    /// The gateway's command, with diffing on or off, starting from the shipped state.
    fn gateway_command(&self, settings: &Settings, diffing: bool) -> Command {
        let ports = self.ports;
        let dir = &settings.work_dir;
        let _ = std::fs::remove_file(dir.join("state.json"));
        let mut command = gateway_command(
            &settings.bin_dir.join("studyflow-gateway"),
            ports,
            &self.legacy_url,
            &format!("http://127.0.0.1:{}", ports.backend),
        );
        command
            .env("RUST_LOG", "warn")
            .env("STUDYFLOW_GATEWAY__ROUTES_FILE", dir.join("routes.yaml"))
            .env("STUDYFLOW_GATEWAY__STATE_FILE", dir.join("state.json"))
            .env("STUDYFLOW_GATEWAY__SHADOW__COMPARE", diffing.to_string())
            // Without a shadow secret the gateway sends no copies at all (they could not
            // be marked as dry runs); the benchmark upstream ignores the marker.
            .env("STUDYFLOW_GATEWAY__SHADOW__SECRET", BENCH_SHADOW_SECRET);
        if diffing {
            command.env(
                "STUDYFLOW_GATEWAY__DIFF_STORE__DATABASE_URL",
                &self.diffs_url,
            );
        }
        command
    }

    /// The command of a proxy to run on its own (under callgrind), the URL of the small
    /// GET through it, and its health URL. A gateway takes the running one's ports, so
    /// that one is stopped; bare pingora gets a free port.
    pub async fn command_for(
        &mut self,
        settings: &Settings,
        target: Target,
    ) -> anyhow::Result<(Command, String, String)> {
        const PATH: &str = "/bench/json";
        match target {
            Target::BarePingora | Target::BarePingoraContract => {
                let port = Ports::free()?.gateway;
                let command = bare_command(settings, target, port, self.ports.legacy);
                let url = format!("http://127.0.0.1:{port}{PATH}");
                Ok((command, url.clone(), url))
            }
            Target::Gateway { diffing, .. } => {
                if let Some(old) = self.gateway.take() {
                    old.terminate().await;
                }
                Ok((
                    self.gateway_command(settings, diffing),
                    format!("{}{PATH}", self.gateway_url),
                    format!("{}/health", self.admin_url),
                ))
            }
            other => anyhow::bail!("{} is not counted", other.label()),
        }
    }

    /// (Re)starts the gateway with diffing on or off; keeps it when already so.
    pub async fn gateway(&mut self, settings: &Settings, diffing: bool) -> anyhow::Result<u32> {
        if self.gateway.is_none() || self.diffing != diffing {
            if let Some(old) = self.gateway.take() {
                old.terminate().await;
            }
            let dir = &settings.work_dir;
            let command = self.gateway_command(settings, diffing);
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

    /// The URL of `path` on `target` and the pid of the proxy under test.
    pub async fn prepare(
        &mut self,
        settings: &Settings,
        target: Target,
        path: &str,
    ) -> anyhow::Result<(String, Option<u32>)> {
        Ok(match target {
            Target::Direct => (format!("{}{path}", self.legacy_url), None),
            Target::Nginx => {
                let pid = self
                    .nginx
                    .as_ref()
                    .and_then(Process::pid)
                    .context("nginx is not running")?;
                (
                    format!("http://127.0.0.1:{}{path}", self.nginx_port),
                    Some(pid),
                )
            }
            Target::BarePingora => (
                format!("http://127.0.0.1:{}{path}", self.bare_port),
                self.bare.pid(),
            ),
            Target::BarePingoraContract => {
                let (process, port) = match &self.bare_contract {
                    Some(running) => running,
                    None => {
                        let port = Ports::free()?.gateway;
                        let process = spawn_bare(settings, target, port, self.ports.legacy).await?;
                        self.bare_contract.insert((process, port))
                    }
                };
                (format!("http://127.0.0.1:{port}{path}"), process.pid())
            }
            Target::Gateway {
                phase,
                percent,
                diffing,
            } => {
                let pid = self.gateway(settings, diffing).await?;
                set_phase(&self.admin_url, phase, percent).await?;
                (format!("{}{path}", self.gateway_url), Some(pid))
            }
        })
    }

    pub async fn stop(mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.terminate().await;
        }
        if let Some(nginx) = self.nginx.take() {
            nginx.terminate().await;
        }
        self.bare.terminate().await;
        if let Some((process, _)) = self.bare_contract.take() {
            process.terminate().await;
        }
    }
}

/// The command of bare pingora (doing the contract's work for
/// [`Target::BarePingoraContract`]) listening on `port`, in front of `upstream`.
fn bare_command(settings: &Settings, target: Target, port: u16, upstream: u16) -> Command {
    let mut command = Command::new(settings.bin_dir.join("bare-pingora"));
    if target == Target::BarePingoraContract {
        command.env("BARE_PINGORA_CONTRACT", "1");
    }
    command.args([format!("127.0.0.1:{port}"), format!("127.0.0.1:{upstream}")]);
    command
}

/// Bare pingora (see [`bare_command`]) started and answering.
async fn spawn_bare(
    settings: &Settings,
    target: Target,
    port: u16,
    upstream: u16,
) -> anyhow::Result<Process> {
    let name = match target {
        Target::BarePingoraContract => "bare-pingora-contract",
        _ => "bare-pingora",
    };
    let command = bare_command(settings, target, port, upstream);
    let health = format!("http://127.0.0.1:{port}/bench/json");
    let log = settings.work_dir.join(format!("{name}.log"));
    Process::spawn(name, command, &health, log).await
}

pub async fn set_phase(admin_url: &str, phase: &str, percent: Option<u8>) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .put(format!("{admin_url}/routes/bench"))
        .bearer_auth(DEV_ADMIN_TOKEN)
        // Forced: a benchmark moves phases without the promotion gate's evidence.
        .json(&json!({"phase": phase, "percent": percent, "reason": "benchmark", "force": true}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "setting phase {phase}: {}",
        response.text().await?
    );
    Ok(())
}

/// The bench route's counters, as the admin API shows them.
async fn route_counters(admin_url: &str) -> anyhow::Result<Value> {
    let route: Value = reqwest::get(format!("{admin_url}/routes/bench"))
        .await?
        .json()
        .await?;
    Ok(route["counters"].clone())
}

fn counter(counters: &Value, name: &str) -> u64 {
    counters[name].as_u64().unwrap_or(0)
}

/// Shadows sent and dropped so far on the bench route.
pub async fn shadow_counters(admin_url: &str) -> anyhow::Result<(u64, u64)> {
    let c = route_counters(admin_url).await?;
    let dropped = [
        "shadows_dropped_queue_full",
        "shadows_dropped_body_too_large",
        "shadow_timeouts",
        "shadow_errors",
        "compare_dropped",
    ]
    .iter()
    .map(|name| counter(&c, name))
    .sum();
    Ok((counter(&c, "shadows_sent"), dropped))
}

/// Waits until every copy sent on the bench route so far is compared or counted as
/// dropped. The comparison stage compares nothing before its diff store is open, so
/// once this returns the store's opening (its connection, migrations, learned noise)
/// is behind.
pub async fn copies_settled(admin_url: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let c = route_counters(admin_url).await?;
        let sent = counter(&c, "shadows_sent");
        let ended: u64 = [
            "pairs_equal",
            "pairs_noise",
            "pairs_regression",
            "pairs_provider_skipped",
            "shadows_dropped_queue_full",
            "shadows_dropped_body_too_large",
            "shadows_dropped_over_budget",
            "shadow_timeouts",
            "shadow_errors",
            "served_failed",
            "compare_dropped",
        ]
        .iter()
        .map(|name| counter(&c, name))
        .sum();
        if ended >= sent {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{ended} of {sent} copies compared or dropped after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A token whose `sub` the gateway reads for canary buckets (unsigned: routing only).
/// The shadow secret of the benchmark's gateways.
const BENCH_SHADOW_SECRET: &str = "benchmark-shadow-secret-of-sufficient-length";

pub const BENCH_BEARER: &str =
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaC11c2VyIiwicm9sZSI6ImF1dGhlbnRpY2F0ZWQifQ.c2ln";

/// Rounds of each fixed-rate run; the median by p99 is reported.
const FIXED_RATE_ROUNDS: usize = 3;

/// The request load of `workload` against `url`, at `rate` (`None`: saturation).
fn load_for(settings: &Settings, workload: &Workload, url: &str, rate: Option<u32>) -> Load {
    Load {
        url: url.to_owned(),
        method: workload.method,
        body: workload.body.clone(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), BENCH_BEARER.into()),
        ],
        duration: settings.duration,
        connections: settings.connections,
        rate,
    }
}

/// One second of `workload` at saturation against a freshly prepared target, so that
/// connections, pools and caches are warm before anything is measured.
async fn warm_up(settings: &Settings, workload: &Workload, url: &str) -> anyhow::Result<()> {
    let load = Load {
        duration: Duration::from_secs(1),
        ..load_for(settings, workload, url, None)
    };
    settings.generator.run(&load).await.map(drop)
}

/// Measures one case on a warmed-up target (three rounds in the "fixed rate" mode),
/// sampling the proxy.
pub async fn measure(
    settings: &Settings,
    running: &Running,
    workload: &Workload,
    (target, url, pid): (Target, &str, Option<u32>),
    (mode, rate): (&'static str, Option<u32>),
) -> anyhow::Result<CaseResult> {
    let load = load_for(settings, workload, url, rate);
    let gateway = matches!(target, Target::Gateway { .. });
    let before = if gateway {
        shadow_counters(&running.admin_url).await?
    } else {
        (0, 0)
    };
    let sampler = pid.map(Sampler::start);
    // A fixed-rate p99 on these shared cores moves with every scheduling hiccup: the runs
    // whose p99 the targets compare are repeated and the round with the median p99 kept.
    let rounds = if mode == FIXED_RATE {
        FIXED_RATE_ROUNDS
    } else {
        1
    };
    let mut measured = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        measured.push(settings.generator.run(&load).await?);
    }
    measured.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
    let measured = measured[rounds / 2];
    // CPU per round, so that it reads per second of load like a single run.
    let proxy = match sampler {
        Some(sampler) => {
            let mut usage = sampler.finish().await;
            usage.cpu_seconds /= rounds as f64;
            Some(usage)
        }
        None => None,
    };
    let after = if gateway {
        shadow_counters(&running.admin_url).await?
    } else {
        (0, 0)
    };
    tracing::info!(workload = workload.name, case = %target.label(), mode, rps = measured.requests_per_sec, p99 = measured.p99_ms, "measured");
    Ok(CaseResult {
        workload: workload.name,
        target,
        mode,
        measured,
        proxy,
        shadows_sent: after.0 - before.0,
        shadows_dropped: after.1 - before.1,
    })
}

/// The gateway with its route in `legacy`: the case compared with bare pingora.
pub const LEGACY: Target = Target::Gateway {
    phase: "legacy",
    percent: None,
    diffing: false,
};

/// The gateway case the shadow targets are judged on.
const SHADOW_DIFFING: Target = Target::Gateway {
    phase: "shadow",
    percent: None,
    diffing: true,
};

/// The load mode of the shadow-with-diffing run at 70 % of its measured saturation.
const AT_70_PERCENT: &str = "70 % of saturation";

/// Rounds of the paired comparison of the gateway in `legacy` with bare pingora.
const PAIRED_ROUNDS: usize = 6;

/// The proxies of a paired round, in the order of [`PairedRound::arms`]: bare pingora,
/// bare pingora doing the contract's work, and the gateway in `legacy`.
const PAIRED_ARMS: [Target; 3] = [Target::BarePingora, Target::BarePingoraContract, LEGACY];
const BARE: usize = 0;
const BARE_CONTRACT: usize = 1;
const GATEWAY: usize = 2;

/// What a suite run measured.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Every target and workload, one case per load mode.
    pub cases: Vec<CaseResult>,
    /// The gateway in `legacy` against bare pingora, round by round, per workload.
    pub paired: Vec<Paired>,
}

/// The gateway in `legacy`, bare pingora, and bare pingora doing the contract's work
/// at saturation, one after the other round after round (each round starts with the
/// next one), so that the machine's noise falls on all alike and each ratio comes with
/// its spread.
#[derive(Debug, Clone)]
pub struct Paired {
    pub workload: &'static str,
    pub rounds: Vec<PairedRound>,
}

/// One round of a [`Paired`] comparison.
#[derive(Debug, Clone, Copy)]
pub struct PairedRound {
    /// Requests per second and proxy CPU µs per request of each of [`PAIRED_ARMS`].
    pub arms: [(f64, Option<f64>); 3],
}

impl Paired {
    /// Gateway over bare pingora throughput (see [`Paired::ratio_of`]).
    pub fn ratio(&self) -> Option<(f64, f64, f64)> {
        self.ratio_of(GATEWAY, BARE)
    }

    /// Throughput of arm `of` over arm `over`, round by round: the median round's ratio,
    /// and the lowest and highest.
    pub fn ratio_of(&self, of: usize, over: usize) -> Option<(f64, f64, f64)> {
        let mut ratios: Vec<f64> = self
            .rounds
            .iter()
            .filter(|r| r.arms[over].0 > 0.0)
            .map(|r| r.arms[of].0 / r.arms[over].0)
            .collect();
        ratios.sort_by(f64::total_cmp);
        Some((median(&ratios)?, *ratios.first()?, *ratios.last()?))
    }

    /// The median throughput and CPU µs per request of `arm`.
    fn medians(&self, arm: usize) -> (Option<f64>, Option<f64>) {
        let sorted_median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            median(&values)
        };
        let arms = self.rounds.iter().map(|r| r.arms[arm]);
        (
            sorted_median(arms.clone().map(|(rps, _)| rps).collect()),
            sorted_median(arms.filter_map(|(_, cpu)| cpu).collect()),
        )
    }
}

/// The middle value of sorted `values` (the mean of the two middle ones for an even
/// count).
fn median(values: &[f64]) -> Option<f64> {
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The paired rounds of `workload` (see [`Paired`]).
async fn paired(
    settings: &Settings,
    running: &mut Running,
    workload: &Workload,
) -> anyhow::Result<Paired> {
    let mut prepared = Vec::with_capacity(PAIRED_ARMS.len());
    for target in PAIRED_ARMS {
        let (url, pid) = running.prepare(settings, target, workload.path).await?;
        warm_up(settings, workload, &url).await?;
        prepared.push((target, url, pid));
    }
    let mut rounds = Vec::with_capacity(PAIRED_ROUNDS);
    for round in 0..PAIRED_ROUNDS {
        let mut arms = [(0.0, None); 3];
        for step in 0..PAIRED_ARMS.len() {
            let arm = (round + step) % PAIRED_ARMS.len();
            let (target, url, pid) = &prepared[arm];
            let case = (*target, url.as_str(), *pid);
            let result = measure(settings, running, workload, case, (SATURATION, None)).await?;
            arms[arm] = (
                result.measured.requests_per_sec,
                result.cpu_per_request_us(settings.duration),
            );
        }
        rounds.push(PairedRound { arms });
    }
    Ok(Paired {
        workload: workload.name,
        rounds,
    })
}

/// Runs every workload against every target, at saturation and at the workload's rate;
/// shadow with diffing also at 70 % of its saturation throughput; then the gateway in
/// `legacy` against bare pingora in paired rounds.
pub async fn run(
    settings: &Settings,
    workloads: &[Workload],
    targets: &[Target],
) -> anyhow::Result<Suite> {
    let mut running = Running::start(settings)
        .await
        .context("starting the benchmark processes")?;
    let mut results = Vec::new();
    for &target in targets {
        for workload in workloads {
            let (url, pid) = running.prepare(settings, target, workload.path).await?;
            warm_up(settings, workload, &url).await?;
            let mut saturation = 0.0;
            for (mode, rate) in [(SATURATION, None), (FIXED_RATE, Some(workload.rate))] {
                let result = measure(
                    settings,
                    &running,
                    workload,
                    (target, &url, pid),
                    (mode, rate),
                )
                .await?;
                if rate.is_none() {
                    saturation = result.measured.requests_per_sec;
                }
                results.push(result);
            }
            // Shadowing must drop nothing below 70 % of the gateway's own saturation.
            if target == SHADOW_DIFFING {
                let rate = (saturation * 0.7).round().max(1.0) as u32;
                results.push(
                    measure(
                        settings,
                        &running,
                        workload,
                        (target, &url, pid),
                        (AT_70_PERCENT, Some(rate)),
                    )
                    .await?,
                );
            }
        }
    }
    let mut paired_rounds = Vec::new();
    if targets.contains(&Target::BarePingora) {
        for workload in workloads {
            paired_rounds.push(paired(settings, &mut running, workload).await?);
        }
    }
    running.stop().await;
    Ok(Suite {
        cases: results,
        paired: paired_rounds,
    })
}

fn find<'a>(
    results: &'a [CaseResult],
    workload: &str,
    target: Target,
    mode: &str,
) -> Option<&'a CaseResult> {
    results
        .iter()
        .find(|r| r.workload == workload && r.target == target && r.mode == mode)
}

/// The Markdown tables of a suite run: one per workload, then the headline ratios.
pub fn table(settings: &Settings, suite: &Suite, workloads: &[Workload]) -> String {
    let results = &suite.cases;
    let mut out = format!(
        "## Proxy overhead\n\nLoad from wrk, {} connections; each case gets a 1 s warm-up, then runs {} s at saturation and \
         {FIXED_RATE_ROUNDS} times {} s at the fixed rate in each table's title, where the round with the median p99 is \
         shown (shadow counts add up all rounds). CPU is the proxy's CPU seconds per second of load (1.0 = one core; nginx: all its \
         processes). The load generator, the upstreams, the proxy and Postgres share this machine's cores, so \
         compare rows, not absolute numbers. Canary runs carry one user's token: all requests land on one side \
         (sticky), so they measure the routing cost, not a split.\n",
        settings.connections,
        settings.duration.as_secs(),
        settings.duration.as_secs(),
    );
    for workload in workloads {
        let _ = write!(
            out,
            "\n### {} (fixed rate {} req/s)\n\n\
             | case | load | req/s | p50 ms | p99 ms | p99.9 ms | added p99 ms | proxy CPU | proxy CPU µs / request | proxy peak RSS MiB | shadows sent | shadows dropped | failed |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            workload.name, workload.rate
        );
        for result in results.iter().filter(|r| r.workload == workload.name) {
            // Direct has no run at 70 % of the gateway's saturation: nothing to add to.
            let direct = find(results, workload.name, Target::Direct, result.mode)
                .map(|r| r.measured.p99_ms);
            let m = &result.measured;
            let (cpu, rss) = match result.proxy {
                Some(u) => (
                    format!("{:.2}", u.cpu_seconds / settings.duration.as_secs_f64()),
                    format!("{:.1}", u.peak_rss_kib as f64 / 1024.0),
                ),
                None => ("–".into(), "–".into()),
            };
            let added = match direct {
                Some(direct) if result.target != Target::Direct => ms(m.p99_ms - direct),
                _ => "–".into(),
            };
            let per_request = result
                .cpu_per_request_us(settings.duration)
                .map_or_else(|| "–".into(), |us| format!("{us:.1}"));
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                result.target.label(),
                result.mode,
                m.requests_per_sec,
                ms(m.p50_ms),
                ms(m.p99_ms),
                ms(m.p999_ms),
                added,
                cpu,
                per_request,
                rss,
                result.shadows_sent,
                result.shadows_dropped,
                m.failed,
            );
        }
    }
    out.push_str(&paired_table(&suite.paired, settings.duration));
    out.push_str(&headline(suite, workloads, settings.duration));
    out
}

/// The paired rounds of the gateway in `legacy` against bare pingora, with and without
/// the contract's work.
fn paired_table(paired: &[Paired], duration: Duration) -> String {
    if paired.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n### Gateway in `legacy` against bare pingora, paired rounds\n\n\
         {PAIRED_ROUNDS} rounds of {} s at saturation per workload: bare pingora, bare pingora doing what the \
         gateway's contract asks of every request (its seven headers, the upstream connect and read timeouts), and the gateway, one after the other, each round starting with the \
         next one, so that the machine's noise falls on all alike. Each ratio is the median round's, with the \
         lowest and highest round; throughput and CPU per request are medians.\n\n\
         | workload | gateway / bare pingora throughput | bare pingora + contract / bare pingora | gateway / bare pingora + contract | req/s: bare pingora, + contract, gateway | CPU µs / request: bare pingora, + contract, gateway | CPU ratio gateway / bare pingora |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        duration.as_secs(),
    );
    for p in paired {
        let ratio = |of, over| {
            p.ratio_of(of, over).map_or_else(
                || "–".into(),
                |(median, low, high)| format!("{median:.2} ({low:.2}–{high:.2})"),
            )
        };
        let medians = [BARE, BARE_CONTRACT, GATEWAY].map(|arm| p.medians(arm));
        let rps = medians.map(|(rps, _)| rps.map_or_else(|| "–".into(), |v| format!("{v:.0}")));
        let cpu = medians.map(|(_, cpu)| cpu.map_or_else(|| "–".into(), |v| format!("{v:.1}")));
        let cpu_ratio = match (medians[GATEWAY].1, medians[BARE].1) {
            (Some(g), Some(b)) if b > 0.0 => format!("{:.2}", g / b),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            p.workload,
            ratio(GATEWAY, BARE),
            ratio(BARE_CONTRACT, BARE),
            ratio(GATEWAY, BARE_CONTRACT),
            rps.join(" / "),
            cpu.join(" / "),
            cpu_ratio,
        );
    }
    out
}

/// Ratios of the gateway against bare pingora (the paired rounds' median when there
/// are any), direct and nginx, per workload.
fn headline(suite: &Suite, workloads: &[Workload], duration: Duration) -> String {
    let results = &suite.cases;
    let legacy = LEGACY;
    let shadow = SHADOW_DIFFING;
    let mut out = String::from(
        "\n### Headline\n\n| workload | gateway/bare pingora throughput (paired rounds: median, lowest–highest) | gateway/nginx throughput | gateway/direct throughput | added p99 gateway vs nginx (ms, fixed rate) | shadow+diffing p99 / legacy p99 (fixed rate) | gateway CPU per request, shadow+diffing vs legacy (µs, saturation) | shadows dropped at 70 % of saturation |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for workload in workloads {
        let get = |target, mode| find(results, workload.name, target, mode).map(|r| r.measured);
        let ratio = |a: Option<Measured>, b: Option<Measured>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", a.requests_per_sec / b.requests_per_sec),
            _ => "–".into(),
        };
        let added = match (
            get(legacy, FIXED_RATE),
            get(Target::Nginx, FIXED_RATE),
            get(Target::Direct, FIXED_RATE),
        ) {
            (Some(g), Some(n), Some(d)) => {
                format!("{} vs {}", ms(g.p99_ms - d.p99_ms), ms(n.p99_ms - d.p99_ms))
            }
            _ => "–".into(),
        };
        let shadow_ratio = match (get(shadow, FIXED_RATE), get(legacy, FIXED_RATE)) {
            (Some(s), Some(l)) => format!("{:.2}", s.p99_ms / l.p99_ms),
            _ => "–".into(),
        };
        let cpu = |target| {
            find(results, workload.name, target, SATURATION)
                .and_then(|r| r.cpu_per_request_us(duration))
        };
        let cpu = match (cpu(shadow), cpu(legacy)) {
            (Some(s), Some(l)) => format!("{s:.1} vs {l:.1} ({:.2}×)", s / l),
            _ => "–".into(),
        };
        let paired = suite.paired.iter().find(|p| p.workload == workload.name);
        let bare_ratio = match paired.and_then(Paired::ratio) {
            Some((median, low, high)) => format!("{median:.2} ({low:.2}–{high:.2})"),
            None => ratio(
                get(legacy, SATURATION),
                get(Target::BarePingora, SATURATION),
            ),
        };
        let dropped = find(results, workload.name, shadow, AT_70_PERCENT).map_or_else(
            || "–".into(),
            |r| format!("{} ({} sent)", r.shadows_dropped, r.shadows_sent),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            workload.name,
            bare_ratio,
            ratio(get(legacy, SATURATION), get(Target::Nginx, SATURATION)),
            ratio(get(legacy, SATURATION), get(Target::Direct, SATURATION)),
            added,
            shadow_ratio,
            cpu,
            dropped,
        );
    }
    out
}

/// `docs/benchmarks.md` of this checkout.
pub fn doc_path(root: &Path) -> PathBuf {
    root.join("docs/benchmarks.md")
}
