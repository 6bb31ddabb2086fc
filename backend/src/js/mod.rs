//! The JavaScript semantics the legacy functions depend on, re-implemented so the
//! backend computes the very same values and texts as the Deno functions it replaces.
//!
//! - [`value`]: truthiness, `String(x)`, `Number(x)`, number formatting, `Math.round`.
//! - [`text`]: UTF-16 lengths, the `\s` class and `split(/\s+/)`.
//! - [`json`]: `JSON.parse` with V8's error messages, `JSON.stringify` (compact and
//!   indented) with JavaScript's property order and number formatting.
//! - [`errors`]: the texts of the `TypeError`s V8 throws where the legacy code trips.
//!
//! Nothing here knows about HTTP; the function modules combine these pieces.

pub mod errors;
pub mod json;
pub mod text;
pub mod value;
