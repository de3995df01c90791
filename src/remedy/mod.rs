//! Remedies for stale containers (SEMANTICS.md §4), opt-in and guarded:
//! a rollout restart where the pull policy makes one help, a node tag
//! refresh where it doesn't, a digest pin on request.
//!
//! [`optin`] and [`plan`] decide (pure); [`guard`] keeps the little state
//! the guardrails need; [`apply`] does the Kubernetes writes, only on the
//! leader, and reports every action and skip as an Event and a metric.
//!
//! - **restart** (Deployment, StatefulSet, DaemonSet): the patch `kubectl
//!   rollout restart` sends. Only where the stale container's policy is
//!   `Always`; under `IfNotPresent` a `RestartWouldNotHelp` Event names the
//!   fixes instead, unless `refresh` is enabled too, which then runs first.
//! - **refresh** (any kind, bare pods included): a short pod bound to each
//!   stale node pulls the spec's image with policy `Always`; success is that
//!   pod's `imageID` showing the current digest. The node's cache then maps
//!   the tag to the new content for the next pod started there.
//! - **pin**: the template's image becomes `repo:tag@sha256:<current>`, in
//!   the spec's own spelling. GitOps tools (Argo CD, Flux) will report this
//!   as drift from Git and may revert it; pin in Git instead where you can.
//!
//! Never on Unknown or Pinned; cooldown per workload; a cluster-wide cap on
//! remedies in flight; no action mid-rollout; never twice for one digest
//! (the `imagedrift.io/remedied-digest` annotation); dry run; leader only.

pub mod apply;
pub mod config;
pub mod guard;
pub mod optin;
pub mod plan;
mod refresh;
mod workload;

pub use apply::{Clock, Remedies, RemedyError, SystemClock};
pub use config::RemedyConfig;

use crate::policy::EffectivePolicy;
use crate::reference::{Digest, ImageRef};
use crate::verdict::Verdict;
use std::fmt;

/// The kinds of workload a pod can belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `apps/v1` ReplicaSet without a Deployment.
    ReplicaSet,
    /// `batch/v1` Job without a CronJob.
    Job,
    /// `batch/v1` CronJob.
    CronJob,
    /// A bare pod (a CI agent, say).
    Pod,
}

impl WorkloadKind {
    /// Parses an owner reference's `kind`; `None` for kinds imagedrift
    /// doesn't remedy (custom controllers).
    pub fn parse(kind: &str) -> Option<WorkloadKind> {
        Some(match kind {
            "Deployment" => WorkloadKind::Deployment,
            "StatefulSet" => WorkloadKind::StatefulSet,
            "DaemonSet" => WorkloadKind::DaemonSet,
            "ReplicaSet" => WorkloadKind::ReplicaSet,
            "Job" => WorkloadKind::Job,
            "CronJob" => WorkloadKind::CronJob,
            "Pod" => WorkloadKind::Pod,
            _ => return None,
        })
    }

    /// The API kind.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// The API version.
    pub fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::Deployment
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet
            | WorkloadKind::ReplicaSet => "apps/v1",
            WorkloadKind::Job | WorkloadKind::CronJob => "batch/v1",
            WorkloadKind::Pod => "v1",
        }
    }

    /// Whether it has a pod template that a patch rolls out (restart, pin).
    pub fn rolls_out(self) -> bool {
        matches!(
            self,
            WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
        )
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The workload a remedy acts on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadRef {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID, when known (Events then point at exactly this object).
    pub uid: Option<String>,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Which list of the pod spec a container is in (the controller's type).
pub use crate::controller::store::ContainerKind;

/// One container the controller judged, as the remedies need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleContainer {
    /// The pod.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// Which list it is in.
    pub kind: ContainerKind,
    /// The node it runs on.
    pub node: Option<String>,
    /// The image exactly as written in the spec (a pin keeps this spelling).
    pub spec_image: String,
    /// The same, parsed.
    pub image: ImageRef,
    /// The digest the tag serves today.
    pub current_digest: Digest,
    /// Other digests that mean "current" on this container's node: the
    /// tag's platform manifest and config digests, when known (CRI-O may
    /// report either after a refresh pull).
    pub also_current: Vec<Digest>,
    /// The digest the node reports now, when known (for messages).
    pub running_digest: Option<Digest>,
    /// Its effective pull policy.
    pub policy: EffectivePolicy,
    /// The verdict; only `Stale` is ever acted on.
    pub verdict: Verdict,
    /// The pod's `imagePullSecrets` names.
    pub pull_secrets: Vec<String>,
}
