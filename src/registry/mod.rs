//! The registry resolver: what a tag points to today and manifests by
//! digest, from real registries, cheaply (HEAD first, caches, one lookup in
//! flight per key) and safely (limits, timeouts, verified bodies), behind
//! [`crate::facts::Registry`]. SEMANTICS.md §2 is the rulebook.

mod cache;
pub mod cli;
mod client;
mod clock;
mod config;
pub mod hint;
mod manifest;
mod metrics;
pub mod pace;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ConfigError, Defaults, HostConfig, RegistriesConfig};

use crate::credentials::NodeCredentials;
use crate::facts::{Credential, Descriptor, FailureCategory, LookupFailure, Manifest};
use crate::platform::Platform;
use crate::reference::{DOCKER_HUB, Digest, ImageRef};
pub(crate) use cache::until;
use cache::{Flights, ManifestStore};
use client::{Env, Fail, Host, Reply, fail, status_failure, status_failure_with};
use reqwest::Method;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Docker Hub's registry API host; `docker.io` is only its name.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Resolves tags and fetches manifests; cheap to clone and share.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

/// (registry, repository, tag or digest, credentials fingerprint)
type Key = (String, String, String, u64);

struct Inner {
    config: RegistriesConfig,
    clock: Arc<dyn Clock>,
    metrics: metrics::Metrics,
    /// Plugins and the controller's own docker config file(s).
    node: Arc<NodeCredentials>,
    /// Clients for configured hosts, and for every other host.
    clients: HashMap<String, reqwest::Client>,
    default_client: reqwest::Client,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    tags: Flights<Key, Result<Descriptor, LookupFailure>>,
    manifest_flights: Flights<Key, Result<Arc<Manifest>, LookupFailure>>,
    manifests: ManifestStore,
}

fn build_client(
    key: Option<(&str, &HostConfig)>,
    timeout: Duration,
) -> Result<reqwest::Client, ConfigError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("imagedrift/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout);
    let mut name = String::from("defaults");
    if let Some((host, h)) = key {
        name = format!("hosts.\"{host}\"");
        if let Some(path) = &h.ca_bundle {
            let key = format!("{name}.caBundle");
            let pem = std::fs::read(path).map_err(|source| ConfigError::Unreadable {
                key: key.clone(),
                path: path.clone(),
                source,
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ConfigError::Invalid {
                    key: key.clone(),
                    problem: format!("{} is not a PEM certificate bundle ({e})", path.display()),
                    fix: "point it at a file of -----BEGIN CERTIFICATE----- blocks".into(),
                })?;
            if certs.is_empty() {
                return Err(ConfigError::Invalid {
                    key,
                    problem: format!("{} holds no certificate", path.display()),
                    fix: "point it at a file of -----BEGIN CERTIFICATE----- blocks".into(),
                });
            }
            b = b.tls_certs_merge(certs);
        }
        if h.skip_tls_verify {
            tracing::warn!(
                registry = host,
                "TLS CERTIFICATE VERIFICATION IS OFF for this registry (registries.hosts.\"{host}\".skipTlsVerify): \
                 anyone on the path can forge its answers; configure caBundle instead"
            );
            b = b.tls_danger_accept_invalid_certs(true);
        }
    }
    b.build().map_err(|e| ConfigError::Invalid {
        key: name,
        problem: format!("cannot build an HTTP client: {e}"),
        fix: "check the TLS settings".into(),
    })
}

impl Resolver {
    /// A resolver with the system clock, its metrics registered on `metrics`.
    pub fn new(
        config: RegistriesConfig,
        metrics: &prometheus::Registry,
    ) -> Result<Resolver, ConfigError> {
        Resolver::with_clock(config, metrics, Arc::new(SystemClock))
    }

    /// A resolver with an injected clock (tests).
    pub fn with_clock(
        config: RegistriesConfig,
        metrics: &prometheus::Registry,
        clock: Arc<dyn Clock>,
    ) -> Result<Resolver, ConfigError> {
        config.validate()?;
        let mut clients = HashMap::new();
        for (host, h) in &config.hosts {
            clients.insert(
                host.clone(),
                build_client(Some((host, h)), config.limits(host).timeout)?,
            );
        }
        let default_client = build_client(None, config.limits("").timeout)?;
        let metrics = metrics::Metrics::register(metrics)?;
        let node = Arc::new(NodeCredentials::new(
            &config,
            clock.clone(),
            metrics.providers.clone(),
            config.defaults.failure_ttl,
        )?);
        let manifests = ManifestStore::new(config.defaults.manifest_cache_bytes);
        Ok(Resolver {
            inner: Arc::new(Inner {
                config,
                clock,
                metrics,
                node,
                clients,
                default_client,
                hosts: Mutex::new(HashMap::new()),
                tags: Flights::new(),
                manifest_flights: Flights::new(),
                manifests,
            }),
        })
    }
}

impl Resolver {
    /// The plugins and credential files this resolver uses, to re-read
    /// them when they change ([`crate::credentials::reload::watch`]).
    pub fn node_credentials(&self) -> Arc<NodeCredentials> {
        self.inner.node.clone()
    }
}

/// The credentials a lookup tries, and the credential sources that failed.
struct Tried {
    creds: Vec<Credential>,
    failures: Vec<LookupFailure>,
}

impl Tried {
    fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.creds.hash(&mut h);
        self.failures.is_empty().hash(&mut h);
        h.finish()
    }
}

impl Inner {
    fn env(&self) -> Env<'_> {
        Env {
            clock: &*self.clock,
            metrics: &self.metrics,
        }
    }

    /// The state of `label`'s host, made on first use.
    fn host(&self, label: &str) -> Arc<Host> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = hosts.get(label) {
            return h.clone();
        }
        let hc = self.config.hosts.get(label);
        let base = match hc.and_then(|h| h.endpoint.as_deref()) {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => {
                // Configured hosts say for themselves; unconfigured loopback
                // hosts get plain HTTP, as Docker does.
                let insecure = hc.map_or(config::is_loopback(label), |h| h.insecure_http);
                let scheme = if insecure { "http" } else { "https" };
                let api = if label == DOCKER_HUB {
                    DOCKER_HUB_API
                } else {
                    label
                };
                format!("{scheme}://{api}")
            }
        };
        let client = self
            .clients
            .get(label)
            .unwrap_or(&self.default_client)
            .clone();
        let d = &self.config.defaults;
        let host = Arc::new(Host::new(
            label.to_string(),
            base,
            client,
            &self.config.limits(label),
            d.max_retries,
            d.max_retry_wait,
            d.failure_ttl,
        ));
        hosts.insert(label.to_string(), host.clone());
        host
    }

    /// The credentials to try, in kubelet's order: the caller's (the pod's
    /// pull secrets), then the plugins', then the controller's own files.
    async fn credentials(&self, image: &ImageRef, creds: &[Credential]) -> Tried {
        let mut all = creds.to_vec();
        let found = self.node.for_image(image).await;
        for c in found.plugins.into_iter().chain(found.files) {
            if !all.contains(&c) {
                all.push(c);
            }
        }
        Tried {
            creds: all,
            failures: found.failures,
        }
    }

    fn count_failure(&self, registry: &str, r: &Result<impl Sized, Fail>) {
        if let Err(f) = r {
            self.metrics
                .failures
                .with_label_values(&[registry, f.failure.category.as_str()])
                .inc();
        }
    }

    fn lifetime(&self, ok: bool, hold: Option<Duration>) -> tokio::time::Instant {
        let d = &self.config.defaults;
        let ttl = if ok {
            d.tag_ttl
        } else {
            d.failure_ttl.max(hold.unwrap_or_default())
        };
        until(self.clock.now(), ttl)
    }

    async fn resolve_tag(
        &self,
        image: &ImageRef,
        creds: &[Credential],
    ) -> Result<Descriptor, LookupFailure> {
        let Some(tag) = image.effective_tag() else {
            return Err(LookupFailure::new(
                FailureCategory::InvalidReference,
                format!("{image} names no tag to resolve"),
            ));
        };
        let tried = self.credentials(image, creds).await;
        let key = (
            image.domain().to_string(),
            image.path().to_string(),
            tag.to_string(),
            tried.fingerprint(),
        );
        let (answer, hit) = self
            .tags
            .get(key, self.clock.now(), || async {
                let r = self
                    .with_credentials(image, &tried, |host, cred| {
                        self.fetch_tag(host, image, tag, cred)
                    })
                    .await;
                self.count_failure(image.domain(), &r);
                let hold = r.as_ref().err().and_then(|f| f.hold);
                let exp = self.lifetime(r.is_ok(), hold);
                (r.map_err(|f| f.failure), exp)
            })
            .await;
        self.metrics.cache("tag", hit);
        answer
    }

    async fn manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
        creds: &[Credential],
    ) -> Result<Arc<Manifest>, LookupFailure> {
        if let Some((m, _)) = self.manifests.get(digest) {
            self.metrics.cache("manifest", true);
            return Ok(m);
        }
        let tried = self.credentials(image, creds).await;
        let key = (
            image.domain().to_string(),
            image.path().to_string(),
            digest.to_string(),
            tried.fingerprint(),
        );
        let (answer, hit) = self
            .manifest_flights
            .get(key, self.clock.now(), || async {
                let r = self
                    .with_credentials(image, &tried, |host, cred| {
                        self.fetch_manifest(host, image, digest, cred)
                    })
                    .await
                    .map(|(m, _)| m);
                self.count_failure(image.domain(), &r);
                let hold = r.as_ref().err().and_then(|f| f.hold);
                // Successes live in the store from now on; keep the flight
                // only for failures.
                let exp = if r.is_ok() {
                    self.clock.now()
                } else {
                    self.lifetime(false, hold)
                };
                (r.map_err(|f| f.failure), exp)
            })
            .await;
        self.metrics.cache("manifest", hit);
        answer
    }

    /// Runs `op` with each credential in order, then anonymously, until one
    /// is not refused (401/403), as kubelet tries every matching credential.
    /// When all are refused the error says which were tried, and a failed
    /// plugin or helper (the likely cause) decides the category.
    async fn with_credentials<'a, T, F, Fut>(
        &'a self,
        image: &ImageRef,
        tried: &'a Tried,
        op: F,
    ) -> Result<T, Fail>
    where
        F: Fn(Arc<Host>, Option<&'a Credential>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Fail>>,
    {
        let host = self.host(image.domain());
        let mut refused: Vec<Fail> = Vec::new();
        for cred in tried.creds.iter().map(Some).chain([None]) {
            match op(host.clone(), cred).await {
                Err(f)
                    if matches!(
                        f.failure.category,
                        FailureCategory::Unauthorized | FailureCategory::Denied
                    ) =>
                {
                    let who = cred.map_or("anonymous".to_string(), |c| c.origin.clone());
                    refused.push(fail(
                        f.failure.category,
                        format!("{who}: {}", f.failure.detail),
                    ));
                }
                other => return other,
            }
        }
        let category = if refused
            .iter()
            .any(|f| f.failure.category == FailureCategory::Denied)
        {
            FailureCategory::Denied
        } else {
            FailureCategory::Unauthorized
        };
        let details: Vec<String> = refused.into_iter().map(|f| f.failure.detail).collect();
        let name = image.name();
        let refusals = details.join("; ");
        if !tried.failures.is_empty() {
            let broken: Vec<&str> = tried.failures.iter().map(|f| f.detail.as_str()).collect();
            let after = match tried.creds.len() {
                0 => "anonymous".to_string(),
                n => format!("{n} other credential(s), then anonymous"),
            };
            return Err(fail(
                FailureCategory::CredentialProvider,
                format!(
                    "{}; {name} was refused with {after}: {refusals}",
                    broken.join("; ")
                ),
            ));
        }
        if tried.creds.is_empty() {
            return Err(fail(
                category,
                format!(
                    "anonymous only: no pull secret, plugin or credentials file matched {name} \
                     ({refusals}); see \"Registry credentials\" in the README"
                ),
            ));
        }
        Err(fail(
            category,
            format!(
                "{} credential(s) refused for {name}, then anonymous: {refusals}",
                tried.creds.len()
            ),
        ))
    }

    async fn fetch_tag(
        &self,
        host: Arc<Host>,
        image: &ImageRef,
        tag: &str,
        cred: Option<&Credential>,
    ) -> Result<Descriptor, Fail> {
        let env = self.env();
        let path = format!("{}/manifests/{tag}", image.path());
        let head = host
            .request(&env, Method::HEAD, &path, image.path(), cred)
            .await?;
        match head.status {
            200..=299 => {
                let digest = head
                    .header("docker-content-digest")
                    .and_then(|d| Digest::parse(d.trim()).ok());
                let media_type = manifest::content_type(head.header("content-type"))
                    .and_then(manifest::known_media_type);
                match (digest, media_type) {
                    (Some(digest), Some(mt)) => {
                        return Ok(Descriptor {
                            digest,
                            media_type: mt.to_string(),
                        });
                    }
                    // Digest but a generic type: the body by digest says
                    // which (often already cached, and cached from now on).
                    (Some(digest), None) => {
                        let (_, mt) = match self.manifests.get(&digest) {
                            Some(m) => m,
                            None => self.fetch_manifest(host, image, &digest, cred).await?,
                        };
                        return Ok(Descriptor {
                            digest,
                            media_type: mt,
                        });
                    }
                    // No digest: GET the tag and hash the body.
                    (None, _) => {}
                }
            }
            // 404: a GET's error body tells a missing repository from a
            // missing tag (a HEAD has none); only failures pay for it.
            404 | 405 => {}
            s => return Err(status_failure(s, &format!("HEAD {}:{tag}", image.name()))),
        }
        let get = host
            .request(&env, Method::GET, &path, image.path(), cred)
            .await?;
        let (digest, mt, _) =
            self.accept_body(&get, None, &format!("GET {}:{tag}", image.name()))?;
        Ok(Descriptor {
            digest,
            media_type: mt,
        })
    }

    async fn fetch_manifest(
        &self,
        host: Arc<Host>,
        image: &ImageRef,
        digest: &Digest,
        cred: Option<&Credential>,
    ) -> Result<(Arc<Manifest>, String), Fail> {
        let path = format!("{}/manifests/{digest}", image.path());
        let get = host
            .request(&self.env(), Method::GET, &path, image.path(), cred)
            .await?;
        let (_, mt, m) = self.accept_body(
            &get,
            Some(digest),
            &format!("GET {}@{digest}", image.name()),
        )?;
        Ok((m, mt))
    }

    /// Checks a GET reply's body against the digest expected (asked for,
    /// and announced in `Docker-Content-Digest`), parses it and stores it.
    fn accept_body(
        &self,
        reply: &Reply,
        asked: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, String, Arc<Manifest>), Fail> {
        if !(200..300).contains(&reply.status) {
            return Err(status_failure_with(
                reply.status,
                what,
                reply.body.as_deref(),
            ));
        }
        let body = reply.body.as_deref().unwrap_or_default();
        let announced = match reply.header("docker-content-digest") {
            Some(h) => Some(Digest::parse(h.trim()).map_err(|e| {
                fail(
                    FailureCategory::InvalidResponse,
                    format!("{what}: bad Docker-Content-Digest: {e}"),
                )
            })?),
            None => None,
        };
        for expected in asked.iter().copied().chain(announced.as_ref()) {
            manifest::verify(expected, body)
                .map_err(|e| fail(e.category, format!("{what}: {}", e.detail)))?;
        }
        let digest = match asked.or(announced.as_ref()) {
            Some(d) => d.clone(),
            None => Digest::sha256_of(body),
        };
        let (mt, m) = manifest::parse(manifest::content_type(reply.header("content-type")), body)
            .map_err(|e| fail(e.category, format!("{what}: {}", e.detail)))?;
        let m = Arc::new(m);
        self.manifests
            .insert(digest.clone(), m.clone(), mt.clone(), body.len() as u64);
        Ok((digest, mt, m))
    }
}

impl Resolver {
    /// A manifest by digest with its media type (for `resolve repo@sha256:…`).
    pub async fn manifest_with_type(
        &self,
        image: &ImageRef,
        digest: &Digest,
        creds: &[Credential],
    ) -> Result<(Arc<Manifest>, String), LookupFailure> {
        let m = self.inner.manifest(image, digest, creds).await?;
        let media_type = match self.inner.manifests.get(digest) {
            Some((_, mt)) => mt,
            // Evicted at once (a tiny cache): name the kind at least.
            None => match &*m {
                Manifest::Index { .. } => crate::facts::OCI_INDEX.to_string(),
                Manifest::Image { .. } => crate::facts::OCI_MANIFEST.to_string(),
            },
        };
        Ok((m, media_type))
    }

    /// The platform a single-platform image's config blob names (`os`,
    /// `architecture`, `variant`), for `resolve --platform`. One GET of a
    /// small blob, verified against its digest; not used by the controller.
    pub async fn config_platform(
        &self,
        image: &ImageRef,
        config: &Digest,
        creds: &[Credential],
    ) -> Result<Option<Platform>, LookupFailure> {
        #[derive(serde::Deserialize)]
        struct ConfigBlob {
            os: Option<String>,
            architecture: Option<String>,
            variant: Option<String>,
        }
        let inner = &self.inner;
        let creds = inner.credentials(image, creds).await;
        let what = format!("GET {}@{config}", image.name());
        let path = format!("{}/blobs/{config}", image.path());
        let reply = inner
            .with_credentials(image, &creds, |host, cred| {
                let path = path.clone();
                async move {
                    host.request(&inner.env(), Method::GET, &path, image.path(), cred)
                        .await
                }
            })
            .await
            .map_err(|f| f.failure)?;
        if !(200..300).contains(&reply.status) {
            return Err(status_failure_with(reply.status, &what, reply.body.as_deref()).failure);
        }
        let body = reply.body.as_deref().unwrap_or_default();
        manifest::verify(config, body)
            .map_err(|e| LookupFailure::new(e.category, format!("{what}: {}", e.detail)))?;
        let blob: ConfigBlob = serde_json::from_slice(body).map_err(|e| {
            LookupFailure::new(
                FailureCategory::InvalidResponse,
                format!("{what}: not an image config: {e}"),
            )
        })?;
        Ok(match (blob.os, blob.architecture) {
            (Some(os), Some(arch)) => Some(Platform::new(&os, &arch, blob.variant.as_deref())),
            _ => None,
        })
    }
}

impl crate::facts::Registry for Resolver {
    fn resolve_tag(
        &self,
        image: &ImageRef,
        creds: &[Credential],
    ) -> impl std::future::Future<Output = Result<Descriptor, LookupFailure>> + Send {
        self.inner.resolve_tag(image, creds)
    }

    fn forget_tag(&self, image: &ImageRef) {
        // Every credentials fingerprint: the tag moved for all of them.
        if let Some(tag) = image.effective_tag() {
            self.inner.tags.forget(|(domain, path, t, _)| {
                domain == image.domain() && path == image.path() && t == tag
            });
        }
    }

    async fn manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
        creds: &[Credential],
    ) -> Result<Arc<Manifest>, LookupFailure> {
        self.inner.manifest(image, digest, creds).await
    }

    fn requests_made(&self) -> u64 {
        self.inner.metrics.requests_total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Registry as _;

    fn shareable<T: Send + Sync + Clone + 'static>() {}
    fn sendable<T: Send>(_: &T) {}

    #[test]
    fn resolver_and_its_futures_are_send() {
        shareable::<Resolver>();
        let r = Resolver::new(RegistriesConfig::default(), &prometheus::Registry::new()).unwrap();
        let image = ImageRef::parse("registry.example/app:v1").unwrap();
        let digest = Digest::sha256_of(b"x");
        sendable(&r.resolve_tag(&image, &[]));
        sendable(&r.manifest(&image, &digest, &[]));
    }

    #[test]
    fn hosts_are_asked_at_their_api_endpoint() {
        let cfg: RegistriesConfig = serde_json::from_value(serde_json::json!({
            "hosts": {"quay.io": {"endpoint": "https://mirror.internal:5000/quay/"}}
        }))
        .unwrap();
        let r = Resolver::new(cfg, &prometheus::Registry::new()).unwrap();
        let base = |image: &str| {
            let i = ImageRef::parse(image).unwrap();
            (r.inner.host(i.domain()).base.clone(), i.path().to_string())
        };
        // Docker Hub's name is not its API host; single names live in library/.
        assert_eq!(
            base("nginx"),
            (
                "https://registry-1.docker.io".to_string(),
                "library/nginx".to_string()
            )
        );
        assert_eq!(
            base("index.docker.io/org/app:v1").0,
            "https://registry-1.docker.io"
        );
        assert_eq!(base("localhost:5000/app").0, "http://localhost:5000");
        assert_eq!(
            base("quay.io/org/app").0,
            "https://mirror.internal:5000/quay"
        );
        assert_eq!(
            base("registry.example:5000/app").0,
            "https://registry.example:5000"
        );
    }

    #[test]
    fn metrics_register_once_per_registry() {
        let reg = prometheus::Registry::new();
        Resolver::new(RegistriesConfig::default(), &reg).unwrap();
        let e = Resolver::new(RegistriesConfig::default(), &reg)
            .err()
            .unwrap();
        assert!(matches!(e, ConfigError::Metrics(_)), "{e}");
    }

    #[test]
    fn unreadable_files_name_the_key() {
        let cfg: RegistriesConfig = serde_json::from_value(serde_json::json!({
            "credentialsFile": "/nonexistent/creds.json"
        }))
        .unwrap();
        let e = Resolver::new(cfg, &prometheus::Registry::new())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("registries.credentialsFile") && e.contains("/nonexistent/creds.json"),
            "{e}"
        );
    }
}
