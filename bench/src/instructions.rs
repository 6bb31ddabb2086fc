//! Instructions per request, counted by callgrind (valgrind) rather than timed, so the
//! comparison between bare pingora and the gateway's phases does not depend on the
//! machine's noise: each proxy runs under callgrind, gets a warm-up, has its counters
//! zeroed, serves a fixed number of small GETs one after the other on one kept-alive
//! connection, and is dumped. Background work of those seconds (shadow copies, their
//! comparison) counts too: it is what a request costs the gateway.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::process::Command;

use crate::gateway::{BENCH_BEARER, LEGACY, Running, Settings, Target, copies_settled, set_phase};
use studyflow_testkit::stack::Process;

/// Requests before the counters are zeroed, and requests counted.
const WARM_UP: usize = 200;
pub const REQUESTS: usize = 2000;

/// One target's count.
#[derive(Debug, Clone)]
pub struct Count {
    pub target: Target,
    pub per_request: f64,
    /// Instructions by function (self cost, whole window).
    pub functions: HashMap<String, u64>,
}

/// Counts bare pingora and each gateway target of `targets`, one after the other.
pub async fn run(settings: &Settings, targets: &[Target]) -> anyhow::Result<Vec<Count>> {
    let mut running = Running::start(settings).await?;
    let mut counts = Vec::new();
    for &target in targets {
        let counted = match target {
            Target::BarePingora => vec![target, Target::BarePingoraContract],
            Target::Gateway { .. } => vec![target],
            _ => Vec::new(),
        };
        for target in counted {
            let counted = count(settings, &mut running, target).await?;
            tracing::info!(target = %target.label(), per_request = counted.per_request, "instructions");
            counts.push(counted);
        }
    }
    running.stop().await;
    Ok(counts)
}

/// `command` run under callgrind, its output in `out`.
fn under_callgrind(command: &Command, out: &Path) -> Command {
    let std = command.as_std();
    let mut wrapped = Command::new("valgrind");
    wrapped
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(std.get_program())
        .args(std.get_args());
    for (key, value) in std.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

fn callgrind_control(args: &[&str], pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .context("callgrind_control (valgrind) is not installed")?;
    anyhow::ensure!(status.success(), "callgrind_control {args:?} failed");
    Ok(())
}

/// Counts `target` (bare pingora or the gateway in a phase).
pub async fn count(
    settings: &Settings,
    running: &mut Running,
    target: Target,
) -> anyhow::Result<Count> {
    let label = target.label().replace([' ', ',', '%'], "-");
    let out = settings.work_dir.join(format!("callgrind-{label}.out"));
    for stale in dumps(&out)? {
        std::fs::remove_file(stale)?;
    }
    let (command, url, health) = running.command_for(settings, target).await?;
    let log = settings.work_dir.join(format!("callgrind-{label}.log"));
    let process = Process::spawn(
        "proxy under callgrind",
        under_callgrind(&command, &out),
        &health,
        log,
    )
    .await?;
    let pid = process.pid().context("pid")?;
    // A gateway's admin port answers first; its proxy port is bound when its service
    // starts, later under callgrind.
    let base = url.trim_end_matches("/bench/json");
    studyflow_testkit::process::wait_accepting(base, Duration::from_secs(120)).await?;
    if let Target::Gateway { phase, percent, .. } = target {
        set_phase(&running.admin_url, phase, percent).await?;
    }
    let mut connection = OneConnection::open(&url).await?;
    connection.get(WARM_UP).await?;
    if let Target::Gateway { diffing: true, .. } = target {
        // The warm-up's pairs compared: the diff store opened before the window.
        copies_settled(&running.admin_url, Duration::from_secs(120)).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    callgrind_control(&["--zero"], pid)?;
    connection.get(REQUESTS).await?;
    // Copies and comparisons of the last requests finish.
    tokio::time::sleep(Duration::from_secs(1)).await;
    callgrind_control(&["--dump"], pid)?;
    process.terminate().await;
    let dump = dumps(&out)?
        .into_iter()
        .min()
        .context("callgrind wrote no dump")?;
    let total = total_instructions(&dump)?;
    Ok(Count {
        target,
        per_request: total as f64 / REQUESTS as f64,
        functions: functions(&dump)?,
    })
}

/// One kept-alive HTTP/1.1 connection to the proxy, its requests sent one after the
/// other. A pooled client may open a second connection while the last answer is still
/// settling in its pool, more often the slower the proxy runs; the proxy's accept and
/// new connection buffers would then count in the window, in proportion to its time
/// rather than its requests.
struct OneConnection {
    sender: http1::SendRequest<Empty<Bytes>>,
    authority: String,
    path: String,
}

impl OneConnection {
    async fn open(url: &str) -> anyhow::Result<Self> {
        let uri: http::Uri = url.parse()?;
        let authority = uri.authority().context("the proxy's address")?.to_string();
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "connection to the counted proxy ended");
            }
        });
        Ok(Self {
            sender,
            authority,
            path: uri.path().to_owned(),
        })
    }

    /// `n` small GETs with the bench's token, each answer read whole.
    async fn get(&mut self, n: usize) -> anyhow::Result<()> {
        for _ in 0..n {
            let request = http::Request::get(self.path.as_str())
                .header(http::header::HOST, self.authority.as_str())
                .header(http::header::ACCEPT, "*/*")
                .header(http::header::AUTHORIZATION, BENCH_BEARER)
                .body(Empty::new())?;
            self.sender.ready().await?;
            let answer =
                tokio::time::timeout(Duration::from_secs(30), self.sender.send_request(request))
                    .await??;
            anyhow::ensure!(answer.status().is_success(), "{}", answer.status());
            answer.into_body().collect().await?;
        }
        Ok(())
    }
}

/// The dump files callgrind wrote for `out` (`<out>.1`, … for explicit dumps).
fn dumps(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = out.parent().context("work dir")?;
    let prefix = format!(
        "{}.",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("")
    );
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&prefix) && name[prefix.len()..].chars().all(|c| c.is_ascii_digit()) {
            found.push(path);
        }
    }
    Ok(found)
}

/// The `summary:` (or `totals:`) line of a dump: instructions executed.
fn total_instructions(dump: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(dump)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no summary in the callgrind dump")
}

/// Self instructions by function, read from the dump (callgrind's format: `fn=` starts a
/// function, cost lines `<position> <Ir>` are its own, except the line after `calls=`,
/// which is the inclusive cost of a call; names are compressed as `(id) name`, then
/// `(id)`).
fn functions(dump: &Path) -> anyhow::Result<HashMap<String, u64>> {
    let text = std::fs::read_to_string(dump)?;
    let mut names: HashMap<String, String> = HashMap::new();
    let mut name_of = |spec: &str| -> String {
        let spec = spec.trim();
        match spec.strip_prefix('(').and_then(|r| r.split_once(')')) {
            Some((id, rest)) if !rest.trim().is_empty() => {
                names.insert(id.to_owned(), rest.trim().to_owned());
                rest.trim().to_owned()
            }
            Some((id, _)) => names.get(id).cloned().unwrap_or_default(),
            None => spec.to_owned(),
        }
    };
    let mut functions: HashMap<String, u64> = HashMap::new();
    let (mut current, mut after_call) = (String::new(), false);
    for line in text.lines() {
        if let Some(spec) = line.strip_prefix("fn=") {
            current = name_of(spec);
        } else if let Some(spec) = line.strip_prefix("cfn=") {
            name_of(spec);
        } else if line.starts_with("calls=") {
            after_call = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '*')) {
            if std::mem::take(&mut after_call) {
                continue;
            }
            let cost = line
                .split_whitespace()
                .last()
                .and_then(|c| c.parse::<u64>().ok());
            if let Some(cost) = cost {
                *functions.entry(current.clone()).or_default() += cost;
            }
        }
    }
    Ok(functions)
}

/// The instruction table: per request and against bare pingora, then the functions
/// the gateway (in `legacy`) adds most over bare pingora.
pub fn table(counts: &[Count]) -> String {
    let bare = counts
        .iter()
        .find(|c| c.target == Target::BarePingora)
        .map(|c| c.per_request);
    let mut out = format!(
        "## Instructions per request\n\ncallgrind (valgrind), small JSON GET, {REQUESTS} requests one after the other on one \
         kept-alive connection after a {WARM_UP}-request warm-up (with diffing, once the warm-up's pairs are compared, so \
         the diff store's opening is not counted); every thread of the proxy counted, so shadow copies and their \
         comparison count too.\n\n| proxy | instructions / request | / bare pingora | / gateway in legacy |\n|---|---:|---:|---:|\n"
    );
    let legacy = counts.iter().find(|c| c.target == LEGACY);
    let ratio = |count: &Count, base: Option<f64>| {
        base.map_or_else(|| "–".into(), |b| format!("{:.2}", count.per_request / b))
    };
    for c in counts {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} |",
            c.target.label(),
            c.per_request,
            ratio(c, bare),
            ratio(c, legacy.map(|l| l.per_request)),
        );
    }
    let bare_counts = counts.iter().find(|c| c.target == Target::BarePingora);
    if let (Some(legacy), Some(bare)) = (legacy, bare_counts) {
        let mut added: Vec<(&String, f64)> = legacy
            .functions
            .iter()
            .map(|(name, n)| {
                let base = bare.functions.get(name).copied().unwrap_or(0);
                (name, (*n as f64 - base as f64) / REQUESTS as f64)
            })
            .filter(|(_, d)| *d > 0.0)
            .collect();
        added.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.push_str("\nFunctions the gateway (legacy) spends the most instructions on beyond bare pingora (self cost):\n\n| function | extra instructions / request |\n|---|---:|\n");
        for (name, delta) in added.into_iter().take(12) {
            let _ = writeln!(out, "| `{}` | {delta:.0} |", name.replace('|', "\\|"));
        }
    }
    out
}
