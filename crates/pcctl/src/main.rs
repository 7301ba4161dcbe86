//! `pcctl`: administer a Portcullis cluster. See `pcctl --help`.

mod audit;
mod cli;
mod commands;
mod context;
mod output;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli: cli::Cli = portcullis_client::parse_args("pcctl");
    portcullis_client::cli::run_main(commands::run(cli))
}
