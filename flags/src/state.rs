//! Operator overrides and the audit log, persisted so a restart keeps them.
//!
//! An override replaces a route's phase from Unleash or the routes file until it is
//! reset. Every change appends an [`AuditEntry`] (who, when, from, to, why). Overrides live
//! behind the [`OverrideStore`] trait: [`StateStore`] keeps them in one JSON file for a
//! single gateway; [`crate::fleet::RedisStore`] shares them between every gateway of a
//! fleet. The state file is written atomically (temporary file, then rename), so a crash
//! never leaves half a file; a file that cannot be parsed stops the gateway from starting
//! rather than silently dropping overrides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::source::{FlagSource, Layer, Setting, SourceKind};
use crate::{Error, Phase, Result};

/// How many audit entries the state file keeps (oldest dropped first).
const AUDIT_KEPT: usize = 5000;

/// A phase set by an operator (or the automatic rollback guard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    #[serde(flatten)]
    pub phase: Phase,
    pub by: String,
    pub at: String,
    pub reason: String,
    /// Set by the automatic rollback guard: the route stays put (the guard leaves it alone)
    /// until an operator sets, promotes or resets it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

/// One change: the route, its new override (`None` drops it) and the audit entry.
pub type Change = (String, Option<Override>, AuditEntry);

/// Where overrides and the audit log are kept. Every gateway of a fleet must use the same
/// store for a rollback to reach all of them.
#[async_trait]
pub trait OverrideStore: Send + Sync + std::fmt::Debug {
    /// The overrides in force, by route name. An entry that cannot be parsed fails the
    /// whole load, so a damaged store never replaces good overrides.
    async fn load(&self) -> Result<BTreeMap<String, Override>>;
    /// Applies changes and their audit entries, all or nothing, before returning.
    async fn apply(&self, changes: Vec<Change>) -> Result<()>;
    /// The newest `limit` audit entries, newest first, optionally for one route.
    async fn audit(&self, route: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>>;
}

/// The phases a set of overrides sets, as a flag-source layer.
pub fn override_layer(overrides: &BTreeMap<String, Override>) -> Layer {
    overrides
        .iter()
        .map(|(route, o)| {
            (
                route.clone(),
                Setting {
                    phase: o.phase,
                    held: o.held,
                },
            )
        })
        .collect()
}

/// What an audited phase change was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// An operator put the route in a phase (back, or where it was).
    Set,
    /// A move forward whose promotion gate held.
    Promote,
    /// A move forward past a gate that did not hold; the reason lists the failed checks.
    PromoteForced,
    /// An operator rolled the route back to legacy.
    Rollback,
    /// The rollback guard rolled the route back on its own.
    AutoRollback,
    /// The operator override was dropped: Unleash's or the routes file's phase applies.
    Reset,
}

impl AuditAction {
    /// The name in the audit log, the admin API and the console.
    pub fn name(self) -> &'static str {
        match self {
            AuditAction::Set => "set",
            AuditAction::Promote => "promote",
            AuditAction::PromoteForced => "promote_forced",
            AuditAction::Rollback => "rollback",
            AuditAction::AutoRollback => "auto_rollback",
            AuditAction::Reset => "reset",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One change of a route's phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: String,
    pub who: String,
    pub route: String,
    pub action: AuditAction,
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    overrides: BTreeMap<String, Override>,
    #[serde(default)]
    audit: Vec<AuditEntry>,
}

/// Overrides and audit, in memory and (when a path is given) on disk.
#[derive(Debug)]
pub struct StateStore {
    path: Option<PathBuf>,
    state: Mutex<State>,
}

/// The current time as RFC 3339 with milliseconds, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl StateStore {
    /// Opens the state at `path` (created on first change), or a memory-only store.
    pub fn open(path: Option<&Path>) -> Result<Self> {
        let state = match path {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                    path: path.to_owned(),
                    source,
                })?;
                serde_json::from_str(&text).map_err(|source| Error::Corrupt {
                    path: path.to_owned(),
                    source,
                })?
            }
            _ => State::default(),
        };
        Ok(Self {
            path: path.map(Path::to_owned),
            state: Mutex::new(state),
        })
    }

    /// The overrides in force, by route name.
    pub fn overrides(&self) -> BTreeMap<String, Override> {
        self.lock().overrides.clone()
    }

    /// The newest `limit` audit entries, newest first, optionally for one route.
    pub fn audit(&self, route: Option<&str>, limit: usize) -> Vec<AuditEntry> {
        self.lock()
            .audit
            .iter()
            .rev()
            .filter(|e| route.is_none_or(|r| e.route == r))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Applies a batch of changes (`Some(phase)` sets an override, `None` resets to the
    /// routes file) and their audit entries, persisting before returning. Nothing is
    /// changed in memory when the file cannot be written.
    pub fn apply(&self, changes: Vec<Change>) -> Result<()> {
        let mut state = self.lock();
        let mut next = State {
            overrides: state.overrides.clone(),
            audit: state.audit.clone(),
        };
        for (route, change, entry) in changes {
            match change {
                Some(over) => next.overrides.insert(route, over),
                None => next.overrides.remove(&route),
            };
            next.audit.push(entry);
        }
        let excess = next.audit.len().saturating_sub(AUDIT_KEPT);
        next.audit.drain(..excess);
        if let Some(path) = &self.path {
            write_atomically(path, &next)?;
        }
        *state = next;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated: `apply`
        // swaps in a complete new state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl OverrideStore for StateStore {
    async fn load(&self) -> Result<BTreeMap<String, Override>> {
        Ok(self.overrides())
    }

    async fn apply(&self, changes: Vec<Change>) -> Result<()> {
        StateStore::apply(self, changes)
    }

    async fn audit(&self, route: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
        Ok(StateStore::audit(self, route, limit))
    }
}

#[async_trait]
impl FlagSource for StateStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Override
    }

    async fn fetch(&self) -> Result<Layer> {
        Ok(override_layer(&self.overrides()))
    }
}

fn write_atomically(path: &Path, state: &State) -> Result<()> {
    let text = serde_json::to_string_pretty(state).map_err(Error::Encode)?;
    write_file_atomically(path, &text)
}

/// Writes `text` to `path` through a temporary file and a rename, so readers see the old
/// or the new content, never half of it.
pub(crate) fn write_file_atomically(path: &Path, text: &str) -> Result<()> {
    let fail = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(route: &str, to: &str) -> AuditEntry {
        AuditEntry {
            at: now_rfc3339(),
            who: "ops".into(),
            route: route.into(),
            action: AuditAction::Set,
            from: "legacy".into(),
            to: to.into(),
            reason: "test".into(),
        }
    }

    fn over(phase: Phase) -> Override {
        Override {
            phase,
            by: "ops".into(),
            at: now_rfc3339(),
            reason: "test".into(),
            held: false,
        }
    }

    #[test]
    fn audit_actions_are_stored_by_their_names() {
        for action in [
            AuditAction::Set,
            AuditAction::Promote,
            AuditAction::PromoteForced,
            AuditAction::Rollback,
            AuditAction::AutoRollback,
            AuditAction::Reset,
        ] {
            let text = serde_json::to_string(&action).expect("serialises");
            assert_eq!(text, format!("\"{action}\""));
            assert_eq!(
                serde_json::from_str::<AuditAction>(&text).ok(),
                Some(action)
            );
        }
    }

    #[test]
    fn changes_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("sf-state-{}", std::process::id()));
        let path = dir.join("state.json");
        let _ = std::fs::remove_file(&path);
        let store = StateStore::open(Some(&path)).expect("open");
        store
            .apply(vec![(
                "a".into(),
                Some(over(Phase::Canary(25))),
                entry("a", "canary 25%"),
            )])
            .expect("apply");
        store
            .apply(vec![(
                "b".into(),
                Some(over(Phase::Primary)),
                entry("b", "primary"),
            )])
            .expect("apply");
        store
            .apply(vec![("b".into(), None, entry("b", "legacy"))])
            .expect("apply");

        let reopened = StateStore::open(Some(&path)).expect("reopen");
        let overrides = reopened.overrides();
        assert_eq!(overrides["a"].phase, Phase::Canary(25));
        assert!(!overrides.contains_key("b"));
        let audit = reopened.audit(None, 10);
        assert_eq!(audit.len(), 3);
        assert_eq!(audit[0].route, "b");
        assert_eq!(reopened.audit(Some("a"), 10).len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_corrupt_state_file_is_refused() {
        let path = std::env::temp_dir().join(format!("sf-corrupt-{}.json", std::process::id()));
        std::fs::write(&path, "{not json").expect("write");
        let err = StateStore::open(Some(&path))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("state"), "{err}");
        let _ = std::fs::remove_file(path);
    }
}
