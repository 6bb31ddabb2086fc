//! The control plane's operations: set a route's phase, promote it through the gate,
//! roll one route or every route back, drop an override. Every surface (the admin JSON
//! API, the console's forms, the CLI through the API) goes through [`Operations`], so a
//! change is checked, gated, audited and counted the same way whoever asks.
//!
//! Moving a route toward legacy is never gated and works with the fleet store down (see
//! [`Control`]); moving it forward always passes the [promotion gate](crate::promotion).

pub mod api;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::PgPool;
use studyflow_flags::{AuditAction, AuditEntry, Phase};

use crate::config::PromotionConfig;
use crate::control::{Control, ControlError};
use crate::metrics::Metrics;
use crate::promotion::{self, GateReport};
use crate::routing::Route;

use self::api::{FleetSync, RollbackAnswer};

/// A phase change as an operator asks for it, from any surface.
#[derive(Debug, Clone, Copy)]
pub struct PhaseRequest<'a> {
    pub route: &'a str,
    pub to: Phase,
    pub who: &'a str,
    pub reason: &'a str,
    /// Move forward even though the gate does not hold (audited as
    /// [`AuditAction::PromoteForced`]).
    pub force: bool,
}

/// A phase change that was made.
#[derive(Debug)]
pub struct PhaseChanged {
    pub from: Phase,
    pub to: Phase,
    /// The gate's verdict, for a move forward.
    pub gate: Option<GateReport>,
    /// [`AuditAction::Set`] (back, or no move), [`AuditAction::Promote`] (the gate held)
    /// or [`AuditAction::PromoteForced`].
    pub action: AuditAction,
    pub changed: Vec<AuditEntry>,
}

/// Why a phase change was not made.
#[derive(Debug)]
pub enum PhaseRefused {
    /// A move forward whose gate does not hold, without `force`.
    Gate {
        from: Phase,
        to: Phase,
        report: Box<GateReport>,
    },
    Control(ControlError),
}

impl From<ControlError> for PhaseRefused {
    fn from(error: ControlError) -> Self {
        Self::Control(error)
    }
}

/// The control plane: the route table in force and what it takes to change it.
#[derive(Debug, Clone)]
pub struct Operations {
    control: Arc<Control>,
    /// The diff store, once the admin service has connected to it.
    diffs: Arc<OnceLock<PgPool>>,
    promotion: Arc<PromotionConfig>,
    metrics: Arc<Metrics>,
}

impl Operations {
    pub fn new(
        control: Arc<Control>,
        diffs: Arc<OnceLock<PgPool>>,
        promotion: PromotionConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            control,
            diffs,
            promotion: Arc::new(promotion),
            metrics,
        }
    }

    pub fn control(&self) -> &Control {
        &self.control
    }

    /// The diff store, when one is configured and connected.
    pub fn diffs(&self) -> Option<&PgPool> {
        self.diffs.get()
    }

    /// Where `route` goes when promoted one step, if anywhere: nowhere for a blocked
    /// route, one without a legacy twin, or one decommissioned.
    pub fn next_phase(&self, route: &Route) -> Option<Phase> {
        (!route.spec.blocked && route.spec.legacy_twin)
            .then(|| promotion::next_phase(route.phase, None, &self.promotion.canary_steps).ok())
            .flatten()
    }

    /// The gate's verdict on moving `route` to `to`, waiting at most `wait` for the diff
    /// store.
    pub async fn gate(&self, route: &Route, to: Phase, wait: Duration) -> GateReport {
        promotion::gate(route, to, self.diffs(), &self.promotion, wait).await
    }

    /// Moves `request.route` to `request.to`: at once when the move is back (or nowhere),
    /// through the gate when it is forward.
    pub async fn set(
        &self,
        request: PhaseRequest<'_>,
        wait: Duration,
    ) -> Result<PhaseChanged, PhaseRefused> {
        let reason = request.reason.trim();
        if reason.is_empty() {
            return Err(ControlError::MissingReason.into());
        }
        let table = self.control.table();
        let route = table
            .find(request.route)
            .ok_or_else(|| ControlError::UnknownRoute(request.route.into()))?;
        let from = route.phase;
        if from.is_toward_legacy(request.to) {
            let changed = self.apply(&request, reason, AuditAction::Set).await?;
            return Ok(PhaseChanged {
                from,
                to: request.to,
                gate: None,
                action: AuditAction::Set,
                changed,
            });
        }
        let report = self.gate(route, request.to, wait).await;
        let (action, reason) = match (report.holds, request.force) {
            (true, _) => (AuditAction::Promote, reason.to_owned()),
            (false, true) => (AuditAction::PromoteForced, forced_reason(reason, &report)),
            (false, false) => {
                return Err(PhaseRefused::Gate {
                    from,
                    to: request.to,
                    report: Box::new(report),
                });
            }
        };
        let changed = self.apply(&request, &reason, action).await?;
        Ok(PhaseChanged {
            from,
            to: request.to,
            gate: Some(report),
            action,
            changed,
        })
    }

    /// Moves a route one phase forward, or to the canary `percent`, through the gate.
    /// `request.to` is ignored: the next step is worked out here.
    pub async fn promote(
        &self,
        percent: Option<u8>,
        request: PhaseRequest<'_>,
        wait: Duration,
    ) -> Result<PhaseChanged, PhaseRefused> {
        if request.reason.trim().is_empty() {
            return Err(ControlError::MissingReason.into());
        }
        let route = request.route;
        let table = self.control.table();
        let found = table
            .find(route)
            .ok_or_else(|| ControlError::UnknownRoute(route.into()))?;
        if found.spec.blocked {
            return Err(ControlError::Invalid(format!("route `{route}` is blocked")).into());
        }
        let to = promotion::next_phase(found.phase, percent, &self.promotion.canary_steps)
            .map_err(ControlError::Invalid)?;
        self.set(PhaseRequest { to, ..request }, wait).await
    }

    /// Rolls `route` (every route when `None`) back to legacy, at once. Routes without a
    /// legacy twin are refused by name and left alone by a rollback of every route.
    pub async fn rollback(
        &self,
        route: Option<&str>,
        who: &str,
        reason: &str,
    ) -> Result<RollbackAnswer, ControlError> {
        let changed = self.control.rollback(route, who, reason).await?;
        for entry in changed.iter().filter(|e| e.from != e.to) {
            self.metrics.rollback(&entry.route, "manual");
        }
        let pending = self.control.pending_routes();
        let skipped = match route {
            None => self
                .control
                .table()
                .without_legacy()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            Some(_) => Vec::new(),
        };
        Ok(RollbackAnswer {
            changed,
            fleet_sync: if pending.is_empty() {
                FleetSync::Done
            } else {
                FleetSync::Pending
            },
            fleet_pending_routes: pending,
            skipped_why: (!skipped.is_empty())
                .then(|| "no legacy twin (`legacy: none`): the legacy would answer 404".into()),
            skipped,
        })
    }

    /// Drops the operator override of `route`: the routes file's or Unleash's phase
    /// applies again.
    pub async fn reset(
        &self,
        route: &str,
        who: &str,
        reason: &str,
    ) -> Result<Vec<AuditEntry>, ControlError> {
        self.control.reset(route, who, reason).await
    }

    async fn apply(
        &self,
        request: &PhaseRequest<'_>,
        reason: &str,
        action: AuditAction,
    ) -> Result<Vec<AuditEntry>, ControlError> {
        self.control
            .set_phase(request.route, request.to, request.who, reason, action)
            .await
    }
}

/// The audited reason of a forced promotion: the operator's, and the checks that failed.
fn forced_reason(reason: &str, report: &GateReport) -> String {
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{} {} (required {})", c.name, c.observed, c.required))
        .collect();
    format!("{reason} [forced past the gate: {}]", failed.join("; "))
}
