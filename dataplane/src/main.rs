//! `herald-dataplane <command>`: see docs/data-plane.md.

use clap::Parser;
use herald_dataplane::{Cli, Command, finish, run_store_command, send};

#[tokio::main]
async fn main() {
    // One TLS provider for the store and the uploads: ring, as in the operator.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Send {
            config,
            credentials_dir,
            listen,
        } => match send::run(config, credentials_dir.clone(), listen).await {
            Ok(()) => 0,
            Err(why) => {
                eprintln!("failed: {why}");
                herald_dataplane::EXIT_FAILED
            }
        },
        Command::Purge { store, .. }
        | Command::Erase { store, .. }
        | Command::Export { store, .. }
        | Command::Dsr { store, .. } => {
            let outcome = run_store_command(&cli.command).await;
            finish(&outcome, &store.termination_log)
        }
    };
    std::process::exit(code);
}
