//! Image references, parsed and normalised exactly as distribution/reference
//! (`ParseNormalizedNamed`) does.
//!
//! STUB: signatures are final, bodies are being written.

use std::fmt;

/// A content digest such as `sha256:<64 lowercase hex>`, validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a digest string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Placeholder until the parser lands.
    #[error("invalid digest {0:?}")]
    Invalid(String),
}

impl Digest {
    /// Parses `algorithm:hex`, checking the algorithm grammar and, for
    /// sha256/sha384/sha512, the hex length.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        Err(DigestError::Invalid(s.to_string()))
    }
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))))
    }
    /// The algorithm part (`sha256`).
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or("")
    }
    /// The encoded part (hex).
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or("")
    }
    /// The whole digest, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `sha256:` plus the first 12 hex characters, for messages.
    pub fn short(&self) -> String {
        let h = self.hex();
        format!("{}:{}", self.algorithm(), &h[..h.len().min(12)])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A normalised image reference: domain, path, optional tag, optional digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why an image reference is invalid; each variant names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Placeholder until the parser lands.
    #[error("invalid reference {0:?}")]
    Invalid(String),
}

impl ImageRef {
    /// Parses and normalises a reference as written in a pod spec.
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        Err(ReferenceError::Invalid(s.to_string()))
    }
    /// Registry domain, normalised (`docker.io` for Docker Hub).
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// Repository path inside the registry (`library/nginx`).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// `domain/path`, the fully qualified repository name.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
    /// The tag as written, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// The digest as written, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// The tag a runtime resolves: the written tag, or `latest` when the
    /// reference has neither tag nor digest.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }
    /// Whether the reference names a digest (the runtime pulls by digest).
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }
    /// The same repository and tag, pinned to `digest`.
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef { digest: Some(digest), ..self.clone() }
    }
    /// The same repository with this tag and no digest.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef { tag: Some(tag.to_string()), digest: None, ..self.clone() }
    }
    /// The short form Docker prints (`nginx:1.25`, `quay.io/org/app:v1`).
    pub fn familiar(&self) -> String {
        self.to_string()
    }
}

/// Normalised form: `domain/path[:effective tag][@digest]`.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = self.effective_tag() {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}
