//! Route flags of the StudyFlow migration gateway.
//!
//! A *routes file* (YAML) lists every endpoint the gateway knows about: its name, the
//! requests it matches, and the migration [`Phase`] that decides whether the legacy
//! Edge Functions or the new backend serves it. [`RoutesFile::parse`] reads and
//! validates such a file; a file that does not validate is never used, so a broken
//! edit cannot take traffic down.
//!
//! A route's phase can come from three [`FlagSource`]s, resolved by precedence
//! override > Unleash > file ([`resolve`]): the routes file, an Unleash server
//! ([`unleash`], one toggle per route) and operator overrides ([`OverrideStore`]: a local
//! state file, or Redis for a fleet of gateways, see [`fleet`]). The last good flag set is
//! kept on disk ([`Snapshot`]) so a gateway restarted while a source is down serves what
//! it served before.
//!
//! ```
//! let file = studyflow_flags::RoutesFile::parse(r#"
//! routes:
//!   - name: auth-validation
//!     path: /functions/v1/auth-validation
//!     phase: primary
//! "#).unwrap();
//! assert_eq!(file.routes[0].phase, studyflow_flags::Phase::Primary);
//! ```

mod error;
pub mod fleet;
mod matcher;
mod path;
mod phase;
mod routes;
mod snapshot;
mod source;
mod state;
pub mod unleash;

pub use error::{Error, Result};
pub use matcher::PathMatcher;
pub use path::{PathError, canonical_path};
pub use phase::{Phase, Side};
pub use routes::{DEFAULT_ROUTES_FILE, RouteSpec, RoutesFile, ShadowPolicy, WritePolicy};
pub use snapshot::Snapshot;
pub use source::{
    FileSource, FlagSource, Layer, Resolved, Setting, SourceKind, file_layer, resolve,
};
pub use state::{
    AuditAction, AuditEntry, Change, Override, OverrideStore, StateStore, now_rfc3339,
    override_layer,
};
