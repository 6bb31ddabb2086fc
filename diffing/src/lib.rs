//! Structural comparison of the answers the legacy functions and the new backend give
//! to the same request.
//!
//! [`diff_json`] compares two JSON values as values (key order and `1` vs `1.0` do not
//! matter) and lists every [`Difference`] with its JSON-pointer path and its path
//! *shape*, in which array indexes are replaced by `*` so that `/items/3/id` and
//! `/items/7/id` are counted together.
//!
//! ```
//! use serde_json::json;
//! let diffs = studyflow_diffing::diff_json(&json!({"a": [1, 2]}), &json!({"a": [1, 3]}));
//! assert_eq!(diffs.len(), 1);
//! assert_eq!(diffs[0].path, "/a/1");
//! assert_eq!(diffs[0].shape(), "/a/*");
//! ```

pub mod capture;
mod json;
mod path;

pub use capture::{CapturedRequest, CapturedResponse, Exchange};

pub use json::{DiffKind, Difference, diff_json};
pub use path::{path_shape, pointer_push};
