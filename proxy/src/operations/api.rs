//! The control plane's requests and answers as they travel over the admin API: the
//! server serialises them, the [CLI](crate::cli) deserialises the same types, so the two
//! cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use studyflow_flags::{AuditAction, AuditEntry, Override, Phase, ShadowPolicy, SourceKind};

use crate::health::SourceHealth;
use crate::promotion::GateReport;
use crate::stats::{Evidence, StatsSnapshot};

/// `PUT /routes/{name}`: put a route in a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPhaseRequest {
    /// One of [`Phase::NAMES`].
    pub phase: String,
    /// With phase `canary` only.
    pub percent: Option<u8>,
    pub reason: String,
    /// Move forward although the gate does not hold (audited as forced).
    #[serde(default)]
    pub force: bool,
}

/// `POST /routes/{name}/promote`: one step forward, or to a canary percentage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    pub percent: Option<u8>,
    #[serde(default)]
    pub force: bool,
    pub reason: String,
}

/// The body of a rollback or a reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
}

/// A phase change that was made (`set` or `promote`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseChangeAnswer {
    pub route: String,
    #[serde(with = "phase_text")]
    pub from: Phase,
    #[serde(with = "phase_text")]
    pub to: Phase,
    pub action: AuditAction,
    /// The gate's verdict, for a move forward.
    pub gate: Option<GateReport>,
    pub changed: Vec<AuditEntry>,
}

/// 409: a move forward whose gate does not hold, with the evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateRefusal {
    pub route: String,
    #[serde(with = "phase_text")]
    pub from: Phase,
    #[serde(with = "phase_text")]
    pub to: Phase,
    pub gate: GateReport,
    pub error: String,
}

/// Whether the fleet has a rollback yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetSync {
    /// Written to the fleet store.
    Done,
    /// In force on this instance, written to the fleet store as soon as it answers.
    Pending,
}

/// A rollback's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackAnswer {
    pub changed: Vec<AuditEntry>,
    pub fleet_sync: FleetSync,
    pub fleet_pending_routes: Vec<String>,
    /// Left alone by a rollback of every route: no legacy twin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_why: Option<String>,
}

/// What a reset changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangedAnswer {
    pub changed: Vec<AuditEntry>,
}

/// `GET /audit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditAnswer {
    pub audit: Vec<AuditEntry>,
}

/// `POST /reload`: whether the routes file was read again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadAnswer {
    pub reloaded: bool,
}

/// Every refusal of the admin API: `{"error": …}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: String,
}

/// The guard's window of a route it watches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuardWindow {
    pub window_secs: u64,
    pub window: Evidence,
    /// Times this instance's guard has looked at the route.
    #[serde(default)]
    pub checks: u64,
}

/// One route as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteView {
    pub name: String,
    pub path: String,
    pub methods: Vec<String>,
    /// The phase's name ([`Phase::NAMES`]); a canary's percentage is in `percent`.
    pub phase: String,
    pub percent: Option<u8>,
    pub source: SourceKind,
    pub held: bool,
    pub file_phase: String,
    pub unleash_phase: Option<String>,
    #[serde(rename = "override")]
    pub override_: Option<Override>,
    pub guard: Option<GuardWindow>,
    pub since_phase_change: Evidence,
    pub blocked: bool,
    pub legacy_twin: bool,
    /// Which methods get copies in the phase in force, in words.
    pub copies: String,
    pub shadow: ShadowPolicy,
    pub counters: StatsSnapshot,
    pub shadows_lost: u64,
    pub losses: BTreeMap<String, u64>,
    /// `GET /routes/{name}` with the admin token: the route's latest changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Vec<AuditEntry>>,
    /// Why `audit` is missing: no token (`audit_hidden`) or a store that is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_hidden: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_unavailable: Option<String>,
}

impl RouteView {
    /// The phase as people read it: `canary 25%`, `primary`, …
    pub fn phase_text(&self) -> String {
        match self.percent {
            Some(percent) => format!("{} {percent}%", self.phase),
            None => self.phase.clone(),
        }
    }
}

/// The diff store as `GET /routes` reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffStoreStatus {
    pub configured: bool,
    /// Records the store dropped since start.
    pub dropped: u64,
}

/// `GET /routes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutesAnswer {
    pub routes: Vec<RouteView>,
    pub sources: BTreeMap<String, SourceHealth>,
    /// Requests no route matched.
    pub passthrough: StatsSnapshot,
    /// Why the routes file on disk was rejected, while an older one is in force.
    pub reload_error: Option<String>,
    pub diff_store: DiffStoreStatus,
}

/// A phase as text on the wire (`canary 25%`), read back with [`Phase`]'s `FromStr`.
mod phase_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use studyflow_flags::Phase;

    pub fn serialize<S: Serializer>(phase: &Phase, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(phase)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Phase, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_travel_as_text() {
        let answer = ChangedAnswer { changed: vec![] };
        assert_eq!(
            serde_json::to_value(&answer).ok(),
            Some(serde_json::json!({"changed": []}))
        );
        let refusal: GateRefusal = serde_json::from_value(serde_json::json!({
            "route": "r", "from": "shadow", "to": "canary 5%", "error": "no",
            "gate": {"holds": false, "required": true, "evidence": Evidence::default(),
                     "pairs_from": "counters", "counted": "", "diff_store_unavailable": false,
                     "since": null, "window_secs": 60, "checks": []},
        }))
        .expect("a refusal reads back");
        assert_eq!(
            (refusal.from, refusal.to),
            (Phase::Shadow, Phase::Canary(5))
        );
    }
}
