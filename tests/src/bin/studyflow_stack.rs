//! `make run`: starts the whole local stack and prints where everything is.

use clap::{Parser, Subcommand};
use studyflow_gateway::operations::api::RoutesAnswer;
use studyflow_testkit::stack::{self, Ports, Stack, StackOptions};

/// Starts fake providers, legacy stand-in, backend and gateway; Ctrl-C stops them.
#[derive(Debug, Parser)]
#[command(name = "studyflow-stack", version)]
struct Cli {
    /// Database on the local Postgres server (created and migrated when absent).
    #[arg(long, env = "STUDYFLOW_DATABASE", default_value = "studyflow")]
    database: String,
    /// Routes file for the gateway (default: flags/routes.yaml built in).
    #[arg(long, env = "STUDYFLOW_ROUTES_FILE")]
    routes_file: Option<std::path::PathBuf>,
    /// Start clean: drop the operator overrides a previous run left (they are kept
    /// across restarts otherwise), so every route is where the routes file puts it.
    #[arg(
        long,
        env = "STUDYFLOW_CLEAN",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    clean: bool,
    #[command(subcommand)]
    command: Option<StackCommand>,
}

#[derive(Debug, Subcommand)]
enum StackCommand {
    /// Print an access token of the local stack for any user name (the same name always
    /// gets the same user id), to try a canary with many users.
    Token {
        /// A user name: `student-1`, `ada`, …
        user: String,
        /// How long the token is valid, in hours.
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("info,sqlx::postgres::notice=warn")
        .init();
    let cli = Cli::parse();
    if let Some(StackCommand::Token { user, hours }) = &cli.command {
        println!("{}", stack::user_token(user, hours.saturating_mul(3600)));
        return Ok(());
    }
    let root = stack::repo_root();
    if cli.clean {
        for file in ["gateway-state.json", "gateway-snapshot.json"] {
            let path = root.join(".stack/logs").join(file);
            if path.exists() {
                std::fs::remove_file(&path)?;
                println!("--clean: removed {}", path.display());
            }
        }
    }
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
    print_overrides(&stack).await;
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

Users for trying a canary (the gateway buckets users by the token's `sub`):
  for u in student-1 student-2 student-3 student-4 student-5 student-6 student-7 student-8; do
    curl -s -o /dev/null -w "$u %{{header_json}}\n" {gateway}/functions/v1/auth-validation \
      -H "authorization: Bearer $(target/release/studyflow-stack token $u)" \
      -H 'content-type: application/json' -d '{{"email":"ada@gmail.com","action":"signup"}}' \
      | grep -o '"x-studyflow-served-by":\[[^]]*\]' ; done

Operate the migration (admin token {admin_token}):
  export GATEWAY={gateway} STUDYFLOW_ADMIN_URL={admin} STUDYFLOW_ADMIN_TOKEN={admin_token} STUDYFLOW_OPERATOR=$USER
  target/release/studyflow-gateway routes list
  target/release/studyflow-gateway routes set auth-validation shadow --reason "compare"
  target/release/studyflow-gateway promote auth-validation --percent 25 --reason "first users"
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

/// Lists the operator overrides in force: they outlive restarts, so a second `make run`
/// may not start where the routes file says.
async fn print_overrides(stack: &Stack) {
    let Ok(response) = reqwest::get(format!("{}/routes", stack.admin_url)).await else {
        return;
    };
    let Ok(routes) = response.json::<RoutesAnswer>().await else {
        return;
    };
    let overrides = studyflow_gateway::cli::override_lines(&routes);
    if overrides.is_empty() {
        println!("No operator override in force: every route is where the routes file puts it.");
    } else {
        println!(
            "Operator overrides kept from an earlier run (start clean with `STUDYFLOW_CLEAN=1 make run`):\n{}",
            overrides.join("\n")
        );
    }
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
