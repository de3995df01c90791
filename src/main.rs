//! The `imagedrift` binary: the in-cluster controller and one-shot CLI.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Finds containers running image content their registry no longer serves
/// for the tag in their spec.
#[derive(Parser, Debug)]
#[command(name = "imagedrift", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check manifests and Jenkins pipelines for pull-policy mistakes, offline.
    Lint(imagedrift::lint::LintArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lint(args) => ExitCode::from(imagedrift::lint::run(&args)),
    }
}
