//! `make run`: starts the whole local stack and prints where everything is.

use clap::Parser;
use studyflow_e2e::stack::{self, Ports, Stack, StackOptions};

/// Starts fake providers, legacy stand-in, backend and gateway; Ctrl-C stops them.
#[derive(Debug, Parser)]
#[command(name = "studyflow-stack")]
struct Cli {
    /// Database on the local Postgres server (created and migrated when absent).
    #[arg(long, env = "STUDYFLOW_DATABASE", default_value = "studyflow")]
    database: String,
    /// Routes file for the gateway (default: flags/routes.yaml built in).
    #[arg(long, env = "STUDYFLOW_ROUTES_FILE")]
    routes_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("info,sqlx::postgres::notice=warn")
        .init();
    let cli = Cli::parse();
    let root = stack::repo_root();
    let options = StackOptions {
        database: cli.database,
        ports: Ports::standard(),
        routes_file: cli.routes_file,
        log_dir: root.join(".stack/logs"),
        redis_url: stack::redis_url(),
        backend_env: Vec::new(),
        gateway_env: Vec::new(),
    };
    println!(
        "Starting the StudyFlow stack (logs in {}) ...",
        options.log_dir.display()
    );
    let stack = Stack::start(options).await?;
    print_banner(&stack);
    wait_for_stop().await;
    println!("\nStopping ...");
    stack.stop().await;
    println!("Stopped.");
    Ok(())
}

fn print_banner(stack: &Stack) {
    let token = stack.demo_token(24 * 3600);
    let anon = stack.anon_key();
    println!(
        r#"
StudyFlow stack is up.

  gateway (point the frontend here)  {gateway}
  gateway admin API                  {admin}
  operator console (admin token)     {admin}/ui
  new backend                        {backend}
  legacy Edge Functions (Deno)       {legacy}/functions/v1/<name>
  fake AI providers                  {providers}
  database                           {database}
  diff store                         {diffs}
  diff reports (HTML)                {admin}/ui/diffs
  logs                               {logs}

Test user {email} ({id}), access token valid 24 h:
  {token}

Anon key:
  {anon}

Try it through the gateway:
  curl -s {gateway}/functions/v1/auth-validation \
    -H 'content-type: application/json' -H 'apikey: {anon}' \
    -d '{{"email":"ada@gmail.com","action":"signup"}}' -i

Operate the migration (admin token {admin_token}):
  export STUDYFLOW_ADMIN_URL={admin} STUDYFLOW_ADMIN_TOKEN={admin_token}
  target/release/studyflow-gateway routes list
  target/release/studyflow-gateway routes set auth-validation canary --percent 25 --reason "first users"
  target/release/studyflow-gateway rollback --all --reason "incident"

Press Ctrl-C to stop everything this command started.
"#,
        gateway = stack.gateway_url,
        admin = stack.admin_url,
        backend = stack.backend_url,
        legacy = stack.legacy_url,
        providers = stack.providers_url,
        database = stack.database_url,
        diffs = stack.diffs_url,
        logs = stack.options.log_dir.display(),
        email = stack::DEMO_USER_EMAIL,
        id = stack::DEMO_USER_ID,
        admin_token = stack::DEV_ADMIN_TOKEN,
    );
}

async fn wait_for_stop() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return tokio::signal::ctrl_c().await.unwrap_or_default(),
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
