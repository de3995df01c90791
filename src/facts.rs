//! What the registry says, as plain data: the descriptor a tag points to,
//! manifests fetched by digest, lookup failures with a fixed category, and
//! the trait through which the verdict asks for them lazily.

use crate::platform::Platform;
use crate::reference::{Digest, ImageRef};
use std::future::Future;
use std::sync::Arc;

/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker image manifest v2 schema 2 media type.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The `Accept` header value listing all four types (SEMANTICS.md §2).
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Whether a media type names an index (OCI index or Docker manifest list).
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// What a tag points to today.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Descriptor {
    /// The manifest or index digest.
    pub digest: Digest,
    /// Its media type, as the registry announced it.
    pub media_type: String,
}

impl Descriptor {
    /// Whether the tag points to an index.
    pub fn is_index(&self) -> bool {
        is_index_media_type(&self.media_type)
    }
}

/// One entry of an index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IndexEntry {
    /// The child manifest's digest.
    pub digest: Digest,
    /// The child's media type.
    pub media_type: String,
    /// The child's platform; `None` when the index does not say.
    pub platform: Option<Platform>,
}

/// A manifest fetched by digest (immutable, cached forever).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Manifest {
    /// An OCI index or Docker manifest list.
    Index {
        /// Its entries, in order.
        entries: Vec<IndexEntry>,
    },
    /// A single-platform image manifest.
    Image {
        /// The config blob's digest (the image ID).
        config: Digest,
        /// The platform, when known from the config (not always fetched).
        platform: Option<Platform>,
    },
}

/// The fixed category of a failed lookup; bounded, used in metric labels
/// and Event reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureCategory {
    /// 401 after trying every credential, or no credential for a private repo.
    Unauthorized,
    /// 403: credentials accepted but access refused.
    Denied,
    /// 404: repository, tag or digest not there.
    NotFound,
    /// 429, or a local limit refused the request.
    RateLimited,
    /// Connection refused, DNS failure, reset.
    Unreachable,
    /// The request or body did not finish in time.
    Timeout,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// 5xx from the registry.
    ServerError,
    /// Bad digest, oversized or unparseable body, unknown media type.
    InvalidResponse,
    /// The reference itself can't be looked up (malformed, unsupported).
    InvalidReference,
    /// A credential source failed: a kubelet credential-provider plugin or a
    /// docker credential helper (exit status, hang, bad answer).
    CredentialProvider,
}

impl FailureCategory {
    /// Stable snake_case label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCategory::Unauthorized => "unauthorized",
            FailureCategory::Denied => "denied",
            FailureCategory::NotFound => "not_found",
            FailureCategory::RateLimited => "rate_limited",
            FailureCategory::Unreachable => "unreachable",
            FailureCategory::Timeout => "timeout",
            FailureCategory::Tls => "tls",
            FailureCategory::ServerError => "server_error",
            FailureCategory::InvalidResponse => "invalid_response",
            FailureCategory::InvalidReference => "invalid_reference",
            FailureCategory::CredentialProvider => "credential_provider",
        }
    }
}

/// A failed registry lookup: a fixed category and a human detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", category.as_str())]
pub struct LookupFailure {
    /// Bounded category.
    pub category: FailureCategory,
    /// What happened, for logs and messages (unbounded; never a label).
    pub detail: String,
}

impl LookupFailure {
    /// Builds a failure.
    pub fn new(category: FailureCategory, detail: impl Into<String>) -> LookupFailure {
        LookupFailure {
            category,
            detail: detail.into(),
        }
    }
}

/// Manifests by digest, asked lazily by the verdict. Implemented by the
/// registry resolver (cached forever) and by fakes in tests.
pub trait ManifestSource: Sync {
    /// The manifest `digest` in `image`'s repository (tag and digest of
    /// `image` are ignored). For an image manifest the result carries its
    /// config digest.
    fn manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> impl Future<Output = Result<Arc<Manifest>, LookupFailure>> + Send;
}

/// A registry secret, as found in a pull secret or the credentials file.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Secret {
    /// Username and password (basic auth, or exchanged for a bearer token).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in a docker config).
    IdentityToken(String),
    /// A bearer token used as is (`registrytoken` in a docker config).
    RegistryToken(String),
}

/// One credential and where it came from (for messages; never the secret).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credential {
    /// The secret itself.
    pub secret: Secret,
    /// Where it came from, e.g. `secret team-a/regcred key registry.example`.
    pub origin: String,
}

/// Redacts the secret: credentials are logged by origin only.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.secret {
            Secret::Basic { .. } => "basic",
            Secret::IdentityToken(_) => "identity-token",
            Secret::RegistryToken(_) => "registry-token",
        };
        write!(f, "Credential({kind} from {})", self.origin)
    }
}

/// The registry, as the controller and CLI ask it. `creds` are the
/// credentials that apply to this image, most specific first; an empty
/// slice means anonymous (plus any configured for the registry itself).
pub trait Registry: Send + Sync {
    /// What `image`'s tag points to today.
    fn resolve_tag(
        &self,
        image: &ImageRef,
        creds: &[Credential],
    ) -> impl Future<Output = Result<Descriptor, LookupFailure>> + Send;

    /// The manifest `digest` in `image`'s repository.
    fn manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
        creds: &[Credential],
    ) -> impl Future<Output = Result<Arc<Manifest>, LookupFailure>> + Send;

    /// Drops any remembered answer for `image`'s tag, so the next
    /// [`Registry::resolve_tag`] asks the registry (a push was announced).
    fn forget_tag(&self, _image: &ImageRef) {}

    /// HTTP requests made to registries so far (for the log's summary).
    fn requests_made(&self) -> u64 {
        0
    }
}

/// A [`Registry`] with fixed credentials, as the [`ManifestSource`] a
/// verdict asks.
pub struct WithCredentials<'a, R> {
    /// The registry.
    pub registry: &'a R,
    /// The credentials for this image.
    pub creds: &'a [Credential],
}

impl<R: Registry> ManifestSource for WithCredentials<'_, R> {
    fn manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> impl Future<Output = Result<Arc<Manifest>, LookupFailure>> + Send {
        self.registry.manifest(image, digest, self.creds)
    }
}
