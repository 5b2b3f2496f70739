//! The `hookd` binary as a library, so the end-to-end tests can build the
//! same program: configuration ([`settings`]), the command line ([`cli`]),
//! the daemon's wiring ([`serve`]), span export ([`telemetry`]), printing ([`output`]) and the
//! receiver-side tools `verify` and `listen` ([`receive`]).

pub mod cli;
pub mod output;
pub mod receive;
pub mod serve;
pub mod settings;
pub mod telemetry;

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
    // A command run where there is no configuration file says so, once:
    // its behaviour (no sealing key, internal networks refused) would
    // otherwise depend on the working directory in a way no one can see.
    if config.file.is_none() && !matches!(cli.command, cli::Command::Config { .. }) {
        eprintln!(
            "hookd: no configuration file (no --config, no HOOKD_CONFIG, no {} here): built-in defaults and HOOKD__* variables; `hookd config` shows them",
            settings::DEFAULT_CONFIG
        );
    }
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
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = runtime.block_on(async move {
        match cli.command {
            cli::Command::Serve => done(serve::run(config).await),
            cli::Command::Endpoints(cmd) => done(cli::endpoints::run(&config, cmd).await),
            cli::Command::Publish(args) => done(cli::events::publish(&config, args).await),
            cli::Command::Deliveries(cmd) => done(cli::deliveries::run(&config, cmd).await),
            cli::Command::Keys(cmd) => done(cli::keys::run(&config, cmd).await),
            cli::Command::Recover(args) => done(cli::deliveries::recover(&config, args).await),
            cli::Command::EventTypes { workspace, out } => {
                done(cli::events::event_types(&config, &workspace, out.json).await)
            }
            cli::Command::Secrets(cmd) => done(cli::keys::secrets(&config, cmd).await),
            cli::Command::Job { id, out } => {
                done(cli::deliveries::job(&config, &id, out.json).await)
            }
            cli::Command::Jobs(cmd) => done(cli::deliveries::jobs(&config, cmd).await),
            cli::Command::Audit {
                workspace,
                limit,
                before,
                out,
            } => done(
                cli::upkeep::audit(&config, &workspace, limit, before.as_deref(), out.json).await,
            ),
            cli::Command::Repartition(args) => done(cli::upkeep::repartition(&config, args).await),
            cli::Command::Migrate(args) => done(cli::upkeep::migrate(&config, args).await),
            cli::Command::Config { out } => done(output::config(&config, out.json)),
            // An invalid signature is an answer, not an error: exit 1 without "hookd:".
            cli::Command::Verify(args) => {
                receive::verify(args, &config.signing.header_prefix).map(|valid| {
                    if valid {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                })
            }
            cli::Command::Listen(args) => {
                done(receive::listen(args, &config.signing.header_prefix).await)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hookd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
