//! Structural comparison of the answers the legacy functions and the new backend give
//! to the same request, and the diff reports engineers act on.
//!
//! - [`capture`]: what the gateway captures of a shadowed request ([`Exchange`]).
//! - [`compare`]: status, headers and body (JSON, event stream or text) of two answers
//!   under a route's [`rules`], each [`Difference`] with a JSON-pointer path and a path
//!   *shape* in which array indexes are `*` (`/items/3/id` and `/items/7/id` group as
//!   `/items/*/id`).
//! - [`noise`]: declared and learned noise versus regressions.
//! - [`redact`]: secrets masked before anything is stored or shown; [`sample`]: the
//!   redacted exchange and differences the store keeps.
//! - [`store`] and [`report`]: counts and samples in Postgres, and the reports built
//!   from them.
//!
//! ```
//! use serde_json::json;
//! let diffs = studyflow_diffing::diff_json(&json!({"a": [1, 2]}), &json!({"a": [1, 3]}));
//! assert_eq!(diffs.len(), 1);
//! assert_eq!(diffs[0].path, "/a/1");
//! assert_eq!(diffs[0].shape(), "/a/*");
//! ```

pub mod capture;
pub mod compare;
pub mod error;
mod json;
pub mod noise;
mod path;
pub mod redact;
pub mod report;
pub mod rules;
pub mod sample;
pub mod sse;
pub mod store;
pub mod text;

pub use capture::{CapturedRequest, CapturedResponse, Exchange};
pub use compare::{BodyKind, Comparison, compare, compare_responses};
pub use error::{Error, Result};
pub use json::{DiffKind, Difference, Section, diff_json, diff_json_with};
pub use noise::{Classified, NoiseTracker, Verdict, classify};
pub use path::{path_shape, pointer_push};
pub use redact::Redactor;
pub use rules::{CompiledRules, DiffRules, VectorRule};
pub use sample::{RedactedExchange, RedactedRequest, RedactedResponse, StoredDifference};
