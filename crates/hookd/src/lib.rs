//! The `hookd` binary as a library, so the end-to-end tests can build the
//! same program: configuration ([`settings`]), the command line ([`cli`]),
//! the daemon's wiring ([`serve`]) and printing ([`output`]).

pub mod cli;
pub mod output;
pub mod serve;
pub mod settings;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line and runs the command; the whole of `main`.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let config = match settings::Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hookd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hookd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            cli::Command::Serve => serve::run(config).await,
            cli::Command::Endpoints(cmd) => cli::endpoints(&config, cmd).await,
            cli::Command::Publish(args) => cli::publish(&config, args).await,
            cli::Command::Deliveries(cmd) => cli::deliveries(&config, cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
