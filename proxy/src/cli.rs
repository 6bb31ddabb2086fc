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
    /// Roll one route, or every route with --all, back to legacy at once (routes with
    /// no legacy twin are refused by name and skipped by --all).
    Rollback {
        /// The route to roll back (see `routes list`).
        route: Option<String>,
        /// Roll every route back (routes already on legacy are left alone).
        #[arg(long, conflicts_with = "route")]
        all: bool,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Move a route one phase forward (legacy, shadow, the canary steps, primary,
    /// decommissioned), or to a canary percentage, when its promotion gate holds; prints
    /// the evidence either way.
    Promote {
        /// The route to promote (see `routes list`).
        route: String,
        /// Go to this canary percentage instead of the next step.
        #[arg(long)]
        percent: Option<u8>,
        /// Promote even though the gate does not hold (audited with the failed checks).
        #[arg(long)]
        force: bool,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Unleash toggles of the routes (see `flags sync --help`).
    #[command(subcommand)]
    Flags(FlagsCommand),
    /// Show the audit log of phase changes.
    Audit {
        /// Only this route's changes.
        #[arg(long)]
        route: Option<String>,
        /// How many of the latest changes to show.
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
        /// Only this route (an unknown name is an error, not an empty report).
        #[arg(long)]
        route: Option<String>,
        /// A duration back from now (`24h`, `7d`) or an RFC 3339 time.
        #[arg(long, default_value = "24h")]
        since: String,
        /// `md` (Markdown, for people) or `json` (for scripts).
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Every route with its phase and live counters, and the overrides in force.
    List,
    /// One route in detail: phase and where it comes from, copies, counters, history.
    Show {
        /// The route (see `routes list`).
        route: String,
        /// `text` (a summary for people) or `json` (everything, for scripts).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Put a route in a phase: back at once; forward (a later phase or a higher canary
    /// percentage) only when the promotion gate holds, or with --force.
    Set {
        /// The route (see `routes list`).
        route: String,
        /// legacy, shadow, canary (with --percent), primary or decommissioned.
        phase: String,
        /// The canary percentage (0–100), with phase `canary`.
        #[arg(long)]
        percent: Option<u8>,
        /// Move forward even though the gate does not hold (audited with the failed
        /// checks).
        #[arg(long)]
        force: bool,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Drop operator overrides (one route, or every one with --all): the routes file's
    /// (or Unleash's) phase applies again. Overrides are kept across restarts until
    /// reset.
    Reset {
        /// The route whose override to drop.
        route: Option<String>,
        /// Drop every override.
        #[arg(long, conflicts_with = "route")]
        all: bool,
        /// Why, for the audit log.
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
    #[error(
        "who is making this change? pass --as NAME or set STUDYFLOW_OPERATOR (the audit log records it)"
    )]
    NoOperator,
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
        Command::Routes(RoutesCommand::Show { route, format }) => {
            let value = client.get(&format!("/routes/{}", segment(&route))).await?;
            Ok(match format.as_str() {
                "json" => pretty(&value),
                _ => route_summary(&value),
            })
        }
        Command::Routes(RoutesCommand::Set {
            route,
            phase,
            percent,
            force,
            reason,
        }) => {
            client.operator()?;
            let body = json!({"phase": phase, "percent": percent, "force": force, "reason": reason});
            let answer = client
                .send_raw(reqwest::Method::PUT, &format!("/routes/{}", segment(&route)), body)
                .await?;
            phase_change(answer)
        }
        Command::Routes(RoutesCommand::Reset { route, all, reason }) => {
            client.operator()?;
            let routes = match (route, all) {
                (Some(route), false) => vec![route],
                (None, true) => overridden(&client.get("/routes").await?),
                _ => return Err(CliError::NoTarget),
            };
            if routes.is_empty() {
                return Ok("no override in force".into());
            }
            let mut out = Vec::new();
            for route in routes {
                let path = format!("/routes/{}/reset", segment(&route));
                let answer = client
                    .send(reqwest::Method::POST, &path, json!({"reason": reason}))
                    .await?;
                out.push(changes(&answer));
            }
            Ok(out.join("\n"))
        }
        Command::Rollback { route, all, reason } => {
            client.operator()?;
            let path = match (route, all) {
                (Some(route), false) => format!("/routes/{}/rollback", segment(&route)),
                (None, true) => "/rollback".to_owned(),
                _ => return Err(CliError::NoTarget),
            };
            let answer = client
                .send(reqwest::Method::POST, &path, json!({"reason": reason}))
                .await?;
            let mut out = changes(&answer);
            if answer["fleet_sync"] == "pending" {
                out.push_str("\nin force on this instance; fleet propagation pending (the fleet store is unreachable)");
            }
            if let Some(skipped) = answer["skipped"].as_array() {
                let names: Vec<&str> = skipped.iter().filter_map(Value::as_str).collect();
                let _ = write!(
                    out,
                    "\nleft alone: {} ({})",
                    names.join(", "),
                    answer["skipped_why"].as_str().unwrap_or("no legacy twin")
                );
            }
            Ok(out)
        }
        Command::Promote {
            route,
            percent,
            force,
            reason,
        } => {
            client.operator()?;
            let answer = client
                .send_raw(
                    reqwest::Method::POST,
                    &format!("/routes/{}/promote", segment(&route)),
                    json!({"percent": percent, "force": force, "reason": reason}),
                )
                .await?;
            phase_change(answer)
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
            if let Some(route) = &route {
                // Named as such when it does not exist, rather than "no pairs".
                client.get(&format!("/routes/{}", segment(route))).await?;
            }
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
        if let Ok(operator) = self.operator() {
            request = request.header("x-operator", operator);
        }
        request
    }

    /// Who is making a change: `--as`, `STUDYFLOW_OPERATOR`, else the login name; never
    /// a made-up default.
    fn operator(&self) -> Result<String, CliError> {
        self.admin
            .operator
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .ok_or(CliError::NoOperator)
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

/// A route name as one path segment of the admin API (a name with `/` or `?` stays
/// one segment and is refused by the API as unknown).
fn segment(route: &str) -> String {
    url::form_urlencoded::byte_serialize(route.as_bytes()).collect()
}

/// The answer of `set` or `promote`: the gate's evidence and what changed, or the gate's
/// refusal with its evidence.
fn phase_change((status, body): (u16, Value)) -> Result<String, CliError> {
    match status {
        409 => Err(CliError::GateClosed(format!(
            "{}\n{}",
            body["error"]
                .as_str()
                .unwrap_or("the promotion gate does not hold"),
            gate_report(&body)
        ))),
        status if status >= 400 => Err(CliError::Refused {
            status,
            message: body["error"]
                .as_str()
                .unwrap_or("request refused")
                .to_owned(),
        }),
        _ if body["gate"].is_null() => Ok(changes(&body)),
        _ => Ok(format!("{}{}", gate_report(&body), changes(&body))),
    }
}

/// One line per operator override in force in a `GET /routes` answer: route, phase, who,
/// when and why.
pub fn override_lines(routes: &Value) -> Vec<String> {
    with_override(routes)
        .map(|r| {
            let o = &r["override"];
            format!(
                "  {:<26} {:<15} by {} at {}: {}",
                r["name"].as_str().unwrap_or("?"),
                o["phase"].as_str().unwrap_or("?"),
                o["by"].as_str().unwrap_or("?"),
                o["at"].as_str().unwrap_or("?"),
                o["reason"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

/// The routes of a `GET /routes` answer with an operator override in force.
fn with_override(routes: &Value) -> impl Iterator<Item = &Value> {
    routes["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !r["override"].is_null())
}

/// Names of the routes with an operator override in force.
fn overridden(routes: &Value) -> Vec<String> {
    with_override(routes)
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect()
}

/// `routes show` for people: where the phase comes from, what is copied, what the
/// counters say, the last changes.
fn route_summary(route: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let phase = match route["percent"].as_u64() {
        Some(percent) => format!("canary {percent}%"),
        None => text(&route["phase"]),
    };
    let mut out = format!(
        "{}  {}\n  phase      {phase} (from {}{})\n",
        text(&route["name"]),
        text(&route["path"]),
        text(&route["source"]),
        if route["held"] == true {
            ", held by the rollback guard"
        } else {
            ""
        },
    );
    let _ = writeln!(
        out,
        "  layers     file {}, unleash {}, override {}",
        text(&route["file_phase"]),
        route["unleash_phase"].as_str().unwrap_or("none"),
        match &route["override"] {
            Value::Null => "none".to_owned(),
            o => format!(
                "{} by {} at {} ({})",
                text(&o["phase"]),
                text(&o["by"]),
                text(&o["at"]),
                text(&o["reason"])
            ),
        }
    );
    let _ = writeln!(out, "  copies     {}", text(&route["copies"]));
    if route["legacy_twin"] == false {
        out.push_str("  rollback   none: the legacy has no such function (legacy: none)\n");
    }
    let c = &route["counters"];
    let n = |key: &str| c[key].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "  served     legacy {}, new {} ({} fallbacks to legacy)",
        n("served_legacy"),
        n("served_new"),
        n("fallbacks")
    );
    let _ = writeln!(
        out,
        "  copies     sent {}, compared {} (equal {}, noise {}, regressions {}), lost {}",
        n("shadows_sent"),
        n("pairs_equal") + n("pairs_different"),
        n("pairs_equal"),
        n("pairs_noise"),
        n("pairs_regression"),
        route["shadows_lost"].as_u64().unwrap_or(0)
    );
    if n("pairs_provider_skipped") > 0 {
        let _ = writeln!(
            out,
            "  not compared (provider skipped in the new side's dry run): {}",
            n("pairs_provider_skipped")
        );
    }
    let since = &route["since_phase_change"];
    let _ = writeln!(
        out,
        "  since the last phase change: {} new-side requests, {} errors, {} compared pairs, {} regressions",
        since["new_requests"], since["new_errors"], since["compared"], since["regressions"]
    );
    match route["audit"].as_array() {
        Some(audit) if !audit.is_empty() => {
            out.push_str("  history (latest first):\n");
            for e in audit.iter().take(10) {
                let _ = writeln!(
                    out,
                    "    {}  {:<15} {} -> {}  by {}: {}",
                    text(&e["at"]),
                    text(&e["action"]),
                    text(&e["from"]),
                    text(&e["to"]),
                    text(&e["who"]),
                    text(&e["reason"])
                );
            }
        }
        Some(_) => out.push_str("  history    no changes recorded\n"),
        None => {
            let _ = writeln!(out, "  history    {}", text(&route["audit_hidden"]));
        }
    }
    out
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
    let overrides = override_lines(value);
    if !overrides.is_empty() {
        out.push_str("\nOverrides in force (kept across restarts; `routes reset --all --reason …` drops them):\n");
        for line in overrides {
            let _ = writeln!(out, "{line}");
        }
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
    if let Some(counted) = gate["counted"].as_str() {
        let _ = writeln!(out, "counted: {counted}");
    }
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
