//! `rehearsal-driver replay`: replaying a recorded trace onto the simulated cluster.

pub mod behind;
pub mod clock;
pub mod engine;
pub mod objects;
pub mod probe;
pub mod root;
pub mod run;
