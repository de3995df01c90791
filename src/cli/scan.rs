//! `imagedrift scan` and `imagedrift explain`: one-shot, same code path as
//! the controller (lists instead of watches).

use super::{init_tracing, kube_client, oneshot_setup};
use imagedrift::config::{KubeFlags, Log};
use imagedrift::controller::oneshot::{Scope, collect, exit_code};
use imagedrift::controller::output;
use imagedrift::controller::reconcile::Row;
use imagedrift::controller::secrets::{Anonymous, ApiSecrets, KeyringParser, SecretCredentials};
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
    /// Configuration file; its `registries:` (mirrors, TLS, the credentials
    /// file) and `pullSecrets:` sections are used.
    #[arg(long, env = "IMAGEDRIFT_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Read pods' imagePullSecrets (by name, with your credentials) to
    /// resolve private images as kubelet does. Key: pullSecrets.enabled.
    #[arg(long, env = "IMAGEDRIFT_READ_PULL_SECRETS")]
    pub read_pull_secrets: bool,
    /// Plugins and your docker config.
    #[command(flatten)]
    pub credentials: imagedrift::credentials::CliCredentialFlags,
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
    /// Configuration file; its `registries:` and `pullSecrets:` sections are used.
    #[arg(long, env = "IMAGEDRIFT_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Read the pod's imagePullSecrets, as for `scan`. Key: pullSecrets.enabled.
    #[arg(long, env = "IMAGEDRIFT_READ_PULL_SECRETS")]
    pub read_pull_secrets: bool,
    /// Plugins and your docker config.
    #[command(flatten)]
    pub credentials: imagedrift::credentials::CliCredentialFlags,
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

/// Lists and judges with the pods' pull secrets when asked, else anonymously
/// (plus the registries' own credentials file either way).
async fn collect_with(
    client: kube::Client,
    setup: &super::OneShotSetup,
    scope: &Scope,
    concurrency: usize,
) -> anyhow::Result<Vec<Row>> {
    let registry = &setup.registry;
    Ok(match setup.pull_secrets {
        Some(ttl) => {
            let creds = SecretCredentials::new(ApiSecrets(client.clone()), KeyringParser, ttl);
            collect(client, registry, &creds, scope, concurrency).await?
        }
        None => collect(client, registry, &Anonymous, scope, concurrency).await?,
    })
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
        let setup = oneshot_setup(
            args.config.as_deref(),
            args.read_pull_secrets,
            &args.credentials,
        )?;
        collect_with(client, &setup, &scope, args.concurrency).await
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
        let setup = oneshot_setup(
            args.config.as_deref(),
            args.read_pull_secrets,
            &args.credentials,
        )?;
        collect_with(client, &setup, &scope, 8).await
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

#[cfg(test)]
mod tests {
    use super::super::oneshot_setup;
    use std::time::Duration;

    #[test]
    fn pull_secrets_are_read_when_the_flag_or_the_config_says_so() {
        assert_eq!(
            oneshot_setup(None, false, &Default::default())
                .unwrap()
                .pull_secrets,
            None
        );
        assert_eq!(
            oneshot_setup(None, true, &Default::default())
                .unwrap()
                .pull_secrets,
            Some(Duration::from_secs(300))
        );
        let dir = std::env::temp_dir().join(format!("imagedrift-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        std::fs::write(&path, "pullSecrets:\n  enabled: true\n  cacheTtl: 1m\n").unwrap();
        let got = oneshot_setup(Some(&path), false, &Default::default())
            .unwrap()
            .pull_secrets;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, Some(Duration::from_secs(60)));
    }
}
