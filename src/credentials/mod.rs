//! Registry credentials the way nodes have them, for the resolver: kubelet
//! credential-provider plugins ([`provider`]), docker config files with
//! `auths`, `credsStore` and `credHelpers` ([`docker_config`]), re-read when
//! they change on disk ([`reload`]). The resolver tries, as kubelet does,
//! the pod's pull secrets, then the plugins' credentials, then the
//! controller's own credentials file(s), then anonymous.

pub mod docker_config;
mod exec;
pub mod provider;
pub mod reload;

use crate::facts::{Credential, LookupFailure};
use crate::reference::ImageRef;
use crate::registry::Clock;
use docker_config::DockerConfig;
use prometheus::IntCounterVec;
use provider::Providers;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Why node-style credentials can't be set up. Names the file and the
/// field, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file can't be read.
    #[error("{what}: cannot read {path}: {reason}")]
    Unreadable {
        /// Which setting named it (`registries.credentialsFile`…).
        what: String,
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The credential provider config is invalid.
    #[error("credential provider config {path}: {key}{}{problem}", if .key.is_empty() { "" } else { ": " })]
    ProviderConfig {
        /// The file.
        path: PathBuf,
        /// The field (`providers[0] (ecr).matchImages`).
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A docker config file is invalid.
    #[error("docker config {path}: {problem}")]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// An `auths` entry is invalid.
    #[error("{0}")]
    Keyring(crate::keyring::KeyringError),
    /// A setting is inconsistent.
    #[error("registries.{key}: {problem}")]
    Setting {
        /// Dotted key under `registries`.
        key: &'static str,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// The `registries.credentialProviders` section.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CredentialProvidersConfig {
    /// kubelet's `CredentialProviderConfig` file (`--image-credential-provider-config`).
    pub config: Option<PathBuf>,
    /// Directory of the plugin binaries (`--image-credential-provider-bin-dir`).
    pub bin_dir: Option<PathBuf>,
    /// How long one plugin or credential-helper run may take before it is killed.
    #[serde(with = "crate::config::duration_str")]
    pub timeout: Duration,
}

impl Default for CredentialProvidersConfig {
    fn default() -> Self {
        CredentialProvidersConfig {
            config: None,
            bin_dir: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl CredentialProvidersConfig {
    /// Checks the section; the error names the key and the fix.
    pub fn validate(&self) -> Result<(), CredentialsError> {
        let setting = |key, problem: &str| {
            Err(CredentialsError::Setting {
                key,
                problem: problem.to_string(),
            })
        };
        match (&self.config, &self.bin_dir) {
            (Some(_), None) => setting(
                "credentialProviders.binDir",
                "is required with credentialProviders.config; name the directory of the plugin binaries (--image-credential-provider-bin-dir)",
            ),
            (None, Some(_)) => setting(
                "credentialProviders.config",
                "is required with credentialProviders.binDir; name kubelet's CredentialProviderConfig file (--image-credential-provider-config)",
            ),
            _ if self.timeout.is_zero() || self.timeout > Duration::from_secs(600) => setting(
                "credentialProviders.timeout",
                "must be between 1s and 10m (e.g. 30s)",
            ),
            _ => Ok(()),
        }
    }
}

/// `--image-credential-provider-config` and `--image-credential-provider-bin-dir`,
/// named as kubelet's flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProviderFlags {
    /// kubelet CredentialProviderConfig file: run its plugins for the images
    /// they match. Key: registries.credentialProviders.config.
    #[arg(
        long = "image-credential-provider-config",
        env = "IMAGEDRIFT_IMAGE_CREDENTIAL_PROVIDER_CONFIG"
    )]
    pub image_credential_provider_config: Option<PathBuf>,
    /// Directory of the credential provider plugin binaries. Key:
    /// registries.credentialProviders.binDir.
    #[arg(
        long = "image-credential-provider-bin-dir",
        env = "IMAGEDRIFT_IMAGE_CREDENTIAL_PROVIDER_BIN_DIR"
    )]
    pub image_credential_provider_bin_dir: Option<PathBuf>,
}

impl ProviderFlags {
    /// Overrides the configuration's keys with the flags given.
    pub fn apply(&self, r: &mut crate::registry::RegistriesConfig) {
        if let Some(c) = &self.image_credential_provider_config {
            r.credential_providers.config = Some(c.clone());
        }
        if let Some(d) = &self.image_credential_provider_bin_dir {
            r.credential_providers.bin_dir = Some(d.clone());
        }
    }
}

/// Credential flags of the one-shot commands (`scan`, `explain`, `resolve`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CliCredentialFlags {
    /// Docker config.json with credentials (`auths`, `credsStore`,
    /// `credHelpers`), tried after the config's credentialsFile.
    #[arg(long, env = "IMAGEDRIFT_CREDS")]
    pub creds: Option<PathBuf>,
    /// Plugins.
    #[command(flatten)]
    pub providers: ProviderFlags,
    /// Don't read $DOCKER_CONFIG/config.json or ~/.docker/config.json.
    #[arg(long, env = "IMAGEDRIFT_NO_DOCKER_CONFIG")]
    pub no_docker_config: bool,
}

/// `--creds PATH` names a file that can't be read.
#[derive(Debug, thiserror::Error)]
#[error("--creds {}: {source}", path.display())]
pub struct CredsFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

impl CliCredentialFlags {
    /// Applies the flags: `--creds`, then (unless `--no-docker-config`)
    /// your docker config when it exists, both tried after the configured
    /// credentials file.
    pub fn apply(&self, r: &mut crate::registry::RegistriesConfig) -> Result<(), CredsFileError> {
        self.providers.apply(r);
        if let Some(path) = &self.creds {
            std::fs::metadata(path).map_err(|source| CredsFileError {
                path: path.clone(),
                source,
            })?;
            r.more_credentials_files.push(path.clone());
        }
        if !self.no_docker_config
            && let Some(p) = default_docker_config()
            && p.is_file()
        {
            r.more_credentials_files.push(p);
        }
        Ok(())
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as the docker
/// CLI, crane and skopeo find it.
pub fn default_docker_config() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".docker").join("config.json")),
    }
}

/// Exec counters by provider (plugin name, or `docker-credential-<helper>`),
/// registered by the registry's metrics.
#[derive(Clone)]
pub struct Counters {
    /// Runs of a plugin or helper.
    pub execs: IntCounterVec,
    /// Runs that gave no answer.
    pub failures: IntCounterVec,
}

/// A file re-read when its content changes.
struct Watched<T> {
    path: PathBuf,
    /// Which setting named it, for messages.
    what: String,
    current: RwLock<(Arc<T>, u64)>,
}

impl<T> Watched<T> {
    fn get(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }
}

fn content_hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, CredentialsError> {
    std::fs::read(path).map_err(|e| CredentialsError::Unreadable {
        what: what.to_string(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// What the node-style sources hold for one image.
#[derive(Debug, Default)]
pub struct Found {
    /// Credentials from the plugins, in provider order.
    pub plugins: Vec<Credential>,
    /// Credentials from the docker config files, in file order.
    pub files: Vec<Credential>,
    /// Plugins or helpers that matched and failed.
    pub failures: Vec<LookupFailure>,
    /// Names of the plugins whose `matchImages` matched.
    pub plugins_matched: Vec<String>,
}

/// The plugins and docker config files, shared by every lookup and
/// swapped in place when their files change.
pub struct NodeCredentials {
    providers: Option<(Watched<Providers>, PathBuf)>,
    files: Vec<(Watched<DockerConfig>, bool)>,
    timeout: Duration,
    failure_ttl: Duration,
    counters: Counters,
    clock: Arc<dyn Clock>,
}

impl NodeCredentials {
    /// Reads every configured file; any problem stops start-up.
    pub fn new(
        c: &crate::registry::RegistriesConfig,
        clock: Arc<dyn Clock>,
        counters: Counters,
        failure_ttl: Duration,
    ) -> Result<NodeCredentials, CredentialsError> {
        c.credential_providers.validate()?;
        let timeout = c.credential_providers.timeout;
        let mut node = NodeCredentials {
            providers: None,
            files: Vec::new(),
            timeout,
            failure_ttl,
            counters,
            clock,
        };
        if let (Some(cfg), Some(bin)) = (
            &c.credential_providers.config,
            &c.credential_providers.bin_dir,
        ) {
            let what = "registries.credentialProviders.config".to_string();
            let bytes = read(&what, cfg)?;
            let p = node.parse_providers(&bytes, cfg, bin)?;
            node.providers = Some((
                Watched {
                    path: cfg.clone(),
                    what,
                    current: RwLock::new((Arc::new(p), content_hash(&bytes))),
                },
                bin.clone(),
            ));
        }
        let named = c
            .credentials_file
            .iter()
            .map(|p| (p, "registries.credentialsFile".to_string(), true));
        let more = c
            .more_credentials_files
            .iter()
            .map(|p| (p, format!("docker config {}", p.display()), false));
        for (path, what, require) in named.chain(more) {
            let bytes = read(&what, path)?;
            let d = node.parse_docker(&bytes, path, &what, require)?;
            node.files.push((
                Watched {
                    path: path.clone(),
                    what,
                    current: RwLock::new((Arc::new(d), content_hash(&bytes))),
                },
                require,
            ));
        }
        Ok(node)
    }

    fn parse_providers(
        &self,
        bytes: &[u8],
        path: &Path,
        bin: &Path,
    ) -> Result<Providers, CredentialsError> {
        let text = String::from_utf8_lossy(bytes);
        Providers::parse(&text, path, bin, self.timeout, self.failure_ttl)
    }

    fn parse_docker(
        &self,
        bytes: &[u8],
        path: &Path,
        what: &str,
        require: bool,
    ) -> Result<DockerConfig, CredentialsError> {
        let origin = if what.starts_with("registries.") {
            format!("credentials file {}", path.display())
        } else {
            what.to_string()
        };
        DockerConfig::parse(
            bytes,
            path,
            &origin,
            require,
            self.timeout,
            self.failure_ttl,
        )
    }

    /// Whether any plugin or file is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_none() && self.files.is_empty()
    }

    /// The files watched for changes.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.providers.iter().map(|(w, _)| w.path.clone()).collect();
        v.extend(self.files.iter().map(|(w, _)| w.path.clone()));
        v
    }

    /// The plugins' then the files' credentials for `image`.
    pub async fn for_image(&self, image: &ImageRef) -> Found {
        let mut found = Found::default();
        if let Some((w, _)) = &self.providers {
            let providers = w.get();
            found.plugins_matched = providers.matching(image).map(|p| p.name.clone()).collect();
            if !found.plugins_matched.is_empty() {
                let (creds, failures) = providers
                    .credentials(image, &*self.clock, &self.counters)
                    .await;
                found.plugins = creds;
                found.failures = failures;
            }
        }
        for (w, _) in &self.files {
            let d = w.get();
            if !d.may_match(image) {
                continue;
            }
            let (creds, failure) = d.credentials(image, &*self.clock, &self.counters).await;
            for c in creds {
                if !found.files.contains(&c) {
                    found.files.push(c);
                }
            }
            found.failures.extend(failure);
        }
        found
    }

    /// Re-reads every file whose content changed; a file that became
    /// unreadable or invalid keeps its previous content (and is logged).
    /// Returns what was reloaded, for logs and tests.
    pub fn reload(&self) -> Vec<PathBuf> {
        let mut done = Vec::new();
        if let Some((w, bin)) = &self.providers
            && let Some(bytes) = changed(w)
        {
            match self.parse_providers(&bytes, &w.path, bin) {
                Ok(p) => {
                    let n = p.list.len();
                    *w.current.write().unwrap_or_else(|e| e.into_inner()) =
                        (Arc::new(p), content_hash(&bytes));
                    tracing::info!(file = %w.path.display(), providers = n, "reloaded the credential provider config");
                    done.push(w.path.clone());
                }
                Err(e) => rejected(w, &bytes, &e),
            }
        }
        for (w, require) in &self.files {
            let Some(bytes) = changed(w) else { continue };
            match self.parse_docker(&bytes, &w.path, &w.what, *require) {
                Ok(d) => {
                    *w.current.write().unwrap_or_else(|e| e.into_inner()) =
                        (Arc::new(d), content_hash(&bytes));
                    tracing::info!(file = %w.path.display(), "reloaded the registry credentials file");
                    done.push(w.path.clone());
                }
                Err(e) => rejected(w, &bytes, &e),
            }
        }
        done
    }
}

/// The file's new content when it differs from what was last seen (read
/// through symlinks, so a ConfigMap or Secret swap counts). An unreadable
/// file is logged once per change and keeps the old content.
fn changed<T>(w: &Watched<T>) -> Option<Vec<u8>> {
    match std::fs::read(&w.path) {
        Ok(bytes) => {
            let seen = w.current.read().unwrap_or_else(|e| e.into_inner()).1;
            (content_hash(&bytes) != seen).then_some(bytes)
        }
        Err(e) => {
            let mut cur = w.current.write().unwrap_or_else(|e| e.into_inner());
            // u64::MAX marks "unreadable, already said so".
            if cur.1 != u64::MAX {
                tracing::error!(file = %w.path.display(), setting = %w.what, error = %e,
                    "cannot re-read credentials; keeping the previous ones");
                cur.1 = u64::MAX;
            }
            None
        }
    }
}

/// Logs a rejected new version once, and remembers it so it is not
/// re-parsed on every poll.
fn rejected<T>(w: &Watched<T>, bytes: &[u8], e: &CredentialsError) {
    tracing::error!(file = %w.path.display(), error = %e, "the changed file is invalid; keeping the previous credentials");
    w.current.write().unwrap_or_else(|e| e.into_inner()).1 = content_hash(bytes);
}
