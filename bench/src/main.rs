//! `make bench`: the benchmark suites, and the benchmark upstream they start.

use std::time::Duration;

use clap::{Parser, Subcommand};
use studyflow_bench::gateway::{self, Settings, Target};
use studyflow_bench::{
    criterion, data_api, embeddings, functions, instructions, load, plot, realtime, report, soak,
    ttft, upstream,
};
use studyflow_testkit::stack;

#[derive(Debug, Parser)]
#[command(name = "studyflow-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the benchmark upstream (used by the suites).
    Upstream {
        #[arg(long)]
        listen: String,
    },
    /// The diff engine's criterion results (run `cargo bench --workspace --bench diff` first).
    DiffEngine,
    /// Proxy overhead: direct, nginx, and the gateway in every phase, per workload; writes
    /// the tables and `docs/benchmarks-latency.png`.
    Proxy {
        /// Seconds per run (a case runs once at saturation, three times at a fixed rate).
        #[arg(long, default_value_t = 4)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Leave nginx out (when it is not installed).
        #[arg(long)]
        no_nginx: bool,
        /// Then run the memory soak for this many minutes (0: none).
        #[arg(long, default_value_t = 10)]
        soak_minutes: u64,
    },
    /// Instructions per request (callgrind) of bare pingora and the gateway's phases
    /// alone (`proxy` counts them after its load runs).
    Instructions,
    /// The memory soak alone, at a given rate (`proxy` runs it after its suite, at half
    /// the measured saturation of shadow with diffing).
    Soak {
        /// Requests per second of the small JSON GET.
        #[arg(long)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
    /// Time to first token of the streaming tutor: the fake provider directly, the
    /// backend, and the backend through the gateway.
    Ttft {
        /// Streams measured per target.
        #[arg(long, default_value_t = 300)]
        requests: usize,
        /// Streams per target before measuring.
        #[arg(long, default_value_t = 30)]
        warmup: usize,
    },
    /// Realtime broadcast fan-out across two backend instances, and memory per connection.
    Realtime {
        #[arg(long, default_value_t = 2000)]
        clients: usize,
        #[arg(long, default_value_t = 20)]
        broadcasts: usize,
    },
    /// semantic-search's embeddings: the backend's model alone and batched, beside the
    /// NumPy reference.
    Embeddings {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// The new backend beside the legacy stand-in on StudyFlow functions.
    Functions {
        #[arg(long, default_value_t = 4)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        connections: usize,
    },
    /// The data API: the frontend's three most common queries through the backend
    /// beside the same SQL run directly with a pooled client.
    DataApi {
        #[arg(long, default_value_t = 4)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        connections: usize,
    },
    /// Draws the cutover plot (`docs/cutover-progress.png`) from the share-served-by-new
    /// points the observability e2e test writes (`cutover-share.json`).
    CutoverPlot {
        points: std::path::PathBuf,
        out: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("info,sqlx::postgres::notice=warn")
        .init();
    let root = stack::repo_root();
    let doc = gateway::doc_path(&root);
    match Cli::parse().command {
        Command::Upstream { listen } => {
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            upstream::serve(listener).await?;
        }
        Command::CutoverPlot { points, out } => {
            let points: Vec<(f64, f64)> = serde_json::from_slice(&std::fs::read(&points)?)?;
            plot::share(&out, &points)?;
            println!("wrote {}", out.display());
        }
        Command::Realtime {
            clients,
            broadcasts,
        } => {
            let result = realtime::run(clients, broadcasts).await?;
            let table = realtime::table(&result);
            println!("{table}");
            report::write_section(&doc, "realtime", &table)?;
        }
        Command::DiffEngine => {
            let estimates = criterion::read(&root.join("target/criterion"), "compare ")?;
            anyhow::ensure!(
                !estimates.is_empty(),
                "no criterion results: run `cargo bench --workspace --bench diff` first"
            );
            let table = criterion::table("Diff engine", "serde_json", &estimates);
            println!("{table}");
            report::write_section(&doc, "diff-engine", &table)?;
        }
        Command::Proxy {
            seconds,
            connections,
            no_nginx,
            soak_minutes,
        } => {
            let settings = proxy_settings(&root, seconds, connections, !no_nginx)?;
            let workloads = gateway::workloads(&settings.work_dir)?;
            let targets = proxy_targets(settings.nginx);
            let suite = gateway::run(&settings, &workloads, &targets).await?;
            let table = gateway::table(&settings, &suite, &workloads);
            let results = suite.cases;
            publish(&doc, "proxy-overhead", &table)?;
            let counts = instructions::run(&settings, &targets).await?;
            publish(&doc, "instructions", &instructions::table(&counts))?;
            let png = root.join("docs/benchmarks-latency.png");
            plot::latency(&png, workloads[0].name, &results)?;
            report::write_section(
                &doc,
                "proxy-plot",
                &format!(
                    "![{} latency at a fixed rate](benchmarks-latency.png)",
                    workloads[0].name
                ),
            )?;
            if soak_minutes > 0 {
                let saturation = results
                    .iter()
                    .find(|r| {
                        r.workload == workloads[0].name
                            && r.target == Target::gateway("shadow", None, true)
                            && r.mode == load::SATURATION
                    })
                    .map_or(1000.0, |r| r.measured.requests_per_sec);
                let rate = (saturation / 2.0) as u32;
                let soak = soak::run(&settings, &workloads[0], rate, soak_minutes).await?;
                let table = soak::table(&soak);
                println!("{table}");
                report::write_section(&doc, "memory-soak", &table)?;
            }
        }
        Command::Soak { rate, minutes } => {
            let settings = proxy_settings(&root, 4, 64, false)?;
            let workloads = gateway::workloads(&settings.work_dir)?;
            let soak = soak::run(&settings, &workloads[0], rate, minutes).await?;
            let table = soak::table(&soak);
            println!("{table}");
            report::write_section(&doc, "memory-soak", &table)?;
        }
        Command::Ttft { requests, warmup } => {
            let samples = ttft::run(&root.join(".stack/bench/ttft"), requests, warmup).await?;
            let table = ttft::table(&samples, requests);
            println!("{table}");
            report::write_section(&doc, "time-to-first-token", &table)?;
        }
        Command::Embeddings { seconds } => {
            let results = embeddings::run(seconds).await?;
            let table = embeddings::table(&results, seconds);
            println!("{table}");
            report::write_section(&doc, "embeddings", &table)?;
        }
        Command::Instructions => {
            let settings = proxy_settings(&root, 4, 64, false)?;
            let counts = instructions::run(&settings, &proxy_targets(false)).await?;
            publish(&doc, "instructions", &instructions::table(&counts))?;
        }
        Command::DataApi {
            seconds,
            connections,
        } => {
            let duration = Duration::from_secs(seconds);
            let results = data_api::run(&root, duration, connections).await?;
            publish(
                &doc,
                "data-api",
                &data_api::table(&results, duration, connections),
            )?;
        }
        Command::Functions {
            seconds,
            connections,
        } => {
            let duration = Duration::from_secs(seconds);
            let results = functions::run(&root, duration, connections).await?;
            let table = functions::table(&results, duration, connections);
            publish(&doc, "backend-vs-legacy", &table)?;
        }
    }
    Ok(())
}

/// Prints a suite's table and writes it into its section of `docs/benchmarks.md`.
fn publish(doc: &std::path::Path, section: &str, table: &str) -> anyhow::Result<()> {
    println!("{table}");
    report::write_section(doc, section, table)?;
    Ok(())
}

/// The proxy suite's targets: direct, nginx (when asked), bare pingora and the gateway's
/// phases.
fn proxy_targets(nginx: bool) -> Vec<Target> {
    let mut targets = vec![Target::Direct];
    if nginx {
        targets.push(Target::Nginx);
    }
    targets.extend([
        Target::BarePingora,
        gateway::LEGACY,
        Target::gateway("shadow", None, false),
        Target::gateway("shadow", None, true),
        Target::gateway("canary", Some(50), true),
        Target::gateway("primary", None, true),
    ]);
    targets
}

fn proxy_settings(
    root: &std::path::Path,
    seconds: u64,
    connections: usize,
    nginx: bool,
) -> anyhow::Result<Settings> {
    Ok(Settings {
        duration: Duration::from_secs(seconds),
        connections,
        bin_dir: stack::bin_dir()?,
        generator: load::Generator::new(&root.join(".stack/bench"))?,
        work_dir: root.join(".stack/bench/proxy"),
        nginx,
    })
}
