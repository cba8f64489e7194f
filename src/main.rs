//! The `herald` binary: argument parsing and wiring only; the logic lives in the lib.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use herald::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: per-tenant messaging stacks with GDPR guarantees, as a Kubernetes operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster in KUBECONFIG (or in-cluster config).
    Run {
        /// Address of /healthz, /readyz and /metrics.
        #[arg(long, env = "HERALD_HTTP_ADDR", default_value = "0.0.0.0:8080")]
        http_addr: SocketAddr,
        /// Log line format.
        #[arg(long, env = "HERALD_LOG_FORMAT", value_enum, default_value = "json")]
        log_format: LogFormat,
    },
    /// Write the CRDs generated from the Rust types, one YAML file per kind.
    Crds {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = "crds")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crds { out } => match herald::crdgen::write_all(&herald::api::crds(), &out) {
            Ok(paths) => {
                for p in paths {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Run {
            http_addr,
            log_format,
        } => {
            telemetry::init(log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(&e),
            };
            let config = herald::run::RunConfig { http_addr };
            match runtime.block_on(herald::run::run(config, herald::run::shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %chain(&e), "herald stopped");
                    fail(&e)
                }
            }
        }
    }
}

/// An error and its causes on one line: `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn fail(e: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {}", chain(e));
    ExitCode::FAILURE
}
