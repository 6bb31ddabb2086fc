//! Operator control of the route table: phase changes, rollbacks, resets and reloads.
//!
//! The table in force lives in an [`ArcSwap`]: the request path reads it without a lock,
//! and a change builds a whole new table and swaps it in, so the very next request sees
//! it while requests under way finish on the table they started with. Every change is
//! persisted (overrides and audit) before it takes effect.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use studyflow_flags::{
    AuditEntry, DEFAULT_ROUTES_FILE, Override, Phase, RoutesFile, StateStore, now_rfc3339,
};

use crate::routing::RouteTable;
use crate::stats::RouteStats;
use crate::upstream::Upstreams;
use crate::{Error, Result};

/// Why an operator request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no route named `{0}`")]
    UnknownRoute(String),
    #[error("a reason is required")]
    MissingReason,
    #[error("{0}")]
    Invalid(String),
    #[error("could not persist the change: {0}")]
    Persist(String),
}

/// The route table in force and everything needed to change it.
#[derive(Debug)]
pub struct Control {
    table: ArcSwap<RouteTable>,
    store: StateStore,
    routes_file: Option<PathBuf>,
    /// The last routes file that validated, and its modification time.
    file: Mutex<(RoutesFile, Option<SystemTime>)>,
    upstreams: Upstreams,
    stats: Mutex<HashMap<String, Arc<RouteStats>>>,
    /// Serialises changes so two operators cannot interleave a rebuild.
    change: Mutex<()>,
    last_reload_error: Mutex<Option<String>>,
}

impl Control {
    /// Loads the routes file (the shipped table when `None`) and the persisted state.
    /// Anything invalid stops start-up with a message.
    pub fn new(
        routes_file: Option<PathBuf>,
        state_file: Option<PathBuf>,
        upstreams: Upstreams,
    ) -> Result<Self> {
        let (file, mtime) = match &routes_file {
            Some(path) => (RoutesFile::load(path)?, modified(path)),
            None => (RoutesFile::parse(DEFAULT_ROUTES_FILE)?, None),
        };
        let store = StateStore::open(state_file.as_deref())?;
        let mut stats = HashMap::new();
        let table = RouteTable::compile(&file, &store.overrides(), &upstreams, &mut stats)?;
        Ok(Self {
            table: ArcSwap::from_pointee(table),
            store,
            routes_file,
            file: Mutex::new((file, mtime)),
            upstreams,
            stats: Mutex::new(stats),
            change: Mutex::new(()),
            last_reload_error: Mutex::new(None),
        })
    }

    /// The table in force. Cheap: one atomic reference count.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Audit entries, newest first.
    pub fn audit(&self, route: Option<&str>, limit: usize) -> Vec<AuditEntry> {
        self.store.audit(route, limit)
    }

    /// The last reload failure, if the routes file in force is older than the one on disk.
    pub fn reload_error(&self) -> Option<String> {
        lock(&self.last_reload_error).clone()
    }

    /// Puts `route` in `phase` (an override of the routes file).
    pub fn set_phase(
        &self,
        route: &str,
        phase: Phase,
        who: &str,
        reason: &str,
    ) -> Result<Vec<AuditEntry>, ControlError> {
        if let Phase::Canary(percent) = phase
            && percent > 100
        {
            return Err(ControlError::Invalid(format!(
                "percent {percent} is over 100"
            )));
        }
        self.change(who, reason, "set", |table| {
            let found = table
                .find(route)
                .ok_or_else(|| ControlError::UnknownRoute(route.into()))?;
            if found.spec.blocked {
                return Err(ControlError::Invalid(format!("route `{route}` is blocked")));
            }
            Ok(vec![(route.to_owned(), Some(phase))])
        })
    }

    /// Rolls `route` (or, with `None`, every route not already there) back to `legacy`.
    pub fn rollback(
        &self,
        route: Option<&str>,
        who: &str,
        reason: &str,
    ) -> Result<Vec<AuditEntry>, ControlError> {
        self.change(who, reason, "rollback", |table| match route {
            Some(name) => {
                table
                    .find(name)
                    .ok_or_else(|| ControlError::UnknownRoute(name.into()))?;
                Ok(vec![(name.to_owned(), Some(Phase::Legacy))])
            }
            None => Ok(table
                .routes()
                .iter()
                .filter(|r| !r.spec.blocked && r.phase != Phase::Legacy)
                .map(|r| (r.spec.name.clone(), Some(Phase::Legacy)))
                .collect()),
        })
    }

    /// Drops `route`'s override: its phase is the routes file's again.
    pub fn reset(
        &self,
        route: &str,
        who: &str,
        reason: &str,
    ) -> Result<Vec<AuditEntry>, ControlError> {
        self.change(who, reason, "reset", |table| {
            table
                .find(route)
                .ok_or_else(|| ControlError::UnknownRoute(route.into()))?;
            Ok(vec![(route.to_owned(), None)])
        })
    }

    /// Applies changes computed from the current table, persists them, then swaps in the
    /// rebuilt table.
    fn change(
        &self,
        who: &str,
        reason: &str,
        action: &str,
        plan: impl FnOnce(&RouteTable) -> Result<Vec<(String, Option<Phase>)>, ControlError>,
    ) -> Result<Vec<AuditEntry>, ControlError> {
        if reason.trim().is_empty() {
            return Err(ControlError::MissingReason);
        }
        let _guard = lock(&self.change);
        let table = self.table();
        let at = now_rfc3339();
        let file = lock(&self.file).0.clone();
        let changes: Vec<_> = plan(&table)?
            .into_iter()
            .map(|(route, phase)| {
                let from = table
                    .find(&route)
                    .map(|r| r.phase.to_string())
                    .unwrap_or_default();
                let to = phase
                    .or_else(|| {
                        file.routes
                            .iter()
                            .find(|r| r.name == route)
                            .map(|r| r.phase)
                    })
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let entry = AuditEntry {
                    at: at.clone(),
                    who: who.to_owned(),
                    route: route.clone(),
                    action: action.to_owned(),
                    from,
                    to,
                    reason: reason.to_owned(),
                };
                let over = phase.map(|phase| Override {
                    phase,
                    by: who.to_owned(),
                    at: at.clone(),
                    reason: reason.to_owned(),
                });
                (route, over, entry)
            })
            .collect();
        let entries: Vec<AuditEntry> = changes.iter().map(|(_, _, e)| e.clone()).collect();
        self.store
            .apply(changes)
            .map_err(|e| ControlError::Persist(e.to_string()))?;
        self.rebuild(&file)
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        for entry in &entries {
            tracing::warn!(route = %entry.route, action = %entry.action, from = %entry.from, to = %entry.to, who = %entry.who, reason = %entry.reason, "route phase changed");
        }
        Ok(entries)
    }

    fn rebuild(&self, file: &RoutesFile) -> Result<()> {
        let mut stats = lock(&self.stats);
        let table =
            RouteTable::compile(file, &self.store.overrides(), &self.upstreams, &mut stats)?;
        self.table.store(Arc::new(table));
        Ok(())
    }

    /// Re-reads the routes file. A file that does not validate leaves the table in force
    /// untouched; the error is returned and kept for [`Control::reload_error`].
    pub fn reload(&self) -> Result<bool> {
        let Some(path) = &self.routes_file else {
            return Ok(false);
        };
        let _guard = lock(&self.change);
        let loaded = RoutesFile::load(path).and_then(|file| {
            let mut scratch = lock(&self.stats).clone();
            RouteTable::compile(
                &file,
                &self.store.overrides(),
                &self.upstreams,
                &mut scratch,
            )
            .map(|_| file)
            .map_err(|e| studyflow_flags::Error::State(e.to_string()))
        });
        match loaded {
            Ok(file) => {
                self.rebuild(&file)?;
                *lock(&self.file) = (file, modified(path));
                *lock(&self.last_reload_error) = None;
                tracing::info!(file = %path.display(), "routes file reloaded");
                Ok(true)
            }
            Err(error) => {
                // Remember the mtime so a broken file is reported once, not every poll.
                lock(&self.file).1 = modified(path);
                *lock(&self.last_reload_error) = Some(error.to_string());
                tracing::error!(file = %path.display(), %error, "routes file rejected; keeping the table in force");
                Err(Error::Routes(error))
            }
        }
    }

    /// Reloads when the routes file changed on disk since the last load.
    pub fn reload_if_changed(&self) {
        let Some(path) = &self.routes_file else {
            return;
        };
        let current = modified(path);
        if current.is_some() && current != lock(&self.file).1 {
            let _ = self.reload();
        }
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
