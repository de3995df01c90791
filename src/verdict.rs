//! The verdict: is this container running the content its tag serves
//! today? A plain async function of plain data (SEMANTICS.md §3); registry
//! facts beyond the tag's descriptor are asked lazily through
//! [`ManifestSource`], so a fresh container costs no extra lookups.

use crate::facts::{Descriptor, FailureCategory, LookupFailure, Manifest, ManifestSource};
use crate::image_id::{DigestKind, IdForm, RuntimeImageId};
use crate::platform::{Platform, PlatformMatch};
use crate::reference::{Digest, ImageRef};
use std::fmt;

/// Everything known about one container, apart from the registry.
#[derive(Clone, Copy, Debug)]
pub struct VerdictInput<'a> {
    /// The image written in the container's spec (never `status.image`).
    pub spec: &'a ImageRef,
    /// The parsed `imageID`; `None` when it is empty.
    pub image_id: Option<&'a RuntimeImageId>,
    /// Whether the container is running now.
    pub running: bool,
    /// The node's platform, if known.
    pub platform: Option<&'a Platform>,
}

/// The judgement of one container.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Runs the content the tag serves today.
    Fresh,
    /// Runs content the registry no longer serves for the tag.
    Stale,
    /// The spec names a digest; the runtime pulled exactly that.
    Pinned,
    /// Could not decide; never treated as stale.
    Unknown(UnknownReason),
}

impl Verdict {
    /// `fresh`, `stale`, `pinned` or `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Fresh => "fresh",
            Verdict::Stale => "stale",
            Verdict::Pinned => "pinned",
            Verdict::Unknown(_) => "unknown",
        }
    }
}

/// Which registry lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupTarget {
    /// Resolving the spec's tag.
    Tag,
    /// Fetching the running digest by digest.
    RunningDigest,
    /// Fetching the tag's current index or manifest by digest.
    CurrentManifest,
}

/// Why a verdict is unknown; bounded set, used as the metric `reason`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnknownReason {
    /// `imageID` is empty, or the container is not running.
    NotRunning,
    /// The tag has not been resolved yet.
    Pending,
    /// A registry lookup failed.
    Lookup(LookupTarget, FailureCategory),
    /// The node's platform is unknown or does not pick one index entry.
    Platform,
    /// A CRI-O bare image ID that matches nothing we can compare it with.
    UnverifiableImageId,
    /// The `imageID` string is not in any known form.
    InvalidImageId,
    /// The registry served an index where an image manifest was needed.
    NestedIndex,
    /// An image volume is in use but the kubelet reports no digest for it
    /// (it does only with the feature gate `ImageVolumeWithDigest`).
    VolumeDigestNotReported,
}

impl UnknownReason {
    /// Stable label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            UnknownReason::NotRunning => "not_running",
            UnknownReason::Pending => "pending",
            UnknownReason::Lookup(_, c) => c.as_str(),
            UnknownReason::Platform => "platform",
            UnknownReason::UnverifiableImageId => "unverifiable_image_id",
            UnknownReason::InvalidImageId => "invalid_image_id",
            UnknownReason::NestedIndex => "nested_index",
            UnknownReason::VolumeDigestNotReported => "volume_digest_not_reported",
        }
    }
}

/// The rule of SEMANTICS.md §3 that settled a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// §3.1: pinned, running digest equals the pin.
    PinnedMatch,
    /// §3.1: pinned, the runtime reports another form (platform or config digest).
    PinnedUnverified,
    /// §3.2: no imageID or not running.
    NotRunning,
    /// The tag is not resolved yet.
    Pending,
    /// §3.3: running digest equals the tag's digest.
    SameDigest,
    /// §3.3: running digest is an entry of the tag's current index.
    ChildOfCurrentIndex,
    /// §3.3: old index, same child for this platform (identical re-push).
    SamePlatformChild,
    /// §3.3/§3.4: same config digest.
    SameConfig,
    /// §3.3/§3.4: different config digest.
    DifferentConfig,
    /// §3.4: a CRI-O bare hex ID that matches nothing.
    BareHexUnmatched,
    /// §3.5: a lookup failed.
    LookupFailed,
    /// §3.6: the platform could not be determined.
    PlatformUndetermined,
    /// The imageID could not be parsed.
    InvalidImageId,
    /// A child of an index was itself an index.
    NestedIndex,
    /// An image volume whose digest the kubelet does not report.
    VolumeDigestNotReported,
}

impl Rule {
    /// Stable name for JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::PinnedMatch => "pinned-match",
            Rule::PinnedUnverified => "pinned-unverified",
            Rule::NotRunning => "not-running",
            Rule::Pending => "pending",
            Rule::SameDigest => "same-digest",
            Rule::ChildOfCurrentIndex => "child-of-current-index",
            Rule::SamePlatformChild => "same-platform-child",
            Rule::SameConfig => "same-config",
            Rule::DifferentConfig => "different-config",
            Rule::BareHexUnmatched => "bare-hex-unmatched",
            Rule::LookupFailed => "lookup-failed",
            Rule::PlatformUndetermined => "platform-undetermined",
            Rule::InvalidImageId => "invalid-image-id",
            Rule::NestedIndex => "nested-index",
            Rule::VolumeDigestNotReported => "volume-digest-not-reported",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a verdict rests on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Evidence {
    /// The digest the node reports (manifest, index or config digest).
    pub running_digest: Option<Digest>,
    /// The digest the tag points to today.
    pub current_digest: Option<Digest>,
    /// The platform used to pick index entries, when one was needed.
    pub platform: Option<Platform>,
    /// The image manifest the tag serves this node today, when it was
    /// needed (the index child for the node's platform, or the tag's own
    /// digest when single-arch).
    pub current_manifest: Option<Digest>,
    /// That manifest's config digest, when it was fetched.
    pub current_config: Option<Digest>,
    /// The rule that decided.
    pub rule: Rule,
    /// Extra detail (a lookup failure's message), for humans only.
    pub detail: Option<String>,
}

/// A verdict and its evidence.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// Why.
    pub evidence: Evidence,
}

struct Ctx<'a, S> {
    input: &'a VerdictInput<'a>,
    source: &'a S,
    evidence: Evidence,
}

impl<S: ManifestSource> Ctx<'_, S> {
    /// The judgement with the evidence gathered so far.
    fn done(&self, verdict: Verdict, rule: Rule) -> Judgement {
        self.finish(verdict, rule, None)
    }

    fn finish(&self, verdict: Verdict, rule: Rule, detail: Option<String>) -> Judgement {
        Judgement {
            verdict,
            evidence: Evidence {
                rule,
                detail: detail.or_else(|| self.evidence.detail.clone()),
                ..self.evidence.clone()
            },
        }
    }

    fn failed(&self, target: LookupTarget, f: LookupFailure) -> Judgement {
        let what = match target {
            LookupTarget::Tag => "resolving the tag",
            LookupTarget::RunningDigest => "fetching the running digest",
            LookupTarget::CurrentManifest => "fetching the tag's current manifest",
        };
        self.finish(
            Verdict::Unknown(UnknownReason::Lookup(target, f.category)),
            Rule::LookupFailed,
            Some(format!("{what}: {f}")),
        )
    }

    fn platform_unknown(&self, why: &str) -> Judgement {
        self.finish(
            Verdict::Unknown(UnknownReason::Platform),
            Rule::PlatformUndetermined,
            Some(why.to_string()),
        )
    }

    async fn fetch(&self, digest: &Digest) -> Result<std::sync::Arc<Manifest>, LookupFailure> {
        self.source.manifest(self.input.spec, digest).await
    }

    /// The child of `index` for the node's platform.
    fn child_for_platform(
        &mut self,
        entries: &[crate::facts::IndexEntry],
    ) -> Result<Digest, String> {
        let Some(p) = self.input.platform else {
            return Err("the node's platform is unknown and the image is multi-platform".into());
        };
        self.evidence.platform = Some(p.clone());
        let pairs: Vec<(Option<Platform>, Digest)> = entries
            .iter()
            .map(|e| (e.platform.clone(), e.digest.clone()))
            .collect();
        match p.select(&pairs) {
            PlatformMatch::One(d) => Ok(d),
            PlatformMatch::None => Err(format!("the index has no entry for {p}")),
            PlatformMatch::Ambiguous => Err(format!(
                "several index entries fit {p} and its variant is not known"
            )),
        }
    }
}

/// Outcome of finding the tag's current image manifest for the node.
enum Current {
    Manifest(Digest),
    Failed(Judgement),
}

impl Evidence {
    /// Evidence that holds nothing but the deciding rule and a detail.
    fn bare(rule: Rule, detail: Option<String>) -> Evidence {
        Evidence {
            running_digest: None,
            current_digest: None,
            platform: None,
            current_manifest: None,
            current_config: None,
            rule,
            detail,
        }
    }
}

/// The judgement for a container whose `imageID` could not be parsed.
pub fn invalid_image_id(raw: &str, error: impl fmt::Display) -> Judgement {
    Judgement {
        verdict: Verdict::Unknown(UnknownReason::InvalidImageId),
        evidence: Evidence::bare(
            Rule::InvalidImageId,
            Some(format!("imageID {raw:?}: {error}")),
        ),
    }
}

/// The judgement for an image volume in use whose digest the kubelet does
/// not report (SEMANTICS.md §1: only with the feature gate
/// `ImageVolumeWithDigest`): unknown, never stale, and saying why.
pub fn volume_digest_not_reported() -> Judgement {
    Judgement {
        verdict: Verdict::Unknown(UnknownReason::VolumeDigestNotReported),
        evidence: Evidence::bare(
            Rule::VolumeDigestNotReported,
            Some(
                "the kubelet reports no digest for this image volume (volumeStatus.image.imageRef); it does only with the feature gate ImageVolumeWithDigest (alpha in Kubernetes 1.36) on the kubelet and the API server, and only where the runtime's container status names the volume's image (kubelet 1.36 with containerd 2.3 reports none even with the gate on)".to_string(),
            ),
        ),
    }
}

/// The judgement for a container whose spec image is not a valid
/// reference: its tag can't be looked up.
pub fn invalid_reference(error: impl fmt::Display) -> Judgement {
    Judgement {
        verdict: Verdict::Unknown(UnknownReason::Lookup(
            LookupTarget::Tag,
            FailureCategory::InvalidReference,
        )),
        evidence: Evidence::bare(Rule::LookupFailed, Some(error.to_string())),
    }
}

/// Judges one container. `tag` is the tag's current descriptor (`None` when
/// not resolved yet; ignored for pinned specs except as evidence).
pub async fn judge<S: ManifestSource>(
    input: &VerdictInput<'_>,
    tag: Option<&Result<Descriptor, LookupFailure>>,
    source: &S,
) -> Judgement {
    let mut ctx = Ctx {
        input,
        source,
        evidence: Evidence {
            running_digest: input.image_id.map(|id| id.digest.clone()),
            current_digest: tag.and_then(|t| t.as_ref().ok()).map(|d| d.digest.clone()),
            platform: None,
            current_manifest: None,
            current_config: None,
            rule: Rule::Pending,
            detail: None,
        },
    };

    // §3.1 Pinned: the runtime pulled by digest.
    if let Some(pin) = input.spec.digest() {
        let matches = input
            .image_id
            .is_some_and(|id| id.kind == DigestKind::Manifest && &id.digest == pin);
        let rule = if matches {
            Rule::PinnedMatch
        } else {
            Rule::PinnedUnverified
        };
        return ctx.done(Verdict::Pinned, rule);
    }

    // §3.2 Not running.
    let Some(id) = input.image_id.filter(|_| input.running) else {
        return ctx.done(
            Verdict::Unknown(UnknownReason::NotRunning),
            Rule::NotRunning,
        );
    };

    // §3.5 The tag's answer.
    let tag = match tag {
        None => return ctx.done(Verdict::Unknown(UnknownReason::Pending), Rule::Pending),
        Some(Err(f)) => return ctx.failed(LookupTarget::Tag, f.clone()),
        Some(Ok(t)) => t,
    };
    let running = &id.digest;

    if id.kind == DigestKind::Manifest {
        if running == &tag.digest {
            return ctx.done(Verdict::Fresh, Rule::SameDigest);
        }
        // The running digest may be a child of the current index (CRI-O
        // reports platform digests; any child is content the tag serves).
        let mut current_index = None;
        if tag.is_index() {
            match ctx.fetch(&tag.digest).await {
                Err(f) => return ctx.failed(LookupTarget::CurrentManifest, f),
                Ok(m) => {
                    if let Manifest::Index { entries } = &*m
                        && let Some(e) = entries.iter().find(|e| &e.digest == running)
                    {
                        ctx.evidence.platform = e.platform.clone();
                        return ctx.done(Verdict::Fresh, Rule::ChildOfCurrentIndex);
                    }
                    current_index = Some(m);
                }
            }
        }
        let old = match ctx.fetch(running).await {
            Err(f) => return ctx.failed(LookupTarget::RunningDigest, f),
            Ok(m) => m,
        };
        let running_manifest = match &*old {
            Manifest::Index { entries } => match ctx.child_for_platform(entries) {
                Err(why) => return ctx.platform_unknown(&why),
                Ok(d) => d,
            },
            Manifest::Image { .. } => running.clone(),
        };
        let current = match current_manifest(&mut ctx, tag, current_index.as_deref()).await {
            Current::Failed(j) => return j,
            Current::Manifest(d) => d,
        };
        ctx.evidence.current_manifest = Some(current.clone());
        // An old index whose child for this node is the current child: the tag
        // was re-pushed with identical content for this node.
        if running_manifest == current {
            return ctx.done(Verdict::Fresh, Rule::SamePlatformChild);
        }
        let running_config =
            match config_of(&mut ctx, &running_manifest, LookupTarget::RunningDigest).await {
                Ok(c) => c,
                Err(j) => return j,
            };
        let current_config =
            match config_of(&mut ctx, &current, LookupTarget::CurrentManifest).await {
                Ok(c) => c,
                Err(j) => return j,
            };
        ctx.evidence.current_config = Some(current_config.clone());
        if running_config == current_config {
            ctx.done(Verdict::Fresh, Rule::SameConfig)
        } else {
            ctx.done(Verdict::Stale, Rule::DifferentConfig)
        }
    } else {
        // §3.4 A config digest (image ID): compare with the current config.
        let current = match current_manifest(&mut ctx, tag, None).await {
            Current::Failed(j) => return j,
            Current::Manifest(d) => d,
        };
        ctx.evidence.current_manifest = Some(current.clone());
        let current_config =
            match config_of(&mut ctx, &current, LookupTarget::CurrentManifest).await {
                Ok(c) => c,
                Err(j) => return j,
            };
        ctx.evidence.current_config = Some(current_config.clone());
        if running == &current_config {
            ctx.done(Verdict::Fresh, Rule::SameConfig)
        } else if id.form == IdForm::BareHex {
            // CRI-O's bare IDs can differ from the config digest (chunked
            // pulls), so a mismatch proves nothing.
            ctx.done(
                Verdict::Unknown(UnknownReason::UnverifiableImageId),
                Rule::BareHexUnmatched,
            )
        } else {
            ctx.done(Verdict::Stale, Rule::DifferentConfig)
        }
    }
}

/// The image manifest the tag serves this node today: the tag's own digest
/// when single-arch, else its child for the node's platform.
async fn current_manifest<S: ManifestSource>(
    ctx: &mut Ctx<'_, S>,
    tag: &Descriptor,
    fetched_index: Option<&Manifest>,
) -> Current {
    if !tag.is_index() {
        return Current::Manifest(tag.digest.clone());
    }
    let owned;
    let index = match fetched_index {
        Some(m) => m,
        None => match ctx.fetch(&tag.digest).await {
            Ok(m) => {
                owned = m;
                &*owned
            }
            Err(f) => {
                let j = ctx.failed(LookupTarget::CurrentManifest, f);
                return Current::Failed(j);
            }
        },
    };
    match index {
        Manifest::Index { entries } => match ctx.child_for_platform(entries) {
            Ok(d) => Current::Manifest(d),
            Err(why) => Current::Failed(ctx.platform_unknown(&why)),
        },
        // The registry announced an index but served an image manifest.
        Manifest::Image { .. } => Current::Manifest(tag.digest.clone()),
    }
}

/// The config digest of an image manifest.
async fn config_of<S: ManifestSource>(
    ctx: &mut Ctx<'_, S>,
    manifest: &Digest,
    target: LookupTarget,
) -> Result<Digest, Judgement> {
    match ctx.fetch(manifest).await {
        Ok(m) => match &*m {
            Manifest::Image { config, .. } => Ok(config.clone()),
            Manifest::Index { .. } => Err(ctx.done(
                Verdict::Unknown(UnknownReason::NestedIndex),
                Rule::NestedIndex,
            )),
        },
        Err(f) => Err(ctx.failed(target, f)),
    }
}
