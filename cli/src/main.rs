//! `kubecur`: allocate out-of-cluster AWS cost to Kubernetes namespaces on one machine.
//!
//! `main` only parses arguments and maps outcomes to exit codes; each command lives in its own module.

mod allocate;
mod args;
mod doctor;
mod output;
mod progress;
#[cfg(feature = "aws")]
mod proxy;
#[cfg(not(feature = "aws"))]
#[path = "proxy_absent.rs"]
mod proxy;
mod sample;
mod serve;
mod setup;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUBECUR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(70);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Allocate(args) => allocate::run(args).await,
            Command::Sample(args) => sample::run(args),
            Command::Serve(args) => serve::run(args).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::Setup(args) => setup::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// A command's failure, with the exit code scripts can branch on.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or unusable input data (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The engine or storage failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// `command` needs the feature `aws`, which this build was compiled without.
    pub fn not_built(command: &str) -> CliError {
        CliError::Usage(format!(
            "{command} talks to AWS, and this kubecur was built without the AWS commands (--no-default-features, as in the README's quick start). Build it with them: cargo build --release -p kubecur (or cargo install --path cli)"
        ))
    }

    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl From<kubecur_shared::ports::EngineError> for CliError {
    fn from(error: kubecur_shared::ports::EngineError) -> Self {
        use kubecur_shared::ports::EngineError;
        match error {
            EngineError::Input(_) | EngineError::Domain(_) => CliError::Usage(error.to_string()),
            EngineError::Storage { .. } | EngineError::Execution { .. } => {
                CliError::Failed(error.to_string())
            }
        }
    }
}

impl From<kubecur_shared::domain::DomainError> for CliError {
    fn from(error: kubecur_shared::domain::DomainError) -> Self {
        CliError::Usage(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::CliError;

    #[test]
    fn a_command_left_out_of_the_build_names_the_build_that_has_it() {
        let error = CliError::not_built("kubecur doctor");
        assert_eq!(error.exit_code(), 2);
        let message = error.to_string();
        assert!(
            message.starts_with("kubecur doctor talks to AWS"),
            "{message}"
        );
        assert!(
            message.contains("cargo build --release -p kubecur"),
            "{message}"
        );
    }
}
