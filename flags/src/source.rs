//! Where a route's phase comes from, and which source wins.
//!
//! Three sources can set a route's phase: the routes file (always there), Unleash (when
//! configured) and operator overrides (admin API, CLI, automatic rollback guard). Each is a
//! [`FlagSource`] that yields a [`Layer`]: the phases it sets, by route name. A route's
//! phase in force is [`resolve`]d by precedence **override > Unleash > file**. A source that
//! fails to load leaves its last good layer in force; the caller keeps that layer and
//! reports the failure.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{DEFAULT_ROUTES_FILE, Phase, Result, RoutesFile};

/// One of the three flag sources, in increasing precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    File,
    Unleash,
    Override,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Unleash => "unleash",
            SourceKind::Override => "override",
        }
    }
}

/// What one source says about one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    #[serde(flatten)]
    pub phase: Phase,
    /// Set by the automatic rollback guard: the route stays put until an operator moves
    /// it. Only overrides are ever held.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

impl Setting {
    pub fn new(phase: Phase) -> Self {
        Self { phase, held: false }
    }
}

/// The phases one source sets, by route name. Routes it does not mention fall through to
/// the next source.
pub type Layer = BTreeMap<String, Setting>;

/// A source of route phases. `fetch` returns the source's whole current layer or an error;
/// an error never replaces a good layer (the caller keeps the last one).
#[async_trait]
pub trait FlagSource: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> SourceKind;
    async fn fetch(&self) -> Result<Layer>;
}

/// A route's phase in force and the source it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    #[serde(flatten)]
    pub phase: Phase,
    pub source: SourceKind,
    #[serde(default)]
    pub held: bool,
}

/// Applies the precedence override > Unleash > file to one route.
pub fn resolve(route: &str, file: Phase, unleash: Option<&Layer>, overrides: &Layer) -> Resolved {
    if let Some(setting) = overrides.get(route) {
        return Resolved {
            phase: setting.phase,
            source: SourceKind::Override,
            held: setting.held,
        };
    }
    if let Some(setting) = unleash.and_then(|layer| layer.get(route)) {
        return Resolved {
            phase: setting.phase,
            source: SourceKind::Unleash,
            held: false,
        };
    }
    Resolved {
        phase: file,
        source: SourceKind::File,
        held: false,
    }
}

/// The routes file as a flag source: every route's `phase`.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// `None` is the table shipped with the gateway.
    pub path: Option<PathBuf>,
}

impl FileSource {
    /// The whole validated file (routes, paths, rules), not only its phases.
    pub fn load_file(&self) -> Result<RoutesFile> {
        RoutesFile::parse(&self.read_text()?)
    }

    /// The file's text as it is on disk now, not yet validated ([`RoutesFile::parse`]).
    pub fn read_text(&self) -> Result<String> {
        match &self.path {
            Some(path) => RoutesFile::read_text(path),
            None => Ok(DEFAULT_ROUTES_FILE.to_owned()),
        }
    }
}

/// The phases a routes file sets.
pub fn file_layer(file: &RoutesFile) -> Layer {
    file.routes
        .iter()
        .map(|r| (r.name.clone(), Setting::new(r.phase)))
        .collect()
}

#[async_trait]
impl FlagSource for FileSource {
    fn kind(&self) -> SourceKind {
        SourceKind::File
    }

    async fn fetch(&self) -> Result<Layer> {
        Ok(file_layer(&self.load_file()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_beat_unleash_which_beats_the_file() {
        let unleash = Layer::from([("a".into(), Setting::new(Phase::Canary(30)))]);
        let mut overrides = Layer::new();
        let got = resolve("a", Phase::Legacy, Some(&unleash), &overrides);
        assert_eq!(
            (got.phase, got.source),
            (Phase::Canary(30), SourceKind::Unleash)
        );
        let got = resolve("b", Phase::Shadow, Some(&unleash), &overrides);
        assert_eq!((got.phase, got.source), (Phase::Shadow, SourceKind::File));
        overrides.insert(
            "a".into(),
            Setting {
                phase: Phase::Shadow,
                held: true,
            },
        );
        let got = resolve("a", Phase::Legacy, Some(&unleash), &overrides);
        assert_eq!(
            (got.phase, got.source, got.held),
            (Phase::Shadow, SourceKind::Override, true)
        );
        let got = resolve("a", Phase::Primary, None, &Layer::new());
        assert_eq!((got.phase, got.source), (Phase::Primary, SourceKind::File));
    }

    #[tokio::test]
    async fn the_file_and_the_overrides_are_read_through_the_same_trait() {
        let sources: Vec<Box<dyn FlagSource>> = vec![
            Box::new(FileSource { path: None }),
            Box::new(crate::StateStore::open(None).expect("memory store")),
        ];
        let mut layers = BTreeMap::new();
        for source in &sources {
            layers.insert(source.kind(), source.fetch().await.expect("layer"));
        }
        assert_eq!(
            layers[&SourceKind::File]["auth-validation"].phase,
            Phase::Legacy
        );
        assert!(layers[&SourceKind::Override].is_empty());
        let got = resolve(
            "auth-validation",
            Phase::Legacy,
            None,
            &layers[&SourceKind::Override],
        );
        assert_eq!(got.source, SourceKind::File);
    }

    #[test]
    fn settings_read_like_the_routes_file() {
        let setting: Setting =
            serde_json::from_str(r#"{"phase":"canary","percent":5}"#).expect("setting");
        assert_eq!(setting, Setting::new(Phase::Canary(5)));
        let text = serde_json::to_string(&Setting::new(Phase::Primary)).expect("json");
        assert_eq!(text, r#"{"phase":"primary"}"#);
    }
}
