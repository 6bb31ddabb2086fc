//! The operator commands of the `studyflow-backend` binary besides serving:
//! `migrate …` ([`migrate`]), `sessions …` ([`sessions`]), `vault …` ([`vault`]) and
//! `prompts …` ([`prompts`]).
//!
//! The top of the dependency graph: a command may use any module of the crate, and no
//! module uses a command.

pub mod migrate;
pub mod prompts;
pub mod sessions;
pub mod vault;
