use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use studyflow_backend::ai_types::{AiUse, ChainEntry};
use studyflow_backend::cli::migrate::MigrateCommand;
use studyflow_backend::cli::prompts::PromptsCommand;
use studyflow_backend::cli::sessions::SessionsCommand;
use studyflow_backend::cli::vault::VaultCommand;
use studyflow_backend::{AppState, BackendConfig, cli, db};

/// mimalloc rather than glibc malloc: the request path allocates and frees many small
/// buffers per request, and under load glibc's malloc took about a sixth of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The new StudyFlow backend.
#[derive(Debug, Parser)]
#[command(name = "studyflow-backend", version)]
struct Cli {
    /// Optional YAML configuration file; environment variables override it.
    #[arg(long, env = "STUDYFLOW_BACKEND_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations, then serve (the default).
    Serve {
        /// Serve without applying migrations (they were applied by `migrate up`).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply (`up`, the default) or report (`status`) the database migrations, without
    /// serving.
    Migrate {
        #[command(subcommand)]
        command: Option<MigrateCommand>,
    },
    /// Revoke a user's or one session's tokens on every instance sharing Redis.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Manage the provider key vault (VAULT_MASTER_KEY).
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// Render or check the AI functions' prompt templates (PROMPTS_DIR).
    Prompts {
        #[command(subcommand)]
        command: PromptsCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = BackendConfig::load(cli.config.as_deref())?;
    let command = cli.command.unwrap_or(Command::Serve { no_migrate: false });
    // The operator commands print their results on stdout; logs go to stderr.
    init_logging(
        config.server.json_logs,
        !matches!(command, Command::Serve { .. }),
    );
    let no_migrate = match command {
        Command::Vault { command } => return Ok(cli::vault::run(&config, command).await?),
        Command::Prompts { command } => return cli::prompts::run(&config, command),
        Command::Migrate { command } => {
            let pool = db::pool(&config)?;
            let result = cli::migrate::run(&pool, command.unwrap_or(MigrateCommand::Up)).await;
            pool.close().await;
            return Ok(result?);
        }
        Command::Sessions { command } => {
            let metrics = std::sync::Arc::new(studyflow_backend::metrics::Metrics::new()?);
            let redis = studyflow_backend::redis_client::RedisClient::new(&config, metrics)?;
            let revocations = studyflow_backend::sessions::Revocations::new(
                redis,
                config.auth.token_lifetime_secs,
            );
            return Ok(cli::sessions::run(&revocations, command).await?);
        }
        Command::Serve { no_migrate } => no_migrate,
    };
    log_configuration(&config);
    let state = AppState::new(config)?;
    if no_migrate {
        tracing::info!("--no-migrate: serving without applying migrations");
    } else {
        db::migrate(&state.db)
            .await
            .context("applying migrations")?;
    }
    let _vault_refresh = state.open_vault().await;
    let listener = tokio::net::TcpListener::bind(state.config.server.listen_addr)
        .await
        .with_context(|| format!("listening on {}", state.config.server.listen_addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "backend listening");
    // The line a supervisor (or the test harness) reads to learn the port, which matters
    // when `LISTEN_ADDR` asks for any free port (port 0).
    println!("studyflow-backend listening on http://{addr}");
    #[cfg(feature = "test-hooks")]
    if let Some(spec) = &state.config.test_alter_field {
        tracing::warn!(%spec, "TEST_ALTER_FIELD is set: answers are deliberately altered (test only)");
    }
    studyflow_backend::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("backend stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return interrupt.await.unwrap_or_default(),
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}

/// What is configured, without any secret: which keys are set, not their values.
fn log_configuration(config: &BackendConfig) {
    let set = |present: bool| if present { "set" } else { "unset" };
    let providers = &config.providers;
    let chain = |ai_use| ChainEntry::list_text(config.ai.chain(ai_use));
    tracing::info!(
        listen = %config.server.listen_addr,
        jwt_secret = set(config.auth.jwt_secret.is_some()),
        jwks_url = config.auth.jwks_url.as_ref().map_or("unset", url::Url::as_str),
        encryption = set(config.encryption.key.is_some() && config.encryption.salt.is_some()),
        deepseek_key = set(providers.deepseek.api_key.is_some()),
        openai_key = set(providers.openai.api_key.is_some()),
        anthropic_key = set(providers.anthropic_key().is_some()),
        gemini_key = set(providers.gemini.api_key.is_some()),
        vault = set(config.vault.master_key().is_some()),
        vault_key_version = config.vault.key_version,
        chain_tutor_stream = %chain(AiUse::TutorStream),
        chain_tutor = %chain(AiUse::Tutor),
        shadow_secret = set(config.shadow.secret.is_some()),
        shadow_provider_calls = ?config.shadow.provider_calls,
        trusted_proxies = ?config.server.trusted_proxies,
        "configuration loaded"
    );
    if config.shadow.secret.is_none() {
        tracing::warn!(
            "SHADOW_SECRET is not set: the gateway's dry-run marker (x-studyflow-shadow) is ignored and shadow copies are served for real"
        );
    }
}

fn init_logging(json: bool, to_stderr: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (json, to_stderr) {
        (true, true) => builder.json().with_writer(std::io::stderr).init(),
        (true, false) => builder.json().init(),
        (false, true) => builder.with_writer(std::io::stderr).init(),
        (false, false) => builder.init(),
    }
}
