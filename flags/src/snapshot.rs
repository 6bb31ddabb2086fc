//! The last good flag set, kept on local disk.
//!
//! Whenever the flag set in force changes, the gateway writes what each source said (the
//! Unleash layer and the overrides) and the resulting phase of every route. At start, a
//! source that cannot be reached (Unleash down, Redis down) is replaced by its layer from
//! the snapshot, so a restart during an outage serves what was served before it. A
//! snapshot that cannot be parsed is reported and ignored: it never replaces anything.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::source::{Layer, Resolved};
use crate::state::write_file_atomically;
use crate::{Error, Override, Result};

/// What was in force when the snapshot was written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub written_at: String,
    /// The Unleash layer (`None`: Unleash was not configured or never loaded).
    #[serde(default)]
    pub unleash: Option<Layer>,
    /// The overrides (local state file or Redis).
    #[serde(default)]
    pub overrides: BTreeMap<String, Override>,
    /// Every route's phase in force and where it came from, for operators to read.
    #[serde(default)]
    pub effective: BTreeMap<String, Resolved>,
}

impl Snapshot {
    /// Reads the snapshot at `path`; `Ok(None)` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| Error::Corrupt {
                path: path.to_owned(),
                source,
            })
    }

    /// Writes the snapshot atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(Error::Encode)?;
        write_file_atomically(path, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Setting, SourceKind};
    use crate::{Phase, now_rfc3339};

    #[test]
    fn a_snapshot_reads_back_and_a_damaged_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("sf-snapshot-{}", std::process::id()));
        let path = dir.join("snapshot.json");
        assert_eq!(Snapshot::load(&path).expect("missing is fine"), None);
        let snapshot = Snapshot {
            written_at: now_rfc3339(),
            unleash: Some(Layer::from([("a".into(), Setting::new(Phase::Canary(40)))])),
            overrides: BTreeMap::new(),
            effective: BTreeMap::from([(
                "a".into(),
                Resolved {
                    phase: Phase::Canary(40),
                    source: SourceKind::Unleash,
                    held: false,
                },
            )]),
        };
        snapshot.save(&path).expect("save");
        assert_eq!(Snapshot::load(&path).expect("load"), Some(snapshot));
        std::fs::write(&path, "{\"unleash\": 3").expect("write");
        assert!(Snapshot::load(&path).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
