//! What to do for one workload: a plain function of its stale containers,
//! its state, the remedies enabled for it, the guard record and the clock
//! value. No I/O (SEMANTICS.md §4 decides which remedy can help).

use super::guard::{GuardRecord, RolloutState, rfc3339};
use super::optin::Enabled;
use super::{ContainerKind, StaleContainer, WorkloadRef};
use crate::policy::{PullPolicy, Remedy};
use crate::reference::Digest;
use crate::verdict::Verdict;
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

/// A container of the workload's pod template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateContainer {
    /// Which list.
    pub kind: ContainerKind,
    /// Its name.
    pub name: String,
    /// Its image as written.
    pub image: String,
}

/// What the remedies need to know about the workload object itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadState {
    /// Its annotations (opt-in, loop guard).
    pub annotations: BTreeMap<String, String>,
    /// Its rollout state (rolling kinds only).
    pub rollout: Option<RolloutState>,
    /// Its pod template's containers (rolling kinds only).
    pub template: Vec<TemplateContainer>,
}

/// The guard settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Cooldown per workload.
    pub cooldown: Duration,
    /// Cluster-wide cap on remedies in flight.
    pub max_in_flight: usize,
}

/// The in-flight situation when planning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InFlightView {
    /// Remedies in flight across the cluster.
    pub total: usize,
    /// Whether one of them is this workload's.
    pub this_workload: bool,
}

/// Everything [`plan`] decides from.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// The workload.
    pub workload: &'a WorkloadRef,
    /// Its judged containers (only `Stale` ones are considered).
    pub containers: &'a [StaleContainer],
    /// Its object's state.
    pub state: &'a WorkloadState,
    /// The remedies enabled for it.
    pub enabled: Enabled,
    /// The last remedy's record (annotation or memory, the later one).
    pub record: Option<&'a GuardRecord>,
    /// In flight now.
    pub in_flight: InFlightView,
    /// Guard settings.
    pub limits: Limits,
    /// Node pulls that already succeeded (never refreshed twice).
    pub refreshed: &'a HashSet<NodePull>,
    /// The clock's value.
    pub now: Timestamp,
}

/// One image pulled on one node for one current digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodePull {
    /// The node.
    pub node: String,
    /// The image as written in the spec.
    pub spec_image: String,
    /// The tag's digest the pull got.
    pub digest: Digest,
}

impl RefreshTarget {
    /// The node pulls this target makes.
    pub fn pulls(&self) -> impl Iterator<Item = NodePull> + '_ {
        self.images.iter().map(|i| NodePull {
            node: self.node.clone(),
            spec_image: i.spec_image.clone(),
            digest: i.current.clone(),
        })
    }
}

/// One image to pull again on one node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RefreshImage {
    /// The image exactly as the stale container's spec writes it.
    pub spec_image: String,
    /// The tag's current digest.
    pub current: Digest,
    /// Every digest that proves the pull got current content.
    pub accept: BTreeSet<Digest>,
    /// For an image volume: the image of a container of the stale pod
    /// (cached on the node), run with `IfNotPresent` to mount the volume,
    /// which is pulled with `Always`. `None` for a container image.
    pub volume_carrier: Option<String>,
}

/// A refresh pod: one node, the images to pull there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshTarget {
    /// The node.
    pub node: String,
    /// The images (one container each), sorted.
    pub images: Vec<RefreshImage>,
    /// The pull secrets of the stale pods there, sorted.
    pub pull_secrets: Vec<String>,
}

/// One container to pin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinTarget {
    /// Which list.
    pub kind: ContainerKind,
    /// The container's name.
    pub name: String,
    /// The image now (`repo:tag`).
    pub from: String,
    /// The pinned image (`repo:tag@sha256:…`, the spec's own spelling).
    pub to: String,
}

/// An action, in execution order: refresh, then pin or restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Pull the tag again on these nodes.
    Refresh(Vec<RefreshTarget>),
    /// Pin these containers.
    Pin(Vec<PinTarget>),
    /// Roll the workload.
    Restart,
}

impl Step {
    /// The remedy.
    pub fn remedy(&self) -> Remedy {
        match self {
            Step::Refresh(_) => Remedy::RefreshNode,
            Step::Pin(_) => Remedy::PinDigest,
            Step::Restart => Remedy::Restart,
        }
    }
}

/// Why a remedy is not done; bounded, the metric's `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The pull policy makes it useless.
    WouldNotHelp,
    /// The workload's kind can't take it.
    Unsupported,
    /// A remedy ran on this workload too recently.
    Cooldown,
    /// The workload is mid-rollout.
    Rollout,
    /// A remedy already targeted these digests.
    LoopGuard,
    /// Too many remedies in flight, or one for this workload.
    InFlight,
}

impl SkipReason {
    /// The metric `result` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::WouldNotHelp => "would_not_help",
            SkipReason::Unsupported => "unsupported",
            SkipReason::Cooldown => "skipped_cooldown",
            SkipReason::Rollout => "skipped_rollout",
            SkipReason::LoopGuard => "skipped_loop_guard",
            SkipReason::InFlight => "skipped_in_flight",
        }
    }
}

/// A remedy not done, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    /// The remedies concerned (one Event, one count each).
    pub remedies: Vec<Remedy>,
    /// Why.
    pub reason: SkipReason,
    /// For the Event.
    pub message: String,
}

/// What to do for one workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Actions, in order; empty when everything was skipped.
    pub steps: Vec<Step>,
    /// Remedies not done.
    pub skips: Vec<Skip>,
    /// The current digests the steps target (for the loop guard).
    pub digests: BTreeSet<Digest>,
}

/// Decides what to do for one workload.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let enabled = input.enabled;
    let kind = input.workload.kind;
    let mut out = Plan::default();
    if enabled.is_empty() {
        return out;
    }

    let mut refresh: BTreeMap<String, (BTreeSet<RefreshImage>, BTreeSet<String>)> = BTreeMap::new();
    let mut pins: Vec<PinTarget> = Vec::new();
    let mut restart = false;
    // (remedy, reason) → sentences, one Event each.
    let mut notes: BTreeMap<(Remedy, SkipReason), Vec<String>> = BTreeMap::new();
    let mut note = |r: Remedy, why: SkipReason, s: String| {
        notes.entry((r, why)).or_default().push(s);
    };

    let no_template = |who: &str| {
        format!(
            "{who}: no pod template to pin (a {kind} has none, or it no longer names this image)"
        )
    };

    for c in input.containers {
        // Never act on Unknown, Fresh or Pinned; nor on a spec that names a digest.
        if c.verdict != Verdict::Stale || c.image.is_pinned() {
            continue;
        }
        let who = match c.kind {
            ContainerKind::ImageVolume => {
                format!("image volume {} ({})", c.container, c.spec_image)
            }
            _ => format!("container {} ({})", c.container, c.spec_image),
        };
        let pin = pin_target(c, &input.state.template).filter(|_| enabled.pin && kind.rolls_out());
        // Whether a step will handle this container.
        let handled = match c.policy.policy {
            PullPolicy::Always => {
                if enabled.restart && kind.rolls_out() {
                    restart = true;
                    true
                } else if let Some(p) = pin {
                    pins.push(p);
                    true
                } else if enabled.restart {
                    note(
                        Remedy::Restart,
                        SkipReason::Unsupported,
                        format!(
                            "{who}: a {kind} has no rollout to restart; its next pod pulls the tag again (imagePullPolicy Always)"
                        ),
                    );
                    false
                } else if enabled.pin {
                    note(
                        Remedy::PinDigest,
                        SkipReason::Unsupported,
                        no_template(&who),
                    );
                    false
                } else {
                    note(
                        Remedy::RefreshNode,
                        SkipReason::WouldNotHelp,
                        format!(
                            "{who}: imagePullPolicy is Always, so a node refresh changes nothing for running pods; a restart would help (remedy restart)"
                        ),
                    );
                    false
                }
            }
            PullPolicy::IfNotPresent => {
                // An image volume is pulled by a pod that mounts it, run
                // from an image of the same pod (on that node already).
                let carrier = (c.kind == ContainerKind::ImageVolume)
                    .then(|| volume_carrier(c, input.containers));
                if let Some(None) = &carrier
                    && enabled.refresh
                {
                    note(
                        Remedy::RefreshNode,
                        SkipReason::Unsupported,
                        format!(
                            "{who}: no container image of pod {} is known to mount the volume in",
                            c.pod
                        ),
                    );
                    false
                } else if let (true, Some(node)) = (enabled.refresh, c.node.as_ref()) {
                    let pulled = NodePull {
                        node: node.clone(),
                        spec_image: c.spec_image.clone(),
                        digest: c.current_digest.clone(),
                    };
                    let done = input.refreshed.contains(&pulled);
                    if !done {
                        let (images, secrets) = refresh.entry(node.clone()).or_default();
                        let mut accept: BTreeSet<Digest> = c.also_current.iter().cloned().collect();
                        accept.insert(c.current_digest.clone());
                        images.insert(RefreshImage {
                            spec_image: c.spec_image.clone(),
                            current: c.current_digest.clone(),
                            accept,
                            volume_carrier: carrier.flatten(),
                        });
                        secrets.extend(c.pull_secrets.iter().cloned());
                    }
                    // The node serves the new content (now, or since an
                    // earlier refresh): a restart picks it up.
                    if enabled.restart && kind.rolls_out() {
                        restart = true;
                        true
                    } else if done {
                        note(
                            Remedy::RefreshNode,
                            SkipReason::LoopGuard,
                            format!(
                                "{who}: node {node} already pulled the tag's current digest {}; imagedrift never refreshes a node twice for one digest",
                                c.current_digest.short()
                            ),
                        );
                        false
                    } else {
                        true
                    }
                } else if let Some(p) = pin {
                    pins.push(p);
                    true
                } else if enabled.restart {
                    note(
                        Remedy::Restart,
                        SkipReason::WouldNotHelp,
                        format!(
                            "{who}: imagePullPolicy is {}, so a restarted pod on a node with the tag cached reuses the old content. What helps: {}; {}; or {}",
                            c.policy.explain(),
                            with_remedy(Remedy::RefreshNode),
                            with_remedy(Remedy::PinDigest),
                            Remedy::SetPolicyAlways.describe()
                        ),
                    );
                    false
                } else if enabled.refresh {
                    note(
                        Remedy::RefreshNode,
                        SkipReason::Unsupported,
                        format!("{who}: the node it runs on is not known"),
                    );
                    false
                } else {
                    note(
                        Remedy::PinDigest,
                        SkipReason::Unsupported,
                        no_template(&who),
                    );
                    false
                }
            }
            PullPolicy::Never => {
                let first = [Remedy::Restart, Remedy::RefreshNode, Remedy::PinDigest]
                    .into_iter()
                    .find(|r| enabled.contains(*r))
                    .unwrap_or(Remedy::Restart);
                note(
                    first,
                    SkipReason::WouldNotHelp,
                    format!(
                        "{who}: imagePullPolicy is Never, so the node never pulls; only re-provisioning the node image helps"
                    ),
                );
                false
            }
        };
        if handled {
            out.digests.insert(c.current_digest.clone());
        }
    }

    if !refresh.is_empty() {
        out.steps.push(Step::Refresh(
            refresh
                .into_iter()
                .map(|(node, (images, secrets))| RefreshTarget {
                    node,
                    images: images.into_iter().collect(),
                    pull_secrets: secrets.into_iter().collect(),
                })
                .collect(),
        ));
    }
    if !pins.is_empty() {
        // The pin patch changes the template: it rolls the pods itself.
        out.steps.push(Step::Pin(pins));
    } else if restart {
        out.steps.push(Step::Restart);
    }
    out.skips = notes
        .into_iter()
        .map(|((r, reason), lines)| Skip {
            remedies: vec![r],
            reason,
            message: lines.join("; "),
        })
        .collect();

    if let Some((reason, message)) = guard(input, &out.digests).filter(|_| !out.steps.is_empty()) {
        let remedies = out.steps.iter().map(Step::remedy).collect();
        out.steps.clear();
        out.skips.push(Skip {
            remedies,
            reason,
            message,
        });
    }
    out
}

/// The first guard that holds the planned steps back.
fn guard(input: &PlanInput<'_>, digests: &BTreeSet<Digest>) -> Option<(SkipReason, String)> {
    let short = |ds: &BTreeSet<Digest>| ds.iter().map(Digest::short).collect::<Vec<_>>().join(", ");
    if let Some(r) = input.record {
        if r.covers(digests) {
            return Some((
                SkipReason::LoopGuard,
                format!(
                    "a remedy already targeted {}{}; imagedrift never acts twice for the same digest",
                    short(digests),
                    r.at.map(|t| format!(" at {}", rfc3339(t)))
                        .unwrap_or_default()
                ),
            ));
        }
        if let Some(until) = r.cooling_until(input.now, input.limits.cooldown) {
            return Some((
                SkipReason::Cooldown,
                format!(
                    "the last remedy on this workload ran less than {}s ago; next possible at {}",
                    input.limits.cooldown.as_secs(),
                    rfc3339(until)
                ),
            ));
        }
    }
    if let Some(why) = input
        .state
        .rollout
        .as_ref()
        .and_then(RolloutState::in_progress)
    {
        return Some((
            SkipReason::Rollout,
            format!("a rollout is in progress: {why}"),
        ));
    }
    if input.in_flight.this_workload {
        return Some((
            SkipReason::InFlight,
            "a remedy for this workload is still in flight".to_string(),
        ));
    }
    if input.in_flight.total >= input.limits.max_in_flight {
        return Some((
            SkipReason::InFlight,
            format!(
                "{} remedies are in flight in the cluster (maxInFlight {})",
                input.in_flight.total, input.limits.max_in_flight
            ),
        ));
    }
    None
}

fn with_remedy(r: Remedy) -> String {
    format!("{} (remedy {})", r.describe(), r.as_str())
}

/// The image a refresh pod runs to mount image volume `v`: a regular
/// container's (else a sidecar's) image of the same pod, so the node has it.
fn volume_carrier(v: &StaleContainer, all: &[StaleContainer]) -> Option<String> {
    [ContainerKind::Container, ContainerKind::Init]
        .into_iter()
        .find_map(|kind| {
            all.iter()
                .find(|c| c.pod == v.pod && c.kind == kind)
                .map(|c| c.spec_image.clone())
        })
}

/// The pin for a container: only when its template entry still names the
/// image the pod runs (otherwise a newer template is rolling out).
fn pin_target(c: &StaleContainer, template: &[TemplateContainer]) -> Option<PinTarget> {
    let t = template
        .iter()
        .find(|t| t.kind == c.kind && t.name == c.container && t.image == c.spec_image)?;
    Some(PinTarget {
        kind: c.kind,
        name: c.container.clone(),
        from: t.image.clone(),
        to: format!("{}@{}", t.image, c.current_digest),
    })
}
