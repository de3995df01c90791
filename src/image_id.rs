//! Runtime image IDs as kubelet reports them in
//! `status.*ContainerStatuses[].imageID` (SEMANTICS.md §1).
//!
//! | form | runtime | digest kind |
//! |---|---|---|
//! | `docker.io/library/nginx@sha256:<d>` | containerd | manifest/index |
//! | `quay.io/org/app@sha256:<d>` | CRI-O | manifest/index |
//! | `nginx@sha256:<d>`, `repo:tag@sha256:<d>` | familiar names, some runtimes | manifest/index |
//! | `docker-pullable://nginx@sha256:<d>` | cri-dockerd, dockershim | manifest/index |
//! | `docker://sha256:<d>` | dockershim, no repo digest | config |
//! | `sha256:<d>` | any, no repo digest | config |
//! | 64 hex characters | CRI-O, no repo digest | config |

use crate::reference::{Digest, DigestError};

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
    /// Whitespace anywhere in the ID (kubelet copies it verbatim; none is expected).
    #[error("invalid imageID {input:?}: contains whitespace")]
    Whitespace {
        /// The imageID as reported.
        input: String,
    },
    /// A scheme other than `docker-pullable://` or `docker://`.
    #[error(
        "invalid imageID {input:?}: unknown scheme \"{scheme}://\" (expected docker-pullable:// or docker://)"
    )]
    UnknownScheme {
        /// The imageID as reported.
        input: String,
        /// The scheme before `://`.
        scheme: String,
    },
    /// `docker-pullable://` not followed by `repo@digest`.
    #[error("invalid imageID {input:?}: docker-pullable:// must be followed by repository@digest")]
    PullableWithoutRepository {
        /// The imageID as reported.
        input: String,
    },
    /// `docker://` followed by something other than a bare digest.
    #[error(
        "invalid imageID {input:?}: docker:// must be followed by a bare digest such as sha256:<64 hex>"
    )]
    DockerIdWithRepository {
        /// The imageID as reported.
        input: String,
    },
    /// Nothing (or only a tag) before `@`.
    #[error("invalid imageID {input:?}: empty repository before '@'")]
    EmptyRepository {
        /// The imageID as reported.
        input: String,
    },
    /// 64 hex characters, but not all lowercase.
    #[error("invalid imageID {input:?}: a bare 64-character image ID must be lowercase hex")]
    NotLowercaseHex {
        /// The imageID as reported.
        input: String,
    },
    /// The digest part is invalid.
    #[error("invalid imageID {input:?}: {reason}")]
    Digest {
        /// The imageID as reported.
        input: String,
        /// What is wrong with the digest.
        reason: DigestError,
    },
    /// None of the known forms: no digest at all (e.g. a plain `repo:tag`).
    #[error(
        "invalid imageID {input:?}: no digest (expected repository@sha256:<hex>, sha256:<hex>, or 64 hex characters)"
    )]
    NoDigest {
        /// The imageID as reported.
        input: String,
    },
}

impl ImageIdError {
    /// Short fixed label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        "invalid_image_id"
    }
}

/// Drops a `:tag` from the last path component (a `:port` sits before a `/`).
fn strip_tag(repository: &str) -> &str {
    let last = repository.rfind('/').map_or(0, |i| i + 1);
    match repository[last..].find(':') {
        Some(i) => &repository[..last + i],
        None => repository,
    }
}

impl RuntimeImageId {
    /// Parses an `imageID`; `Ok(None)` when it is empty (container not started).
    pub fn parse(s: &str) -> Result<Option<RuntimeImageId>, ImageIdError> {
        if s.is_empty() {
            return Ok(None);
        }
        let input = || s.to_string();
        let digest = |d: &str| {
            Digest::parse(d).map_err(|reason| ImageIdError::Digest {
                input: input(),
                reason,
            })
        };
        if s.chars().any(char::is_whitespace) {
            return Err(ImageIdError::Whitespace { input: input() });
        }

        let (form, rest) = if let Some(rest) = s.strip_prefix("docker-pullable://") {
            if !rest.contains('@') {
                return Err(ImageIdError::PullableWithoutRepository { input: input() });
            }
            (IdForm::DockerPullable, rest)
        } else if let Some(rest) = s.strip_prefix("docker://") {
            if rest.contains(['@', '/']) {
                return Err(ImageIdError::DockerIdWithRepository { input: input() });
            }
            let digest = digest(rest)?;
            return Ok(Some(RuntimeImageId {
                repository: None,
                digest,
                kind: DigestKind::Config,
                form: IdForm::DockerImageId,
            }));
        } else if let Some((scheme, _)) = s.split_once("://") {
            return Err(ImageIdError::UnknownScheme {
                input: input(),
                scheme: scheme.to_string(),
            });
        } else {
            (IdForm::RepoDigest, s)
        };

        if let Some((repository, d)) = rest.split_once('@') {
            // Some runtimes keep the tag: `repo:tag@sha256:…`.
            let repository = strip_tag(repository);
            if repository.is_empty() {
                return Err(ImageIdError::EmptyRepository { input: input() });
            }
            return Ok(Some(RuntimeImageId {
                repository: Some(repository.to_string()),
                digest: digest(d)?,
                kind: DigestKind::Manifest,
                form,
            }));
        }

        if s.len() == 64 && s.bytes().all(|x| x.is_ascii_hexdigit()) {
            if s.bytes().any(|x| x.is_ascii_uppercase()) {
                return Err(ImageIdError::NotLowercaseHex { input: input() });
            }
            return Ok(Some(RuntimeImageId {
                repository: None,
                digest: digest(&format!("sha256:{s}"))?,
                kind: DigestKind::Config,
                form: IdForm::BareHex,
            }));
        }

        match Digest::parse(s) {
            Ok(digest) => Ok(Some(RuntimeImageId {
                repository: None,
                digest,
                kind: DigestKind::Config,
                form: IdForm::BareDigest,
            })),
            // A known algorithm with a bad value: say what is wrong with it.
            Err(reason) if matches!(s.split(':').next(), Some("sha256" | "sha384" | "sha512")) => {
                Err(ImageIdError::Digest {
                    input: input(),
                    reason,
                })
            }
            // `nginx:1.25`, `nginx`, `quay.io/x/y:v1`: a reference without a digest.
            Err(_) => Err(ImageIdError::NoDigest { input: input() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parse_table() {
        use DigestKind::{Config, Manifest};
        use IdForm::*;
        // (imageID, Ok(repository, kind, form) or Err(message fragment))
        type Want = Result<(Option<&'static str>, DigestKind, IdForm), &'static str>;
        let rows: Vec<(String, Want)> = vec![
            // containerd: fully normalised name
            (
                format!("docker.io/library/nginx@{D}"),
                Ok((Some("docker.io/library/nginx"), Manifest, RepoDigest)),
            ),
            // CRI-O
            (
                format!("quay.io/org/app@{D}"),
                Ok((Some("quay.io/org/app"), Manifest, RepoDigest)),
            ),
            // familiar name, kept as written
            (
                format!("nginx@{D}"),
                Ok((Some("nginx"), Manifest, RepoDigest)),
            ),
            (
                format!("localhost:5000/foo@{D}"),
                Ok((Some("localhost:5000/foo"), Manifest, RepoDigest)),
            ),
            (
                format!("[::1]:5000/foo@{D}"),
                Ok((Some("[::1]:5000/foo"), Manifest, RepoDigest)),
            ),
            // tag before '@' is dropped; a port is not a tag
            (
                format!("nginx:1.25@{D}"),
                Ok((Some("nginx"), Manifest, RepoDigest)),
            ),
            (
                format!("localhost:5000/foo:v1@{D}"),
                Ok((Some("localhost:5000/foo"), Manifest, RepoDigest)),
            ),
            // names that are not valid references are still accepted
            (
                format!("import-2024-01-01@{D}"),
                Ok((Some("import-2024-01-01"), Manifest, RepoDigest)),
            ),
            (
                format!("Weird/Name@{D}"),
                Ok((Some("Weird/Name"), Manifest, RepoDigest)),
            ),
            // cri-dockerd / dockershim
            (
                format!("docker-pullable://nginx@{D}"),
                Ok((Some("nginx"), Manifest, DockerPullable)),
            ),
            (
                format!("docker-pullable://quay.io/org/app:v1@{D}"),
                Ok((Some("quay.io/org/app"), Manifest, DockerPullable)),
            ),
            (format!("docker://{D}"), Ok((None, Config, DockerImageId))),
            // no repo digest known
            (D.to_string(), Ok((None, Config, BareDigest))),
            (HEX.to_string(), Ok((None, Config, BareHex))),
            // errors
            (" ".into(), Err("contains whitespace")),
            (format!("{D}\n"), Err("contains whitespace")),
            (format!("nginx @{D}"), Err("contains whitespace")),
            (format!("@{D}"), Err("empty repository before '@'")),
            (format!(":v1@{D}"), Err("empty repository before '@'")),
            ("nginx@".into(), Err("empty digest")),
            (
                "nginx@sha256:abc".into(),
                Err("sha256 needs 64 hex characters, got 3"),
            ),
            (format!("nginx@{}", HEX), Err("missing ':'")),
            (
                "sha256:abc".into(),
                Err("sha256 needs 64 hex characters, got 3"),
            ),
            (
                format!("sha256:{}", HEX.to_uppercase()),
                Err("lowercase hex"),
            ),
            (HEX.to_uppercase(), Err("must be lowercase hex")),
            (HEX[1..].to_string(), Err("no digest")),
            ("nginx:1.25".into(), Err("no digest")),
            ("nginx".into(), Err("no digest")),
            ("quay.io/org/app:v1".into(), Err("no digest")),
            (
                format!("containerd://{D}"),
                Err("unknown scheme \"containerd://\""),
            ),
            (
                format!("docker-pullable://{D}"),
                Err("docker-pullable:// must be followed by repository@digest"),
            ),
            (
                format!("docker://nginx@{D}"),
                Err("docker:// must be followed by a bare digest"),
            ),
            ("docker://".into(), Err("empty digest")),
            (format!("docker://{HEX}"), Err("missing ':'")),
        ];
        assert!(rows.len() >= 15);
        for (input, want) in rows {
            match (want, RuntimeImageId::parse(&input)) {
                (Ok((repository, kind, form)), Ok(Some(id))) => {
                    assert_eq!(id.repository.as_deref(), repository, "{input}");
                    assert_eq!(id.digest.as_str(), D, "{input}");
                    assert_eq!((id.kind, id.form), (kind, form), "{input}");
                }
                (Err(fragment), Err(e)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(fragment),
                        "{input:?}: {msg:?} lacks {fragment:?}"
                    );
                    assert!(
                        msg.contains(&format!("{input:?}")),
                        "{msg:?} does not show {input:?}"
                    );
                    assert_eq!(e.category(), "invalid_image_id");
                }
                (Ok(_), other) => panic!("{input:?}: unexpected {other:?}"),
                (Err(f), Ok(id)) => panic!("{input:?}: parsed as {id:?}, wanted error {f:?}"),
            }
        }
    }

    #[test]
    fn empty_means_not_started() {
        assert_eq!(RuntimeImageId::parse(""), Ok(None));
    }

    #[test]
    fn exact_error_variants() {
        assert_eq!(
            RuntimeImageId::parse("nginx:1.25"),
            Err(ImageIdError::NoDigest {
                input: "nginx:1.25".into()
            })
        );
        assert_eq!(
            RuntimeImageId::parse("sha256:abc"),
            Err(ImageIdError::Digest {
                input: "sha256:abc".into(),
                reason: DigestError::HexLength {
                    input: "sha256:abc".into(),
                    algorithm: "sha256",
                    expected: 64,
                    len: 3,
                },
            })
        );
    }

    #[test]
    fn other_algorithms_pass_through() {
        let sha512 = format!("sha512:{}", "f".repeat(128));
        let id = RuntimeImageId::parse(&format!("quay.io/a/b@{sha512}"))
            .unwrap()
            .unwrap();
        assert_eq!(id.digest.algorithm(), "sha512");
        let id = RuntimeImageId::parse(&sha512).unwrap().unwrap();
        assert_eq!((id.kind, id.form), (DigestKind::Config, IdForm::BareDigest));
    }
}
