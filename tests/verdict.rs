//! The verdict table: one row per rule and edge case of SEMANTICS.md §1–§4.
//!
//! A small fake registry holds every manifest the rows need; it counts the
//! lookups so rows can also assert that a fresh container costs nothing.

use imagedrift::facts::{
    DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, Descriptor, FailureCategory, IndexEntry,
    LookupFailure, Manifest, ManifestSource, OCI_INDEX, OCI_MANIFEST,
};
use imagedrift::image_id::RuntimeImageId;
use imagedrift::platform::Platform;
use imagedrift::reference::{Digest, ImageRef};
use imagedrift::verdict::{
    LookupTarget, Rule, UnknownReason, Verdict, VerdictInput, invalid_image_id, invalid_reference,
    judge,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A stable fake digest for a label.
fn d(label: &str) -> Digest {
    Digest::sha256_of(label.as_bytes())
}

fn plat(s: &str) -> Option<Platform> {
    if s == "unknown/unknown" {
        // BuildKit attestation entries: not a real platform, but parseable.
        return Some(Platform::new("unknown", "unknown", None));
    }
    Some(Platform::parse(s).expect("fixture platform"))
}

fn index(children: &[(&str, &str)]) -> Manifest {
    Manifest::Index {
        entries: children
            .iter()
            .map(|(p, m)| IndexEntry {
                digest: d(m),
                media_type: OCI_MANIFEST.into(),
                platform: plat(p),
            })
            .collect(),
    }
}

fn image(config: &str) -> Manifest {
    Manifest::Image {
        config: d(config),
        platform: None,
    }
}

struct FakeRegistry {
    manifests: HashMap<Digest, Result<Arc<Manifest>, LookupFailure>>,
    lookups: AtomicUsize,
}

impl FakeRegistry {
    fn new() -> FakeRegistry {
        let mut m: HashMap<Digest, Result<Arc<Manifest>, LookupFailure>> = HashMap::new();
        let mut put = |label: &str, manifest: Manifest| {
            m.insert(d(label), Ok(Arc::new(manifest)));
        };
        // The tag's history: IDX1 (old build) → IDX2 (new build) → IDX3
        // (identical re-push for amd64/arm64 with an added platform) → IDX4
        // (amd64 manifest rewritten around the same config, arm64 rebuilt).
        put(
            "IDX1",
            index(&[("linux/amd64", "M1a"), ("linux/arm64", "M1r")]),
        );
        put(
            "IDX2",
            index(&[
                ("linux/amd64", "M2a"),
                ("linux/arm64/v8", "M2r"),
                ("linux/arm/v7", "M2v7"),
                ("linux/arm/v6", "M2v6"),
                ("unknown/unknown", "ATT2"),
            ]),
        );
        put(
            "IDX3",
            index(&[
                ("linux/amd64", "M2a"),
                ("linux/arm64/v8", "M2r"),
                ("linux/s390x", "M3s"),
            ]),
        );
        put(
            "IDX4",
            index(&[("linux/amd64", "M4a"), ("linux/arm64", "M4r")]),
        );
        put("IDXV", index(&[("linux/arm64", "MV1")]));
        put(
            "IDXN",
            Manifest::Index {
                entries: vec![IndexEntry {
                    digest: d("IDX2"),
                    media_type: OCI_INDEX.into(),
                    platform: plat("linux/amd64"),
                }],
            },
        );
        put("DL1", index(&[("linux/amd64", "DM1")]));
        put("DL2", index(&[("linux/amd64", "DM2")]));
        for (m, c) in [
            ("M1a", "C1a"),
            ("M1r", "C1r"),
            ("M2a", "C2a"),
            ("M2r", "C2r"),
            ("M2v7", "C2v7"),
            ("M2v6", "C2v6"),
            ("M3s", "C3s"),
            ("M4a", "C2a"),
            ("M4r", "C4r"),
            ("MV1", "CV1"),
            ("DM1", "DC1"),
            ("DM2", "DC2"),
            ("S1", "SC1"),
            ("S2", "SC2"),
            ("S3", "SC1"),
            ("S4", "C2a"),
        ] {
            put(m, image(c));
        }
        m.insert(
            d("GONE"),
            Err(LookupFailure::new(
                FailureCategory::NotFound,
                "manifest unknown",
            )),
        );
        m.insert(
            d("DENIED"),
            Err(LookupFailure::new(FailureCategory::Denied, "access denied")),
        );
        m.insert(
            d("IDXRL"),
            Err(LookupFailure::new(
                FailureCategory::RateLimited,
                "429 Too Many Requests",
            )),
        );
        FakeRegistry {
            manifests: m,
            lookups: AtomicUsize::new(0),
        }
    }
}

impl ManifestSource for FakeRegistry {
    async fn manifest(
        &self,
        _image: &ImageRef,
        digest: &Digest,
    ) -> Result<Arc<Manifest>, LookupFailure> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.manifests.get(digest).cloned().unwrap_or_else(|| {
            Err(LookupFailure::new(
                FailureCategory::NotFound,
                "not in fixture",
            ))
        })
    }
}

/// What the tag resolves to in a row.
#[derive(Clone, Copy)]
enum Tag {
    /// Not resolved yet.
    Pending,
    /// An index (OCI).
    Index(&'static str),
    /// A Docker manifest list.
    List(&'static str),
    /// A single-arch OCI manifest.
    Oci(&'static str),
    /// A single-arch Docker v2 manifest.
    Docker(&'static str),
    /// The lookup failed.
    Fail(FailureCategory),
}

/// The expected outcome.
#[derive(Clone, Copy, Debug)]
enum Want {
    Fresh(Rule),
    Stale,
    Pinned(Rule),
    Unknown(&'static str),
}

struct Row {
    name: &'static str,
    spec: &'static str,
    /// `imageID` with `{X}` replaced by the digest of label X.
    image_id: &'static str,
    running: bool,
    platform: Option<&'static str>,
    tag: Tag,
    want: Want,
    /// Exact number of manifest lookups, where the row cares.
    lookups: Option<usize>,
}

const APP: &str = "registry.example/team/app:v1";

fn row(
    name: &'static str,
    image_id: &'static str,
    platform: Option<&'static str>,
    tag: Tag,
    want: Want,
) -> Row {
    Row {
        name,
        spec: APP,
        image_id,
        running: true,
        platform,
        tag,
        want,
        lookups: None,
    }
}

fn expand(template: &str) -> String {
    // Replace every `{LABEL}` with the full digest, and `{hex:LABEL}` with its hex.
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let label = &rest[start + 1..end];
        match label.strip_prefix("hex:") {
            Some(l) => out.push_str(d(l).hex()),
            None => out.push_str(d(label).as_str()),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn rows() -> Vec<Row> {
    use FailureCategory as F;
    use Tag::*;
    use Want::*;
    const AMD: Option<&str> = Some("linux/amd64");
    const ARM64: Option<&str> = Some("linux/arm64");
    let mut rows = vec![
        // §3.1 pinned specs
        Row {
            spec: "registry.example/team/app@{IDX2}",
            ..row(
                "pinned, running the pin (containerd)",
                "registry.example/team/app@{IDX2}",
                AMD,
                Pending,
                Pinned(Rule::PinnedMatch),
            )
        },
        Row {
            spec: "registry.example/team/app:v1@{IDX2}",
            ..row(
                "tag+digest pinned, running the pin",
                "registry.example/team/app@{IDX2}",
                AMD,
                Index("IDX2"),
                Pinned(Rule::PinnedMatch),
            )
        },
        Row {
            spec: "registry.example/team/app@{IDX2}",
            ..row(
                "pinned, CRI-O reports the platform digest",
                "registry.example/team/app@{M2a}",
                AMD,
                Pending,
                Pinned(Rule::PinnedUnverified),
            )
        },
        Row {
            spec: "registry.example/team/app@{IDX2}",
            ..row(
                "pinned, config digest reported",
                "{C2a}",
                AMD,
                Pending,
                Pinned(Rule::PinnedUnverified),
            )
        },
        Row {
            spec: "registry.example/team/app@{IDX2}",
            ..row(
                "pinned, not started yet",
                "",
                AMD,
                Pending,
                Pinned(Rule::PinnedUnverified),
            )
        },
        Row {
            spec: "registry.example/team/app:latest@{IDX2}",
            ..row(
                "pinned latest, tag moved: informational only",
                "registry.example/team/app@{IDX2}",
                AMD,
                Index("IDX4"),
                Pinned(Rule::PinnedMatch),
            )
        },
        Row {
            spec: "registry.example/team/app:v1@{IDX2}",
            ..row(
                "pinned, tag lookup failed: still pinned",
                "registry.example/team/app@{IDX2}",
                AMD,
                Fail(F::Unreachable),
                Pinned(Rule::PinnedMatch),
            )
        },
        // §3.2 not running
        row(
            "empty imageID (waiting, ImagePullBackOff)",
            "",
            AMD,
            Index("IDX2"),
            Unknown("not_running"),
        ),
        Row {
            running: false,
            ..row(
                "terminated container with an imageID",
                "registry.example/team/app@{IDX1}",
                AMD,
                Index("IDX2"),
                Unknown("not_running"),
            )
        },
        row(
            "empty imageID beats a registry failure",
            "",
            AMD,
            Fail(F::Unauthorized),
            Unknown("not_running"),
        ),
        row(
            "tag not resolved yet",
            "registry.example/team/app@{IDX1}",
            AMD,
            Pending,
            Unknown("pending"),
        ),
        // §3.5 every lookup failure of the tag is Unknown, never Stale
        row(
            "tag: unauthorized",
            "registry.example/team/app@{IDX1}",
            AMD,
            Fail(F::Unauthorized),
            Unknown("unauthorized"),
        ),
        row(
            "tag: denied",
            "registry.example/team/app@{IDX1}",
            AMD,
            Fail(F::Denied),
            Unknown("denied"),
        ),
        row(
            "tag: not found",
            "registry.example/team/app@{IDX1}",
            AMD,
            Fail(F::NotFound),
            Unknown("not_found"),
        ),
        row(
            "tag: rate limited",
            "registry.example/team/app@{IDX1}",
            AMD,
            Fail(F::RateLimited),
            Unknown("rate_limited"),
        ),
        row(
            "tag: unreachable",
            "registry.example/team/app@{IDX1}",
            AMD,
            Fail(F::Unreachable),
            Unknown("unreachable"),
        ),
        row(
            "tag: timeout",
            "registry.example/team/app@{IDX1}",
            AMD,
            Fail(F::Timeout),
            Unknown("timeout"),
        ),
        row(
            "tag: tls",
            "registry.example/team/app@{IDX1}",
            AMD,
            Fail(F::Tls),
            Unknown("tls"),
        ),
        row(
            "tag: server error",
            "registry.example/team/app@{IDX1}",
            AMD,
            Fail(F::ServerError),
            Unknown("server_error"),
        ),
        row(
            "tag: invalid response",
            "registry.example/team/app@{IDX1}",
            AMD,
            Fail(F::InvalidResponse),
            Unknown("invalid_response"),
        ),
        row(
            "tag: credential provider plugin failed",
            "registry.example/team/app@{IDX1}",
            AMD,
            Fail(F::CredentialProvider),
            Unknown("credential_provider"),
        ),
        // §3.3 same digest: no lookups at all
        Row {
            lookups: Some(0),
            ..row(
                "containerd, multi-arch, same index",
                "registry.example/team/app@{IDX2}",
                AMD,
                Index("IDX2"),
                Fresh(Rule::SameDigest),
            )
        },
        Row {
            lookups: Some(0),
            ..row(
                "containerd, single-arch, same manifest",
                "registry.example/team/app@{S1}",
                AMD,
                Oci("S1"),
                Fresh(Rule::SameDigest),
            )
        },
        Row {
            lookups: Some(0),
            ..row(
                "cri-dockerd docker-pullable, same list",
                "docker-pullable://registry.example/team/app@{DL1}",
                AMD,
                List("DL1"),
                Fresh(Rule::SameDigest),
            )
        },
        Row {
            spec: "nginx:1.25",
            lookups: Some(0),
            ..row(
                "cri-dockerd familiar short name",
                "docker-pullable://nginx@{IDX2}",
                AMD,
                Index("IDX2"),
                Fresh(Rule::SameDigest),
            )
        },
        Row {
            spec: "nginx:1.25",
            lookups: Some(0),
            ..row(
                "containerd normalised docker.io name",
                "docker.io/library/nginx@{IDX2}",
                AMD,
                Index("IDX2"),
                Fresh(Rule::SameDigest),
            )
        },
        Row {
            lookups: Some(0),
            ..row(
                "imageID names another repository: digests, not names",
                "import-2024-03-01/app@{IDX2}",
                AMD,
                Index("IDX2"),
                Fresh(Rule::SameDigest),
            )
        },
        Row {
            lookups: Some(0),
            ..row(
                "same digest needs no platform",
                "registry.example/team/app@{IDX2}",
                None,
                Index("IDX2"),
                Fresh(Rule::SameDigest),
            )
        },
        Row {
            lookups: Some(0),
            ..row(
                "Docker v2 single-arch, same manifest",
                "registry.example/team/app@{S2}",
                AMD,
                Docker("S2"),
                Fresh(Rule::SameDigest),
            )
        },
        // §3.3 CRI-O platform digests: a child of the current index
        Row {
            lookups: Some(1),
            ..row(
                "CRI-O amd64 platform digest of current index",
                "registry.example/team/app@{M2a}",
                AMD,
                Index("IDX2"),
                Fresh(Rule::ChildOfCurrentIndex),
            )
        },
        row(
            "CRI-O arm64 platform digest of current index",
            "registry.example/team/app@{M2r}",
            ARM64,
            Index("IDX2"),
            Fresh(Rule::ChildOfCurrentIndex),
        ),
        row(
            "child of current index, node platform unknown",
            "registry.example/team/app@{M2a}",
            None,
            Index("IDX2"),
            Fresh(Rule::ChildOfCurrentIndex),
        ),
        row(
            "CRI-O platform digest of current Docker list",
            "registry.example/team/app@{DM1}",
            AMD,
            List("DL1"),
            Fresh(Rule::ChildOfCurrentIndex),
        ),
        row(
            "CRI-O old platform digest, new build",
            "registry.example/team/app@{M1a}",
            AMD,
            Index("IDX2"),
            Stale,
        ),
        row(
            "CRI-O old arm64 platform digest, new build",
            "registry.example/team/app@{M1r}",
            ARM64,
            Index("IDX2"),
            Stale,
        ),
        // §3.3 old index: re-pushed with identical content for this node
        row(
            "re-push, same amd64 child (added platform)",
            "registry.example/team/app@{IDX2}",
            AMD,
            Index("IDX3"),
            Fresh(Rule::SamePlatformChild),
        ),
        row(
            "re-push, same arm64 child, node says arm64",
            "registry.example/team/app@{IDX2}",
            ARM64,
            Index("IDX3"),
            Fresh(Rule::SamePlatformChild),
        ),
        row(
            "re-push, same arm64 child, node says arm64/v8",
            "registry.example/team/app@{IDX2}",
            Some("linux/arm64/v8"),
            Index("IDX3"),
            Fresh(Rule::SamePlatformChild),
        ),
        row(
            "re-push, new amd64 manifest around the same config",
            "registry.example/team/app@{IDX2}",
            AMD,
            Index("IDX4"),
            Fresh(Rule::SameConfig),
        ),
        row(
            "re-push, arm64 rebuilt",
            "registry.example/team/app@{IDX2}",
            ARM64,
            Index("IDX4"),
            Stale,
        ),
        row(
            "new build, amd64 (containerd)",
            "registry.example/team/app@{IDX1}",
            AMD,
            Index("IDX2"),
            Stale,
        ),
        row(
            "new build, arm64 (containerd)",
            "registry.example/team/app@{IDX1}",
            ARM64,
            Index("IDX2"),
            Stale,
        ),
        row(
            "new build, cri-dockerd list digest",
            "docker-pullable://registry.example/team/app@{DL1}",
            AMD,
            List("DL2"),
            Stale,
        ),
        // §3.6 platform undetermined
        row(
            "old index, node platform unknown",
            "registry.example/team/app@{IDX1}",
            None,
            Index("IDX2"),
            Unknown("platform"),
        ),
        row(
            "old index, arm without variant, v6 and v7 entries",
            "registry.example/team/app@{IDX2}",
            Some("linux/arm"),
            Index("IDX3"),
            Unknown("platform"),
        ),
        row(
            "old index has no entry for the node",
            "registry.example/team/app@{IDX2}",
            Some("linux/s390x"),
            Index("IDX3"),
            Unknown("platform"),
        ),
        row(
            "current index has no entry for the node",
            "registry.example/team/app@{IDX2}",
            Some("linux/arm/v7"),
            Index("IDX3"),
            Unknown("platform"),
        ),
        // single-arch tags
        row(
            "single-arch re-push, new content",
            "registry.example/team/app@{S1}",
            AMD,
            Oci("S2"),
            Stale,
        ),
        row(
            "single-arch re-push, identical config",
            "registry.example/team/app@{S1}",
            AMD,
            Oci("S3"),
            Fresh(Rule::SameConfig),
        ),
        row(
            "single-arch needs no platform",
            "registry.example/team/app@{S1}",
            None,
            Docker("S2"),
            Stale,
        ),
        row(
            "single-arch tag became multi-arch, new content",
            "registry.example/team/app@{S1}",
            AMD,
            Index("IDX2"),
            Stale,
        ),
        row(
            "single-arch tag became multi-arch, platform unknown",
            "registry.example/team/app@{S1}",
            None,
            Index("IDX2"),
            Unknown("platform"),
        ),
        row(
            "multi-arch tag became single-arch, same config",
            "registry.example/team/app@{IDX2}",
            AMD,
            Oci("S4"),
            Fresh(Rule::SameConfig),
        ),
        row(
            "multi-arch tag became single-arch, new config",
            "registry.example/team/app@{IDX1}",
            AMD,
            Oci("S4"),
            Stale,
        ),
        // §3.4 config digests (image IDs)
        row(
            "bare sha256 config digest, current",
            "{C2a}",
            AMD,
            Index("IDX2"),
            Fresh(Rule::SameConfig),
        ),
        row(
            "docker:// config digest, current",
            "docker://{C2a}",
            AMD,
            Index("IDX2"),
            Fresh(Rule::SameConfig),
        ),
        row(
            "bare sha256 config digest, old",
            "{C1a}",
            AMD,
            Index("IDX2"),
            Stale,
        ),
        row(
            "docker:// config digest, old",
            "docker://{C1a}",
            AMD,
            List("IDX2"),
            Stale,
        ),
        row(
            "CRI-O bare hex, matches config",
            "{hex:C2a}",
            AMD,
            Index("IDX2"),
            Fresh(Rule::SameConfig),
        ),
        row(
            "CRI-O bare hex, no match: unverifiable",
            "{hex:C1a}",
            AMD,
            Index("IDX2"),
            Unknown("unverifiable_image_id"),
        ),
        row(
            "config digest, single-arch current",
            "{SC1}",
            None,
            Oci("S1"),
            Fresh(Rule::SameConfig),
        ),
        row(
            "config digest, single-arch old",
            "{SC1}",
            None,
            Oci("S2"),
            Stale,
        ),
        row(
            "config digest, multi-arch, platform unknown",
            "{C2a}",
            None,
            Index("IDX2"),
            Unknown("platform"),
        ),
        row(
            "config digest, arm64 node vs arm64/v8 entry",
            "{C2r}",
            ARM64,
            Index("IDX2"),
            Fresh(Rule::SameConfig),
        ),
        row(
            "config digest, arm/v7 node picks v7 among v6/v7",
            "{C2v7}",
            Some("linux/arm/v7"),
            Index("IDX2"),
            Fresh(Rule::SameConfig),
        ),
        row(
            "config digest, arm/v6 node gets v6, runs v7 config",
            "{C2v7}",
            Some("linux/arm/v6"),
            Index("IDX2"),
            Stale,
        ),
        row(
            "config digest, arm64/v8 node vs variant-less arm64 entry",
            "{CV1}",
            Some("linux/arm64/v8"),
            Index("IDXV"),
            Fresh(Rule::SameConfig),
        ),
        row(
            "config digest, attestation entry not picked",
            "{C2a}",
            AMD,
            Index("IDX2"),
            Fresh(Rule::SameConfig),
        ),
        // §3.3/§3.5 lookup failures after the tag resolved
        row(
            "running digest deleted from registry",
            "registry.example/team/app@{GONE}",
            AMD,
            Index("IDX2"),
            Unknown("not_found"),
        ),
        row(
            "running digest denied",
            "registry.example/team/app@{DENIED}",
            AMD,
            Oci("S1"),
            Unknown("denied"),
        ),
        row(
            "current index rate limited",
            "registry.example/team/app@{M1a}",
            AMD,
            Index("IDXRL"),
            Unknown("rate_limited"),
        ),
        row(
            "current index rate limited, config digest",
            "{C1a}",
            AMD,
            Index("IDXRL"),
            Unknown("rate_limited"),
        ),
        row(
            "nested index where a manifest was needed",
            "{C2a}",
            AMD,
            Index("IDXN"),
            Unknown("nested_index"),
        ),
    ];
    // The same rule holds whichever runtime form reports a manifest digest.
    rows.push(row(
        "containerd familiar-less form, old single-arch",
        "registry.example/team/app@{S1}",
        AMD,
        Docker("S2"),
        Stale,
    ));
    rows
}

fn tag_result(tag: Tag) -> Option<Result<Descriptor, LookupFailure>> {
    let desc = |label: &str, media_type: &str| {
        Some(Ok(Descriptor {
            digest: d(label),
            media_type: media_type.into(),
        }))
    };
    match tag {
        Tag::Pending => None,
        Tag::Index(l) => desc(l, OCI_INDEX),
        Tag::List(l) => desc(l, DOCKER_MANIFEST_LIST),
        Tag::Oci(l) => desc(l, OCI_MANIFEST),
        Tag::Docker(l) => desc(l, DOCKER_MANIFEST_V2),
        Tag::Fail(c) => Some(Err(LookupFailure::new(c, "from the fixture"))),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn verdict_table() {
    let rows = rows();
    assert!(
        rows.len() >= 60,
        "the table must keep at least 60 rows, has {}",
        rows.len()
    );
    let mut failures = Vec::new();
    for r in &rows {
        let registry = FakeRegistry::new();
        let spec =
            ImageRef::parse(&expand(r.spec)).unwrap_or_else(|e| panic!("{}: spec: {e}", r.name));
        let id = RuntimeImageId::parse(&expand(r.image_id))
            .unwrap_or_else(|e| panic!("{}: imageID: {e}", r.name));
        let platform = r
            .platform
            .map(|p| Platform::parse(p).expect("row platform"));
        let input = VerdictInput {
            spec: &spec,
            image_id: id.as_ref(),
            running: r.running,
            platform: platform.as_ref(),
        };
        let tag = tag_result(r.tag);
        let j = block_on(judge(&input, tag.as_ref(), &registry));
        let ok = match (r.want, &j.verdict) {
            (Want::Fresh(rule), Verdict::Fresh) => j.evidence.rule == rule,
            (Want::Stale, Verdict::Stale) => j.evidence.rule == Rule::DifferentConfig,
            (Want::Pinned(rule), Verdict::Pinned) => j.evidence.rule == rule,
            (Want::Unknown(reason), Verdict::Unknown(u)) => u.as_str() == reason,
            _ => false,
        };
        let lookups = registry.lookups.load(Ordering::SeqCst);
        if !ok || r.lookups.is_some_and(|n| n != lookups) {
            failures.push(format!(
                "{}: want {:?} (lookups {:?}), got {:?} by {} (lookups {lookups}) {:?}",
                r.name, r.want, r.lookups, j.verdict, j.evidence.rule, j.evidence.detail
            ));
        }
        // Evidence always carries what was running and what the tag serves.
        if let Some(id) = &id {
            assert_eq!(
                j.evidence.running_digest.as_ref(),
                Some(&id.digest),
                "{}",
                r.name
            );
        }
        if let Some(Ok(t)) = &tag {
            assert_eq!(
                j.evidence.current_digest.as_ref(),
                Some(&t.digest),
                "{}",
                r.name
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Judges one running container of `APP` against the fixture registry.
fn judge_one(image_id: &str, platform: &str, tag: Tag) -> imagedrift::verdict::Judgement {
    let registry = FakeRegistry::new();
    let spec = ImageRef::parse(APP).unwrap();
    let id = RuntimeImageId::parse(&expand(image_id)).unwrap();
    let p = Platform::parse(platform).unwrap();
    let input = VerdictInput {
        spec: &spec,
        image_id: id.as_ref(),
        running: true,
        platform: Some(&p),
    };
    block_on(judge(&input, tag_result(tag).as_ref(), &registry))
}

#[test]
fn lookup_failures_name_which_lookup_failed() {
    let j = judge_one(
        "registry.example/team/app@{GONE}",
        "linux/amd64",
        Tag::Index("IDX2"),
    );
    assert_eq!(
        j.verdict,
        Verdict::Unknown(UnknownReason::Lookup(
            LookupTarget::RunningDigest,
            FailureCategory::NotFound
        ))
    );
    let detail = j.evidence.detail.unwrap();
    assert!(
        detail.contains("running digest") && detail.contains("manifest unknown"),
        "{detail}"
    );
}

#[test]
fn stale_evidence_names_the_platform_used() {
    let j = judge_one(
        "registry.example/team/app@{IDX1}",
        "linux/arm64",
        Tag::Index("IDX2"),
    );
    assert_eq!(j.verdict, Verdict::Stale);
    assert_eq!(
        j.evidence
            .platform
            .as_ref()
            .map(|p| p.to_string())
            .as_deref(),
        Some("linux/arm64/v8")
    );
}

#[test]
fn unparseable_image_id_is_unknown_with_the_input() {
    let j = invalid_image_id("containerd://what", "unrecognised form");
    assert_eq!(j.verdict, Verdict::Unknown(UnknownReason::InvalidImageId));
    assert_eq!(j.verdict.as_str(), "unknown");
    assert!(j.evidence.detail.unwrap().contains("containerd://what"));
}

#[test]
fn stale_evidence_carries_what_current_means_on_this_node() {
    // The remedies accept these digests from a refresh pod (CRI-O reports
    // the platform manifest or the config digest).
    for image_id in ["registry.example/team/app@{IDX1}", "{C1a}"] {
        let j = judge_one(image_id, "linux/amd64", Tag::Index("IDX2"));
        assert_eq!(j.verdict, Verdict::Stale, "{image_id}");
        assert_eq!(j.evidence.current_manifest, Some(d("M2a")), "{image_id}");
        assert_eq!(j.evidence.current_config, Some(d("C2a")), "{image_id}");
    }
}

#[test]
fn an_invalid_spec_reference_is_an_unknown_tag_lookup() {
    let e = ImageRef::parse("Busybox:1.36").unwrap_err();
    let j = invalid_reference(&e);
    assert_eq!(
        j.verdict,
        Verdict::Unknown(UnknownReason::Lookup(
            LookupTarget::Tag,
            FailureCategory::InvalidReference
        ))
    );
    assert_eq!(j.evidence.rule, Rule::LookupFailed);
    assert!(j.evidence.detail.unwrap().contains("Busybox"));
}
