//! The StudyFlow migration gateway.
//!
//! A [pingora](https://github.com/cloudflare/pingora) reverse proxy that the StudyFlow
//! frontend talks to instead of Supabase. Each route of the [routes file](studyflow_flags)
//! is served by the legacy Edge Functions or the new backend according to its migration
//! phase; anything that matches no route passes through to Supabase untouched.
//!
//! `main.rs` only reads the [`config::GatewayConfig`] and calls [`server::run`] (or the
//! operator [`cli`]). The proxy logic lives in [`gateway::Gateway`], which dispatches each
//! pingora phase to a small module: [`routing`] decides route and side, [`identity`] finds
//! who is asking for the canary bucket, [`shadow`] copies requests to the other side and
//! captures both answers, [`comparison`] classifies each pair and feeds the diff store,
//! [`upstream`] knows where each side lives. [`control`] owns the
//! route table in force and its changes; [`operations`] is the control plane every
//! surface changes it through (the [`admin`] API and console, the [`cli`]); [`sources`]
//! keeps the flag sources (routes file, Unleash, the fleet's Redis) fresh, [`health`]
//! reports on them, [`guard`] rolls a misbehaving route back on its own, and
//! [`promotion`] decides whether a route may move forward.

pub mod admin;
pub mod cli;
pub mod comparison;
pub mod config;
pub mod control;
pub mod error;
pub mod gateway;
pub mod guard;
pub mod header_names;
pub mod health;
pub mod history;
pub mod identity;
pub mod kept_alive;
pub mod logout;
pub mod metrics;
pub mod operations;
pub mod promotion;
pub mod routing;
pub mod server;
pub mod shadow;
pub mod sources;
pub mod stats;
pub mod upstream;

pub use error::{Error, Result};
