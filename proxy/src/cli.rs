//! The operator CLI: `studyflow-gateway routes …`, `rollback …`, `audit`, `reload`.
//! A thin client of the [admin API](crate::admin); it prints what the API answers.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Where the admin API is and who is calling it.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin API base URL.
    #[arg(
        long,
        env = "STUDYFLOW_ADMIN_URL",
        default_value = "http://127.0.0.1:8001",
        global = true
    )]
    pub admin_url: String,
    /// Admin token (needed for changes).
    #[arg(
        long,
        env = "STUDYFLOW_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Operator name recorded in the audit log.
    #[arg(long = "as", env = "STUDYFLOW_OPERATOR", global = true)]
    pub operator: Option<String>,
}

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect or change routes.
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// Roll one route, or every route with --all, back to legacy at once.
    Rollback {
        route: Option<String>,
        #[arg(long, conflicts_with = "route")]
        all: bool,
        #[arg(long)]
        reason: String,
    },
    /// Show the audit log of phase changes.
    Audit {
        #[arg(long)]
        route: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Re-read the routes file now (it is also watched).
    Reload,
    /// Diff reports from the diff store.
    #[command(subcommand)]
    Diffs(DiffsCommand),
}

#[derive(Debug, Subcommand)]
pub enum DiffsCommand {
    /// Per route: compared pairs, regressions, noise, differing paths with samples.
    Report {
        #[arg(long)]
        route: Option<String>,
        /// A duration back from now (`24h`, `7d`) or an RFC 3339 time.
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Every route with its phase and live counters.
    List,
    /// One route in detail, with its audit history.
    Show { route: String },
    /// Put a route in a phase: legacy, shadow, canary (with --percent), primary,
    /// decommissioned.
    Set {
        route: String,
        phase: String,
        #[arg(long)]
        percent: Option<u8>,
        #[arg(long)]
        reason: String,
    },
    /// Drop the operator override: the routes file's phase applies again.
    Reset {
        route: String,
        #[arg(long)]
        reason: String,
    },
}

/// Why a CLI command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach the admin API at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{status}: {message}")]
    Refused { status: u16, message: String },
    #[error("give a route or --all")]
    NoTarget,
}

/// Runs `command` against the admin API and returns what to print.
pub async fn execute(command: Command, admin: AdminArgs) -> Result<String, CliError> {
    let client = Client::new(admin);
    match command {
        Command::Routes(RoutesCommand::List) => {
            client.get("/routes").await.map(|v| routes_table(&v))
        }
        Command::Routes(RoutesCommand::Show { route }) => client
            .get(&format!("/routes/{route}"))
            .await
            .map(|v| pretty(&v)),
        Command::Routes(RoutesCommand::Set {
            route,
            phase,
            percent,
            reason,
        }) => client
            .send(
                reqwest::Method::PUT,
                &format!("/routes/{route}"),
                json!({"phase": phase, "percent": percent, "reason": reason}),
            )
            .await
            .map(|v| changes(&v)),
        Command::Routes(RoutesCommand::Reset { route, reason }) => client
            .send(
                reqwest::Method::POST,
                &format!("/routes/{route}/reset"),
                json!({"reason": reason}),
            )
            .await
            .map(|v| changes(&v)),
        Command::Rollback { route, all, reason } => {
            let path = match (route, all) {
                (Some(route), false) => format!("/routes/{route}/rollback"),
                (None, true) => "/rollback".to_owned(),
                _ => return Err(CliError::NoTarget),
            };
            client
                .send(reqwest::Method::POST, &path, json!({"reason": reason}))
                .await
                .map(|v| changes(&v))
        }
        Command::Audit { route, limit } => {
            let mut path = format!("/audit?limit={limit}");
            if let Some(route) = route {
                path.push_str(&format!("&route={route}"));
            }
            client.get(&path).await.map(|v| audit_table(&v))
        }
        Command::Reload => client
            .send(reqwest::Method::POST, "/reload", json!({}))
            .await
            .map(|v| pretty(&v)),
        Command::Diffs(DiffsCommand::Report {
            route,
            since,
            format,
        }) => {
            let mut url =
                reqwest::Url::parse(&client.url("/diffs")).map_err(|_| CliError::NoTarget)?;
            url.query_pairs_mut().append_pair("since", &since);
            if let Some(route) = &route {
                url.query_pairs_mut().append_pair("route", route);
            }
            let overview = client.get_url(url).await?;
            match format.as_str() {
                "json" => Ok(pretty(&overview)),
                _ => serde_json::from_value::<studyflow_diffing::report::Overview>(overview)
                    .map(|o| studyflow_diffing::report::markdown(&o))
                    .map_err(|e| CliError::Refused {
                        status: 0,
                        message: format!("unexpected report: {e}"),
                    }),
            }
        }
    }
}

struct Client {
    http: reqwest::Client,
    admin: AdminArgs,
}

impl Client {
    fn new(admin: AdminArgs) -> Self {
        Self {
            http: reqwest::Client::new(),
            admin,
        }
    }

    async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.finish(self.http.get(self.url(path))).await
    }

    async fn get_url(&self, url: reqwest::Url) -> Result<Value, CliError> {
        self.finish(self.http.get(url)).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, CliError> {
        let mut request = self.http.request(method, self.url(path)).json(&body);
        if let Some(token) = &self.admin.token {
            request = request.bearer_auth(token);
        }
        let operator = self
            .admin
            .operator
            .clone()
            .or_else(|| std::env::var("USER").ok());
        if let Some(operator) = operator {
            request = request.header("x-operator", operator);
        }
        self.finish(request).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.admin.admin_url.trim_end_matches('/'))
    }

    async fn finish(&self, request: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let unreachable = |source| CliError::Unreachable {
            url: self.admin.admin_url.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(unreachable)?;
        if status >= 400 {
            let message = body["error"]
                .as_str()
                .unwrap_or("request refused")
                .to_owned();
            return Err(CliError::Refused { status, message });
        }
        Ok(body)
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn routes_table(value: &Value) -> String {
    let mut out = format!(
        "{:<26} {:<15} {:<9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}\n",
        "ROUTE", "PHASE", "SOURCE", "LEGACY", "NEW", "SHADOWS", "DROPPED", "EQUAL", "DIFFER"
    );
    for route in value["routes"].as_array().into_iter().flatten() {
        let phase = match (route["blocked"].as_bool(), route["percent"].as_u64()) {
            (Some(true), _) => "blocked".to_owned(),
            (_, Some(percent)) => format!("canary {percent}%"),
            _ => route["phase"].as_str().unwrap_or("?").to_owned(),
        };
        let c = &route["counters"];
        let n = |key: &str| c[key].as_u64().unwrap_or(0);
        let dropped = n("shadows_dropped_queue_full")
            + n("shadows_dropped_body_too_large")
            + n("shadow_timeouts")
            + n("shadow_errors");
        let _ = writeln!(
            out,
            "{:<26} {:<15} {:<9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
            route["name"].as_str().unwrap_or("?"),
            phase,
            route["source"].as_str().unwrap_or("?"),
            n("served_legacy"),
            n("served_new"),
            n("shadows_sent"),
            dropped,
            n("pairs_equal"),
            n("pairs_different"),
        );
    }
    if let Some(error) = value["reload_error"].as_str() {
        let _ = writeln!(out, "\nroutes file on disk was rejected: {error}");
    }
    out
}

fn changes(value: &Value) -> String {
    let entries = value["changed"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return "nothing to change".into();
    }
    entries
        .iter()
        .map(|e| {
            format!(
                "{}: {} -> {} ({} by {})",
                e["route"].as_str().unwrap_or("?"),
                e["from"].as_str().unwrap_or("?"),
                e["to"].as_str().unwrap_or("?"),
                e["action"].as_str().unwrap_or("?"),
                e["who"].as_str().unwrap_or("?"),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn audit_table(value: &Value) -> String {
    let mut out = String::new();
    for e in value["audit"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{}  {:<24} {:<9} {} -> {}  by {}: {}",
            e["at"].as_str().unwrap_or(""),
            e["route"].as_str().unwrap_or(""),
            e["action"].as_str().unwrap_or(""),
            e["from"].as_str().unwrap_or(""),
            e["to"].as_str().unwrap_or(""),
            e["who"].as_str().unwrap_or(""),
            e["reason"].as_str().unwrap_or(""),
        );
    }
    if out.is_empty() {
        out.push_str("no changes recorded\n");
    }
    out
}
