//! The driver of one run of a Simulation: trace replay (with its admission webhook) and, later,
//! scenario play. `main.rs` wires these parts to the command line.

pub mod artifacts;
pub mod audit;
pub mod bench;
pub mod cli;
pub mod client;
pub mod collect;
pub mod commands;
pub mod emptying;
pub mod hooks;
pub mod limits;
pub mod own_thread;
pub mod replay;
pub mod report;
pub mod s3;
pub mod scenario;
pub mod served;
pub mod signals;
pub mod status;
pub mod telemetry;
pub mod trace;
pub mod webhook;
