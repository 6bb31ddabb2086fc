//! Route flags of the StudyFlow migration gateway.
//!
//! A *routes file* (YAML) lists every endpoint the gateway knows about: its name, the
//! requests it matches, and the migration [`Phase`] that decides whether the legacy
//! Edge Functions or the new backend serves it. [`RoutesFile::parse`] reads and
//! validates such a file; a file that does not validate is never used, so a broken
//! edit cannot take traffic down.
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
mod matcher;
mod phase;
mod routes;
mod state;

pub use error::{Error, Result};
pub use matcher::PathMatcher;
pub use phase::{Phase, Side};
pub use routes::{DEFAULT_ROUTES_FILE, RouteSpec, RoutesFile, ShadowPolicy, WritePolicy};
pub use state::{AuditEntry, Override, StateStore, now_rfc3339};
