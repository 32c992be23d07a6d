//! The rehearsal operator: reconciles Simulations (queue, webhook certificate, driver Jobs,
//! cleanup) and Scenarios (validation). `main.rs` wires these parts to the command line.

pub mod cli;
pub mod connect;
pub mod shutdown;
pub mod telemetry;
