//! The binary's commands: `run` (the controller), `scan` and `explain`.

pub mod run;
pub mod scan;

use imagedrift::config::{Config, KubeFlags, Log, LogFormat};
use imagedrift::registry::Resolver;

/// A kube client, found as kubectl finds its config: `--kubeconfig`, else
/// `$KUBECONFIG`, else `~/.kube/config`, else the in-cluster service account.
pub async fn kube_client(flags: &KubeFlags) -> anyhow::Result<kube::Client> {
    use anyhow::Context as _;
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let opts = KubeConfigOptions {
        context: flags.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &flags.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .context("loading --kubeconfig")?
        }
        None if flags.context.is_some() => kube::Config::from_kubeconfig(&opts)
            .await
            .context("loading the kubeconfig context given by --context")?,
        None => kube::Config::infer()
            .await
            .context("finding a kubeconfig or in-cluster config")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// Starts logging: `$RUST_LOG` if set, else the configured filter.
pub fn init_tracing(log: &Log) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// What one-shot commands take from `--config` (defaults without one).
pub struct OneShotSetup {
    /// The registry client (`registries:`); its metrics go to a throwaway registry.
    pub registry: Resolver,
    /// How long pull secrets are reused, when they are read (`pullSecrets:`
    /// or `--read-pull-secrets`); `None` means anonymous.
    pub pull_secrets: Option<std::time::Duration>,
}

/// Reads `--config` for a one-shot command: the `registries:` and
/// `pullSecrets:` sections; `read_pull_secrets` (the flag) turns reading
/// pull secrets on as `pullSecrets.enabled` does.
pub fn oneshot_setup(
    config: Option<&std::path::Path>,
    read_pull_secrets: bool,
) -> anyhow::Result<OneShotSetup> {
    let c = match config {
        Some(path) => {
            let c = Config::from_file(path)?;
            c.validate()?;
            c
        }
        None => Config::default(),
    };
    let pull_secrets =
        (read_pull_secrets || c.pull_secrets.enabled).then_some(c.pull_secrets.cache_ttl);
    Ok(OneShotSetup {
        registry: Resolver::new(c.registries, &prometheus::Registry::new())?,
        pull_secrets,
    })
}
