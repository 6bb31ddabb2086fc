//! The operator CLI: `studyflow-gateway routes …`, `rollback …`, `promote …`, `audit`,
//! `reload`, `diffs report`: a thin client of the [admin API](crate::admin) that prints
//! what the API answers. `flags sync` is the exception: it reads the gateway's
//! configuration and writes the routes file's phases to Unleash's admin API.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;
use studyflow_diffing::report::{self, Overview};
use studyflow_flags::AuditEntry;

use crate::operations::api::FleetSync;
use crate::operations::api::{
    AuditAnswer, ChangedAnswer, ErrorAnswer, GateRefusal, PhaseChangeAnswer, PromoteRequest,
    ReasonRequest, ReloadAnswer, RollbackAnswer, RouteView, RoutesAnswer, SetPhaseRequest,
};
use crate::promotion::GateReport;

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
    /// The admin API answered something this CLI cannot read (another version?).
    #[error("unexpected answer from the admin API ({status}): {source}")]
    Unreadable {
        status: u16,
        #[source]
        source: serde_json::Error,
    },
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
        Command::Routes(command) => routes(&client, command).await,
        Command::Rollback { route, all, reason } => {
            client.operator()?;
            let path = match (route, all) {
                (Some(route), false) => format!("/routes/{}/rollback", segment(&route)),
                (None, true) => "/rollback".to_owned(),
                _ => return Err(CliError::NoTarget),
            };
            let answer: RollbackAnswer = client.post(&path, &ReasonRequest { reason }).await?;
            Ok(rolled_back(&answer))
        }
        Command::Promote {
            route,
            percent,
            force,
            reason,
        } => {
            client.operator()?;
            let path = format!("/routes/{}/promote", segment(&route));
            let request = PromoteRequest {
                percent,
                force,
                reason,
            };
            phase_change(client.change(reqwest::Method::POST, &path, &request).await?)
        }
        Command::Flags(FlagsCommand::Sync) => Err(CliError::Sync(
            "`flags sync` reads the gateway configuration: run it as `studyflow-gateway --config FILE flags sync`".into(),
        )),
        Command::Audit { route, limit } => {
            let mut url = client.url("/audit")?;
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
            if let Some(route) = route {
                url.query_pairs_mut().append_pair("route", &route);
            }
            let answer: AuditAnswer = client.get_url(url).await?;
            Ok(audit_table(&answer.audit))
        }
        Command::Reload => {
            let answer: ReloadAnswer = client.post("/reload", &serde_json::json!({})).await?;
            Ok(pretty(&answer))
        }
        Command::Diffs(DiffsCommand::Report {
            route,
            since,
            format,
        }) => diff_report(&client, route, &since, &format).await,
    }
}

/// `routes list|show|set|reset`.
async fn routes(client: &Client, command: RoutesCommand) -> Result<String, CliError> {
    match command {
        RoutesCommand::List => {
            let answer: RoutesAnswer = client.get("/routes").await?;
            Ok(routes_table(&answer))
        }
        RoutesCommand::Show { route, format } => {
            let view: RouteView = client.get(&format!("/routes/{}", segment(&route))).await?;
            Ok(match format.as_str() {
                "json" => pretty(&view),
                _ => route_summary(&view),
            })
        }
        RoutesCommand::Set {
            route,
            phase,
            percent,
            force,
            reason,
        } => {
            client.operator()?;
            let request = SetPhaseRequest {
                phase,
                percent,
                reason,
                force,
            };
            let path = format!("/routes/{}", segment(&route));
            phase_change(client.change(reqwest::Method::PUT, &path, &request).await?)
        }
        RoutesCommand::Reset { route, all, reason } => {
            client.operator()?;
            let routes = match (route, all) {
                (Some(route), false) => vec![route],
                (None, true) => overridden(&client.get::<RoutesAnswer>("/routes").await?),
                _ => return Err(CliError::NoTarget),
            };
            if routes.is_empty() {
                return Ok("no override in force".into());
            }
            let mut out = Vec::new();
            for route in routes {
                let path = format!("/routes/{}/reset", segment(&route));
                let request = ReasonRequest {
                    reason: reason.clone(),
                };
                let answer: ChangedAnswer = client.post(&path, &request).await?;
                out.push(changes(&answer.changed));
            }
            Ok(out.join("\n"))
        }
    }
}

/// `diffs report`: the report of one route or all, as Markdown or JSON.
async fn diff_report(
    client: &Client,
    route: Option<String>,
    since: &str,
    format: &str,
) -> Result<String, CliError> {
    if let Some(route) = &route {
        // Named as such when it does not exist, rather than "no pairs".
        client
            .get::<RouteView>(&format!("/routes/{}", segment(route)))
            .await?;
    }
    let mut url = client.url("/diffs")?;
    url.query_pairs_mut().append_pair("since", since);
    if let Some(route) = &route {
        url.query_pairs_mut().append_pair("route", route);
    }
    let overview: Overview = client.get_url(url).await?;
    Ok(match format {
        "json" => pretty(&overview),
        _ => report::markdown(&overview),
    })
}

/// A rollback's answer: what changed, whether the fleet has it, what was left alone.
fn rolled_back(answer: &RollbackAnswer) -> String {
    let mut out = changes(&answer.changed);
    if answer.fleet_sync == FleetSync::Pending {
        out.push_str("\nin force on this instance; fleet propagation pending (the fleet store is unreachable)");
    }
    if !answer.skipped.is_empty() {
        let _ = write!(
            out,
            "\nleft alone: {} ({})",
            answer.skipped.join(", "),
            answer.skipped_why.as_deref().unwrap_or("no legacy twin")
        );
    }
    out
}

#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    admin: AdminArgs,
}

/// A change's answer, whatever its status: the status and the body.
type Answer = (u16, bytes::Bytes);

impl Client {
    fn new(admin: AdminArgs) -> Self {
        Self {
            http: reqwest::Client::new(),
            admin,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.get_url(self.url(path)?).await
    }

    async fn get_url<T: DeserializeOwned>(&self, url: reqwest::Url) -> Result<T, CliError> {
        let answer = self.send(self.authenticated(self.http.get(url))).await?;
        self.read(answer)
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        let answer = self.change(reqwest::Method::POST, path, body).await?;
        self.read(answer)
    }

    /// Sends a change and returns its answer, whatever the status.
    async fn change<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<Answer, CliError> {
        let request = self.http.request(method, self.url(path)?).json(body);
        self.send(self.authenticated(request)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, CliError> {
        let unreachable = |source| CliError::Unreachable {
            url: self.admin.admin_url.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await.map_err(unreachable)?))
    }

    /// The body of a successful answer, or the API's refusal as an error.
    fn read<T: DeserializeOwned>(&self, (status, body): Answer) -> Result<T, CliError> {
        if status >= 400 {
            let mut refused = refusal(status, &body);
            if let CliError::Refused { message, .. } = &mut refused
                && status == 401
                && self.admin.token.is_none()
            {
                message.push_str(" (pass --token or set STUDYFLOW_ADMIN_TOKEN)");
            }
            return Err(refused);
        }
        parse(status, &body)
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

    /// The admin API's address for `path` (already encoded).
    fn url(&self, path: &str) -> Result<reqwest::Url, CliError> {
        let text = format!("{}{path}", self.admin.admin_url.trim_end_matches('/'));
        reqwest::Url::parse(&text).map_err(|e| CliError::Refused {
            status: 0,
            message: format!("the admin URL `{}` is not a URL: {e}", self.admin.admin_url),
        })
    }
}

fn parse<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, CliError> {
    serde_json::from_slice(body).map_err(|source| CliError::Unreadable { status, source })
}

/// The admin API's refusal: its `error`, else the status alone.
fn refusal(status: u16, body: &[u8]) -> CliError {
    let message = serde_json::from_slice::<ErrorAnswer>(body)
        .map_or_else(|_| "request refused".to_owned(), |answer| answer.error);
    CliError::Refused { status, message }
}

/// What a route name keeps unencoded in a path segment: letters, digits, `-`, `_`, `~`.
/// Everything else is percent-encoded.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// A route name as one path segment of the admin API: whatever it holds (`/`, `?`, a
/// space, `+`), the API reads back the same name.
fn segment(route: &str) -> String {
    percent_encoding::utf8_percent_encode(route, SEGMENT).to_string()
}

/// The answer of `set` or `promote`: the gate's evidence and what changed, or the gate's
/// refusal with its evidence.
fn phase_change((status, body): Answer) -> Result<String, CliError> {
    match status {
        409 => {
            let refusal: GateRefusal = parse(status, &body)?;
            Err(CliError::GateClosed(format!(
                "{}\n{}",
                refusal.error,
                gate_report(&refusal.route, &refusal.from, &refusal.to, &refusal.gate)
            )))
        }
        status if status >= 400 => Err(refusal(status, &body)),
        _ => {
            let done: PhaseChangeAnswer = parse(status, &body)?;
            Ok(match &done.gate {
                None => changes(&done.changed),
                Some(gate) => format!(
                    "{}{}",
                    gate_report(&done.route, &done.from, &done.to, gate),
                    changes(&done.changed)
                ),
            })
        }
    }
}

/// One line per operator override in force in a `GET /routes` answer: route, phase, who,
/// when and why.
pub fn override_lines(routes: &RoutesAnswer) -> Vec<String> {
    routes
        .routes
        .iter()
        .filter_map(|r| r.override_.as_ref().map(|o| (r, o)))
        .map(|(r, o)| {
            format!(
                "  {:<26} {:<15} by {} at {}: {}",
                r.name,
                o.phase.to_string(),
                o.by,
                o.at,
                o.reason,
            )
        })
        .collect()
}

/// Names of the routes with an operator override in force.
fn overridden(routes: &RoutesAnswer) -> Vec<String> {
    routes
        .routes
        .iter()
        .filter(|r| r.override_.is_some())
        .map(|r| r.name.clone())
        .collect()
}

/// `routes show` for people: where the phase comes from, what is copied, what the
/// counters say, the last changes.
fn route_summary(route: &RouteView) -> String {
    let mut out = format!(
        "{}  {}\n  phase      {} (from {}{})\n",
        route.name,
        route.path,
        route.phase_text(),
        route.source.name(),
        if route.held {
            ", held by the rollback guard"
        } else {
            ""
        },
    );
    let _ = writeln!(
        out,
        "  layers     file {}, unleash {}, override {}",
        route.file_phase,
        route.unleash_phase.as_deref().unwrap_or("none"),
        match &route.override_ {
            None => "none".to_owned(),
            Some(o) => format!("{} by {} at {} ({})", o.phase, o.by, o.at, o.reason),
        }
    );
    let _ = writeln!(out, "  copies     {}", route.copies);
    if !route.legacy_twin {
        out.push_str("  rollback   none: the legacy has no such function (legacy: none)\n");
    }
    let c = &route.counters;
    let _ = writeln!(
        out,
        "  served     legacy {}, new {} ({} fallbacks to legacy)",
        c.served_legacy, c.served_new, c.fallbacks
    );
    let _ = writeln!(
        out,
        "  copies     sent {}, compared {} (equal {}, noise {}, regressions {}), lost {}",
        c.shadows_sent,
        c.pairs_equal + c.pairs_different,
        c.pairs_equal,
        c.pairs_noise,
        c.pairs_regression,
        route.shadows_lost
    );
    if c.pairs_provider_skipped > 0 {
        let _ = writeln!(
            out,
            "  not compared (provider skipped in the new side's dry run): {}",
            c.pairs_provider_skipped
        );
    }
    let since = &route.since_phase_change;
    let _ = writeln!(
        out,
        "  since the last phase change: {} new-side requests, {} errors, {} compared pairs, {} regressions",
        since.new_requests, since.new_errors, since.compared, since.regressions
    );
    match &route.audit {
        Some(audit) if !audit.is_empty() => {
            out.push_str("  history (latest first):\n");
            for e in audit.iter().take(10) {
                let _ = writeln!(
                    out,
                    "    {}  {:<15} {} -> {}  by {}: {}",
                    e.at,
                    e.action.name(),
                    e.from,
                    e.to,
                    e.who,
                    e.reason
                );
            }
        }
        Some(_) => out.push_str("  history    no changes recorded\n"),
        None => {
            let why = route
                .audit_hidden
                .as_deref()
                .or(route.audit_unavailable.as_deref())
                .unwrap_or("-");
            let _ = writeln!(out, "  history    {why}");
        }
    }
    out
}

fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn routes_table(answer: &RoutesAnswer) -> String {
    let mut out = format!(
        "{:<26} {:<15} {:<9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}\n",
        "ROUTE", "PHASE", "SOURCE", "LEGACY", "NEW", "SHADOWS", "DROPPED", "EQUAL", "DIFFER"
    );
    for route in &answer.routes {
        let phase = if route.blocked {
            "blocked".to_owned()
        } else {
            route.phase_text()
        };
        // Held by the rollback guard until an operator moves the route.
        let phase = if route.held {
            format!("{phase} held")
        } else {
            phase
        };
        let c = &route.counters;
        // Every copy that was not compared, whatever stopped it.
        let _ = writeln!(
            out,
            "{:<26} {:<15} {:<9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
            route.name,
            phase,
            route.source.name(),
            c.served_legacy,
            c.served_new,
            c.shadows_sent,
            route.shadows_lost,
            c.pairs_equal,
            c.pairs_different,
        );
    }
    let overrides = override_lines(answer);
    if !overrides.is_empty() {
        out.push_str("\nOverrides in force (kept across restarts; `routes reset --all --reason …` drops them):\n");
        for line in overrides {
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(error) = &answer.reload_error {
        let _ = writeln!(out, "\nroutes file on disk was rejected: {error}");
    }
    out
}

fn changes(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "nothing to change".into();
    }
    entries
        .iter()
        .map(|e| {
            format!(
                "{}: {} -> {} ({} by {})",
                e.route, e.from, e.to, e.action, e.who
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The promotion gate's evidence, one check per line.
fn gate_report(
    route: &str,
    from: &impl std::fmt::Display,
    to: &impl std::fmt::Display,
    gate: &GateReport,
) -> String {
    let mut out = format!("{route}: {from} -> {to}\n");
    if !gate.required {
        out.push_str("gate: not needed for this step (no user is served by the new side)\n");
        return out;
    }
    let since = gate.since.map_or_else(
        || "start".to_owned(),
        |at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    );
    let _ = writeln!(
        out,
        "gate {} (evidence since {since}, window {} s, pairs from {})",
        if gate.holds { "holds" } else { "does NOT hold" },
        gate.window_secs,
        gate.pairs_from,
    );
    let _ = writeln!(out, "counted: {}", gate.counted);
    for check in &gate.checks {
        let _ = writeln!(
            out,
            "  [{}] {:<20} {} (required {})",
            if check.ok { "ok" } else { "FAIL" },
            check.name,
            check.observed,
            check.required,
        );
    }
    out
}

fn audit_table(entries: &[AuditEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(
            out,
            "{}  {:<24} {:<9} {} -> {}  by {}: {}",
            e.at,
            e.route,
            e.action.name(),
            e.from,
            e.to,
            e.who,
            e.reason,
        );
    }
    if out.is_empty() {
        out.push_str("no changes recorded\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_name_is_one_path_segment_whatever_it_holds() {
        assert_eq!(segment("ai-tutor_stream"), "ai-tutor_stream");
        assert_eq!(segment("tasks/rollback"), "tasks%2Frollback");
        assert_eq!(segment("a b+c?d#e"), "a%20b%2Bc%3Fd%23e");
        assert_eq!(segment(".."), "%2E%2E");
        // Read back as a path segment, each gives the name it came from. (A name of dots
        // alone cannot survive: URLs resolve `%2E%2E` as `..`; it reaches no route.)
        for name in ["tasks/rollback", "a b+c?d#e", "a.b", "é"] {
            let url = reqwest::Url::parse(&format!("http://admin/routes/{}", segment(name)))
                .expect("url");
            let last = url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .expect("segment");
            let decoded = percent_encoding::percent_decode_str(last)
                .decode_utf8()
                .expect("utf-8");
            assert_eq!(decoded, name);
        }
    }
}
