//! `cargo xtask`: parses the command line, runs the command, prints the whole error chain and
//! exits with the contract's code (0 ok, 1 failed, 2 usage or refused, 3 differences).

use std::process::ExitCode;

use clap::Parser;
use xtask::{commands::Cli, config, exit, project_root};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    // Before clap parses: its `env` lookups must already see .env's values.
    if let Err(e) = config::load_env_file(&args, &project_root()) {
        eprintln!("error: {e:#}");
        return ExitCode::from(exit::code_for(&e));
    }
    let cli = Cli::parse_from(args);
    let result = cli.run();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code_for(&e))
        }
    }
}
