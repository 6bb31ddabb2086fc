//! Integration tests of the gateway binary against purpose-built upstreams that report
//! which side they are and record what they receive, with the real Redis and a real
//! Unleash server where the flag sources need them.

mod canary;
mod console;
mod diffs;
mod fleet;
mod guard;
mod harness;
mod hostile;
mod passthrough;
mod phases;
mod promotion;
mod rails;
mod rollback;
mod shadow;
mod signout;
mod unleash;
