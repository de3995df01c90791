//! Runtime image IDs as kubelet reports them in
//! `status.*ContainerStatuses[].imageID` (SEMANTICS.md §1).
//!
//! STUB: signatures are final, bodies are being written.

use crate::reference::Digest;

/// Whether a reported digest names registry content or a local image ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestKind {
    /// A repo digest: the manifest or index digest the tag resolved to.
    Manifest,
    /// The image ID: the digest of the image's config blob.
    Config,
}

/// The textual form the runtime used; some rules depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdForm {
    /// `repo@sha256:…` (containerd fully qualified, CRI-O, or a familiar name).
    RepoDigest,
    /// `docker-pullable://repo@sha256:…` (cri-dockerd, dockershim).
    DockerPullable,
    /// `docker://sha256:…` (dockershim without a repo digest).
    DockerImageId,
    /// `sha256:…` with no repository.
    BareDigest,
    /// 64 hex characters with no algorithm (CRI-O image ID).
    BareHex,
}

/// A parsed `imageID`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RuntimeImageId {
    /// Repository named in the ID, as written (may differ from the spec's).
    pub repository: Option<String>,
    /// The digest reported.
    pub digest: Digest,
    /// Whether `digest` is a manifest/index digest or a config digest.
    pub kind: DigestKind,
    /// The form the runtime used.
    pub form: IdForm,
}

/// Why an `imageID` could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageIdError {
    /// Placeholder until the parser lands.
    #[error("unrecognised imageID {0:?}")]
    Unrecognised(String),
}

impl RuntimeImageId {
    /// Parses an `imageID`; `Ok(None)` when it is empty (container not started).
    pub fn parse(s: &str) -> Result<Option<RuntimeImageId>, ImageIdError> {
        if s.is_empty() {
            return Ok(None);
        }
        Err(ImageIdError::Unrecognised(s.to_string()))
    }
}
