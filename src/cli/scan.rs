//! `imagedrift scan` and `imagedrift explain`: one-shot, same code path as
//! the controller (lists instead of watches).

use super::{init_tracing, kube_client, registry_from};
use imagedrift::config::{KubeFlags, Log};
use imagedrift::controller::oneshot::{Scope, collect, exit_code};
use imagedrift::controller::output;
use imagedrift::controller::secrets::Anonymous;
use std::process::ExitCode;

/// Output format of `scan`.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// More columns: node, policy, digests, owner.
    Wide,
    /// `{"items": [...]}`.
    Json,
}

/// `scan` flags.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Namespace (default: the context's namespace).
    #[arg(short = 'n', long, env = "IMAGEDRIFT_NAMESPACE")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(
        short = 'A',
        long,
        env = "IMAGEDRIFT_ALL_NAMESPACES",
        conflicts_with = "namespace"
    )]
    pub all_namespaces: bool,
    /// Label selector, as for kubectl.
    #[arg(short = 'l', long, env = "IMAGEDRIFT_LABEL_SELECTOR")]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, env = "IMAGEDRIFT_OUTPUT", value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Configuration file; only its `registries:` section is used
    /// (mirrors, TLS, the credentials file).
    #[arg(long, env = "IMAGEDRIFT_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Registry lookups at once.
    #[arg(long, env = "IMAGEDRIFT_MAX_CONCURRENT_CHECKS", default_value_t = 8)]
    pub concurrency: usize,
    /// Cluster connection.
    #[command(flatten)]
    pub kube: KubeFlags,
}

/// `explain` flags.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The pod.
    pub pod: String,
    /// Namespace (default: the context's namespace).
    #[arg(short = 'n', long, env = "IMAGEDRIFT_NAMESPACE")]
    pub namespace: Option<String>,
    /// Configuration file; only its `registries:` section is used.
    #[arg(long, env = "IMAGEDRIFT_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Cluster connection.
    #[command(flatten)]
    pub kube: KubeFlags,
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("imagedrift: cannot start the async runtime: {e}");
            ExitCode::from(2)
        })
}

fn quiet_logs() {
    init_tracing(&Log {
        filter: "warn".into(),
        ..Log::default()
    });
}

/// Runs `scan`: exit 0 when nothing is stale, 1 when something is, 2 on error.
pub fn scan(args: ScanArgs) -> ExitCode {
    quiet_logs();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        let client = kube_client(&args.kube).await?;
        let namespace = match (args.all_namespaces, &args.namespace) {
            (true, _) => None,
            (false, Some(ns)) => Some(ns.clone()),
            (false, None) => Some(client.default_namespace().to_string()),
        };
        let scope = Scope {
            namespace,
            selector: args.selector.clone(),
            pod: None,
        };
        let registry = registry_from(args.config.as_deref())?;
        anyhow::Ok(collect(client, &registry, &Anonymous, &scope, args.concurrency).await?)
    });
    match result {
        Ok(rows) => {
            let text = match args.output {
                Format::Table => output::table(&rows, false),
                Format::Wide => output::table(&rows, true),
                Format::Json => output::json(&rows),
            };
            println!("{}", text.trim_end());
            ExitCode::from(exit_code(&rows))
        }
        Err(e) => {
            eprintln!("imagedrift scan: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs `explain`: exit codes as for `scan`.
pub fn explain(args: ExplainArgs) -> ExitCode {
    quiet_logs();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        let client = kube_client(&args.kube).await?;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let scope = Scope {
            namespace: Some(namespace),
            selector: None,
            pod: Some(args.pod.clone()),
        };
        let registry = registry_from(args.config.as_deref())?;
        anyhow::Ok(collect(client, &registry, &Anonymous, &scope, 8).await?)
    });
    match result {
        Ok(rows) => {
            print!("{}", output::explain(&rows));
            ExitCode::from(exit_code(&rows))
        }
        Err(e) => {
            eprintln!("imagedrift explain: {e:#}");
            ExitCode::from(2)
        }
    }
}
