//! What the StudyFlow test and tooling crates share.
//!
//! - [`stack`] starts the whole local stack (fake AI providers, the legacy stand-in on
//!   Deno, the backend, the gateway) on one machine, for `make run`, the tests and the
//!   benchmarks, with the ports each child process listens on.
//! - [`fake_providers`] is the wire-compatible fake of the AI providers, the only fake.
//! - [`process`] starts the services so that each says where it listens (race-free
//!   ports).
//! - [`tokens`] mints Supabase-style access tokens for test users.
//! - [`database`] creates fresh, migrated databases.
//! - [`ports`] holds a port where nothing listens, for an upstream that is down.
//! - [`clock`] keeps steps counted per calendar minute inside one minute.

pub mod clock;
pub mod database;
pub mod fake_providers;
pub mod ports;
pub mod process;
pub mod relay;
pub mod stack;
pub mod tokens;
