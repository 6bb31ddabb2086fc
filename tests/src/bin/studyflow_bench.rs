//! `make bench`: the benchmark suites, and the benchmark upstream they start.

use std::time::Duration;

use clap::{Parser, Subcommand};
use studyflow_e2e::bench::gateway::{self, Settings, Target};
use studyflow_e2e::bench::{criterion, load, report, upstream};
use studyflow_e2e::stack;

#[derive(Debug, Parser)]
#[command(name = "studyflow-bench")]
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
    /// The diff engine's criterion results (run `cargo bench -p studyflow-diffing` first).
    DiffEngine,
    /// Gateway overhead: direct vs the gateway with its route in legacy, and in shadow
    /// with diffing off and on.
    Gateway {
        /// Seconds per case.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Requests per second of the fixed-rate runs.
        #[arg(long, default_value_t = 2000)]
        rate: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    match Cli::parse().command {
        Command::Upstream { listen } => {
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            upstream::serve(listener).await?;
        }
        Command::DiffEngine => {
            let root = stack::repo_root();
            let estimates = criterion::read(&root.join("target/criterion"), "compare ")?;
            anyhow::ensure!(
                !estimates.is_empty(),
                "no criterion results: run `cargo bench -p studyflow-diffing` first"
            );
            let table = criterion::table("Diff engine", "serde_json", &estimates);
            println!("{table}");
            report::write_section(&gateway::doc_path(&root), "diff-engine", &table)?;
        }
        Command::Gateway {
            seconds,
            connections,
            rate,
        } => {
            let root = stack::repo_root();
            let settings = Settings {
                duration: Duration::from_secs(seconds),
                connections,
                rate,
                bin_dir: stack::bin_dir()?,
                oha: load::oha(&root)?,
                work_dir: root.join(".stack/bench/gateway"),
            };
            let targets = [
                Target::Direct,
                Target::gateway("legacy", None, false),
                Target::gateway("shadow", None, false),
                Target::gateway("shadow", None, true),
            ];
            let results = gateway::run(&settings, "/bench/json", &targets).await?;
            let table = gateway::table("Gateway overhead: small JSON GET", &settings, &results);
            println!("{table}");
            report::write_section(&gateway::doc_path(&root), "gateway-overhead", &table)?;
        }
    }
    Ok(())
}
