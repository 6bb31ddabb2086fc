//! The operator CLI: `studyflow-gateway routes …`, `rollback …`, `promote …`, `audit`,
//! `reload`, `diffs report`: a thin client of the [admin API](crate::admin) that prints
//! what the API answers. `flags sync` is the exception: it reads the gateway's
//! configuration and writes the routes file's phases to Unleash's admin API.

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
    /// Admin token (needed for changes, diff reports, samples and the audit log).
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
    /// Move a route one phase forward (legacy, shadow, the canary steps, primary,
    /// decommissioned), or to a canary percentage, when its promotion gate holds; prints
    /// the evidence either way.
    Promote {
        route: String,
        /// Go to this canary percentage instead of the next step.
        #[arg(long)]
        percent: Option<u8>,
        /// Promote even though the gate does not hold (audited with the failed checks).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        reason: String,
    },
    /// Unleash toggles of the routes (see `flags sync --help`).
    #[command(subcommand)]
    Flags(FlagsCommand),
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
pub enum FlagsCommand {
    /// Create or update one Unleash toggle per route (`gateway.<route>`) from the routes
    /// file, through Unleash's admin API (`unleash.url` and `unleash.admin_token` of the
    /// gateway configuration given with --config).
    Sync,
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
    /// The promotion gate does not hold; the evidence is in the message.
    #[error("{0}")]
    GateClosed(String),
    #[error("{0}")]
    Sync(String),
}

/// `flags sync`: writes every route's phase from the routes file to Unleash, creating
/// toggles that are missing. Returns one line per route.
pub async fn flags_sync(config: &crate::config::GatewayConfig) -> Result<String, CliError> {
    use studyflow_flags::unleash::{UnleashAdmin, Written, toggle_name};
    let unleash = config
        .unleash
        .as_ref()
        .ok_or_else(|| CliError::Sync("the configuration has no `unleash` section".into()))?;
    let admin = UnleashAdmin::new(&unleash.settings("flags-sync"))
        .map_err(|e| CliError::Sync(e.to_string()))?
        .ok_or_else(|| CliError::Sync("`unleash.admin_token` is not set".into()))?;
    let file = studyflow_flags::FileSource {
        path: config.routes_file.clone(),
    }
    .load_file()
    .map_err(|e| CliError::Sync(e.to_string()))?;
    let mut out = String::new();
    for route in file.routes.iter().filter(|r| !r.blocked) {
        let written = admin
            .write(&route.name, route.phase, true)
            .await
            .map_err(|e| CliError::Sync(e.to_string()))?;
        let verb = match written {
            Written::Created => "created",
            Written::Updated | Written::Missing => "updated",
        };
        let _ = writeln!(
            out,
            "{:<36} {verb:<8} {}",
            toggle_name(&route.name),
            route.phase
        );
    }
    Ok(out)
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
        Command::Promote {
            route,
            percent,
            force,
            reason,
        } => {
            let answer = client
                .send_raw(
                    reqwest::Method::POST,
                    &format!("/routes/{route}/promote"),
                    json!({"percent": percent, "force": force, "reason": reason}),
                )
                .await?;
            match answer {
                (409, body) => Err(CliError::GateClosed(format!(
                    "{}\n{}",
                    body["error"].as_str().unwrap_or("the promotion gate does not hold"),
                    gate_report(&body)
                ))),
                (status, body) if status >= 400 => Err(CliError::Refused {
                    status,
                    message: body["error"]
                        .as_str()
                        .unwrap_or("request refused")
                        .to_owned(),
                }),
                (_, body) => Ok(format!("{}{}", gate_report(&body), changes(&body))),
            }
        }
        Command::Flags(FlagsCommand::Sync) => Err(CliError::Sync(
            "`flags sync` reads the gateway configuration: run it as `studyflow-gateway --config FILE flags sync`".into(),
        )),
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
        self.finish(self.authenticated(self.http.get(self.url(path))))
            .await
    }

    async fn get_url(&self, url: reqwest::Url) -> Result<Value, CliError> {
        self.finish(self.authenticated(self.http.get(url))).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, CliError> {
        self.finish(self.request(method, path, body)).await
    }

    /// Sends a change and returns status and body, whatever the status.
    async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<(u16, Value), CliError> {
        let unreachable = |source| CliError::Unreachable {
            url: self.admin.admin_url.clone(),
            source,
        };
        let response = self
            .request(method, path, body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.map_err(unreachable)?))
    }

    fn request(&self, method: reqwest::Method, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.authenticated(self.http.request(method, self.url(path)).json(&body))
    }

    /// Adds the admin token (reads of reports, samples and the audit log need it too)
    /// and the operator's name.
    fn authenticated(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
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
        request
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
            let mut message = body["error"]
                .as_str()
                .unwrap_or("request refused")
                .to_owned();
            if status == 401 && self.admin.token.is_none() {
                message.push_str(" (pass --token or set STUDYFLOW_ADMIN_TOKEN)");
            }
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
        // Held by the rollback guard until an operator moves the route.
        let phase = if route["held"] == true {
            format!("{phase} held")
        } else {
            phase
        };
        let c = &route["counters"];
        let n = |key: &str| c[key].as_u64().unwrap_or(0);
        // Every copy that was not compared, whatever stopped it.
        let dropped = route["shadows_lost"].as_u64().unwrap_or(0);
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

/// The promotion gate's evidence, one check per line.
fn gate_report(value: &Value) -> String {
    let gate = &value["gate"];
    let mut out = format!(
        "{}: {} -> {}\n",
        value["route"].as_str().unwrap_or("?"),
        value["from"].as_str().unwrap_or("?"),
        value["to"].as_str().unwrap_or("?"),
    );
    if gate["required"] == false {
        out.push_str("gate: not needed for this step (no user is served by the new side)\n");
        return out;
    }
    let _ = writeln!(
        out,
        "gate {} (evidence since {}, window {} s, pairs from {})",
        if gate["holds"] == true {
            "holds"
        } else {
            "does NOT hold"
        },
        gate["since"].as_str().unwrap_or("start"),
        gate["window_secs"],
        gate["pairs_from"].as_str().unwrap_or("?"),
    );
    for check in gate["checks"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  [{}] {:<20} {} (required {})",
            if check["ok"] == true { "ok" } else { "FAIL" },
            check["name"].as_str().unwrap_or("?"),
            check["observed"].as_str().unwrap_or("?"),
            check["required"].as_str().unwrap_or("?"),
        );
    }
    out
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
