//! The `cachecash` binary: parses the command line and dispatches. All
//! logic lives in the subcommand modules and the library crates.

mod commands;
mod shared;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = commands::Cli::parse();
    shared::init_logging();
    match commands::dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
