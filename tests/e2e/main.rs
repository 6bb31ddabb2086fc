//! End-to-end tests: the whole stack as real processes (fake providers, legacy stand-in
//! on Deno, backend, gateway) against the local Postgres and Redis.
//!
//! Build the binaries first (`cargo build --release --workspace --bins`); `make test` does.

mod ai_shadow;
mod ai_streaming;
mod auth_validation;
mod console;
mod data_api;
mod diffs;
mod harness;
mod observability;
mod parity;
mod realtime;
mod signout;
mod walkthrough;
