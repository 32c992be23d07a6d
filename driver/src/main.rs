//! `rehearsal-driver`: runs one run of a Simulation.
//!
//! The `replay` and `scenario` subcommands arrive with their own issues; this version only
//! answers `--version` and `--help`.

use clap::Parser;

/// Replays a recorded cluster trace, or plays a scaling scenario, onto virtual nodes.
#[derive(Parser, Debug)]
#[command(name = "rehearsal-driver", version, about)]
struct Args {}

fn main() {
    let _ = Args::parse();
    eprintln!("rehearsal-driver: no subcommand is available in this version (see --help)");
    std::process::exit(2);
}
