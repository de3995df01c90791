//! The `imagedrift` binary: the in-cluster controller and one-shot CLI.

mod cli;

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
    /// Run the controller: watch every pod, report drift as Events and metrics.
    Run(imagedrift::config::RunFlags),
    /// Judge every container once and print the verdicts (exit 1 if any is stale).
    Scan(cli::scan::ScanArgs),
    /// Explain, in plain words, what one pod's containers run and what to do.
    Explain(cli::scan::ExplainArgs),
    /// Show what an image's tag points to today (digest, media type, platforms).
    Resolve(imagedrift::registry::cli::ResolveArgs),
    /// Check manifests and Jenkins pipelines for pull-policy mistakes, offline.
    Lint(imagedrift::lint::LintArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::install_crypto_provider();
    match cli.command {
        Command::Run(flags) => cli::run::main(flags),
        Command::Scan(args) => cli::scan::scan(args),
        Command::Explain(args) => cli::scan::explain(args),
        Command::Resolve(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime.block_on(imagedrift::registry::cli::run(&args)) {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Lint(args) => ExitCode::from(imagedrift::lint::run(&args)),
    }
}
