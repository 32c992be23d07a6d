//! The rehearsal operator: reconciles Simulations (queue, webhook certificate, driver Jobs,
//! cleanup) and Scenarios (validation). `main.rs` wires these parts to the command line.

pub mod certs;
pub mod cleanup;
pub mod cli;
pub mod connect;
pub mod controller;
pub mod error;
pub mod jobs;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod queue;
pub mod run;
pub mod scenarios;
pub mod settings;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod trace_files;
pub mod web;
pub mod webhook;
