//! Image references, parsed and normalised exactly as distribution/reference
//! (`ParseNormalizedNamed`) does.
//!
//! Grammar (distribution/reference `regexp.go`):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] component ( "/" component )*
//! domain     := host [ ":" port ]
//! host       := label ( "." label )* | "[" ipv6 "]"
//! label      := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! component  := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [\w][\w.-]{0,127}
//! ```
//!
//! Normalisation (`normalize.go`): the first component is a domain only if it
//! contains `.` or `:`, is `localhost`, or has an uppercase letter; otherwise
//! the domain is `docker.io`. `index.docker.io` becomes `docker.io`, and a
//! single-component Docker Hub name gets the `library/` prefix.

use std::fmt;
use std::str::FromStr;

/// Docker Hub's canonical domain.
pub const DOCKER_HUB: &str = "docker.io";
/// The legacy Docker Hub domain, normalised to [`DOCKER_HUB`].
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
/// Namespace of Docker Hub's official images.
const OFFICIAL_PREFIX: &str = "library/";
/// Longest `domain/path` distribution accepts.
pub const NAME_MAX: usize = 255;
/// Longest tag distribution accepts.
pub const TAG_MAX: usize = 128;
/// Shortest encoded part of a digest.
const DIGEST_ENCODED_MIN: usize = 32;

const TAG_GRAMMAR: &str = r"[\w][\w.-]{0,127}";
const COMPONENT_GRAMMAR: &str = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const ALGORITHM_GRAMMAR: &str = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*";

/// A content digest such as `sha256:<64 lowercase hex>`, validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a digest string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string is empty.
    #[error("empty digest")]
    Empty,
    /// No `:` separates algorithm and encoded part.
    #[error("invalid digest {input:?}: missing ':' between algorithm and encoded part")]
    MissingSeparator {
        /// The digest as given.
        input: String,
    },
    /// The algorithm part breaks the algorithm grammar.
    #[error("invalid digest {input:?}: algorithm {algorithm:?} must match {ALGORITHM_GRAMMAR}")]
    Algorithm {
        /// The digest as given.
        input: String,
        /// The algorithm part.
        algorithm: String,
    },
    /// The encoded part contains a character outside `[a-zA-Z0-9=_-]`.
    #[error(
        "invalid digest {input:?}: encoded part may only contain [a-zA-Z0-9=_-], found {found:?}"
    )]
    Encoded {
        /// The digest as given.
        input: String,
        /// The first offending character.
        found: char,
    },
    /// The encoded part is shorter than 32 characters.
    #[error(
        "invalid digest {input:?}: encoded part needs at least {DIGEST_ENCODED_MIN} characters, got {len}"
    )]
    TooShort {
        /// The digest as given.
        input: String,
        /// Length of the encoded part.
        len: usize,
    },
    /// A sha256/sha384/sha512 digest with the wrong number of hex characters.
    #[error("invalid digest {input:?}: {algorithm} needs {expected} hex characters, got {len}")]
    HexLength {
        /// The digest as given.
        input: String,
        /// The algorithm (`sha256`, `sha384`, `sha512`).
        algorithm: &'static str,
        /// The length the algorithm requires.
        expected: usize,
        /// The length found.
        len: usize,
    },
    /// A sha256/sha384/sha512 digest with a character outside `[0-9a-f]`.
    #[error(
        "invalid digest {input:?}: {algorithm} needs lowercase hex (0-9, a-f), found {found:?}"
    )]
    NotLowercaseHex {
        /// The digest as given.
        input: String,
        /// The algorithm (`sha256`, `sha384`, `sha512`).
        algorithm: &'static str,
        /// The first offending character.
        found: char,
    },
}

impl DigestError {
    /// Short fixed label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        "invalid_digest"
    }
}

/// Hex length required by the algorithms registered in go-digest.
fn known_hex_len(algorithm: &str) -> Option<(&'static str, usize)> {
    match algorithm {
        "sha256" => Some(("sha256", 64)),
        "sha384" => Some(("sha384", 96)),
        "sha512" => Some(("sha512", 128)),
        _ => None,
    }
}

/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*`
fn valid_algorithm(a: &str) -> bool {
    !a.is_empty()
        && a.split(['-', '_', '+', '.']).all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric())
        })
}

impl Digest {
    /// Parses `algorithm:hex`, checking the algorithm grammar and, for
    /// sha256/sha384/sha512, the hex length.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        if s.is_empty() {
            return Err(DigestError::Empty);
        }
        let input = || s.to_string();
        let Some((algorithm, encoded)) = s.split_once(':') else {
            return Err(DigestError::MissingSeparator { input: input() });
        };
        if !valid_algorithm(algorithm) {
            return Err(DigestError::Algorithm {
                input: input(),
                algorithm: algorithm.to_string(),
            });
        }
        if let Some(found) = encoded
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '-')))
        {
            return Err(DigestError::Encoded {
                input: input(),
                found,
            });
        }
        if let Some((algorithm, expected)) = known_hex_len(algorithm) {
            if let Some(found) = encoded
                .chars()
                .find(|c| !matches!(c, '0'..='9' | 'a'..='f'))
            {
                return Err(DigestError::NotLowercaseHex {
                    input: input(),
                    algorithm,
                    found,
                });
            }
            if encoded.len() != expected {
                return Err(DigestError::HexLength {
                    input: input(),
                    algorithm,
                    expected,
                    len: encoded.len(),
                });
            }
        } else if encoded.len() < DIGEST_ENCODED_MIN {
            return Err(DigestError::TooShort {
                input: input(),
                len: encoded.len(),
            });
        }
        Ok(Digest(s.to_string()))
    }
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(bytes))
        ))
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

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
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
    /// The string is empty.
    #[error("empty reference")]
    Empty,
    /// Leading or trailing whitespace (never stripped silently).
    #[error("invalid reference {input:?}: leading or trailing whitespace")]
    Whitespace {
        /// The reference as given.
        input: String,
    },
    /// 64 hex characters alone: an image ID, not a repository name.
    #[error(
        "invalid reference {input:?}: a bare 64-character hex string is an image ID, not a repository name"
    )]
    HexIdentifier {
        /// The reference as given.
        input: String,
    },
    /// Nothing before the `:tag` or `@digest`.
    #[error("invalid reference {input:?}: no repository name")]
    MissingName {
        /// The reference as given.
        input: String,
    },
    /// Uppercase letter in the repository path.
    #[error("invalid reference {input:?}: repository name must be lowercase")]
    Uppercase {
        /// The reference as given.
        input: String,
    },
    /// A path component breaks the component grammar (or is empty).
    #[error(
        "invalid reference {input:?}: path component {component:?} must match {COMPONENT_GRAMMAR}"
    )]
    PathComponent {
        /// The reference as given.
        input: String,
        /// The offending component.
        component: String,
    },
    /// The registry host is neither a valid host name nor a bracketed IPv6 address.
    #[error(
        "invalid reference {input:?}: invalid domain {domain:?}: host must be dot-separated labels of [a-zA-Z0-9-] (not starting or ending with '-') or a bracketed IPv6 address"
    )]
    Domain {
        /// The reference as given.
        input: String,
        /// The domain part, host and port.
        domain: String,
    },
    /// The registry port is not a number.
    #[error(
        "invalid reference {input:?}: invalid port {port:?} in domain {domain:?}: must be digits"
    )]
    Port {
        /// The reference as given.
        input: String,
        /// The domain part, host and port.
        domain: String,
        /// The port part after `:`.
        port: String,
    },
    /// `domain/path` longer than 255 characters.
    #[error("invalid reference {input:?}: name too long ({len} > {NAME_MAX})")]
    NameTooLong {
        /// The reference as given.
        input: String,
        /// Length of the normalised `domain/path`.
        len: usize,
    },
    /// `:` with nothing after it.
    #[error("invalid reference {input:?}: empty tag after ':'")]
    EmptyTag {
        /// The reference as given.
        input: String,
    },
    /// The tag breaks the tag grammar.
    #[error("invalid tag {tag:?} in {input:?}: must match {TAG_GRAMMAR}")]
    Tag {
        /// The reference as given.
        input: String,
        /// The tag part.
        tag: String,
    },
    /// The tag is longer than 128 characters.
    #[error("invalid tag in {input:?}: longer than {TAG_MAX} characters ({len})")]
    TagTooLong {
        /// The reference as given.
        input: String,
        /// Length of the tag.
        len: usize,
    },
    /// `@` with nothing after it.
    #[error("invalid reference {input:?}: empty digest after '@'")]
    EmptyDigest {
        /// The reference as given.
        input: String,
    },
    /// The digest after `@` is invalid.
    #[error("invalid reference {input:?}: {reason}")]
    Digest {
        /// The reference as given.
        input: String,
        /// What is wrong with the digest.
        reason: DigestError,
    },
}

impl ReferenceError {
    /// Short fixed label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        "invalid_reference"
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false; // empty, or a separator at the start/end/doubled
        }
        if i == b.len() {
            return true;
        }
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &b[sep_start..i];
        let ok = matches!(sep, b"." | b"_" | b"__") || sep.iter().all(|&x| x == b'-');
        if !ok {
            return false;
        }
    }
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-')
}

/// `(label(.label)*|\[[a-fA-F0-9:]+\])(:[0-9]+)?`
fn check_domain(input: &str, domain: &str) -> Result<(), ReferenceError> {
    let bad_domain = || ReferenceError::Domain {
        input: input.to_string(),
        domain: domain.to_string(),
    };
    let (host_ok, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(bad_domain());
        };
        let ok = !inside.is_empty() && inside.bytes().all(|x| x.is_ascii_hexdigit() || x == b':');
        match after {
            "" => (ok, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (ok, Some(port)),
                None => return Err(bad_domain()),
            },
        }
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        };
        (host.split('.').all(valid_label), port)
    };
    if !host_ok {
        return Err(bad_domain());
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|x| x.is_ascii_digit()))
    {
        return Err(ReferenceError::Port {
            input: input.to_string(),
            domain: domain.to_string(),
            port: port.to_string(),
        });
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`
fn check_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let mut bytes = tag.bytes();
    let Some(first) = bytes.next() else {
        return Err(ReferenceError::EmptyTag {
            input: input.to_string(),
        });
    };
    if !word(first) || !bytes.all(|x| word(x) || x == b'.' || x == b'-') {
        return Err(ReferenceError::Tag {
            input: input.to_string(),
            tag: tag.to_string(),
        });
    }
    if tag.len() > TAG_MAX {
        return Err(ReferenceError::TagTooLong {
            input: input.to_string(),
            len: tag.len(),
        });
    }
    Ok(())
}

/// Splits off the domain as distribution's `splitDockerDomain` does.
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first == "localhost"
                || first.contains(['.', ':'])
                || first.bytes().any(|x| x.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

impl ImageRef {
    /// Parses and normalises a reference as written in a pod spec.
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        let input = || s.to_string();
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.trim() != s {
            return Err(ReferenceError::Whitespace { input: input() });
        }
        if s.len() == 64 && s.bytes().all(|x| matches!(x, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::HexIdentifier { input: input() });
        }

        // Neither name nor tag may contain '@', so the first one starts the digest.
        let (name_tag, digest) = match s.split_once('@') {
            Some((_, "")) => return Err(ReferenceError::EmptyDigest { input: input() }),
            Some((nt, d)) => {
                let d = Digest::parse(d).map_err(|reason| ReferenceError::Digest {
                    input: input(),
                    reason,
                })?;
                (nt, Some(d))
            }
            None => (s, None),
        };
        if name_tag.is_empty() || name_tag.starts_with(':') {
            return Err(ReferenceError::MissingName { input: input() });
        }

        let (domain, remainder) = split_domain(name_tag);
        // A path never contains ':', so the first one starts the tag.
        let (path, tag) = match remainder.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (remainder, None),
        };
        let domain = if domain == LEGACY_DOCKER_HUB {
            DOCKER_HUB
        } else {
            domain
        };

        if path.bytes().any(|x| x.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase { input: input() });
        }
        if let Some(bad) = path.split('/').find(|c| !valid_component(c)) {
            return Err(ReferenceError::PathComponent {
                input: input(),
                component: bad.to_string(),
            });
        }
        check_domain(s, domain)?;
        if let Some(tag) = tag {
            check_tag(s, tag)?;
        }

        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_string()
        };
        let len = domain.len() + 1 + path.len();
        if len > NAME_MAX {
            return Err(ReferenceError::NameTooLong {
                input: input(),
                len,
            });
        }
        Ok(ImageRef {
            domain: domain.to_string(),
            path,
            tag: tag.map(str::to_string),
            digest,
        })
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
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }
    /// The short form (as [`ImageRef::familiar`]) with its tag, pinned to
    /// `digest`: `nginx:1.25@sha256:…`, ready to paste into a spec.
    pub fn familiar_with_digest(&self, digest: &Digest) -> String {
        self.with_digest(digest.clone()).familiar()
    }
    /// The same repository with this tag and no digest.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
    /// The short form Docker prints (`nginx:1.25`, `quay.io/org/app:v1`).
    ///
    /// Like distribution's `FamiliarString`: `docker.io/` is dropped, and
    /// `library/` too unless more components follow; the tag appears only
    /// if written.
    pub fn familiar(&self) -> String {
        let mut out = if self.domain == DOCKER_HUB {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(d.as_str());
        }
        out
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

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<ImageRef, ReferenceError> {
        ImageRef::parse(s)
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ImageRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ImageRef, D::Error> {
        let s = String::deserialize(deserializer)?;
        ImageRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Expected outcome of one row: normalised parts, or a fragment of the error message.
    enum Want {
        Ok(&'static str, &'static str, Option<&'static str>, bool),
        Err(&'static str),
    }
    use Want::{Err as E, Ok as O};

    #[test]
    fn parse_table() {
        let long_tag = format!("nginx:{}", "a".repeat(129));
        let tag_128: &'static str = "a".repeat(128).leak();
        let max_tag = format!("nginx:{tag_128}");
        let hex_path: &'static str = format!("library/{HEX}").leak();
        let path_250: &'static str = "b".repeat(250).leak();
        // "a.io/" is 5 characters: 251 more make a 256-character name.
        let name_256 = format!("a.io/{}", "b".repeat(251));
        let name_255 = format!("a.io/{}", "b".repeat(250));
        // "docker.io/library/" counts: 238 + 18 = 256.
        let hub_256 = "c".repeat(238);
        let with_digest = |s: &str| format!("{s}@{D}");
        let owned: Vec<(String, Want)> = vec![
            // Docker Hub normalisation
            ("nginx".into(), O("docker.io", "library/nginx", None, false)),
            (
                "nginx:1.25".into(),
                O("docker.io", "library/nginx", Some("1.25"), false),
            ),
            (
                "team/app:v1".into(),
                O("docker.io", "team/app", Some("v1"), false),
            ),
            (
                "docker.io/nginx".into(),
                O("docker.io", "library/nginx", None, false),
            ),
            (
                "docker.io/library/nginx".into(),
                O("docker.io", "library/nginx", None, false),
            ),
            (
                "index.docker.io/library/nginx".into(),
                O("docker.io", "library/nginx", None, false),
            ),
            (
                "index.docker.io/nginx:1".into(),
                O("docker.io", "library/nginx", Some("1"), false),
            ),
            (
                "docker.io/team/app".into(),
                O("docker.io", "team/app", None, false),
            ),
            (
                "library/nginx/extra".into(),
                O("docker.io", "library/nginx/extra", None, false),
            ),
            (
                "localhost".into(),
                O("docker.io", "library/localhost", None, false),
            ),
            ("a".into(), O("docker.io", "library/a", None, false)),
            // other registries and domain forms
            (
                "quay.io/org/app:v1".into(),
                O("quay.io", "org/app", Some("v1"), false),
            ),
            ("localhost/foo".into(), O("localhost", "foo", None, false)),
            (
                "localhost:5000/foo".into(),
                O("localhost:5000", "foo", None, false),
            ),
            (
                "localhost:5000/foo/bar:t".into(),
                O("localhost:5000", "foo/bar", Some("t"), false),
            ),
            (
                "[::1]:5000/foo:tag".into(),
                O("[::1]:5000", "foo", Some("tag"), false),
            ),
            ("[::1]/foo".into(), O("[::1]", "foo", None, false)),
            (
                "[2001:db8::1]:443/a/b".into(),
                O("[2001:db8::1]:443", "a/b", None, false),
            ),
            (
                "127.0.0.1:5000/x".into(),
                O("127.0.0.1:5000", "x", None, false),
            ),
            (
                "Registry.Example.com/foo".into(),
                O("Registry.Example.com", "foo", None, false),
            ),
            ("Registry/foo".into(), O("Registry", "foo", None, false)),
            (
                "my-reg.example.com:443/a/b/c:v".into(),
                O("my-reg.example.com:443", "a/b/c", Some("v"), false),
            ),
            (
                "registry:5000/foo".into(),
                O("registry:5000", "foo", None, false),
            ),
            // path separators
            (
                "team/a.b_c__d---e/f-g".into(),
                O("docker.io", "team/a.b_c__d---e/f-g", None, false),
            ),
            ("a.b_c/x".into(), E(r#"invalid domain "a.b_c""#)),
            // tags
            (
                "nginx:Latest_1.2-rc".into(),
                O("docker.io", "library/nginx", Some("Latest_1.2-rc"), false),
            ),
            (
                "nginx:_x".into(),
                O("docker.io", "library/nginx", Some("_x"), false),
            ),
            (
                max_tag,
                O("docker.io", "library/nginx", Some(tag_128), false),
            ),
            // digests
            (
                with_digest("nginx"),
                O("docker.io", "library/nginx", None, true),
            ),
            (
                with_digest("nginx:latest"),
                O("docker.io", "library/nginx", Some("latest"), true),
            ),
            (
                with_digest("quay.io/org/app:v1"),
                O("quay.io", "org/app", Some("v1"), true),
            ),
            (
                with_digest("localhost:5000/foo"),
                O("localhost:5000", "foo", None, true),
            ),
            (
                format!("{HEX}:v1"),
                O("docker.io", hex_path, Some("v1"), false),
            ),
            (name_255, O("a.io", path_250, None, false)),
            // errors
            ("".into(), E("empty reference")),
            (" nginx".into(), E("leading or trailing whitespace")),
            ("nginx\n".into(), E("leading or trailing whitespace")),
            ("ng inx".into(), E("path component \"ng inx\"")),
            (HEX.into(), E("image ID, not a repository name")),
            ("FOO".into(), E("repository name must be lowercase")),
            (
                "foo/Bar".into(),
                E(r#"invalid reference "foo/Bar": repository name must be lowercase"#),
            ),
            (
                "quay.io/Org/app".into(),
                E("repository name must be lowercase"),
            ),
            (
                "localhost:5000/Foo".into(),
                E("repository name must be lowercase"),
            ),
            ("a:b:c".into(), E(r#"invalid tag "b:c" in "a:b:c""#)),
            ("nginx:".into(), E("empty tag after ':'")),
            (
                "nginx:-x".into(),
                E(r#"invalid tag "-x" in "nginx:-x": must match [\w][\w.-]{0,127}"#),
            ),
            ("nginx:a/b".into(), E("invalid port \"a\"")),
            (long_tag, E("longer than 128 characters (129)")),
            (":tag".into(), E("no repository name")),
            (with_digest(""), E("no repository name")),
            ("nginx@".into(), E("empty digest after '@'")),
            (
                "nginx@sha256:abc".into(),
                E("sha256 needs 64 hex characters, got 3"),
            ),
            (
                format!("nginx@sha256:{}", &HEX[1..]),
                E("sha256 needs 64 hex characters, got 63"),
            ),
            (
                format!("nginx@sha256:{}", HEX.to_uppercase()),
                E("lowercase hex"),
            ),
            ("nginx@md5".into(), E("missing ':'")),
            (format!("{}@{D}", "a@b"), E("invalid digest")),
            ("foo//bar".into(), E(r#"path component """#)),
            ("foo/".into(), E(r#"path component """#)),
            ("-foo".into(), E(r#"path component "-foo""#)),
            ("foo-".into(), E(r#"path component "foo-""#)),
            ("foo..bar".into(), E(r#"path component "foo..bar""#)),
            ("foo___bar".into(), E(r#"path component "foo___bar""#)),
            ("foo.-bar".into(), E(r#"path component "foo.-bar""#)),
            ("-bad.io/foo".into(), E(r#"invalid domain "-bad.io""#)),
            ("bad-.io/foo".into(), E(r#"invalid domain "bad-.io""#)),
            ("a..io/foo".into(), E(r#"invalid domain "a..io""#)),
            ("a_b.io/foo".into(), E(r#"invalid domain "a_b.io""#)),
            (
                "localhost:/foo".into(),
                E(r#"invalid port "" in domain "localhost:""#),
            ),
            ("localhost:50x/foo".into(), E(r#"invalid port "50x""#)),
            ("[::1/foo".into(), E("invalid domain")),
            ("[]:5000/foo".into(), E("invalid domain")),
            ("[::g]/foo".into(), E("invalid domain")),
            ("[::1]x/foo".into(), E("invalid domain")),
            (name_256, E("name too long (256 > 255)")),
            (hub_256, E("name too long (256 > 255)")),
            ("ñginx".into(), E("path component")),
        ];
        assert!(owned.len() >= 40);
        for (input, want) in &owned {
            let got = ImageRef::parse(input);
            match (want, got) {
                (O(domain, path, tag, pinned), Ok(r)) => {
                    assert_eq!(r.domain(), *domain, "{input}");
                    assert_eq!(r.path(), *path, "{input}");
                    assert_eq!(r.tag(), *tag, "{input}");
                    assert_eq!(
                        r.digest().map(Digest::as_str),
                        pinned.then_some(D),
                        "{input}"
                    );
                }
                (E(fragment), Err(e)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(fragment),
                        "{input:?}: {msg:?} lacks {fragment:?}"
                    );
                    if !input.is_empty() && input.len() < 100 {
                        assert!(
                            msg.contains(&format!("{input:?}")),
                            "{msg:?} does not show {input:?}"
                        );
                    }
                    assert_eq!(e.category(), "invalid_reference");
                }
                (O(..), Err(e)) => panic!("{input:?}: unexpected error {e}"),
                (E(f), Ok(r)) => panic!("{input:?}: parsed as {r:?}, wanted error {f:?}"),
            }
        }
    }

    #[test]
    fn exact_error_variants() {
        assert_eq!(ImageRef::parse(""), Err(ReferenceError::Empty));
        assert_eq!(
            ImageRef::parse("foo/Bar"),
            Err(ReferenceError::Uppercase {
                input: "foo/Bar".into()
            })
        );
        assert_eq!(
            ImageRef::parse("a:b:c"),
            Err(ReferenceError::Tag {
                input: "a:b:c".into(),
                tag: "b:c".into()
            })
        );
        assert_eq!(
            ImageRef::parse("nginx@sha256:abc"),
            Err(ReferenceError::Digest {
                input: "nginx@sha256:abc".into(),
                reason: DigestError::HexLength {
                    input: "sha256:abc".into(),
                    algorithm: "sha256",
                    expected: 64,
                    len: 3
                },
            })
        );
        assert_eq!(
            ImageRef::parse("nginx@sha256:abc").unwrap_err().to_string(),
            r#"invalid reference "nginx@sha256:abc": invalid digest "sha256:abc": sha256 needs 64 hex characters, got 3"#
        );
        assert_eq!(
            ImageRef::parse(&format!("a.io/{}", "b".repeat(295))).unwrap_err(),
            ReferenceError::NameTooLong {
                input: format!("a.io/{}", "b".repeat(295)),
                len: 300
            }
        );
    }

    #[test]
    fn display_familiar_and_effective_tag() {
        // (input, Display, familiar, effective tag)
        let rows: Vec<(String, String, String, Option<&str>)> = vec![
            (
                "nginx".into(),
                "docker.io/library/nginx:latest".into(),
                "nginx".into(),
                Some("latest"),
            ),
            (
                "nginx:1.25".into(),
                "docker.io/library/nginx:1.25".into(),
                "nginx:1.25".into(),
                Some("1.25"),
            ),
            (
                "docker.io/library/nginx:1.25".into(),
                "docker.io/library/nginx:1.25".into(),
                "nginx:1.25".into(),
                Some("1.25"),
            ),
            (
                "team/app:v1".into(),
                "docker.io/team/app:v1".into(),
                "team/app:v1".into(),
                Some("v1"),
            ),
            (
                "library/a/b".into(),
                "docker.io/library/a/b:latest".into(),
                "library/a/b".into(),
                Some("latest"),
            ),
            (
                "quay.io/org/app:v1".into(),
                "quay.io/org/app:v1".into(),
                "quay.io/org/app:v1".into(),
                Some("v1"),
            ),
            (
                "quay.io/library/app".into(),
                "quay.io/library/app:latest".into(),
                "quay.io/library/app".into(),
                Some("latest"),
            ),
            (
                "localhost:5000/foo".into(),
                "localhost:5000/foo:latest".into(),
                "localhost:5000/foo".into(),
                Some("latest"),
            ),
            (
                format!("nginx@{D}"),
                format!("docker.io/library/nginx@{D}"),
                format!("nginx@{D}"),
                None,
            ),
            (
                format!("nginx:latest@{D}"),
                format!("docker.io/library/nginx:latest@{D}"),
                format!("nginx:latest@{D}"),
                Some("latest"),
            ),
        ];
        for (input, display, familiar, effective) in rows {
            let r = ImageRef::parse(&input).unwrap();
            assert_eq!(r.to_string(), display, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(r.effective_tag(), effective, "{input}");
            // Both forms parse back to the same reference.
            assert_eq!(ImageRef::parse(&r.familiar()).unwrap(), r, "{input}");
            if r.tag().is_some() || r.digest().is_none() {
                let full = ImageRef::parse(&r.to_string()).unwrap();
                assert_eq!(
                    (full.name(), full.digest()),
                    (r.name(), r.digest()),
                    "{input}"
                );
            }
        }
    }

    #[test]
    fn no_tag_stays_none() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.tag(), None);
        assert!(!r.is_pinned());
        let pinned = r.with_digest(Digest::parse(D).unwrap());
        assert!(pinned.is_pinned());
        assert_eq!(pinned.effective_tag(), None);
        let tagged = pinned.with_tag("v2");
        assert_eq!(tagged.familiar(), "nginx:v2");
    }

    #[test]
    fn digest_table() {
        let sha384 = format!("sha384:{}", "a".repeat(96));
        let sha512 = format!("sha512:{}", "0".repeat(128));
        let other = format!("blake3:{}", "A=_-".repeat(8));
        let rows: Vec<(String, Result<(), &str>)> = vec![
            (D.into(), Ok(())),
            (sha384, Ok(())),
            (sha512, Ok(())),
            (other, Ok(())),
            (format!("multi+part.algo-x_y:{}", "z".repeat(32)), Ok(())),
            ("".into(), Err("empty digest")),
            (HEX.into(), Err("missing ':'")),
            (
                format!("sha256:{}0", HEX),
                Err("sha256 needs 64 hex characters, got 65"),
            ),
            (
                "sha256:".into(),
                Err("sha256 needs 64 hex characters, got 0"),
            ),
            (
                format!("sha384:{}", HEX),
                Err("sha384 needs 96 hex characters, got 64"),
            ),
            (
                format!("sha512:{}", HEX),
                Err("sha512 needs 128 hex characters, got 64"),
            ),
            (
                format!("sha256:{}", HEX.replace('a', "A")),
                Err("lowercase hex (0-9, a-f), found 'A'"),
            ),
            (
                format!("sha256:{}", HEX.replace('a', "g")),
                Err("found 'g'"),
            ),
            (
                format!("1sha:{}", HEX),
                Err(r#"algorithm "1sha" must match"#),
            ),
            (format!("sha-:{}", HEX), Err(r#"algorithm "sha-""#)),
            (format!("a..b:{}", HEX), Err(r#"algorithm "a..b""#)),
            (format!(":{}", HEX), Err(r#"algorithm """#)),
            (
                format!("blake3:{}", "a".repeat(31)),
                Err("at least 32 characters, got 31"),
            ),
            (format!("blake3:{}/", "a".repeat(32)), Err("found '/'")),
        ];
        for (input, want) in rows {
            match (want, Digest::parse(&input)) {
                (Ok(()), Ok(d)) => {
                    assert_eq!(d.as_str(), input);
                    assert_eq!(format!("{}:{}", d.algorithm(), d.hex()), input);
                }
                (Err(fragment), Err(e)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(fragment),
                        "{input:?}: {msg:?} lacks {fragment:?}"
                    );
                }
                (Ok(()), Err(e)) => panic!("{input:?}: unexpected error {e}"),
                (Err(f), Ok(d)) => panic!("{input:?}: parsed as {d:?}, wanted {f:?}"),
            }
        }
    }

    #[test]
    fn digest_helpers() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(d.as_str()), Ok(d.clone()));
        assert_eq!(d.short(), "sha256:e3b0c44298fc");
    }

    #[test]
    fn from_str_and_serde() {
        let r: ImageRef = "nginx:1.25".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#""docker.io/library/nginx:1.25""#
        );
        let back: ImageRef = serde_json::from_str(r#""nginx:1.25""#).unwrap();
        assert_eq!(back, r);
        assert!(serde_json::from_str::<ImageRef>(r#""Foo""#).is_err());
        let d: Digest = D.parse().unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{D}\""));
        assert_eq!(
            serde_json::from_str::<Digest>(&format!("\"{D}\"")).unwrap(),
            d
        );
        assert!("sha256:x".parse::<Digest>().is_err());
        assert!(serde_json::from_str::<Digest>(r#""sha256:x""#).is_err());
    }
}
