//! The benchmark suites behind `make bench`: starts the pieces as release processes on
//! this machine, drives them with the `wrk` load generator (Debian's package), samples CPU and memory of the
//! process under test, and writes the tables into `docs/benchmarks.md`.
//!
//! Every comparison is made in one run, side by side, so the ratios hold even though the
//! absolute numbers depend on the machine (load generator, proxy and upstream share its
//! cores).

pub mod criterion;
pub mod data_api;
pub mod embeddings;
pub mod functions;
pub mod gateway;
pub mod instructions;
pub mod load;
pub mod plot;
pub mod process;
pub mod realtime;
pub mod report;
pub mod soak;
pub mod ttft;
pub mod upstream;
