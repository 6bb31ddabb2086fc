use std::path::PathBuf;

use clap::Parser;
use studyflow_gateway::config::GatewayConfig;
use studyflow_gateway::server;

/// The StudyFlow migration gateway.
#[derive(Debug, Parser)]
#[command(name = "studyflow-gateway", version)]
struct Cli {
    /// YAML configuration file; `STUDYFLOW_GATEWAY__*` variables override it.
    #[arg(long, env = "STUDYFLOW_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration and routes file, print a summary and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = GatewayConfig::load(cli.config.as_deref())?;
    init_logging(config.json_logs);
    let prepared = server::prepare(config)?;
    if cli.check_config {
        println!(
            "configuration ok: {} routes, legacy {}, new {}",
            prepared.routes.routes().len(),
            prepared.config.legacy_url,
            prepared.config.new_url
        );
        return Ok(());
    }
    server::run(prepared)?;
    Ok(())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
