//! The `imagedrift` binary: the in-cluster controller and one-shot CLI.
//!
//! Exit codes, the same for every command: 0 all is well, 1 something was
//! found (a stale container, a lint finding at `--fail-on`), 2 usage,
//! configuration, I/O or cluster errors (`run` exits 0 on SIGTERM/SIGINT
//! and 2 when it cannot start or stops on an error).

mod cli;

/// glibc malloc (kept: mimalloc and jemalloc measured higher peaks in the
/// scale bench), tuned for a long-running process holding one large
/// cluster view: at most two arenas (one per tokio worker would each keep
/// its own freed pages), and a fixed mmap threshold, so a freed list page
/// or scrape buffer goes back to the system instead of raising the
/// threshold and staying in an arena. Set before any thread starts; the
/// `MALLOC_ARENA_MAX` and `MALLOC_MMAP_THRESHOLD_` variables still win.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt has no preconditions; one thread runs here.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: as above.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

/// Finds containers running image content their registry no longer serves
/// for the tag in their spec.
#[derive(Parser, Debug)]
#[command(
    name = "imagedrift",
    version,
    about,
    after_help = "Exit codes: 0 ok, 1 found something (stale containers, lint findings), 2 usage, configuration, I/O or cluster errors."
)]
struct Cli {
    /// More log lines on stderr: -v info (libraries included), -vv debug.
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller: watch every pod, report drift as Events and metrics.
    Run(imagedrift::config::RunFlags),
    /// Judge every container once and print the verdicts (exit 1 if any is stale).
    Scan(cli::scan::ScanArgs),
    /// Explain, in plain words, what a pod's (or a workload's pods')
    /// containers run and what to do.
    Explain(cli::scan::ExplainArgs),
    /// Show what an image's tag points to today (digest, media type, platforms).
    Resolve(imagedrift::registry::cli::ResolveArgs),
    /// Check manifests and Jenkins pipelines for pull-policy mistakes, offline.
    Lint(imagedrift::lint::LintArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The command line, named as the user invoked it: installed as
/// `kubectl-imagedrift` (a kubectl plugin, run as `kubectl imagedrift …`),
/// help and usage say `kubectl imagedrift`.
fn command() -> clap::Command {
    let cmd = Cli::command();
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let invoked = std::path::Path::new(&argv0)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if invoked == "kubectl-imagedrift" {
        cmd.bin_name("kubectl imagedrift")
    } else {
        cmd
    }
}

/// A usage error whose bad value came from an `IMAGEDRIFT_*` variable says
/// so: clap names only the flag, and the user never typed that flag.
fn env_note(err: &clap::Error, cmd: &clap::Command) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(value)) = err.get(ContextKind::InvalidValue) else {
        return None;
    };
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split_whitespace().next().unwrap_or(arg);
    let mut stack = vec![cmd];
    while let Some(c) = stack.pop() {
        for a in c.get_arguments() {
            let long = a.get_long().map(|l| format!("--{l}"));
            if long.as_deref() != Some(flag) {
                continue;
            }
            if let Some(var) = a.get_env()
                && std::env::var_os(var).is_some_and(|v| v.to_string_lossy() == *value)
            {
                return Some(var.to_string_lossy().into_owned());
            }
        }
        stack.extend(c.get_subcommands());
    }
    None
}

fn main() -> ExitCode {
    tune_malloc();
    let mut cmd = command();
    let matches = match cmd.try_get_matches_from_mut(std::env::args_os()) {
        Ok(m) => m,
        Err(e) => {
            // --help and --version are "errors" that exit 0.
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let _ = e.print();
            if let Some(var) = env_note(&e, &cmd) {
                eprintln!(
                    "\nnote: this value comes from the environment variable {var}; fix or unset it"
                );
            }
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    cli::set_verbosity(cli.verbose);
    cli::install_crypto_provider();
    match cli.command {
        Command::Run(flags) => cli::run::main(flags),
        Command::Scan(args) => cli::scan::scan(args),
        Command::Explain(args) => cli::scan::explain(args),
        Command::Resolve(args) => cli::resolve(args),
        Command::Lint(args) => ExitCode::from(imagedrift::lint::run(&args)),
        Command::Completion { shell } => {
            let name = cmd.get_bin_name().unwrap_or("imagedrift").to_string();
            // A kubectl plugin's completion is kubectl's business; the
            // script completes the binary itself.
            let name = if name.contains(' ') {
                "kubectl-imagedrift".to_string()
            } else {
                name
            };
            // Into a buffer: clap_complete panics on a closed pipe (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("imagedrift completion: cannot write to stdout: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
