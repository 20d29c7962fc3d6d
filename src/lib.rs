//! The `freshet` binary's library half: configuration and the assembly of a node.
//!
//! Kept as a library so integration tests start exactly what `freshet serve` starts — the same
//! store, router and shutdown path — on an ephemeral port with a database of their own.

pub mod bench;
pub mod bench_refresh;
pub mod bench_retention;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod keys;
pub mod listen;
pub mod serve;
pub mod server;
pub mod telemetry;
