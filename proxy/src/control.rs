//! Control of the route table: the flag sources, operator changes, rollbacks (manual and
//! automatic), promotions, resets and reloads.
//!
//! The table in force lives in an [`ArcSwap`]: the request path reads it without a lock,
//! and a change builds a whole new table and swaps it in, so the very next request sees
//! it while requests under way finish on the table they started with.
//!
//! Each route's phase is resolved from three layers: the routes file, Unleash (when
//! configured, refreshed by [`crate::sources`]) and the overrides in an
//! [`OverrideStore`] (the local state file, or Redis for a fleet). Operator changes are
//! written to the store, and so announced to every instance, before they take effect
//! here. Whenever what is in force changes, the layers and the resolved phases are
//! written to the snapshot file, which start-up reads for any source that is down.
//!
//! A move toward legacy (a rollback, the guard's, or any step back) never waits for the
//! store: when the store cannot be written, it takes effect on this instance at once, is
//! kept as *pending*, and is written and announced as soon as the store answers again
//! (see [`Control::flush_pending`]). A move forward needs the store: it is refused while
//! the store is down, so an instance never runs ahead of its fleet.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use studyflow_flags::fleet::RedisStore;
use studyflow_flags::unleash::{UnleashAdmin, UnleashSettings, UnleashSource, Written};
use studyflow_flags::{
    AuditAction, AuditEntry, Change, FileSource, FlagSource, Layer, Override, OverrideStore, Phase,
    Resolved, RoutesFile, Snapshot, StateStore, now_rfc3339, override_layer, resolve,
};

use crate::health::{Serving, SourcesHealth};
use crate::routing::RouteTable;
use crate::stats::RouteStats;
use crate::upstream::Upstreams;
use crate::{Error, Result};

/// The name the guard records in the audit log.
pub const GUARD_OPERATOR: &str = "rollback-guard";

/// Why an operator request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no route named `{0}`")]
    UnknownRoute(String),
    #[error("a reason is required")]
    MissingReason,
    #[error("{0}")]
    Invalid(String),
    #[error(
        "route `{0}` has no legacy twin (`legacy: none`): the legacy would answer 404, so it stays decommissioned"
    )]
    NoLegacyTwin(String),
    #[error("could not persist the change: {0}")]
    Persist(String),
    #[error(
        "the fleet store cannot be written ({0}); moving a route forward is refused until it answers (rollbacks still work)"
    )]
    StoreDown(String),
}

/// Where the flag sources are.
#[derive(Debug)]
pub struct ControlSettings {
    /// The routes file; the shipped table when `None`.
    pub routes_file: Option<PathBuf>,
    /// Overrides and audit of a single instance (ignored with `fleet`).
    pub state_file: Option<PathBuf>,
    pub snapshot_file: Option<PathBuf>,
    pub upstreams: Upstreams,
    pub fleet: Option<FleetSettings>,
    pub unleash: Option<UnleashSettings>,
}

/// The Redis store shared by a fleet.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    pub url: String,
    pub prefix: String,
    pub timeout: Duration,
}

/// What the non-file sources say, as last loaded.
#[derive(Debug, Clone, Default, PartialEq)]
struct Layers {
    unleash: Option<Layer>,
    overrides: BTreeMap<String, Override>,
}

impl Layers {
    /// The route table of `file` with these layers over it.
    fn compile(
        &self,
        file: &RoutesFile,
        upstreams: &Upstreams,
        stats: &mut HashMap<String, Arc<RouteStats>>,
    ) -> Result<RouteTable> {
        RouteTable::compile(
            file,
            self.unleash.as_ref(),
            &override_layer(&self.overrides),
            upstreams,
            stats,
        )
    }
}

/// The route table in force and everything needed to change it.
#[derive(Debug)]
pub struct Control {
    table: ArcSwap<RouteTable>,
    store: Arc<dyn OverrideStore>,
    fleet: Option<Arc<RedisStore>>,
    file_source: FileSource,
    /// The last routes file that validated, and the text last read from disk, valid or
    /// not (the watcher reloads when the text differs: a modification time can stay the
    /// same, or be read after a write that the text read missed).
    file: Mutex<(RoutesFile, String)>,
    layers: Mutex<Layers>,
    unleash: Option<UnleashSettings>,
    unleash_admin: Option<UnleashAdmin>,
    snapshot_file: Option<PathBuf>,
    /// What was last written to the snapshot (without its time).
    last_snapshot: Mutex<Option<Snapshot>>,
    upstreams: Upstreams,
    stats: Mutex<HashMap<String, Arc<RouteStats>>>,
    /// Serialises changes so two operators (or the guard) cannot interleave a rebuild.
    change: tokio::sync::Mutex<()>,
    /// Moves toward legacy in force here but not yet written to the store (it was
    /// unreachable), oldest first.
    pending: Mutex<Vec<Change>>,
    last_reload_error: Mutex<Option<String>>,
    /// Health of each flag source.
    pub health: SourcesHealth,
}

/// The last snapshot of the flag sources, if one is configured and readable.
fn read_snapshot(path: Option<&Path>) -> Option<Snapshot> {
    match path.map(Snapshot::load) {
        Some(Ok(snapshot)) => snapshot,
        Some(Err(error)) => {
            tracing::error!(%error, "the flag snapshot cannot be read; ignoring it");
            None
        }
        None => None,
    }
}

/// Where operator overrides live, and the fleet's Redis when that is where (for its
/// subscription).
type Stores = (Arc<dyn OverrideStore>, Option<Arc<RedisStore>>);

/// The fleet's Redis store, or this instance's state file.
fn open_store(settings: &ControlSettings) -> Result<Stores> {
    Ok(match &settings.fleet {
        Some(fleet) => {
            let redis = Arc::new(RedisStore::new(&fleet.url, &fleet.prefix, fleet.timeout)?);
            (redis.clone(), Some(redis))
        }
        None => (
            Arc::new(StateStore::open(settings.state_file.as_deref())?),
            None,
        ),
    })
}

/// The overrides at start: the store's, else the snapshot's, else none.
async fn first_overrides(
    store: &dyn OverrideStore,
    snapshot: Option<&Snapshot>,
    health: &SourcesHealth,
) -> BTreeMap<String, Override> {
    match store.load().await {
        Ok(overrides) => {
            health.ok("overrides");
            overrides
        }
        Err(error) => match snapshot {
            Some(snapshot) => {
                health.failed("overrides", &error.to_string(), Serving::Snapshot);
                snapshot.overrides.clone()
            }
            None => {
                health.failed("overrides", &error.to_string(), Serving::Nothing);
                BTreeMap::new()
            }
        },
    }
}

/// Unleash's layer at start, when Unleash is configured: fetched, else the snapshot's.
async fn first_unleash(
    settings: Option<&UnleashSettings>,
    snapshot: Option<&Snapshot>,
    health: &SourcesHealth,
) -> Result<Option<Layer>> {
    let Some(unleash) = settings else {
        health.unconfigured("unleash");
        return Ok(None);
    };
    // A source of its own: its HTTP client belongs to this start-up runtime.
    let source = UnleashSource::new(unleash)?;
    Ok(match source.fetch().await {
        Ok(layer) => {
            health.ok("unleash");
            Some(layer)
        }
        Err(error) => {
            let fallback = snapshot.and_then(|s| s.unleash.clone());
            let serving = if fallback.is_some() {
                Serving::Snapshot
            } else {
                Serving::Nothing
            };
            health.failed("unleash", &error.to_string(), serving);
            fallback
        }
    })
}

impl Control {
    /// Loads every source. The routes file and a local state file must be valid (start-up
    /// stops otherwise); Unleash and Redis may be down, in which case their layer comes
    /// from the snapshot (else they add nothing until they answer).
    pub async fn new(settings: ControlSettings) -> Result<Self> {
        let health = SourcesHealth::default();
        let file_source = FileSource {
            path: settings.routes_file.clone(),
        };
        let text = file_source.read_text()?;
        let file = RoutesFile::parse(&text)?;
        health.ok("file");
        let snapshot = read_snapshot(settings.snapshot_file.as_deref());
        let (store, fleet) = open_store(&settings)?;
        let overrides = first_overrides(store.as_ref(), snapshot.as_ref(), &health).await;
        let unleash = first_unleash(settings.unleash.as_ref(), snapshot.as_ref(), &health).await?;
        if let Some(fleet) = &fleet {
            // Its connection was made on the start-up runtime; reconnect on the serving one.
            fleet.disconnect().await;
        }

        let layers = Layers { unleash, overrides };
        let mut stats = HashMap::new();
        let table = layers.compile(&file, &settings.upstreams, &mut stats)?;
        let unleash_admin = match &settings.unleash {
            Some(unleash) => UnleashAdmin::new(unleash)?,
            None => None,
        };
        let control = Self {
            table: ArcSwap::from_pointee(table),
            store,
            fleet,
            file_source,
            file: Mutex::new((file, text)),
            layers: Mutex::new(layers),
            unleash: settings.unleash,
            unleash_admin,
            snapshot_file: settings.snapshot_file,
            last_snapshot: Mutex::new(None),
            upstreams: settings.upstreams,
            stats: Mutex::new(stats),
            change: tokio::sync::Mutex::new(()),
            pending: Mutex::new(Vec::new()),
            last_reload_error: Mutex::new(None),
            health,
        };
        control.write_snapshot();
        Ok(control)
    }

    /// The table in force. Cheap: one atomic reference count.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// The Redis store, when this gateway is part of a fleet.
    pub fn fleet(&self) -> Option<Arc<RedisStore>> {
        self.fleet.clone()
    }

    /// Unleash's settings, when configured.
    pub fn unleash_settings(&self) -> Option<&UnleashSettings> {
        self.unleash.as_ref()
    }

    /// The phase Unleash sets for `route`, if any.
    pub fn unleash_phase(&self, route: &str) -> Option<Phase> {
        lock(&self.layers)
            .unleash
            .as_ref()
            .and_then(|layer| layer.get(route))
            .map(|s| s.phase)
    }

    /// The override of `route`, if any.
    pub fn override_of(&self, route: &str) -> Option<Override> {
        lock(&self.layers).overrides.get(route).cloned()
    }

    /// Audit entries, newest first.
    pub async fn audit(&self, route: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
        Ok(self.store.audit(route, limit).await?)
    }

    /// The last reload failure, if the routes file in force is older than the one on disk.
    pub fn reload_error(&self) -> Option<String> {
        lock(&self.last_reload_error).clone()
    }

    /// Puts `route` in `phase` (an override of Unleash and the routes file). `action` is
    /// what the audit log calls it (`set`, `promote`, …). Clears a guard hold.
    pub async fn set_phase(
        &self,
        route: &str,
        phase: Phase,
        who: &str,
        reason: &str,
        action: AuditAction,
    ) -> Result<Vec<AuditEntry>, ControlError> {
        if let Phase::Canary(percent) = phase
            && percent > 100
        {
            return Err(ControlError::Invalid(format!(
                "percent {percent} is over 100"
            )));
        }
        self.change(who, reason, action, false, |table| {
            let found = table
                .find(route)
                .ok_or_else(|| ControlError::UnknownRoute(route.into()))?;
            if found.spec.blocked {
                return Err(ControlError::Invalid(format!("route `{route}` is blocked")));
            }
            if !found.spec.legacy_twin && phase != Phase::Decommissioned {
                return Err(ControlError::NoLegacyTwin(route.into()));
            }
            Ok(vec![(route.to_owned(), Some(phase))])
        })
        .await
    }

    /// Rolls `route` (or, with `None`, every route not already there) back to `legacy`,
    /// fleet-wide, and writes it back to Unleash for the routes Unleash drives. Routes
    /// with no legacy twin are refused by name and skipped by `None` (see
    /// [`RouteTable::without_legacy`]).
    pub async fn rollback(
        self: &Arc<Self>,
        route: Option<&str>,
        who: &str,
        reason: &str,
    ) -> Result<Vec<AuditEntry>, ControlError> {
        let entries = self
            .change(
                who,
                reason,
                AuditAction::Rollback,
                false,
                |table| match route {
                    Some(name) => {
                        let found = table
                            .find(name)
                            .ok_or_else(|| ControlError::UnknownRoute(name.into()))?;
                        if !found.spec.legacy_twin {
                            return Err(ControlError::NoLegacyTwin(name.into()));
                        }
                        Ok(vec![(name.to_owned(), Some(Phase::Legacy))])
                    }
                    None => Ok(table
                        .routes()
                        .iter()
                        .filter(|r| {
                            !r.spec.blocked && r.spec.legacy_twin && r.phase != Phase::Legacy
                        })
                        .map(|r| (r.spec.name.clone(), Some(Phase::Legacy)))
                        .collect()),
                },
            )
            .await?;
        self.write_back(
            entries
                .iter()
                .map(|e| (e.route.clone(), Phase::Legacy))
                .collect(),
        );
        Ok(entries)
    }

    /// The automatic rollback guard's move: `route` goes to `to` and is held there. Does
    /// nothing when the route is already held (another instance of the fleet may have
    /// rolled it back first) or no longer serves the new side.
    pub async fn auto_rollback(
        self: &Arc<Self>,
        route: &str,
        to: Phase,
        reason: &str,
    ) -> Result<Option<AuditEntry>, ControlError> {
        // Another instance may have acted already: look at the stored state first.
        self.refresh_overrides().await;
        if self.override_of(route).is_some_and(|o| o.held) {
            return Ok(None);
        }
        let entries = self
            .change(
                GUARD_OPERATOR,
                reason,
                AuditAction::AutoRollback,
                true,
                |table| {
                    Ok(table
                        .find(route)
                        .filter(|r| r.phase.serves_new() && !r.held && r.spec.legacy_twin)
                        .map(|_| vec![(route.to_owned(), Some(to))])
                        .unwrap_or_default())
                },
            )
            .await?;
        let Some(entry) = entries.into_iter().next() else {
            return Ok(None);
        };
        if let Some(found) = self.table().find(route) {
            found.stats.auto_rollback();
        }
        self.write_back(vec![(route.to_owned(), to)]);
        Ok(Some(entry))
    }

    /// Drops `route`'s override: its phase is Unleash's or the routes file's again.
    pub async fn reset(
        &self,
        route: &str,
        who: &str,
        reason: &str,
    ) -> Result<Vec<AuditEntry>, ControlError> {
        self.change(who, reason, AuditAction::Reset, false, |table| {
            table
                .find(route)
                .ok_or_else(|| ControlError::UnknownRoute(route.into()))?;
            Ok(vec![(route.to_owned(), None)])
        })
        .await
    }

    /// Routes whose last change is in force here but not yet in the fleet store.
    pub fn pending_routes(&self) -> Vec<String> {
        let mut routes: Vec<String> = lock(&self.pending)
            .iter()
            .map(|(route, _, _)| route.clone())
            .collect();
        routes.dedup();
        routes
    }

    /// Writes the pending changes to the store (which announces them). Returns whether
    /// nothing is pending any more.
    pub async fn flush_pending(&self) -> bool {
        let _guard = self.change.lock().await;
        let pending = lock(&self.pending).clone();
        if pending.is_empty() {
            return true;
        }
        let routes: Vec<String> = pending.iter().map(|(r, _, _)| r.clone()).collect();
        match self.store.apply(pending).await {
            Ok(()) => {
                lock(&self.pending).clear();
                self.health.ok("overrides");
                tracing::warn!(?routes, "pending rollbacks written to the fleet store");
                true
            }
            Err(error) => {
                tracing::debug!(%error, "pending rollbacks still waiting for the fleet store");
                false
            }
        }
    }

    /// Applies changes computed from the current table: persists them in the store
    /// (which announces them to the fleet), then swaps in the rebuilt table. When the
    /// store cannot be written, changes that only move routes toward legacy take effect
    /// here at once and wait in `pending`; others are refused.
    async fn change(
        &self,
        who: &str,
        reason: &str,
        action: AuditAction,
        held: bool,
        plan: impl FnOnce(&RouteTable) -> Result<Vec<(String, Option<Phase>)>, ControlError>,
    ) -> Result<Vec<AuditEntry>, ControlError> {
        if reason.trim().is_empty() {
            return Err(ControlError::MissingReason);
        }
        let _guard = self.change.lock().await;
        let table = self.table();
        let at = now_rfc3339();
        let file = lock(&self.file).0.clone();
        let mut layers = lock(&self.layers).clone();
        let planned = plan(&table)?;
        if planned.is_empty() {
            return Ok(Vec::new());
        }
        let mut toward_legacy = true;
        let mut changes = Vec::with_capacity(planned.len());
        for (route, phase) in planned {
            let over = phase.map(|phase| Override {
                phase,
                by: who.to_owned(),
                at: at.clone(),
                reason: reason.to_owned(),
                held,
            });
            match &over {
                Some(o) => layers.overrides.insert(route.clone(), o.clone()),
                None => layers.overrides.remove(&route),
            };
            let current = table.find(&route).map(|r| r.phase);
            let from = current.map(|p| p.to_string()).unwrap_or_default();
            let file_phase = file
                .routes
                .iter()
                .find(|r| r.name == route)
                .map_or(Phase::Legacy, |r| r.phase);
            let to = resolve(
                &route,
                file_phase,
                layers.unleash.as_ref(),
                &override_layer(&layers.overrides),
            )
            .phase;
            toward_legacy &= current.is_none_or(|from| from.is_toward_legacy(to));
            let entry = AuditEntry {
                at: at.clone(),
                who: who.to_owned(),
                route: route.clone(),
                action,
                from,
                to: to.to_string(),
                reason: reason.to_owned(),
            };
            changes.push((route, over, entry));
        }
        let entries: Vec<AuditEntry> = changes.iter().map(|(_, _, e)| e.clone()).collect();
        // Toward legacy: in force here first, whatever the store does.
        if toward_legacy {
            lock(&self.layers).overrides = layers.overrides.clone();
            self.rebuild(&file)
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
        }
        // Earlier pending changes go first, so the store sees them in order.
        let earlier = lock(&self.pending).clone();
        let mut batch = earlier.clone();
        batch.extend(changes.iter().cloned());
        match self.store.apply(batch).await {
            Ok(()) => {
                if !earlier.is_empty() {
                    lock(&self.pending).clear();
                }
            }
            Err(error) if toward_legacy => {
                tracing::error!(%error, "fleet store unreachable: the change is in force here and is written when the store answers");
                self.health
                    .failed("overrides", &error.to_string(), Serving::LastGood);
                lock(&self.pending).extend(changes);
            }
            Err(error) => return Err(ControlError::StoreDown(error.to_string())),
        }
        if !toward_legacy {
            lock(&self.layers).overrides = layers.overrides;
            self.rebuild(&file)
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
        }
        for entry in &entries {
            tracing::warn!(route = %entry.route, action = %entry.action, from = %entry.from, to = %entry.to, who = %entry.who, reason = %entry.reason, "route phase changed");
        }
        Ok(entries)
    }

    /// Compiles the table from `file` and the layers, swaps it in, restarts the guard's
    /// window of every route whose phase changed, and updates the snapshot.
    fn rebuild(&self, file: &RoutesFile) -> Result<()> {
        let layers = lock(&self.layers).clone();
        let table = layers.compile(file, &self.upstreams, &mut lock(&self.stats))?;
        let old = self.table();
        for route in table.routes() {
            if old.find(&route.spec.name).map(|r| r.phase) != Some(route.phase) {
                route.stats.phase_changed();
            }
        }
        self.table.store(Arc::new(table));
        self.write_snapshot();
        Ok(())
    }

    /// Writes the snapshot when what is in force differs from what was last written.
    fn write_snapshot(&self) {
        let Some(path) = &self.snapshot_file else {
            return;
        };
        let layers = lock(&self.layers).clone();
        let effective = self
            .table()
            .routes()
            .iter()
            .map(|r| {
                (
                    r.spec.name.clone(),
                    Resolved {
                        phase: r.phase,
                        source: r.source,
                        held: r.held,
                    },
                )
            })
            .collect();
        let snapshot = Snapshot {
            written_at: String::new(),
            unleash: layers.unleash,
            overrides: layers.overrides,
            effective,
        };
        let mut last = lock(&self.last_snapshot);
        if last.as_ref() == Some(&snapshot) {
            return;
        }
        let stamped = Snapshot {
            written_at: now_rfc3339(),
            ..snapshot.clone()
        };
        match stamped.save(path) {
            Ok(()) => *last = Some(snapshot),
            Err(error) => tracing::error!(%error, "cannot write the flag snapshot"),
        }
    }

    /// Takes in a fetch of Unleash. A failure keeps the layer in force (last good, or the
    /// snapshot's) and is reported; a new layer is swapped in at once.
    pub async fn unleash_fetched(&self, fetched: studyflow_flags::Result<Layer>) {
        match fetched {
            Ok(layer) => {
                self.health.ok("unleash");
                if lock(&self.layers).unleash.as_ref() == Some(&layer) {
                    return;
                }
                let _guard = self.change.lock().await;
                lock(&self.layers).unleash = Some(layer);
                let file = lock(&self.file).0.clone();
                match self.rebuild(&file) {
                    Ok(()) => tracing::info!("flags from Unleash changed"),
                    Err(error) => tracing::error!(%error, "flags from Unleash do not apply"),
                }
            }
            Err(error) => {
                let fallback = match (
                    lock(&self.layers).unleash.is_some(),
                    self.health.serving("unleash"),
                ) {
                    (false, _) => Serving::Nothing,
                    (true, Serving::Snapshot) => Serving::Snapshot,
                    (true, _) => Serving::LastGood,
                };
                self.health.failed("unleash", &error.to_string(), fallback);
            }
        }
    }

    /// Re-reads the overrides from the store (after an announcement, a reconnect, or on
    /// the resync timer) and swaps in the table when they changed.
    pub async fn refresh_overrides(&self) {
        // Local rollbacks made while the store was down go first: the store must not take
        // them back.
        if !self.flush_pending().await {
            return;
        }
        match self.store.load().await {
            Ok(overrides) => {
                self.health.ok("overrides");
                if lock(&self.layers).overrides == overrides {
                    return;
                }
                let _guard = self.change.lock().await;
                lock(&self.layers).overrides = overrides;
                let file = lock(&self.file).0.clone();
                if let Err(error) = self.rebuild(&file) {
                    tracing::error!(%error, "overrides do not apply");
                }
            }
            Err(error) => {
                let fallback = match self.health.serving("overrides") {
                    Serving::Snapshot => Serving::Snapshot,
                    _ => Serving::LastGood,
                };
                self.health
                    .failed("overrides", &error.to_string(), fallback);
            }
        }
    }

    /// Reports that the fleet's subscription dropped (it is being re-established).
    pub fn fleet_disconnected(&self, error: &studyflow_flags::Error) {
        self.health
            .failed("overrides", &error.to_string(), Serving::LastGood);
    }

    /// Writes rolled-back phases to Unleash, for the routes Unleash drives, in the
    /// background: a rollback never waits for Unleash (the fleet already has it).
    fn write_back(self: &Arc<Self>, routes: Vec<(String, Phase)>) {
        let Some(admin) = self.unleash_admin.clone() else {
            return;
        };
        let routes: Vec<_> = routes
            .into_iter()
            .filter(|(route, _)| self.unleash_phase(route).is_some())
            .collect();
        if routes.is_empty() {
            return;
        }
        let control = Arc::clone(self);
        tokio::spawn(async move {
            for (route, phase) in routes {
                match admin.write(&route, phase, false).await {
                    Ok(Written::Missing) => {}
                    Ok(_) => tracing::info!(route, %phase, "rollback written to Unleash"),
                    Err(error) => control
                        .health
                        .write_failed("unleash", &format!("{route}: {error}")),
                }
            }
        });
    }

    /// Re-reads the routes file. A file that does not validate leaves the table in force
    /// untouched; the error is returned and kept for [`Control::reload_error`].
    pub async fn reload(&self) -> Result<bool> {
        let Some(path) = self.file_source.path.clone() else {
            return Ok(false);
        };
        let _guard = self.change.lock().await;
        let loaded = self
            .file_source
            .read_text()
            .map_err(Error::from)
            .and_then(|text| match self.validate(&text) {
                Ok(file) => Ok((file, text)),
                Err(error) => {
                    // Remember the broken text, so that it is reported once, not every poll.
                    lock(&self.file).1 = text;
                    Err(error)
                }
            });
        match loaded {
            Ok((file, text)) => {
                self.rebuild(&file)?;
                *lock(&self.file) = (file, text);
                *lock(&self.last_reload_error) = None;
                self.health.ok("file");
                tracing::info!(file = %path.display(), "routes file reloaded");
                Ok(true)
            }
            Err(error) => {
                *lock(&self.last_reload_error) = Some(error.to_string());
                self.health
                    .failed("file", &error.to_string(), Serving::LastGood);
                Err(error)
            }
        }
    }

    /// `text` as a routes file, checked by compiling it with the layers in force (the
    /// table in force is left as it is).
    fn validate(&self, text: &str) -> Result<RoutesFile> {
        let file = RoutesFile::parse(text)?;
        let layers = lock(&self.layers).clone();
        let mut scratch = lock(&self.stats).clone();
        layers.compile(&file, &self.upstreams, &mut scratch)?;
        Ok(file)
    }

    /// Reloads when the routes file's text differs from what was last read (valid or
    /// not), however its modification time moved. A file that cannot be read now is
    /// left for the next poll.
    pub async fn reload_if_changed(&self) {
        if self.file_source.path.is_none() {
            return;
        }
        let Ok(text) = self.file_source.read_text() else {
            return;
        };
        if text == lock(&self.file).1 {
            return;
        }
        // Reloading reads the file again, under the change lock: what it reads is what
        // is kept as last read.
        let _ = self.reload().await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
