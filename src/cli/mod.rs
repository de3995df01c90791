//! The binary's commands: `run` (the controller), `scan` and `explain`.

pub mod run;
pub mod scan;

use imagedrift::config::{Config, KubeFlags, Log, LogFormat};
use imagedrift::registry::Resolver;

static VERBOSITY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets how many `-v` were given (0: only imagedrift's own warnings).
pub fn set_verbosity(n: u8) {
    VERBOSITY.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// How many `-v` were given.
pub fn verbosity() -> u8 {
    VERBOSITY.load(std::sync::atomic::Ordering::Relaxed)
}

/// Makes ring the process's rustls crypto provider, before any client is
/// built. Both ring (kube's `ring` feature) and aws-lc-rs (reqwest's
/// `rustls` feature) are compiled in, so rustls cannot choose by itself and
/// building a kube client would panic; reqwest uses the installed one too.
pub fn install_crypto_provider() {
    // `Err` only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Which cluster a command talks to, for messages: the API server's URL and
/// the kubeconfig context (none in-cluster).
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The API server's URL.
    pub server: String,
    /// The kubeconfig context, or `None` for the in-cluster service account.
    pub context: Option<String>,
}

impl std::fmt::Display for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.context {
            Some(c) => write!(
                f,
                "the Kubernetes API server at {} (context {c:?})",
                self.server
            ),
            None => write!(
                f,
                "the Kubernetes API server at {} (in-cluster service account)",
                self.server
            ),
        }
    }
}

/// An OS error without Rust's `(os error N)` suffix.
pub fn plain_os(s: &str) -> &str {
    s.find(" (os error").map_or(s, |i| &s[..i])
}

/// A kube client, found as kubectl finds its config: `--kubeconfig`, else
/// `$KUBECONFIG`, else `~/.kube/config`, else the in-cluster service account.
/// Errors say which paths were tried and how to point at one.
pub async fn kube_client(flags: &KubeFlags) -> anyhow::Result<(kube::Client, Cluster)> {
    use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
    let read = |path: &std::path::Path, how: &str| {
        Kubeconfig::read_from(path).map_err(|e| match e {
            KubeconfigError::ReadConfig(io, _) => anyhow::anyhow!(
                "cannot read the kubeconfig {} ({how}): {}",
                path.display(),
                plain_os(&io.to_string())
            ),
            other => anyhow::anyhow!(
                "the kubeconfig {} ({how}) is not valid: {other}",
                path.display()
            ),
        })
    };
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| std::path::PathBuf::from(h).join(".kube").join("config"));
    let env = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty());
    let kubeconfig = if let Some(path) = &flags.kubeconfig {
        Some(read(path, "--kubeconfig")?)
    } else if let Some(value) = &env {
        let mut merged: Option<Kubeconfig> = None;
        for path in std::env::split_paths(value) {
            // kubectl skips the files of $KUBECONFIG that don't exist.
            if !path.exists() {
                continue;
            }
            let kc = read(&path, "$KUBECONFIG")?;
            merged = Some(match merged {
                None => kc,
                Some(m) => m
                    .merge(kc)
                    .map_err(|e| anyhow::anyhow!("cannot merge the files of $KUBECONFIG: {e}"))?,
            });
        }
        if merged.is_none() {
            anyhow::bail!(
                "no kubeconfig found: none of the files in $KUBECONFIG ({}) exists; point KUBECONFIG or --kubeconfig at your cluster's kubeconfig",
                value.to_string_lossy()
            );
        }
        merged
    } else if let Some(path) = home.as_ref().filter(|p| p.exists()) {
        Some(read(path, "the default location")?)
    } else {
        None
    };
    let (config, context) = match kubeconfig {
        Some(kc) => {
            let context = flags.context.clone().or_else(|| kc.current_context.clone());
            if let Some(want) = &flags.context
                && !kc.contexts.iter().any(|c| &c.name == want)
            {
                let names: Vec<_> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
                anyhow::bail!(
                    "context {want:?} (--context) is not in the kubeconfig; its contexts are: {} (kubectl config get-contexts)",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                );
            }
            let opts = KubeConfigOptions {
                context: flags.context.clone(),
                ..KubeConfigOptions::default()
            };
            let config = kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| match &context {
                    Some(c) => anyhow::anyhow!("cannot use kubeconfig context {c:?}: {e}"),
                    None => anyhow::anyhow!(
                        "the kubeconfig names no current context: {e}; pick one with --context NAME (kubectl config get-contexts)"
                    ),
                })?;
            (config, context)
        }
        None => match kube::Config::incluster() {
            Ok(c) => (c, None),
            Err(_) => {
                let home = home.map_or("~/.kube/config ($HOME not set)".to_string(), |p| {
                    format!("{} (does not exist)", p.display())
                });
                anyhow::bail!(
                    "no kubeconfig found: tried --kubeconfig (not given), $KUBECONFIG (not set), {home}, and the in-cluster service account (KUBERNETES_SERVICE_HOST not set); point at one with --kubeconfig FILE or KUBECONFIG=FILE"
                );
            }
        },
    };
    let cluster = Cluster {
        server: config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string(),
        context,
    };
    let client = kube::Client::try_from(config)
        .map_err(|e| anyhow::anyhow!("cannot build a client for {cluster}: {e}"))?;
    Ok((client, cluster))
}

/// A failed API call in plain words: what failed, against which server and
/// context, and what to check, as kubectl says it.
pub fn kube_error(what: &str, e: &kube::Error, cluster: &Cluster) -> String {
    match e {
        kube::Error::Api(status) => {
            let hint = match status.code {
                401 => {
                    "; your credentials were refused: log in again or check the user of this context (kubectl auth whoami)"
                }
                403 => "; ask for the RBAC permission, or check it with kubectl auth can-i",
                _ => "",
            };
            format!(
                "{what}: {cluster} answered {} {}: {}{hint}",
                status.code, status.reason, status.message
            )
        }
        other => {
            // The innermost cause is the useful part ("Connection refused");
            // the layers above repeat "client error (Connect)".
            let mut inner: &dyn std::error::Error = other;
            while let Some(next) = inner.source() {
                inner = next;
            }
            format!(
                "{what}: cannot reach {cluster}: {}. Is the cluster running? Check --context / KUBECONFIG (kubectl config current-context)",
                plain_os(&inner.to_string())
            )
        }
    }
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

/// Runs `resolve`: prints what the tag points to; exit 2 on failure.
pub fn resolve(args: imagedrift::registry::cli::ResolveArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    scan::quiet_logs();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("imagedrift resolve: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(imagedrift::registry::cli::run(&args)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("imagedrift resolve: {e}");
            ExitCode::from(2)
        }
    }
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
    credentials.apply(&mut c.registries)?;
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
