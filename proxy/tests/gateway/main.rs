//! Integration tests of the gateway binary against purpose-built upstreams that report
//! which side they are and record what they receive.

mod canary;
mod diffs;
mod harness;
mod passthrough;
mod phases;
mod rollback;
mod shadow;
