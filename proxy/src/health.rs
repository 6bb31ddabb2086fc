//! Health of the flag sources (routes file, Unleash, overrides store), for `/ready`, the
//! admin JSON and the logs. A failing source never stops serving: its last good layer
//! stays in force, and the failure is counted and shown here.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use studyflow_flags::now_rfc3339;

/// Where a source's layer in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Serving {
    /// The source answered its last fetch.
    Live,
    /// It has not answered since start; its layer comes from the local snapshot.
    Snapshot,
    /// It stopped answering; its last good layer is kept.
    LastGood,
    /// It has never answered and there is no snapshot: the next source down applies.
    Nothing,
}

/// One source's health.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceHealth {
    /// `false` for a source that is not configured (Unleash without `unleash.url`).
    pub configured: bool,
    pub ok: bool,
    pub serving: Serving,
    pub last_ok_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Failed fetches since start.
    pub failures: u64,
    /// Failed writes to this source (rollbacks written back to Unleash).
    pub write_failures: u64,
}

/// The health of every source, by name (`file`, `unleash`, `overrides`).
#[derive(Debug, Default)]
pub struct SourcesHealth {
    sources: Mutex<BTreeMap<&'static str, SourceHealth>>,
}

impl SourcesHealth {
    fn with<T>(&self, name: &'static str, f: impl FnOnce(&mut SourceHealth) -> T) -> T {
        let mut sources = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = sources.entry(name).or_insert(SourceHealth {
            configured: true,
            ok: false,
            serving: Serving::Nothing,
            last_ok_at: None,
            last_error: None,
            last_error_at: None,
            failures: 0,
            write_failures: 0,
        });
        f(entry)
    }

    /// Marks `name` as not configured.
    pub fn unconfigured(&self, name: &'static str) {
        self.with(name, |h| {
            h.configured = false;
            h.ok = true;
        });
    }

    /// `name` answered.
    pub fn ok(&self, name: &'static str) {
        let recovered = self.with(name, |h| {
            let recovered = !h.ok && h.failures > 0;
            h.ok = true;
            h.serving = Serving::Live;
            h.last_ok_at = Some(now_rfc3339());
            recovered
        });
        if recovered {
            tracing::info!(source = name, "flag source recovered");
        }
    }

    /// `name` failed; `fallback` says what is served instead. Logged at the first failure
    /// after a success (then counted quietly, so an outage does not flood the log).
    pub fn failed(&self, name: &'static str, error: &str, fallback: Serving) {
        let first = self.with(name, |h| {
            let first = h.ok || h.failures == 0;
            h.ok = false;
            h.serving = fallback;
            h.failures += 1;
            h.last_error = Some(error.to_owned());
            h.last_error_at = Some(now_rfc3339());
            first
        });
        if first {
            tracing::error!(source = name, error, serving = ?fallback, "flag source failing; serving continues on the last good state");
        } else {
            tracing::debug!(source = name, error, "flag source still failing");
        }
    }

    /// A write to `name` failed.
    pub fn write_failed(&self, name: &'static str, error: &str) {
        self.with(name, |h| h.write_failures += 1);
        tracing::error!(source = name, error, "writing to the flag source failed");
    }

    /// What `name` serves from now.
    pub fn serving(&self, name: &'static str) -> Serving {
        self.with(name, |h| h.serving)
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, SourceHealth> {
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
