//! The binary's commands: `run` (the controller), `scan` and `explain`.

pub mod run;
pub mod scan;

use imagedrift::config::{Config, KubeFlags, Log, LogFormat};
use imagedrift::registry::Resolver;

/// Makes ring the process's rustls crypto provider, before any client is
/// built. Both ring (kube's `ring` feature) and aws-lc-rs (reqwest's
/// `rustls` feature) are compiled in, so rustls cannot choose by itself and
/// building a kube client would panic; reqwest uses the installed one too.
pub fn install_crypto_provider() {
    // `Err` only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

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

/// Starts logging: `$RUST_LOG` if set, else the configured filter; plain
/// text (no colour codes) unless stderr is a terminal.
pub fn init_tracing(log: &Log) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a pod's stderr is a pipe, and escape
    // codes would end up in `kubectl logs` and log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
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
    credentials: &imagedrift::credentials::CliCredentialFlags,
) -> anyhow::Result<OneShotSetup> {
    let mut c = match config {
        Some(path) => {
            let c = Config::from_file(path)?;
            c.validate()?;
            c.check_files()?;
            c
        }
        None => Config::default(),
    };
    credentials.apply(&mut c.registries);
    let pull_secrets =
        (read_pull_secrets || c.pull_secrets.enabled).then_some(c.pull_secrets.cache_ttl);
    Ok(OneShotSetup {
        registry: Resolver::new(c.registries, &prometheus::Registry::new())?,
        pull_secrets,
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn kube_client_builds_once_a_crypto_provider_is_installed() {
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        // Panicked before ("Could not automatically determine the
        // process-level CryptoProvider"), as `imagedrift run` did at start.
        assert!(kube::Client::try_from(config).is_ok());
    }
}
