//! Route phases from an Unleash server.
//!
//! # Mapping
//!
//! One toggle per route, named `gateway.<route>` (project and environment configurable),
//! of type `release`:
//!
//! | route phase | toggle in the environment | `flexibleRollout` strategy |
//! | --- | --- | --- |
//! | `legacy` | off | (kept; `sync` writes `rollout` 0, phase `shadow`, so switching the toggle on starts shadowing) |
//! | `shadow` | on | `rollout` 0, phase `shadow` |
//! | `canary` N | on | `rollout` N, phase `canary` |
//! | `primary` | on | `rollout` 100, phase `primary` |
//! | `decommissioned` | on | `rollout` 100, phase `decommissioned` |
//!
//! The strategy always has `stickiness: userId` and `groupId: <route>`, so Unleash's own
//! evaluation (playground, SDKs) puts each user on the same side as the gateway, whose
//! canary bucket is Unleash's normalised murmur3 hash of `<route>:<user>`. The phase is
//! carried twice: as a strategy **variant** (name and string payload = the phase), which
//! the Unleash UI edits, and as an extra strategy **parameter** `phase`, which the admin
//! API keeps. When reading, the variant wins, then the parameter; an enabled toggle with
//! neither is a canary at its rollout. The rollout percentage matters only in `canary`.
//!
//! # Reading and writing
//!
//! [`UnleashSource`] polls the client API through `unleash-api-client` 0.17: its
//! [`Client`](unleash_api_client::Client) sends Unleash's SDK headers, registers the
//! gateway as an application, and its HTTP layer fetches `/api/client/features` into
//! `unleash-types`' `ClientFeatures`. The crate offers no accessor for raw strategy
//! parameters and evaluates toggles per user behind a mutex, so the gateway reads the
//! fetched features itself and buckets users with its own lock-free, Unleash-identical
//! hash (see `proxy/src/identity.rs`). [`UnleashAdmin`] writes toggles through the admin API
//! (plain HTTP: the SDK has no admin calls) for `flags sync` and for rollbacks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use unleash_api_client::http::reqwest::ReqwestTransport;
use unleash_api_client::http::{Request, Response, Transport};
use unleash_api_client::{Client, ClientBuilder};
use unleash_types::client_features::{ClientFeature, ClientFeatures};

use crate::source::{FlagSource, Layer, Setting, SourceKind};
use crate::{Error, Phase, Result};

/// Toggle names are `gateway.<route>`.
pub const TOGGLE_PREFIX: &str = "gateway.";

/// The Unleash toggle of `route`.
pub fn toggle_name(route: &str) -> String {
    format!("{TOGGLE_PREFIX}{route}")
}

/// How a phase looks in Unleash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToggleState {
    pub enabled: bool,
    pub rollout: u8,
    pub phase: &'static str,
}

/// The toggle state that stands for `phase`.
pub fn toggle_state(phase: Phase) -> ToggleState {
    let (enabled, rollout, phase) = match phase {
        // A disabled toggle is legacy whatever its variant says.
        Phase::Legacy => (false, 0, Phase::Shadow.name()),
        Phase::Shadow => (true, 0, phase.name()),
        Phase::Canary(percent) => (true, percent, phase.name()),
        Phase::Primary | Phase::Decommissioned => (true, 100, phase.name()),
    };
    ToggleState {
        enabled,
        rollout,
        phase,
    }
}

/// The `flexibleRollout` strategy (admin API body) that stands for `phase` of `route`.
pub fn strategy_body(route: &str, phase: Phase) -> Value {
    let state = toggle_state(phase);
    json!({
        "name": "flexibleRollout",
        "constraints": [],
        "parameters": {
            "rollout": state.rollout.to_string(),
            "stickiness": "userId",
            "groupId": route,
            "phase": state.phase,
        },
        "variants": [{
            "name": state.phase,
            "weight": 1000,
            "weightType": "variable",
            "stickiness": "userId",
            "payload": {"type": "string", "value": state.phase},
        }],
    })
}

/// The phase a client-API feature stands for, if it is a gateway toggle. An error names
/// the toggle and what cannot be read.
pub fn phase_of(feature: &ClientFeature) -> Option<Result<(String, Phase)>> {
    let route = feature.name.strip_prefix(TOGGLE_PREFIX)?;
    let fail = |reason: String| Error::Unleash(format!("toggle `{}`: {reason}", feature.name));
    if !feature.enabled {
        return Some(Ok((route.to_owned(), Phase::Legacy)));
    }
    let mut strategies: Vec<_> = feature
        .strategies
        .iter()
        .flatten()
        .filter(|s| s.name == "flexibleRollout")
        .collect();
    strategies.sort_by_key(|s| s.sort_order.unwrap_or(0));
    let Some(strategy) = strategies.first() else {
        return Some(Err(fail(
            "enabled without a flexibleRollout strategy".into(),
        )));
    };
    let parameters = strategy.parameters.clone().unwrap_or_default();
    let rollout = match parameters.get("rollout").map(|r| r.trim().parse::<u8>()) {
        Some(Ok(rollout)) if rollout <= 100 => rollout,
        Some(_) => {
            return Some(Err(fail(format!(
                "rollout `{}` is not a percentage",
                parameters["rollout"]
            ))));
        }
        None => return Some(Err(fail("flexibleRollout without `rollout`".into()))),
    };
    let from_variant = strategy.variants.iter().flatten().find_map(|v| {
        v.payload
            .as_ref()
            .map(|p| p.value.trim().to_owned())
            .filter(|value| is_phase_name(value))
            .or_else(|| Some(v.name.clone()).filter(|name| is_phase_name(name)))
    });
    let name = from_variant
        .or_else(|| parameters.get("phase").map(|p| p.trim().to_owned()))
        .unwrap_or_else(|| Phase::Canary(0).name().to_owned());
    let phase = match Phase::named(&name) {
        Ok(Phase::Canary(_)) => Phase::Canary(rollout),
        Ok(phase) => phase,
        Err(reason) => return Some(Err(fail(reason))),
    };
    Some(Ok((route.to_owned(), phase)))
}

fn is_phase_name(name: &str) -> bool {
    Phase::NAMES.contains(&name)
}

/// The layer a client-API answer stands for. One toggle that cannot be read fails the
/// whole answer: a flag state that cannot be parsed never replaces a good one.
pub fn layer_from_features(features: &ClientFeatures) -> Result<Layer> {
    features
        .features
        .iter()
        .filter_map(phase_of)
        .map(|entry| entry.map(|(route, phase)| (route, Setting::new(phase))))
        .collect()
}

/// Where Unleash is and how to talk to it.
#[derive(Debug, Clone)]
pub struct UnleashSettings {
    /// Base URL of the server, e.g. `http://127.0.0.1:4242` (the API is under `/api`).
    pub url: String,
    /// Client (backend SDK) token: reads toggles of one environment.
    pub client_token: SecretString,
    /// Admin token: `flags sync` and rollbacks written back to Unleash.
    pub admin_token: Option<SecretString>,
    pub app_name: String,
    pub instance_id: String,
    pub project: String,
    pub environment: String,
    /// How often toggles are fetched.
    pub refresh: Duration,
    /// Time one HTTP call may take.
    pub timeout: Duration,
}

impl UnleashSettings {
    fn api_url(&self) -> String {
        format!("{}/api", self.url.trim_end_matches('/'))
    }
}

/// The SDK's transport with a timeout, and with non-2xx answers turned into errors (the
/// SDK would try to parse an error body as features).
struct CheckedTransport(ReqwestTransport);

#[async_trait]
impl Transport for CheckedTransport {
    async fn execute(&self, request: Request) -> std::result::Result<Response, anyhow::Error> {
        let url = request.url.clone();
        let response = self.0.execute(request).await?;
        if !(200..300).contains(&response.status) {
            anyhow::bail!("{url} answered HTTP {}", response.status);
        }
        Ok(response)
    }
}

/// The gateway's toggles are looked up by name, never through a feature enum.
#[derive(Debug, Clone, Copy)]
pub enum NoFeatureEnum {}

impl unleash_api_client::client::FeatureKey for NoFeatureEnum {
    fn name(self) -> &'static str {
        match self {}
    }
}

/// Unleash as a flag source.
pub struct UnleashSource {
    client: Client<NoFeatureEnum>,
    endpoint: String,
    refresh_ms: u64,
}

impl std::fmt::Debug for UnleashSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnleashSource")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl UnleashSource {
    pub fn new(settings: &UnleashSettings) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| Error::unleash_call("http client", e))?;
        let refresh_ms = settings.refresh.as_millis() as u64;
        let api_url = settings.api_url();
        let client = ClientBuilder::default()
            .interval(refresh_ms)
            .disable_metric_submission()
            .enable_string_features()
            .into_client_with_transport::<NoFeatureEnum>(
                &api_url,
                &settings.app_name,
                &settings.instance_id,
                Some(settings.client_token.expose_secret().to_owned()),
                Arc::new(CheckedTransport(ReqwestTransport::new(http))),
            )
            .map_err(|e| Error::unleash_call("client", e))?;
        Ok(Self {
            endpoint: unleash_api_client::api::features_endpoint(&api_url),
            client,
            refresh_ms,
        })
    }

    /// Registers the gateway as an Unleash application (shown in the UI). Best effort.
    pub async fn register(&self) -> Result<()> {
        self.client
            .register()
            .await
            .map_err(|e| Error::unleash_call("registering", e))
    }
}

#[async_trait]
impl FlagSource for UnleashSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Unleash
    }

    async fn fetch(&self) -> Result<Layer> {
        let features: ClientFeatures = self
            .client
            .http
            .get_json(&self.endpoint, Some(self.refresh_ms))
            .await
            .map_err(|e| Error::unleash_call("fetching toggles", e))?;
        layer_from_features(&features)
    }
}

/// What writing one route's toggle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    /// The toggle does not exist and was not to be created.
    Missing,
}

/// Unleash's admin API, for `flags sync` and for rollbacks written back.
#[derive(Debug, Clone)]
pub struct UnleashAdmin {
    http: reqwest::Client,
    base: String,
    token: SecretString,
    environment: String,
}

impl UnleashAdmin {
    /// `None` when no admin token is configured.
    pub fn new(settings: &UnleashSettings) -> Result<Option<Self>> {
        let Some(token) = settings.admin_token.clone() else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| Error::unleash_call("http client", e))?;
        Ok(Some(Self {
            http,
            base: format!(
                "{}/admin/projects/{}/features",
                settings.api_url(),
                settings.project
            ),
            token,
            environment: settings.environment.clone(),
        }))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("authorization", self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::unleash_call(format!("{method} {path}"), e))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, value))
    }

    fn refused(what: &str, status: u16, body: &Value) -> Error {
        let message = body["message"].as_str().unwrap_or("no details");
        Error::Unleash(format!("{what}: HTTP {status}: {message}"))
    }

    /// Makes `route`'s toggle stand for `phase`: creates the toggle when `create` (else a
    /// missing toggle is left missing), puts the strategy (replacing the route's
    /// `flexibleRollout`, variants included), then switches the environment on or off.
    /// The strategy goes first: Unleash adds a 100 % strategy of its own to an environment
    /// switched on without one.
    pub async fn write(&self, route: &str, phase: Phase, create: bool) -> Result<Written> {
        let toggle = toggle_name(route);
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("/{toggle}"), None)
            .await?;
        let mut written = Written::Updated;
        match status {
            200 => {}
            404 if !create => return Ok(Written::Missing),
            404 => {
                let (status, body) = self
                    .call(
                        reqwest::Method::POST,
                        "",
                        Some(json!({
                            "name": toggle,
                            "type": "release",
                            "description": format!("StudyFlow gateway: migration phase of route `{route}`"),
                        })),
                    )
                    .await?;
                if status != 201 && status != 409 {
                    return Err(Self::refused(&format!("creating {toggle}"), status, &body));
                }
                written = Written::Created;
            }
            _ => return Err(Self::refused(&format!("reading {toggle}"), status, &body)),
        }
        let strategies = format!("/{toggle}/environments/{}/strategies", self.environment);
        let (status, list) = self.call(reqwest::Method::GET, &strategies, None).await?;
        if status != 200 {
            return Err(Self::refused(
                &format!("listing strategies of {toggle}"),
                status,
                &list,
            ));
        }
        let existing = list.as_array().into_iter().flatten().find(|s| {
            s["name"] == "flexibleRollout"
                && (s["parameters"]["groupId"] == route || s["parameters"]["groupId"] == toggle)
        });
        let body = strategy_body(route, phase);
        let (status, answer) = match existing.and_then(|s| s["id"].as_str()) {
            Some(id) => {
                self.call(
                    reqwest::Method::PUT,
                    &format!("{strategies}/{id}"),
                    Some(body),
                )
                .await?
            }
            None => {
                self.call(reqwest::Method::POST, &strategies, Some(body))
                    .await?
            }
        };
        if !(200..300).contains(&status) {
            return Err(Self::refused(
                &format!("writing the strategy of {toggle}"),
                status,
                &answer,
            ));
        }
        let switch = if toggle_state(phase).enabled {
            "on"
        } else {
            "off"
        };
        let (status, answer) = self
            .call(
                reqwest::Method::POST,
                &format!("/{toggle}/environments/{}/{switch}", self.environment),
                None,
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(Self::refused(
                &format!("switching {toggle} {switch}"),
                status,
                &answer,
            ));
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(json: Value) -> ClientFeatures {
        serde_json::from_value(json!({"version": 2, "features": json})).expect("features")
    }

    fn toggle(enabled: bool, parameters: Value, variants: Value) -> Value {
        json!({
            "name": "gateway.auth-validation",
            "type": "release",
            "enabled": enabled,
            "strategies": [{"name": "flexibleRollout", "constraints": [], "parameters": parameters, "variants": variants}],
        })
    }

    /// The client-API answer the harness README shows for Unleash 7.5.1.
    #[test]
    fn the_documented_client_answer_reads_as_a_canary() {
        let answer = features(json!([toggle(
            true,
            json!({"phase": "canary", "groupId": "auth-validation", "rollout": "25", "stickiness": "userId"}),
            json!([{"name": "canary", "weight": 1000, "payload": {"type": "string", "value": "canary"}, "stickiness": "userId", "weightType": "variable"}]),
        ), {"name": "unrelated", "enabled": true, "strategies": []}]));
        let layer = layer_from_features(&answer).expect("layer");
        assert_eq!(layer.len(), 1);
        assert_eq!(layer["auth-validation"].phase, Phase::Canary(25));
    }

    #[test]
    fn every_phase_round_trips_through_its_strategy() {
        for phase in [
            Phase::Legacy,
            Phase::Shadow,
            Phase::Canary(0),
            Phase::Canary(42),
            Phase::Canary(100),
            Phase::Primary,
            Phase::Decommissioned,
        ] {
            let body = strategy_body("auth-validation", phase);
            let answer = features(json!([toggle(
                toggle_state(phase).enabled,
                body["parameters"].clone(),
                body["variants"].clone()
            )]));
            let layer = layer_from_features(&answer).expect("layer");
            assert_eq!(layer["auth-validation"].phase, phase, "{phase}");
        }
    }

    #[test]
    fn the_variant_wins_and_a_bare_rollout_is_a_canary() {
        let answer = features(json!([toggle(
            true,
            json!({"phase": "canary", "rollout": "100"}),
            json!([{"name": "primary", "weight": 1000}])
        )]));
        assert_eq!(
            layer_from_features(&answer).expect("layer")["auth-validation"].phase,
            Phase::Primary
        );
        let answer = features(json!([toggle(true, json!({"rollout": "7"}), json!([]))]));
        assert_eq!(
            layer_from_features(&answer).expect("layer")["auth-validation"].phase,
            Phase::Canary(7)
        );
    }

    #[test]
    fn unreadable_toggles_fail_the_whole_answer() {
        for (parameters, variants, expected) in [
            (json!({"rollout": "150"}), json!([]), "not a percentage"),
            (json!({"rollout": "many"}), json!([]), "not a percentage"),
            (json!({}), json!([]), "without `rollout`"),
            (
                json!({"rollout": "5", "phase": "sideways"}),
                json!([]),
                "unknown phase",
            ),
        ] {
            let answer = features(json!([toggle(true, parameters, variants)]));
            let error = layer_from_features(&answer)
                .expect_err("refused")
                .to_string();
            assert!(
                error.contains("gateway.auth-validation") && error.contains(expected),
                "{error}"
            );
        }
    }
}
