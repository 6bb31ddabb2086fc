//! The StudyFlow migration gateway.
//!
//! A [pingora](https://github.com/cloudflare/pingora) reverse proxy that the StudyFlow
//! frontend talks to instead of Supabase. Each route of the [routes file](studyflow_flags)
//! is served by the legacy Edge Functions or the new backend according to its migration
//! phase; anything that matches no route passes through to Supabase untouched.
//!
//! `main.rs` only reads the [`config::GatewayConfig`] and calls [`server::run`]; the proxy
//! logic lives in [`gateway::Gateway`], which dispatches each pingora phase to a small
//! module: [`routing`] decides the route and side, [`identity`] finds who is asking for the
//! canary bucket, [`upstream`] knows where each side lives.

pub mod admin;
pub mod config;
pub mod error;
pub mod gateway;
pub mod identity;
pub mod routing;
pub mod server;
pub mod upstream;

pub use error::{Error, Result};
