use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use studyflow_gateway::cli::{self, AdminArgs, Command};
use studyflow_gateway::config::GatewayConfig;
use studyflow_gateway::server;

/// mimalloc rather than glibc malloc: the request path allocates and frees many small
/// buffers per request, and under load glibc's malloc took about a sixth of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The StudyFlow migration gateway. Without a command it serves; the commands talk to a
/// running gateway's admin API.
#[derive(Debug, Parser)]
#[command(name = "studyflow-gateway", version)]
struct Cli {
    /// YAML configuration file; `STUDYFLOW_GATEWAY__*` variables override it.
    #[arg(long, env = "STUDYFLOW_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration, routes file and state, print a summary and exit.
    #[arg(long)]
    check_config: bool,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Flags(cli::FlagsCommand::Sync)) = &cli.command {
        let config = GatewayConfig::load(cli.config.as_deref())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return match runtime.block_on(cli::flags_sync(&config)) {
            Ok(output) => Ok(print_output(&output)?),
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        };
    }
    if let Some(command) = cli.command {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        match runtime.block_on(cli::execute(command, cli.admin)) {
            Ok(output) => return Ok(print_output(&output)?),
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        }
    }
    let config = GatewayConfig::load(cli.config.as_deref())?;
    init_logging(config.json_logs);
    let prepared = server::prepare(config)?;
    if cli.check_config {
        println!(
            "configuration ok: {} routes, legacy {}, new {}",
            prepared.control.table().routes().len(),
            prepared.config.legacy_url,
            prepared.config.new_url
        );
        return Ok(());
    }
    server::run(prepared)?;
    Ok(())
}

/// Writes a command's output in one piece. A reader that stopped early (`| head`) is
/// not an error: what it asked for was written.
fn print_output(output: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(format!("{}\n", output.trim_end()).as_bytes())
        .and_then(|()| stdout.flush());
    match written {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Logs at `info` unless `RUST_LOG` says otherwise; the access log (a line per request,
/// [`studyflow_gateway::gateway::ACCESS_LOG`]) only when `RUST_LOG` turns it on, so the
/// request path writes nothing by default.
fn init_logging(json: bool) {
    let default = format!("info,{}=off", studyflow_gateway::gateway::ACCESS_LOG);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
