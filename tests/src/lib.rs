//! End-to-end harness of the StudyFlow gateway.
//!
//! - [`stack`] starts the whole local stack (fake AI providers, the legacy stand-in on
//!   Deno, the backend, the gateway) on one machine, for `make run` and for the tests.
//! - [`fake_providers`] is the wire-compatible fake of the AI providers, the only fake.
//! - [`tokens`] mints Supabase-style access tokens for test users.
//! - [`database`] creates fresh, migrated databases.
//! - [`bench`] is the benchmark runner behind `make bench`.

pub mod bench;
pub mod database;
pub mod fake_providers;
pub mod stack;
pub mod tokens;
