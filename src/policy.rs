//! `imagePullPolicy`: the effective policy of a container, why it is what it
//! is (explicit, or which API-server defaulting rule), and which remedies
//! can fix a stale container under it (SEMANTICS.md §4).

use crate::reference::ImageRef;
use std::fmt;

/// A container's image pull policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PullPolicy {
    /// Resolve the tag on every container start.
    Always,
    /// Reuse a node's cached copy of the tag if there is one.
    IfNotPresent,
    /// Only ever use the node's cached copy.
    Never,
}

/// An `imagePullPolicy` value that Kubernetes would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid imagePullPolicy {value:?}: must be exactly one of Always, IfNotPresent, Never (case-sensitive){}", suggestion.map(|s| format!("; did you mean {s}?")).unwrap_or_default())]
pub struct PolicyError {
    /// The value as written.
    pub value: String,
    /// The valid value it most resembles, if any.
    pub suggestion: Option<PullPolicy>,
}

impl PullPolicy {
    /// Parses the exact API spelling.
    pub fn parse(s: &str) -> Result<PullPolicy, PolicyError> {
        match s {
            "Always" => Ok(PullPolicy::Always),
            "IfNotPresent" => Ok(PullPolicy::IfNotPresent),
            "Never" => Ok(PullPolicy::Never),
            other => {
                let folded: String = other
                    .chars()
                    .filter(|c| c.is_ascii_alphabetic())
                    .collect::<String>()
                    .to_ascii_lowercase();
                let suggestion = if folded.starts_with("alw") || folded == "always" {
                    Some(PullPolicy::Always)
                } else if folded.starts_with("ifn") || folded.starts_with("ifnot") {
                    Some(PullPolicy::IfNotPresent)
                } else if folded.starts_with("nev") {
                    Some(PullPolicy::Never)
                } else {
                    None
                };
                Err(PolicyError {
                    value: other.to_string(),
                    suggestion,
                })
            }
        }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The API server's defaulting rule that applied (`SetDefaults_Container`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DefaultRule {
    /// No tag and no digest: the tag is `latest`, so `Always`.
    NoTag,
    /// The tag is `latest`: `Always`.
    LatestTag,
    /// `:latest@sha256:…`: the tag is still `latest`, so `Always`.
    LatestTagWithDigest,
    /// `@sha256:…` with no tag: `IfNotPresent`.
    DigestOnly,
    /// A tag other than `latest`: `IfNotPresent`.
    NonLatestTag(String),
    /// `:tag@sha256:…` with a tag other than `latest`: `IfNotPresent`.
    NonLatestTagWithDigest(String),
}

impl DefaultRule {
    /// Why the API server gives this default, in words.
    pub fn why(&self) -> String {
        match self {
            DefaultRule::NoTag => "the image has no tag, which means `latest`".to_string(),
            DefaultRule::LatestTag => "the tag is `latest`".to_string(),
            DefaultRule::LatestTagWithDigest => {
                "the tag is `latest`; the digest does not change that".to_string()
            }
            DefaultRule::DigestOnly => "the image is pinned by digest".to_string(),
            DefaultRule::NonLatestTag(t) => format!("the tag `{t}` is not `latest`"),
            DefaultRule::NonLatestTagWithDigest(t) => {
                format!("the tag `{t}` is not `latest`, and a digest is pinned")
            }
        }
    }
}

/// Where the effective policy came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PolicySource {
    /// Written in the spec (a live pod's value that differs from the
    /// default must have been written).
    Explicit,
    /// Not in the spec: the API server fills in this default.
    Defaulted(DefaultRule),
    /// A live pod's value that equals the default for its image. The API
    /// server stores the field either way, so whether it was written or
    /// defaulted cannot be told.
    EqualsDefault(DefaultRule),
}

impl PolicySource {
    /// `explicit` or `defaulted`, for JSON output and labels.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicySource::Explicit => "explicit",
            PolicySource::Defaulted(_) => "defaulted",
            PolicySource::EqualsDefault(_) => "default",
        }
    }
}

/// A container's effective pull policy and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EffectivePolicy {
    /// The policy kubelet applies.
    pub policy: PullPolicy,
    /// Why it is that policy.
    pub source: PolicySource,
}

/// The policy the API server gives a container that names none.
pub fn default_rule(image: &ImageRef) -> (PullPolicy, DefaultRule) {
    match (image.tag(), image.digest()) {
        (None, None) => (PullPolicy::Always, DefaultRule::NoTag),
        (Some("latest"), None) => (PullPolicy::Always, DefaultRule::LatestTag),
        (Some("latest"), Some(_)) => (PullPolicy::Always, DefaultRule::LatestTagWithDigest),
        (None, Some(_)) => (PullPolicy::IfNotPresent, DefaultRule::DigestOnly),
        (Some(t), None) => (
            PullPolicy::IfNotPresent,
            DefaultRule::NonLatestTag(t.to_string()),
        ),
        (Some(t), Some(_)) => (
            PullPolicy::IfNotPresent,
            DefaultRule::NonLatestTagWithDigest(t.to_string()),
        ),
    }
}

impl EffectivePolicy {
    /// The effective policy of a container: `explicit` if the spec names
    /// one (a pod in the cluster always has one; it may still be the
    /// defaulted value, which the API cannot tell apart), else the default.
    pub fn of(image: &ImageRef, explicit: Option<PullPolicy>) -> EffectivePolicy {
        match explicit {
            Some(policy) => EffectivePolicy {
                policy,
                source: PolicySource::Explicit,
            },
            None => {
                let (policy, rule) = default_rule(image);
                EffectivePolicy {
                    policy,
                    source: PolicySource::Defaulted(rule),
                }
            }
        }
    }

    /// For a live pod, where the API server has already filled the field:
    /// `EqualsDefault` when the value equals what defaulting would give
    /// (written or defaulted, the API cannot tell), `Explicit` otherwise.
    pub fn infer_from_live(image: &ImageRef, live: PullPolicy) -> EffectivePolicy {
        let (policy, rule) = default_rule(image);
        if policy == live {
            EffectivePolicy {
                policy,
                source: PolicySource::EqualsDefault(rule),
            }
        } else {
            EffectivePolicy {
                policy: live,
                source: PolicySource::Explicit,
            }
        }
    }

    /// A sentence: the policy and why.
    pub fn explain(&self) -> String {
        let p = self.policy;
        match &self.source {
            PolicySource::Explicit => format!("{p} (written in the pod spec)"),
            PolicySource::Defaulted(rule) => {
                format!("{p} (defaulted to {p} because {})", rule.why())
            }
            PolicySource::EqualsDefault(rule) => {
                let why = rule.why();
                // "equals the default for this tag (`v1` is not `latest`)"
                let why = why.strip_prefix("the tag ").unwrap_or(&why);
                format!("{p}, which equals the default for this tag ({why})")
            }
        }
    }

    /// The remedies that can make a stale container fresh under this policy.
    pub fn remedies(&self) -> Vec<Remedy> {
        remedies_for(self.policy)
    }
}

/// A way to get a container onto the content its tag serves today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Remedy {
    /// Roll the workload (`kubectl rollout restart`): new pods re-resolve the tag.
    Restart,
    /// Pull the tag again on the stale nodes so their cache maps it to new content.
    RefreshNode,
    /// Pin the workload to `tag@sha256:<current digest>`.
    PinDigest,
    /// Set `imagePullPolicy: Always` on the container.
    SetPolicyAlways,
    /// Re-provision the node image (`Never`: nothing else helps).
    ReprovisionNode,
}

impl Remedy {
    /// Stable short name used in JSON, annotations and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Remedy::Restart => "restart",
            Remedy::RefreshNode => "refresh",
            Remedy::PinDigest => "pin",
            Remedy::SetPolicyAlways => "set-policy-always",
            Remedy::ReprovisionNode => "reprovision-node",
        }
    }

    /// What to do, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Remedy::Restart => "a rollout restart (new pods pull the tag again)",
            Remedy::RefreshNode => {
                "refresh the tag on the stale nodes (a short pull with imagePullPolicy: Always there)"
            }
            Remedy::PinDigest => "pin the workload to the current digest",
            Remedy::SetPolicyAlways => "set imagePullPolicy: Always in the container, then restart",
            Remedy::ReprovisionNode => "re-provision the node image (policy Never never pulls)",
        }
    }
}

/// The remedies that work under a policy (SEMANTICS.md §4).
pub fn remedies_for(policy: PullPolicy) -> Vec<Remedy> {
    match policy {
        PullPolicy::Always => vec![Remedy::Restart, Remedy::PinDigest],
        PullPolicy::IfNotPresent => {
            vec![
                Remedy::RefreshNode,
                Remedy::PinDigest,
                Remedy::SetPolicyAlways,
            ]
        }
        PullPolicy::Never => vec![Remedy::ReprovisionNode],
    }
}

/// Whether a plain restart fixes staleness under this policy.
pub fn restart_helps(policy: PullPolicy) -> bool {
    policy == PullPolicy::Always
}
