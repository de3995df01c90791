//! kubelet credential-provider plugins, with kubelet's semantics
//! (`pkg/credentialprovider/plugin`): the `kubelet.config.k8s.io/v1`
//! `CredentialProviderConfig` file, `matchImages` globs (the keyring's
//! rules), the `credentialprovider.kubelet.k8s.io/v1` request/response over
//! stdin/stdout, and the answer cached by its `cacheKeyType` (Image,
//! Registry, Global) for its `cacheDuration` (else `defaultCacheDuration`).
//!
//! One exec in flight per cache key: until a provider has answered once its
//! cache key type is unknown, so its first exec runs alone; afterwards
//! lookups queue per key of the type it last answered with, and re-read the
//! cache when their turn comes. A failed exec is remembered per registry
//! host for `registries.defaults.failureTtl`, so a broken plugin is
//! not run once per check.

use super::exec::{self, ExecError};
use super::{Counters, CredentialsError};
use crate::facts::{Credential, FailureCategory, LookupFailure};
use crate::keyring::Keyring;
use crate::reference::ImageRef;
use crate::registry::Clock;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Plugin protocol versions kubelet speaks (the same JSON shape).
const PLUGIN_API_VERSIONS: [&str; 3] = [
    "credentialprovider.kubelet.k8s.io/v1",
    "credentialprovider.kubelet.k8s.io/v1beta1",
    "credentialprovider.kubelet.k8s.io/v1alpha1",
];
/// Config file versions kubelet reads.
const CONFIG_API_VERSIONS: [&str; 3] = [
    "kubelet.config.k8s.io/v1",
    "kubelet.config.k8s.io/v1beta1",
    "kubelet.config.k8s.io/v1alpha1",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileConfig {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    providers: Vec<ProviderSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProviderSpec {
    #[serde(default)]
    name: String,
    #[serde(default)]
    match_images: Vec<String>,
    default_cache_duration: Option<String>,
    api_version: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<EnvVar>,
    token_attributes: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvVar {
    name: String,
    #[serde(default)]
    value: String,
}

/// How a plugin's answer is shared (the response's `cacheKeyType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheKeyType {
    /// Only for the image asked about.
    Image,
    /// For every image of the image's registry host.
    Registry,
    /// For every image the provider matches.
    Global,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    kind: Option<String>,
    api_version: Option<String>,
    cache_key_type: Option<String>,
    cache_duration: Option<String>,
    #[serde(default)]
    auth: BTreeMap<String, AuthConfig>,
}

#[derive(Deserialize)]
struct AuthConfig {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// One configured plugin and its cache.
pub struct Provider {
    /// The provider's name (also its binary's name in the bin dir).
    pub name: String,
    match_images: Vec<String>,
    default_cache_duration: Duration,
    api_version: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    binary: PathBuf,
    /// cache key → (credentials by pattern, expiry)
    cache: Mutex<HashMap<String, (Keyring, Instant)>>,
    /// registry host → (failure, expiry)
    failures: Mutex<HashMap<String, (LookupFailure, Instant)>>,
    /// The cache key type of the last answer; `None` before the first.
    learned: Mutex<Option<CacheKeyType>>,
    /// One lock per flight key: lookups of one key wait for each other.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Every provider of one config file, in file order.
pub struct Providers {
    /// The providers.
    pub list: Vec<Provider>,
    timeout: Duration,
    failure_ttl: Duration,
}

fn bad(path: &Path, key: impl Into<String>, problem: impl Into<String>) -> CredentialsError {
    CredentialsError::ProviderConfig {
        path: path.to_path_buf(),
        key: key.into(),
        problem: problem.into(),
    }
}

/// A `matchImages` entry as kubelet validates it: no scheme-only or empty
/// pattern, globs only in host labels.
fn check_pattern(p: &str) -> Result<(), String> {
    let rest = p
        .strip_prefix("https://")
        .or_else(|| p.strip_prefix("http://"))
        .unwrap_or(p);
    if rest.is_empty() {
        return Err("is empty".into());
    }
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    if hostport.is_empty() {
        return Err("has no host".into());
    }
    let port = hostport
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(_, r)| r.trim_start_matches(':'))
        .or_else(|| hostport.rsplit_once(':').map(|(_, p)| p))
        .unwrap_or("");
    if port.contains(['*', '?', '[']) || path.contains(['*', '?', '[']) {
        return Err(
            "has a glob outside the host (kubelet allows globs only in host labels)".into(),
        );
    }
    Ok(())
}

impl Providers {
    /// Reads and validates a `CredentialProviderConfig` (YAML or JSON);
    /// every provider's binary must be in `bin_dir`.
    pub fn load(
        path: &Path,
        bin_dir: &Path,
        timeout: Duration,
        failure_ttl: Duration,
    ) -> Result<Providers, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|e| CredentialsError::Unreadable {
            what: "credential provider config".into(),
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Providers::parse(&text, path, bin_dir, timeout, failure_ttl)
    }

    /// [`Providers::load`] on text already read (`path` names it).
    pub fn parse(
        text: &str,
        path: &Path,
        bin_dir: &Path,
        timeout: Duration,
        failure_ttl: Duration,
    ) -> Result<Providers, CredentialsError> {
        let file: FileConfig =
            serde_saphyr::from_str(text).map_err(|e| bad(path, "", e.to_string()))?;
        match file.api_version.as_deref() {
            Some(v) if CONFIG_API_VERSIONS.contains(&v) => {}
            other => {
                return Err(bad(
                    path,
                    "apiVersion",
                    format!(
                        "{other:?} is not a CredentialProviderConfig version; use kubelet.config.k8s.io/v1"
                    ),
                ));
            }
        }
        if file.kind.as_deref() != Some("CredentialProviderConfig") {
            return Err(bad(
                path,
                "kind",
                format!("{:?}; use CredentialProviderConfig", file.kind),
            ));
        }
        let mut list: Vec<Provider> = Vec::new();
        for (i, p) in file.providers.into_iter().enumerate() {
            let key = |f: &str| format!("providers[{i}] ({}).{f}", p.name);
            if p.name.is_empty() || p.name == "." || p.name == ".." || p.name.contains(['/', '\\'])
            {
                return Err(bad(
                    path,
                    format!("providers[{i}].name"),
                    format!("{:?} must be the plugin's file name in the bin dir", p.name),
                ));
            }
            if list.iter().any(|q| q.name == p.name) {
                return Err(bad(path, key("name"), "is used by two providers"));
            }
            if p.token_attributes.is_some() {
                return Err(bad(
                    path,
                    key("tokenAttributes"),
                    "service-account-token mode (kubelet 1.33+) is not supported: imagedrift would have to \
                     mint a token for every pod's ServiceAccount (create serviceaccounts/token in every \
                     namespace); give imagedrift's own ServiceAccount read access to the registry \
                     (IRSA, GKE or Azure Workload Identity) and remove tokenAttributes",
                ));
            }
            if p.match_images.is_empty() {
                return Err(bad(
                    path,
                    key("matchImages"),
                    "is empty; list the images this plugin serves",
                ));
            }
            for m in &p.match_images {
                check_pattern(m)
                    .map_err(|why| bad(path, key("matchImages"), format!("{m:?} {why}")))?;
            }
            let default_cache_duration = match &p.default_cache_duration {
                None => {
                    return Err(bad(
                        path,
                        key("defaultCacheDuration"),
                        "is required (e.g. 12h)",
                    ));
                }
                Some(d) => crate::config::parse_duration(d)
                    .map_err(|e| bad(path, key("defaultCacheDuration"), e))?,
            };
            let api_version = match p.api_version.as_deref() {
                Some(v) if PLUGIN_API_VERSIONS.contains(&v) => v.to_string(),
                other => {
                    return Err(bad(
                        path,
                        key("apiVersion"),
                        format!("{other:?}; use credentialprovider.kubelet.k8s.io/v1"),
                    ));
                }
            };
            let binary = bin_dir.join(&p.name);
            if !binary.is_file() {
                return Err(bad(
                    path,
                    key("name"),
                    format!(
                        "no plugin binary {} (registries.credentialProviders.binDir, --image-credential-provider-bin-dir)",
                        binary.display()
                    ),
                ));
            }
            list.push(Provider {
                name: p.name,
                match_images: p.match_images,
                default_cache_duration,
                api_version,
                args: p.args,
                env: p.env.into_iter().map(|e| (e.name, e.value)).collect(),
                binary,
                cache: Mutex::new(HashMap::new()),
                failures: Mutex::new(HashMap::new()),
                learned: Mutex::new(None),
                flights: Mutex::new(HashMap::new()),
            });
        }
        Ok(Providers {
            list,
            timeout,
            failure_ttl,
        })
    }

    /// The providers whose `matchImages` match `image`, in file order.
    pub fn matching<'a>(&'a self, image: &'a ImageRef) -> impl Iterator<Item = &'a Provider> + 'a {
        let name = image.name();
        self.list.iter().filter(move |p| {
            p.match_images
                .iter()
                .any(|m| crate::keyring::pattern_matches(m, &name))
        })
    }

    /// The credentials every matching provider gives for `image`, and the
    /// failures of those that gave none.
    pub async fn credentials(
        &self,
        image: &ImageRef,
        clock: &dyn Clock,
        counters: &Counters,
    ) -> (Vec<Credential>, Vec<LookupFailure>) {
        let mut creds = Vec::new();
        let mut failures = Vec::new();
        for p in self.matching(image) {
            match p.lookup(image, self, clock, counters).await {
                Ok(mut c) => creds.append(&mut c),
                Err(f) => failures.push(f),
            }
        }
        (creds, failures)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Provider {
    fn cached(&self, image: &ImageRef, now: Instant) -> Option<Vec<Credential>> {
        let cache = lock(&self.cache);
        let keys = [
            format!("image:{image}"),
            format!("registry:{}", image.domain()),
            "global".to_string(),
        ];
        keys.iter()
            .filter_map(|k| cache.get(k))
            .find(|(_, exp)| *exp > now)
            .map(|(ring, _)| ring.lookup(image))
    }

    fn failed(&self, image: &ImageRef, now: Instant) -> Option<LookupFailure> {
        lock(&self.failures)
            .get(image.domain())
            .filter(|(_, exp)| *exp > now)
            .map(|(f, _)| f.clone())
    }

    fn flight(&self, image: &ImageRef) -> Arc<tokio::sync::Mutex<()>> {
        let key = match *lock(&self.learned) {
            None | Some(CacheKeyType::Global) => "global".to_string(),
            Some(CacheKeyType::Registry) => format!("registry:{}", image.domain()),
            Some(CacheKeyType::Image) => format!("image:{image}"),
        };
        let mut flights = lock(&self.flights);
        if flights.len() > 4096 {
            flights.retain(|_, m| Arc::strong_count(m) > 1);
        }
        flights.entry(key).or_default().clone()
    }

    async fn lookup(
        &self,
        image: &ImageRef,
        all: &Providers,
        clock: &dyn Clock,
        counters: &Counters,
    ) -> Result<Vec<Credential>, LookupFailure> {
        let now = clock.now();
        if let Some(c) = self.cached(image, now) {
            return Ok(c);
        }
        if let Some(f) = self.failed(image, now) {
            return Err(f);
        }
        let flight = self.flight(image);
        let _turn = flight.lock().await;
        // Whoever held the key before us may have answered for us too.
        let now = clock.now();
        if let Some(c) = self.cached(image, now) {
            return Ok(c);
        }
        if let Some(f) = self.failed(image, now) {
            return Err(f);
        }
        counters.execs.with_label_values(&[&self.name]).inc();
        match self.exec(image, all.timeout).await {
            Ok((ring, key_type, ttl)) => {
                *lock(&self.learned) = Some(key_type);
                let creds = ring.lookup(image);
                if !ttl.is_zero() {
                    let key = match key_type {
                        CacheKeyType::Image => format!("image:{image}"),
                        CacheKeyType::Registry => format!("registry:{}", image.domain()),
                        CacheKeyType::Global => "global".to_string(),
                    };
                    let exp = crate::registry::until(clock.now(), ttl);
                    let mut cache = lock(&self.cache);
                    if cache.len() > 4096 {
                        cache.retain(|_, (_, e)| *e > now);
                    }
                    cache.insert(key, (ring, exp));
                }
                Ok(creds)
            }
            Err(detail) => {
                counters.failures.with_label_values(&[&self.name]).inc();
                tracing::warn!(provider = %self.name, image = %image, error = %detail, "credential provider plugin failed");
                let f = LookupFailure::new(
                    FailureCategory::CredentialProvider,
                    format!("credential provider {}: {detail}", self.name),
                );
                let exp = crate::registry::until(clock.now(), all.failure_ttl);
                lock(&self.failures).insert(image.domain().to_string(), (f.clone(), exp));
                Err(f)
            }
        }
    }

    /// Runs the plugin once for `image`: its credentials as a keyring, the
    /// cache key type and how long to keep them.
    async fn exec(
        &self,
        image: &ImageRef,
        timeout: Duration,
    ) -> Result<(Keyring, CacheKeyType, Duration), String> {
        let request = serde_json::json!({
            "kind": "CredentialProviderRequest",
            "apiVersion": self.api_version,
            "image": image.to_string(),
        });
        let stdout = exec::run(
            &self.binary,
            &self.args,
            &self.env,
            request.to_string().as_bytes(),
            timeout,
        )
        .await
        .map_err(|e| match e {
            ExecError::Exit { status, stderr, .. } => {
                format!(
                    "plugin {} exited with {status}: {stderr}",
                    self.binary.display()
                )
            }
            other => other.to_string(),
        })?;
        let what = format!("plugin {}", self.binary.display());
        let r: Response = serde_json::from_slice(&stdout).map_err(|e| {
            format!(
                "{what} printed no valid CredentialProviderResponse ({e}; output begins {:?})",
                exec::first_line(&stdout)
            )
        })?;
        if r.kind.as_deref() != Some("CredentialProviderResponse") {
            return Err(format!(
                "{what} answered kind {:?}, not CredentialProviderResponse",
                r.kind
            ));
        }
        if r.api_version.as_deref() != Some(self.api_version.as_str()) {
            return Err(format!(
                "{what} answered apiVersion {:?}, but was asked in {} (providers[].apiVersion)",
                r.api_version, self.api_version
            ));
        }
        let key_type = match r.cache_key_type.as_deref() {
            Some("Image") => CacheKeyType::Image,
            Some("Registry") => CacheKeyType::Registry,
            Some("Global") => CacheKeyType::Global,
            other => {
                return Err(format!(
                    "{what} answered cacheKeyType {other:?}; expected Image, Registry or Global"
                ));
            }
        };
        let ttl = match r.cache_duration.as_deref() {
            None | Some("") => self.default_cache_duration,
            Some(d) => crate::config::parse_duration(d)
                .map_err(|e| format!("{what} answered cacheDuration {d:?}: {e}"))?,
        };
        let auths: serde_json::Map<String, serde_json::Value> = r
            .auth
            .into_iter()
            .map(|(k, a)| {
                (
                    k,
                    serde_json::json!({"username": a.username, "password": a.password}),
                )
            })
            .collect();
        let doc = serde_json::json!({ "auths": auths }).to_string();
        let ring = Keyring::from_docker_config_json(
            doc.as_bytes(),
            &format!("credential provider {}", self.name),
        )
        .map_err(|e| format!("{what}: {e}"))?;
        Ok((ring, key_type, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str, bin: &Path) -> Result<Providers, String> {
        Providers::parse(
            yaml,
            Path::new("/etc/cp.yaml"),
            bin,
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn config_errors_name_the_field() {
        let dir = std::env::temp_dir().join(format!("imagedrift-cp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ecr"), "#!/bin/sh\n").unwrap();
        let head =
            "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n";
        let ok = "  - name: ecr\n    matchImages: [\"*.dkr.ecr.*.amazonaws.com\"]\n    defaultCacheDuration: 12h\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n";
        let p = parse(&format!("{head}{ok}"), &dir).unwrap();
        assert_eq!(p.list.len(), 1);
        assert_eq!(p.list[0].default_cache_duration, Duration::from_secs(43200));
        let cases = [
            (
                format!("{head}{ok}    tokenAttributes:\n      serviceAccountTokenAudience: x\n"),
                "tokenAttributes",
            ),
            (
                format!("{head}{}", ok.replace("12h", "soon")),
                "defaultCacheDuration",
            ),
            (
                format!(
                    "{head}{}",
                    ok.replace("    defaultCacheDuration: 12h\n", "")
                ),
                "defaultCacheDuration: is required",
            ),
            (
                format!("{head}{}", ok.replace("/v1\n", "/v2\n")),
                "apiVersion",
            ),
            (
                format!("{head}{}", ok.replace("name: ecr", "name: gcr")),
                "no plugin binary",
            ),
            (
                format!("{head}{}", ok.replace("name: ecr", "name: ../ecr")),
                "providers[0].name",
            ),
            (format!("{head}{ok}{ok}"), "used by two"),
            (
                format!(
                    "{head}{}",
                    ok.replace("\"*.dkr.ecr.*.amazonaws.com\"", "\"r.example/*\"")
                ),
                "glob outside",
            ),
            (
                format!(
                    "{head}{}",
                    ok.replace("[\"*.dkr.ecr.*.amazonaws.com\"]", "[]")
                ),
                "matchImages",
            ),
            (format!("{head}{ok}    extra: 1\n"), "extra"),
            (head.replace("kubelet.config.k8s.io/v1", "v1"), "apiVersion"),
        ];
        for (yaml, want) in cases {
            let e = parse(&yaml, &dir)
                .err()
                .unwrap_or_else(|| panic!("accepted {yaml}"));
            assert!(
                e.contains("/etc/cp.yaml") && e.contains(want),
                "{want}: {e}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn patterns() {
        for ok in [
            "*.dkr.ecr.*.amazonaws.com",
            "*.azurecr.io",
            "gcr.io",
            "*.pkg.dev",
            "r.example:5000/team",
        ] {
            assert_eq!(check_pattern(ok), Ok(()), "{ok}");
        }
        for bad in ["", "https://", "r.example:*", "r.example/te*m"] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
    }
}
