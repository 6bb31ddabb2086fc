//! Typed gateway configuration: defaults, then an optional YAML file, then
//! `STUDYFLOW_GATEWAY__<KEY>` environment variables (nested keys joined by `__`, e.g.
//! `STUDYFLOW_GATEWAY__SHADOW__TIMEOUT_MS`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::shadow::ShadowLimits;
use crate::{Error, Result};

/// Everything the gateway needs to start. Validated once by [`GatewayConfig::load`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address the frontend connects to.
    pub listen: String,
    /// Address of the admin API. Keep it private.
    pub admin_listen: String,
    /// Bearer token of the admin API's changes; without it the admin API is read-only.
    pub admin_token: Option<SecretString>,
    /// Routes file; the table shipped in `flags/routes.yaml` when unset.
    pub routes_file: Option<PathBuf>,
    /// Where operator overrides and the audit log are kept; memory only when unset. With
    /// `fleet.redis_url` they are kept in Redis instead.
    pub state_file: Option<PathBuf>,
    /// The last good flag set (Unleash layer, overrides, phases in force), written when it
    /// changes and read at start when a source is down; none when unset.
    pub snapshot_file: Option<PathBuf>,
    /// Route phases from an Unleash server; the routes file and overrides only when unset.
    pub unleash: Option<UnleashConfig>,
    /// Overrides shared by every gateway instance through Redis.
    pub fleet: FleetConfig,
    /// Sign-outs recorded as revocations for the backend (see [`crate::logout`]).
    pub sessions: SessionsConfig,
    /// Automatic rollback of a route whose new side misbehaves.
    pub guard: GuardConfig,
    /// What `promote` requires before moving a route forward.
    pub promotion: PromotionConfig,
    /// The operator console on the admin port.
    pub console: ConsoleConfig,
    /// Base URL of the legacy side: the Supabase project (Edge Functions, auth, REST…).
    pub legacy_url: String,
    /// Base URL of the new backend.
    pub new_url: String,
    /// Further upstreams, by name, that routes may name for either side.
    pub upstreams: BTreeMap<String, String>,
    /// Seconds to wait for an upstream connection.
    pub connect_timeout_secs: u64,
    /// Seconds an upstream may stay silent while answering.
    pub read_timeout_secs: u64,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Whether the proxy's worker threads steal each other's tasks (one shared runtime)
    /// or each run their own connections (one runtime per thread).
    pub work_stealing: bool,
    pub shadow: ShadowConfig,
    /// Where compared pairs are counted and sampled; counters only when unset.
    pub diff_store: DiffStoreConfig,
    /// Extra regular expressions masked in stored samples (credentials are always masked).
    pub redact_patterns: Vec<String>,
    /// Addresses or networks (`10.0.0.0/8`, `::1`) of load balancers in front of the
    /// gateway. A request from one of them keeps the `X-Forwarded-For` and
    /// `X-Forwarded-Proto` it carries (the client's address is appended); from anyone else
    /// they are replaced by what the gateway sees.
    pub trusted_proxies: Vec<String>,
    /// Log as JSON lines instead of text.
    pub json_logs: bool,
}

/// The Unleash server (see `studyflow_flags::unleash` for the toggle mapping).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnleashConfig {
    /// Base URL, e.g. `http://127.0.0.1:4242` (the API is under `/api`).
    pub url: String,
    /// Client (backend SDK) token, `<project>:<environment>.<secret>`.
    pub client_token: SecretString,
    /// Admin token, for `flags sync` and for rollbacks written back to Unleash.
    #[serde(default)]
    pub admin_token: Option<SecretString>,
    #[serde(default = "default_app_name")]
    pub app_name: String,
    #[serde(default = "default_project")]
    pub project: String,
    /// The environment the client token reads (and the admin writes go to).
    #[serde(default = "default_environment")]
    pub environment: String,
    /// How often toggles are fetched. Rollbacks do not wait for it (they go through Redis).
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
    /// Time one call to Unleash may take.
    #[serde(default = "default_unleash_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_app_name() -> String {
    "studyflow-gateway".into()
}
fn default_project() -> String {
    "default".into()
}
fn default_environment() -> String {
    "development".into()
}
fn default_refresh_ms() -> u64 {
    5000
}
fn default_unleash_timeout_ms() -> u64 {
    2000
}

impl UnleashConfig {
    /// The settings the flags crate works with; `instance` names this gateway process.
    pub fn settings(&self, instance: &str) -> studyflow_flags::unleash::UnleashSettings {
        studyflow_flags::unleash::UnleashSettings {
            url: self.url.clone(),
            client_token: self.client_token.clone(),
            admin_token: self.admin_token.clone(),
            app_name: self.app_name.clone(),
            instance_id: instance.to_owned(),
            project: self.project.clone(),
            environment: self.environment.clone(),
            refresh: Duration::from_millis(self.refresh_ms),
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

/// Where accepted sign-outs (`POST /auth/v1/logout`) are recorded: the Redis and key
/// prefix the backend reads its revocations from (its `REDIS_URL` and
/// `REDIS_KEY_PREFIX`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// `redis://host:port[/db]`; unset: sign-outs are passed through, not recorded.
    pub redis_url: Option<SecretString>,
    /// The backend's `REDIS_KEY_PREFIX`.
    pub key_prefix: String,
    /// The project's JWT expiry (the backend's `JWT_EXPIRY_SECS`).
    pub token_lifetime_secs: u64,
    /// Time the record may take before the answer goes back without it.
    pub timeout_ms: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            key_prefix: "studyflow:".into(),
            token_lifetime_secs: 3600,
            timeout_ms: 300,
        }
    }
}

/// A fleet of gateways sharing overrides through Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// `redis://host:port[/db]`; unset: one instance, overrides in `state_file`.
    pub redis_url: Option<SecretString>,
    /// Key prefix and channel namespace: every instance of one fleet uses the same.
    pub prefix: String,
    /// Time one Redis call may take.
    pub timeout_ms: u64,
    /// Overrides are also re-read this often, besides on every announcement.
    pub resync_secs: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            prefix: "studyflow:gateway".into(),
            timeout_ms: 1000,
            resync_secs: 10,
        }
    }
}

/// Thresholds of the automatic rollback guard; every key but `enabled` and
/// `interval_ms` can be set per route under `routes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    pub enabled: bool,
    /// How often the windows are evaluated.
    pub interval_ms: u64,
    /// Sliding window, seconds (at most 600).
    pub window_secs: u64,
    /// New-side requests in the window before its error rate is judged.
    pub min_requests: u64,
    /// Highest tolerated share of new-side errors (5xx, timeouts, connection failures).
    pub max_error_rate: f64,
    /// Compared pairs in the window before the mismatch rate is judged.
    pub min_pairs: u64,
    /// Highest tolerated share of regressions among compared pairs (noise does not count).
    pub max_mismatch_rate: f64,
    /// A new-side 5xx with no legacy answer to compare with counts only once this many
    /// distinct callers had one in the window: the `sub` of a token signed with
    /// `jwt_secret`, else an `apikey` signed with it, else the client's address.
    pub min_identities: u64,
    /// The project's JWT secret (HS256), to verify who a caller is; without it every
    /// caller counts as its address.
    pub jwt_secret: Option<SecretString>,
    /// Per-route thresholds; keys left out take the global value.
    pub routes: BTreeMap<String, GuardRouteConfig>,
}

/// When the guard rolls a route back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardThresholds {
    /// Distinct callers needed before unconfirmed errors count.
    pub min_identities: u64,
    /// Sliding window, seconds (at most 600).
    pub window_secs: u64,
    /// New-side requests in the window before its error rate is judged.
    pub min_requests: u64,
    /// Highest tolerated share of new-side errors (5xx, timeouts, connection failures).
    pub max_error_rate: f64,
    /// Compared pairs in the window before the mismatch rate is judged.
    pub min_pairs: u64,
    /// Highest tolerated share of regressions among compared pairs (noise does not count).
    pub max_mismatch_rate: f64,
}

/// Per-route guard settings.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardRouteConfig {
    /// `false` leaves this route alone.
    pub enabled: Option<bool>,
    pub window_secs: Option<u64>,
    pub min_requests: Option<u64>,
    pub max_error_rate: Option<f64>,
    pub min_pairs: Option<u64>,
    pub max_mismatch_rate: Option<f64>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1000,
            window_secs: 60,
            min_requests: 20,
            max_error_rate: 0.05,
            min_pairs: 20,
            max_mismatch_rate: 0.05,
            min_identities: 5,
            jwt_secret: None,
            routes: BTreeMap::new(),
        }
    }
}

impl GuardConfig {
    /// The global thresholds.
    pub fn thresholds(&self) -> GuardThresholds {
        GuardThresholds {
            min_identities: self.min_identities,
            window_secs: self.window_secs,
            min_requests: self.min_requests,
            max_error_rate: self.max_error_rate,
            min_pairs: self.min_pairs,
            max_mismatch_rate: self.max_mismatch_rate,
        }
    }

    /// The thresholds of `route`, or `None` when the guard leaves it alone.
    pub fn for_route(&self, route: &str) -> Option<GuardThresholds> {
        let global = self.thresholds();
        let Some(own) = self.routes.get(route) else {
            return self.enabled.then_some(global);
        };
        if !own.enabled.unwrap_or(self.enabled) {
            return None;
        }
        Some(GuardThresholds {
            min_identities: global.min_identities,
            window_secs: own.window_secs.unwrap_or(global.window_secs),
            min_requests: own.min_requests.unwrap_or(global.min_requests),
            max_error_rate: own.max_error_rate.unwrap_or(global.max_error_rate),
            min_pairs: own.min_pairs.unwrap_or(global.min_pairs),
            max_mismatch_rate: own.max_mismatch_rate.unwrap_or(global.max_mismatch_rate),
        })
    }
}

/// The promotion gate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromotionConfig {
    /// How far back the diff store is read (it also starts at the last phase change).
    pub window_secs: u64,
    /// Compared pairs needed before a route moves forward.
    pub min_pairs: u64,
    /// Highest mismatch rate (regressions per compared pair) that lets a route move.
    pub max_mismatch_rate: f64,
    /// Highest new-side error rate that lets a route move.
    pub max_error_rate: f64,
    /// Canary percentages `promote` walks through from shadow; after the last, primary.
    pub canary_steps: Vec<u8>,
}

impl Default for PromotionConfig {
    fn default() -> Self {
        Self {
            window_secs: 3600,
            min_pairs: 100,
            max_mismatch_rate: 0.01,
            max_error_rate: 0.01,
            canary_steps: vec![5, 25, 50, 100],
        }
    }
}

/// The operator console (`/ui` on the admin port).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// The address operators open the console at (`https://gateway-admin.example.org`),
    /// when it sits behind a TLS proxy.
    pub public_url: Option<String>,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Default: on when
    /// `public_url` is an `https` URL.
    pub secure_cookies: Option<bool>,
    /// How long a console page waits for the diff store (promotion gates, differing
    /// paths), all routes' gate checks in parallel; past it the page says the store is
    /// unavailable.
    pub store_timeout_ms: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            secure_cookies: None,
            store_timeout_ms: 300,
        }
    }
}

/// How the console behaves, from the `console` section of the configuration.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// Session cookies carry `Secure`.
    pub secure_cookies: bool,
    /// The longest a page waits for the diff store.
    pub store_timeout: Duration,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            store_timeout: Duration::from_millis(300),
        }
    }
}

impl ConsoleConfig {
    /// The settings the console runs with.
    pub fn settings(&self) -> ConsoleSettings {
        let https = self
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"));
        ConsoleSettings {
            secure_cookies: self.secure_cookies.unwrap_or(https),
            store_timeout: Duration::from_millis(self.store_timeout_ms),
        }
    }

    fn validate(&self) -> Result<()> {
        if let Some(public_url) = &self.public_url {
            let url = url::Url::parse(public_url).ok();
            if !url.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
                return Err(Error::Config(format!(
                    "`console.public_url` must be an http(s) URL, got `{public_url}`"
                )));
            }
        }
        if !(1..=60_000).contains(&self.store_timeout_ms) {
            return Err(Error::Config(
                "`console.store_timeout_ms` must be 1 to 60000".into(),
            ));
        }
        Ok(())
    }
}

/// Bounds of shadow traffic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowConfig {
    pub max_concurrency: usize,
    pub queue_size: usize,
    pub timeout_ms: u64,
    pub max_body_bytes: usize,
    /// All bytes held at once for copies and comparisons (request bodies, captured
    /// answers); a copy that would go over it is dropped and counted.
    pub max_buffered_bytes: usize,
    pub compare_queue_size: usize,
    /// Capture and compare the two answers (diffing). Off: copies are sent, not compared.
    pub compare: bool,
    /// Shared with the new backend (its `shadow_secret`): copies to the new side carry it,
    /// and only then does the backend run them as dry runs. Without it no copy goes to the
    /// new side, since it would really write.
    pub secret: Option<SecretString>,
}

/// The diff store (Postgres).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffStoreConfig {
    pub database_url: Option<SecretString>,
    pub queue_size: usize,
    pub flush_interval_ms: u64,
    pub samples_per_shape: u32,
    pub retention_hours: u64,
}

impl Default for DiffStoreConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            queue_size: 10_000,
            flush_interval_ms: 1000,
            samples_per_shape: 20,
            retention_hours: 14 * 24,
        }
    }
}

impl DiffStoreConfig {
    pub fn settings(&self) -> studyflow_diffing::store::StoreSettings {
        studyflow_diffing::store::StoreSettings {
            queue_size: self.queue_size,
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            samples_per_shape: i64::from(self.samples_per_shape),
            retention: Duration::from_secs(self.retention_hours * 3600),
        }
    }
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 64,
            queue_size: 1024,
            timeout_ms: 10_000,
            max_body_bytes: 1024 * 1024,
            max_buffered_bytes: 64 * 1024 * 1024,
            compare_queue_size: 4096,
            compare: true,
            secret: None,
        }
    }
}

impl ShadowConfig {
    pub fn limits(&self) -> ShadowLimits {
        ShadowLimits {
            max_concurrency: self.max_concurrency,
            queue_size: self.queue_size,
            timeout: Duration::from_millis(self.timeout_ms),
            max_body_bytes: self.max_body_bytes,
            max_buffered_bytes: self.max_buffered_bytes,
            compare_queue_size: self.compare_queue_size,
            compare: self.compare,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".into(),
            admin_listen: "127.0.0.1:8001".into(),
            admin_token: None,
            routes_file: None,
            state_file: None,
            snapshot_file: None,
            unleash: None,
            fleet: FleetConfig::default(),
            sessions: SessionsConfig::default(),
            guard: GuardConfig::default(),
            promotion: PromotionConfig::default(),
            console: ConsoleConfig::default(),
            legacy_url: "http://127.0.0.1:54321".into(),
            new_url: "http://127.0.0.1:8002".into(),
            upstreams: BTreeMap::new(),
            connect_timeout_secs: 5,
            read_timeout_secs: 60,
            threads: 2,
            work_stealing: true,
            shadow: ShadowConfig::default(),
            diff_store: DiffStoreConfig::default(),
            redact_patterns: Vec::new(),
            trusted_proxies: Vec::new(),
            json_logs: false,
        }
    }
}

impl GatewayConfig {
    /// `trusted_proxies`, parsed.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|text| {
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        Error::Config(format!(
                            "`trusted_proxies`: `{text}` is not an address or network"
                        ))
                    })
            })
            .collect()
    }

    /// Layers defaults, the file at `path` (if given) and the environment, then validates.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::new();
        if let Some(path) = path {
            if !path.exists() {
                return Err(Error::Config(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Yaml::file(path));
        }
        let config: Self = figment
            .merge(Env::prefixed("STUDYFLOW_GATEWAY__").split("__"))
            .extract()
            .map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value at start, section by section, so a mistake is named before
    /// anything serves.
    fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("listen", &self.listen),
            ("admin_listen", &self.admin_listen),
        ] {
            value.parse::<std::net::SocketAddr>().map_err(|_| {
                Error::Config(format!(
                    "`{key}` must be an address like 127.0.0.1:8000, got `{value}`"
                ))
            })?;
        }
        at_least_one(&[
            ("threads", self.threads as u64),
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("read_timeout_secs", self.read_timeout_secs),
        ])?;
        self.trusted_proxies()?;
        self.shadow.validate()?;
        studyflow_diffing::Redactor::new(&self.redact_patterns)
            .map_err(|e| Error::Config(format!("`redact_patterns`: {e}")))?;
        if let Some(unleash) = &self.unleash {
            unleash.validate()?;
        }
        self.console.validate()?;
        self.fleet.validate()?;
        at_least_one(&[
            (
                "sessions.token_lifetime_secs",
                self.sessions.token_lifetime_secs,
            ),
            ("sessions.timeout_ms", self.sessions.timeout_ms),
        ])?;
        self.guard.validate()?;
        self.promotion.validate()
    }
}

/// Fails on the first of `values` that is 0, naming its key.
fn at_least_one(values: &[(&str, u64)]) -> Result<()> {
    match values.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => Err(Error::Config(format!("`{key}` must be at least 1"))),
        None => Ok(()),
    }
}

/// Fails on the first of `rates` outside 0–1, naming its key.
fn rates(rates: &[(&str, f64)]) -> Result<()> {
    match rates.iter().find(|(_, rate)| !(0.0..=1.0).contains(rate)) {
        Some((key, _)) => Err(Error::Config(format!("`{key}` must be between 0 and 1"))),
        None => Ok(()),
    }
}

impl ShadowConfig {
    fn validate(&self) -> Result<()> {
        at_least_one(&[
            ("shadow.max_concurrency", self.max_concurrency as u64),
            ("shadow.queue_size", self.queue_size as u64),
            ("shadow.timeout_ms", self.timeout_ms),
            ("shadow.max_buffered_bytes", self.max_buffered_bytes as u64),
            ("shadow.compare_queue_size", self.compare_queue_size as u64),
        ])?;
        if let Some(secret) = &self.secret {
            let text = secret.expose_secret();
            if text.len() < 16 || !text.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::Config(
                    "`shadow.secret` must be at least 16 printable characters".into(),
                ));
            }
        }
        Ok(())
    }
}

impl UnleashConfig {
    fn validate(&self) -> Result<()> {
        let url = url::Url::parse(&self.url).ok();
        if !url.is_some_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(Error::Config(format!(
                "`unleash.url` must be an http(s) URL, got `{}`",
                self.url
            )));
        }
        at_least_one(&[
            ("unleash.refresh_ms", self.refresh_ms),
            ("unleash.timeout_ms", self.timeout_ms),
        ])
    }
}

impl FleetConfig {
    fn validate(&self) -> Result<()> {
        if self.prefix.trim().is_empty() {
            return Err(Error::Config("`fleet.prefix` must not be empty".into()));
        }
        if self.timeout_ms == 0 || self.resync_secs == 0 {
            return Err(Error::Config(
                "`fleet.timeout_ms` and `fleet.resync_secs` must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl GuardConfig {
    /// The interval, and the thresholds of the defaults and of every route's override.
    fn validate(&self) -> Result<()> {
        if self.interval_ms == 0 {
            return Err(Error::Config(
                "`guard.interval_ms` must be at least 1".into(),
            ));
        }
        let overrides = self
            .routes
            .keys()
            .filter_map(|route| Some((format!("guard.routes.{route}."), self.for_route(route)?)));
        for (prefix, t) in
            std::iter::once(("guard.".to_owned(), self.thresholds())).chain(overrides)
        {
            if !(1..=crate::stats::MAX_WINDOW_SECS).contains(&t.window_secs) {
                return Err(Error::Config(format!(
                    "`{prefix}window_secs` must be 1 to {}",
                    crate::stats::MAX_WINDOW_SECS
                )));
            }
            rates(&[
                (&format!("{prefix}max_error_rate"), t.max_error_rate),
                (&format!("{prefix}max_mismatch_rate"), t.max_mismatch_rate),
            ])?;
        }
        Ok(())
    }
}

impl PromotionConfig {
    fn validate(&self) -> Result<()> {
        rates(&[
            ("promotion.max_mismatch_rate", self.max_mismatch_rate),
            ("promotion.max_error_rate", self.max_error_rate),
        ])?;
        let steps = &self.canary_steps;
        if steps.is_empty()
            || steps.windows(2).any(|w| w[0] >= w[1])
            || steps.iter().any(|s| *s == 0 || *s > 100)
        {
            return Err(Error::Config(
                "`promotion.canary_steps` must be increasing percentages from 1 to 100".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_configuration_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.example.yaml");
        let config = GatewayConfig::load(Some(&path)).expect("sample config loads");
        assert!(config.admin_token.is_some());
        assert!(config.unleash.is_some_and(|u| u.admin_token.is_some()));
        assert_eq!(
            config
                .guard
                .for_route("ai-tutor-professional")
                .map(|t| t.max_error_rate),
            Some(0.1)
        );
        assert_eq!(
            config
                .guard
                .for_route("encryption")
                .map(|t| t.max_error_rate),
            Some(0.05)
        );
    }

    #[test]
    fn console_cookies_are_secure_behind_https() {
        let console = |public_url: Option<&str>, secure_cookies| ConsoleConfig {
            public_url: public_url.map(str::to_owned),
            secure_cookies,
            ..ConsoleConfig::default()
        };
        assert!(!console(None, None).settings().secure_cookies);
        assert!(
            !console(Some("http://10.0.0.1:8001"), None)
                .settings()
                .secure_cookies
        );
        assert!(
            console(Some("https://ops.example.org"), None)
                .settings()
                .secure_cookies
        );
        assert!(
            !console(Some("https://ops.example.org"), Some(false))
                .settings()
                .secure_cookies
        );
        assert!(console(None, Some(true)).settings().secure_cookies);
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = std::env::temp_dir().join(format!("sf-gw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("bad.yaml");
        std::fs::write(&path, "listen: nowhere\n").expect("write");
        let err = GatewayConfig::load(Some(&path))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("`listen`"), "{err}");
        std::fs::write(&path, "shadow:\n  queue_size: 0\n").expect("write");
        let err = GatewayConfig::load(Some(&path))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("shadow.queue_size"), "{err}");
        std::fs::write(&path, "guard:\n  routes:\n    a: {max_error_rate: 2}\n").expect("write");
        let err = GatewayConfig::load(Some(&path))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("guard.routes.a.max_error_rate"), "{err}");
        std::fs::write(&path, "unleash:\n  url: nowhere\n  client_token: x\n").expect("write");
        let err = GatewayConfig::load(Some(&path))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("unleash.url"), "{err}");
        std::fs::write(&path, "console:\n  public_url: gateway.example.org\n").expect("write");
        let err = GatewayConfig::load(Some(&path))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("console.public_url"), "{err}");
        std::fs::write(&path, "lisen: 1\n").expect("write");
        assert!(GatewayConfig::load(Some(&path)).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
