//! The controller's in-memory state and what each change to it calls for:
//! which containers to judge, which references to check, which Events to
//! write and which metric series to set. No I/O: the runner (or `scan`)
//! executes the [`CheckJob`]s and [`JudgeJob`]s it hands out and feeds the
//! [`Outcome`]s back.

use super::owner::{OwnerIndex, Workload};
use super::report::{self, ContainerFacts, Notice, Tracker};
use super::schedule::{Jitter, Schedule};
use super::secrets::PullCredentials;
use super::store::{ContainerKind, ContainerView, Interner, OwnerMeta, PodView, Str};
use super::verify::{self, RemedyCheck, Verifications};
use crate::facts::{Descriptor, LookupFailure, Registry, WithCredentials};
use crate::image_id::RuntimeImageId;
use crate::metrics::{ContainerSeries, Metrics};
use crate::platform::Platform;
use crate::policy::{EffectivePolicy, Remedy};
use crate::reference::ImageRef;
use crate::remedy::{StaleContainer, WorkloadKind, WorkloadRef};
use crate::verdict::{self, Judgement, Verdict, VerdictInput};
use indexmap::{IndexMap, IndexSet};
use k8s_openapi::api::core::v1::ObjectReference;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

mod episodes;
mod jobs;
mod rows;
pub use jobs::{CheckJob, JudgeJob, Judged, Outcome, run_check, run_judge};
pub use rows::{Row, container_reference, pod_reference, workload_reference};

/// Identifies one container: namespace, pod, container name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerKey {
    /// Namespace.
    pub namespace: Str,
    /// Pod name.
    pub pod: Str,
    /// Container name (unique across the pod's three lists), or image
    /// volume name.
    pub container: Str,
    /// Which list it is in: a volume may share a container's name.
    pub kind: ContainerKind,
}

impl ContainerKey {
    /// The key of one entry of a pod.
    pub fn of(pod: &PodView, c: &ContainerView) -> ContainerKey {
        ContainerKey {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            container: c.name.clone(),
            kind: c.kind,
        }
    }

    /// Whether `c` (an entry of this key's pod) is the one keyed.
    pub fn is(&self, c: &ContainerView) -> bool {
        c.name == self.container && c.kind == self.kind
    }
}

/// Timing of checks and reports.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Re-check each reference this often.
    pub interval: Duration,
    /// ± spread of the interval.
    pub spread: Duration,
    /// Unknown for this long → `DriftCheckFailed`.
    pub unknown_threshold: Duration,
}

/// A tag's answer from the registry, shared by every container using it.
pub type Answer = Arc<Result<Descriptor, LookupFailure>>;

/// An Event to write (only the leader writes them).
#[derive(Clone, Debug, PartialEq)]
pub struct EventEffect {
    /// What happened.
    pub notice: Notice,
    /// The Event note.
    pub note: String,
    /// The object the Event is about (Pod or workload).
    pub regarding: ObjectReference,
}

#[derive(Debug)]
struct RefState {
    image: Arc<ImageRef>,
    users: IndexSet<ContainerKey>,
    answer: Option<Answer>,
    /// Counts answers, so a judgement made with an older one is dropped.
    generation: u64,
    scheduled: bool,
}

/// A workload's identity: namespace, kind, name.
type WKey = (Str, Str, Str);

fn wkey(w: &Workload) -> WKey {
    (w.namespace.clone(), w.kind.clone(), w.name.clone())
}

#[derive(Debug, Default)]
struct ContainerState {
    /// Shared: containers of one reference on one platform share a judgement.
    judgement: Option<Arc<Judgement>>,
    tracker: Tracker,
    /// The workload whose stale count includes this container.
    counted_in: Option<Arc<Workload>>,
}

#[derive(Debug)]
struct WorkloadState {
    stale: usize,
    reported_stale: bool,
    /// The remedies imagedrift applied during this episode, in order.
    fixed_by: Vec<Remedy>,
}

/// Whether a judgement was applied.
enum Applied {
    /// Applied; these Events follow.
    Yes(Vec<EventEffect>),
    /// Dropped: the container is gone or a newer answer was applied.
    No,
    /// Dropped: the container's imageID changed since the snapshot.
    Outdated,
}

/// Pods, nodes, owners, references and verdicts, and the rules that tie
/// them together.
pub struct State {
    settings: Settings,
    metrics: Metrics,
    strings: Interner,
    pods: IndexMap<(Str, Str), PodView>,
    nodes: HashMap<Str, Option<Arc<Platform>>>,
    owners: OwnerIndex,
    parsed: HashMap<Str, Result<(Arc<ImageRef>, Str), Str>>,
    refs: HashMap<Str, RefState>,
    containers: IndexMap<ContainerKey, ContainerState>,
    workloads: HashMap<WKey, WorkloadState>,
    judgements: HashSet<Arc<Judgement>>,
    /// Workloads with a stale container judged since the last
    /// [`State::take_remedy_work`]; `None` when remedies are off.
    remedy_work: Option<HashMap<WKey, Workload>>,
    schedule: Schedule,
    /// Remedies applied, waiting for their workload's pods to run the
    /// current digest.
    verify: Verifications,
    /// Verifications settled since the last [`State::take_remedy_checks`].
    settled: Vec<RemedyCheck>,
    checked: HashSet<Str>,
    /// Full rounds (every reference checked) so far.
    full_checks: u64,
    /// Workloads whose StaleImage was opened while applying the current
    /// answer, with the first container's note.
    opened: Vec<(Workload, Option<String>)>,
    relist_pods: Option<HashSet<(Str, Str)>>,
    relist_nodes: Option<HashSet<Str>>,
}

fn series_key(k: &ContainerKey) -> crate::metrics::SeriesKey {
    (
        k.namespace.clone(),
        k.pod.clone(),
        k.container.clone(),
        k.kind.as_str(),
    )
}

/// The metric's `reason`: the words `scan` shows in its REASON column (the
/// unknown category, else the rule that decided: `same-digest`,
/// `different-config`, …). Both sets are bounded.
fn reason_label(j: &Judgement) -> &'static str {
    match &j.verdict {
        Verdict::Unknown(r) => r.as_str(),
        _ => j.evidence.rule.as_str(),
    }
}

/// The info line of a container's verdict transition (every replica logs
/// it, leading or not): namespace/pod/container, both digests, and why.
fn log_transition(
    n: Notice,
    pod: &PodView,
    c: &ContainerView,
    j: &Judgement,
    failing_for: Option<Duration>,
) {
    let digest = |d: &Option<crate::reference::Digest>| {
        d.as_ref()
            .map_or_else(|| "-".to_string(), |d| d.to_string())
    };
    let running = digest(&j.evidence.running_digest);
    let current = digest(&j.evidence.current_digest);
    let message = match n {
        Notice::BecameStale => "stale: the container runs content its tag no longer serves",
        Notice::BecameFresh => "fresh again: the container runs the content its tag serves",
        Notice::CheckFailing => "unknown for too long: the container could not be checked",
    };
    tracing::info!(
        namespace = %pod.namespace,
        pod = %pod.name,
        container = %c.name,
        kind = c.kind.as_str(),
        image = %c.image,
        node = pod.node.as_deref().unwrap_or(""),
        running = %running,
        current = %current,
        verdict = j.verdict.as_str(),
        reason = reason_label(j),
        failing_for_seconds = failing_for.map(|d| d.as_secs()),
        detail = j.evidence.detail.as_deref(),
        "{message}"
    );
}

/// What the periodic summary line counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Containers (and image volumes) of the watched pods.
    pub containers: usize,
    /// Of those, judged at least once.
    pub judged: usize,
    /// Fresh.
    pub fresh: usize,
    /// Stale.
    pub stale: usize,
    /// Pinned by digest.
    pub pinned: usize,
    /// Unknown (not running, lookup failures, …).
    pub unknown: usize,
    /// Unknown for longer than the threshold (a `DriftCheckFailed` stands).
    pub failing: usize,
    /// Workloads with a stale container.
    pub stale_workloads: usize,
    /// Unique references watched.
    pub references: usize,
}

impl State {
    /// Full rounds (every watched reference checked) so far.
    pub fn full_checks(&self) -> u64 {
        self.full_checks
    }

    /// The counts of the periodic summary line.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            references: self.refs.len(),
            stale_workloads: self.workloads.values().filter(|w| w.stale > 0).count(),
            ..Summary::default()
        };
        for pod in self.pods.values() {
            for c in &pod.containers {
                s.containers += 1;
                let Some(st) = self.containers.get(&ContainerKey::of(pod, c)) else {
                    continue;
                };
                let Some(j) = &st.judgement else { continue };
                s.judged += 1;
                match j.verdict {
                    Verdict::Fresh => s.fresh += 1,
                    Verdict::Stale => s.stale += 1,
                    Verdict::Pinned => s.pinned += 1,
                    Verdict::Unknown(_) => s.unknown += 1,
                }
                if st.tracker.failure_reported {
                    s.failing += 1;
                }
            }
        }
        s
    }

    /// An empty state.
    pub fn new(settings: Settings, metrics: Metrics, jitter: Box<dyn Jitter>) -> State {
        State {
            schedule: Schedule::new(settings.interval, settings.spread, jitter),
            settings,
            metrics,
            strings: Interner::default(),
            pods: IndexMap::new(),
            nodes: HashMap::new(),
            owners: OwnerIndex::default(),
            parsed: HashMap::new(),
            refs: HashMap::new(),
            containers: IndexMap::new(),
            workloads: HashMap::new(),
            judgements: HashSet::new(),
            remedy_work: None,
            verify: Verifications::default(),
            settled: Vec::new(),
            checked: HashSet::new(),
            full_checks: 0,
            opened: Vec::new(),
            relist_pods: None,
            relist_nodes: None,
        }
    }

    /// The string interner (for building views).
    pub fn strings(&mut self) -> &mut Interner {
        &mut self.strings
    }

    /// How many unique references are in use.
    pub fn reference_count(&self) -> usize {
        self.refs.len()
    }

    /// The earliest time a reference is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.schedule.next_due()
    }

    fn parse_full(&mut self, image: &Str) -> Result<(Arc<ImageRef>, Str), Str> {
        if let Some(p) = self.parsed.get(image) {
            return p.clone();
        }
        let p = match ImageRef::parse(image) {
            Ok(i) => {
                let name = self.strings.get(&i.to_string());
                Ok((Arc::new(i), name))
            }
            Err(e) => Err(Str::from(e.to_string())),
        };
        self.parsed.insert(image.clone(), p.clone());
        p
    }

    fn parse(&mut self, image: &Str) -> Result<Arc<ImageRef>, Str> {
        self.parse_full(image).map(|(i, _)| i)
    }

    fn normalized(&self, image: &Str) -> Option<&Str> {
        self.parsed
            .get(image)
            .and_then(|p| p.as_ref().ok())
            .map(|(_, n)| n)
    }

    fn job_for(
        &self,
        pod: &PodView,
        c: &ContainerView,
        image: Result<Arc<ImageRef>, Str>,
    ) -> JudgeJob {
        let answer = self.normalized(&c.image).and_then(|n| self.refs.get(n));
        let tag = answer.and_then(|r| r.answer.clone());
        let answer_gen = answer.map_or(0, |r| r.generation);
        JudgeJob {
            key: ContainerKey::of(pod, c),
            image,
            image_id: c.image_id.clone(),
            running: c.running,
            platform: pod
                .node
                .as_ref()
                .and_then(|n| self.nodes.get(n))
                .cloned()
                .flatten(),
            tag,
            answer_gen,
            pull_secrets: pod.pull_secrets.clone(),
        }
    }

    /// A pod was added or changed: returns the containers to judge now
    /// (new ones, and those whose imageID, image, state or node changed).
    pub fn apply_pod(&mut self, pod: PodView, now: Instant) -> (Vec<JudgeJob>, Vec<EventEffect>) {
        let key = (pod.namespace.clone(), pod.name.clone());
        if let Some(seen) = &mut self.relist_pods {
            seen.insert(key.clone());
        }
        // A resourceVersion bump (a condition, an annotation, a re-list)
        // that leaves the view as it was is nothing to judge.
        if self.pods.get(&key) == Some(&pod) {
            return (Vec::new(), Vec::new());
        }
        let old = self.pods.swap_remove(&key);
        let mut effects = Vec::new();
        let mut jobs = Vec::new();
        // Containers that went away, or whose image changed (ephemeral
        // containers can't change, regular ones can via `kubectl set image`).
        if let Some(old) = &old {
            for oc in &old.containers {
                let still = pod
                    .containers
                    .iter()
                    .any(|c| c.name == oc.name && c.kind == oc.kind && c.image == oc.image);
                if !still {
                    effects.extend(self.drop_container(old, oc));
                }
            }
        }
        for c in &pod.containers {
            let prev = old.as_ref().and_then(|o| {
                o.containers
                    .iter()
                    .find(|oc| oc.name == c.name && oc.kind == c.kind && oc.image == c.image)
            });
            let parsed = self.parse_full(&c.image);
            let ckey = ContainerKey::of(&pod, c);
            if let Ok((img, name)) = &parsed {
                self.use_reference(img, name, &ckey, now);
            }
            let image = parsed.map(|(i, _)| i);
            let changed = match prev {
                None => true,
                Some(p) => {
                    p.image_id != c.image_id
                        || p.running != c.running
                        || p.restarts != c.restarts
                        || old
                            .as_ref()
                            .is_some_and(|o| o.node != pod.node || o.owner != pod.owner)
                }
            };
            if changed {
                jobs.push(self.job_for(&pod, c, image));
            }
        }
        self.pods.insert(key, pod);
        self.metrics.unique_images.set(self.schedule.len() as i64);
        (jobs, effects)
    }

    fn use_reference(
        &mut self,
        image: &Arc<ImageRef>,
        name: &Str,
        key: &ContainerKey,
        now: Instant,
    ) {
        let pinned = image.is_pinned();
        let entry = self.refs.entry(name.clone()).or_insert_with(|| RefState {
            image: image.clone(),
            users: IndexSet::new(),
            answer: None,
            generation: 0,
            scheduled: false,
        });
        entry.users.insert(key.clone());
        // A pinned spec is judged without its tag (SEMANTICS.md §3.1):
        // no registry work at all.
        if !pinned && !entry.scheduled {
            entry.scheduled = true;
            self.schedule.observe(name, now);
        }
    }

    fn drop_container(&mut self, pod: &PodView, c: &ContainerView) -> Vec<EventEffect> {
        let key = ContainerKey::of(pod, c);
        if let Some(name) = self.normalized(&c.image).cloned()
            && let Some(r) = self.refs.get_mut(&name)
        {
            r.users.swap_remove(&key);
            if r.users.is_empty() {
                self.refs.remove(&name);
                self.schedule.forget(&name);
                self.checked.remove(&name);
            }
        }
        let mut effects = Vec::new();
        if let Some(st) = self.containers.swap_remove(&key) {
            if let Some(j) = &st.judgement {
                let v = &j.verdict;
                self.metrics
                    .remove_container(&series_key(&key), (v.as_str(), reason_label(j)));
            }
            if let Some(w) = &st.counted_in {
                effects.extend(self.workload_delta(w, -1, None, true));
            }
        }
        effects
    }

    /// A pod was deleted.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) -> Vec<EventEffect> {
        let key = (Str::from(namespace), Str::from(name));
        let Some(pod) = self.pods.swap_remove(&key) else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        for c in &pod.containers {
            effects.extend(self.drop_container(&pod, c));
        }
        self.metrics.unique_images.set(self.schedule.len() as i64);
        effects
    }

    /// A pod re-list starts (watch restarted).
    pub fn begin_pod_relist(&mut self) {
        self.relist_pods = Some(HashSet::new());
    }

    /// A pod re-list ended: pods not listed are gone.
    pub fn end_pod_relist(&mut self) -> Vec<EventEffect> {
        let Some(seen) = self.relist_pods.take() else {
            return Vec::new();
        };
        let gone: Vec<(Str, Str)> = self
            .pods
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        let mut effects = Vec::new();
        for (ns, name) in gone {
            effects.extend(self.delete_pod(&ns, &name));
        }
        self.strings.sweep();
        effects
    }

    /// A node was added or changed; returns the containers on it to judge
    /// again when its platform changed.
    pub fn apply_node(&mut self, name: &str, platform: Option<Platform>) -> Vec<JudgeJob> {
        let name = self.strings.get(name);
        if let Some(seen) = &mut self.relist_nodes {
            seen.insert(name.clone());
        }
        let platform = platform.map(Arc::new);
        if self.nodes.get(&name) == Some(&platform) {
            return Vec::new();
        }
        self.nodes.insert(name.clone(), platform);
        self.jobs_where(|p| p.node.as_ref() == Some(&name))
    }

    /// A node was deleted.
    pub fn delete_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// A node re-list starts.
    pub fn begin_node_relist(&mut self) {
        self.relist_nodes = Some(HashSet::new());
    }

    /// A node re-list ended: nodes not listed are gone.
    pub fn end_node_relist(&mut self) {
        if let Some(seen) = self.relist_nodes.take() {
            self.nodes.retain(|n, _| seen.contains(n));
        }
    }

    fn jobs_where(&mut self, pred: impl Fn(&PodView) -> bool) -> Vec<JudgeJob> {
        let mut jobs = Vec::new();
        let pods: Vec<PodView> = self.pods.values().filter(|p| pred(p)).cloned().collect();
        for p in &pods {
            for c in &p.containers {
                let image = self.parse(&c.image);
                jobs.push(self.job_for(p, c, image));
            }
        }
        jobs
    }

    /// A ReplicaSet or Job (metadata) was added or changed; the pods it owns
    /// are re-labelled with their workload.
    pub fn apply_owner(&mut self, o: OwnerMeta) -> Vec<JudgeJob> {
        let (ns, kind, name) = (o.namespace.clone(), o.kind.clone(), o.name.clone());
        let before = self.owner_of(&ns, &kind, &name);
        self.owners.apply(o);
        if before == self.owner_of(&ns, &kind, &name) {
            return Vec::new();
        }
        self.relabel_owned(&ns, &kind, &name)
    }

    fn owner_of(&self, ns: &Str, kind: &Str, name: &Str) -> Workload {
        let probe = PodView {
            namespace: ns.clone(),
            name: Str::from(""),
            uid: Str::from(""),
            node: None,
            owner: Some(super::store::OwnerRef {
                api_version: Str::from(""),
                kind: kind.clone(),
                name: name.clone(),
                uid: Str::from(""),
            }),
            pull_secrets: vec![],
            containers: vec![],
        };
        self.owners.workload_of(&probe)
    }

    /// Re-judging the owned pods' containers moves their metric series and
    /// workload counts to the new workload (cheap: answers are cached).
    fn relabel_owned(&mut self, ns: &Str, kind: &Str, name: &Str) -> Vec<JudgeJob> {
        self.jobs_where(|p| {
            &p.namespace == ns
                && p.owner
                    .as_ref()
                    .is_some_and(|o| &o.kind == kind && &o.name == name)
        })
    }

    /// A ReplicaSet or Job was deleted.
    pub fn delete_owner(&mut self, namespace: &str, kind: &str, name: &str) {
        self.owners.delete(namespace, kind, name);
    }

    /// Replaces all owners of `kind` (after a re-list); returns the
    /// containers of the pods whose workload changed, to judge again so
    /// their series and counts move to it (cheap: answers are cached). At
    /// start-up the pod list often arrives before the ReplicaSets and Jobs.
    pub fn replace_owners(&mut self, kind: &str, items: Vec<OwnerMeta>) -> Vec<JudgeJob> {
        let owned = |p: &PodView| p.owner.as_ref().is_some_and(|o| &*o.kind == kind);
        let before: Vec<((Str, Str), Workload)> = self
            .pods
            .iter()
            .filter(|(_, p)| owned(p))
            .map(|(k, p)| (k.clone(), self.owners.workload_of(p)))
            .collect();
        self.owners.replace_kind(kind, items);
        let moved: HashSet<(Str, Str)> = before
            .into_iter()
            .filter(|(k, w)| {
                self.pods
                    .get(k)
                    .is_some_and(|p| self.owners.workload_of(p) != *w)
            })
            .map(|(k, _)| k)
            .collect();
        if moved.is_empty() {
            return Vec::new();
        }
        self.jobs_where(|p| moved.contains(&(p.namespace.clone(), p.name.clone())))
    }

    /// References due for a check, at most `limit`, as jobs.
    pub fn due_checks(&mut self, now: Instant, limit: usize) -> Vec<CheckJob> {
        let due = self.schedule.take_due(now, limit);
        let mut jobs = Vec::with_capacity(due.len());
        for name in due {
            let Some(r) = self.refs.get(&name) else {
                self.schedule.forget(&name);
                continue;
            };
            let image = r.image.clone();
            let mut users: Vec<ContainerKey> = r.users.iter().cloned().collect();
            users.sort();
            let mut secrets: Vec<(Str, Vec<Str>)> = Vec::new();
            let mut judge = Vec::with_capacity(users.len());
            for k in users {
                let Some(pod) = self.pods.get(&(k.namespace.clone(), k.pod.clone())) else {
                    continue;
                };
                let Some(c) = pod.containers.iter().find(|c| k.is(c)) else {
                    continue;
                };
                if !pod.pull_secrets.is_empty()
                    && !secrets
                        .iter()
                        .any(|(ns, n)| ns == &pod.namespace && n == &pod.pull_secrets)
                {
                    secrets.push((pod.namespace.clone(), pod.pull_secrets.clone()));
                }
                judge.push(self.job_for(pod, c, Ok(image.clone())));
            }
            jobs.push(CheckJob {
                hinted: self.schedule.flight_hint(&name),
                reference: name,
                image,
                secrets,
                judge,
            });
        }
        jobs
    }

    /// A webhook announced a push of `reference` (normalised) at `received`:
    /// a reference already checked is due within `window`, once however
    /// many pushes arrive. Returns `false` (and changes nothing) for a
    /// reference no container uses or a pinned one.
    pub fn hint(&mut self, reference: &str, received: Instant, window: Duration) -> bool {
        self.schedule.hint(reference, received, window)
    }

    /// A check of `reference` ended without an outcome (its task panicked):
    /// it is due again after one interval, keeping its last answer.
    pub fn check_abandoned(&mut self, reference: &str, now: Instant) {
        self.schedule.completed(reference, now);
    }

    /// Folds finished work in: stores the answer, applies judgements, and
    /// returns the Events to write plus any containers still to judge (those
    /// that appeared while the check ran).
    pub fn apply_outcome(
        &mut self,
        outcome: Outcome,
        now: Instant,
    ) -> (Vec<JudgeJob>, Vec<EventEffect>) {
        let mut jobs = Vec::new();
        let judged_keys: HashSet<ContainerKey> =
            outcome.judged.iter().map(|j| j.key.clone()).collect();
        let mut judged = outcome.judged;
        if let Some((name, answer)) = outcome.answer {
            self.schedule.completed(&name, now);
            if let Some(r) = self.refs.get_mut(&name) {
                r.answer = Some(answer);
                r.generation += 1;
                for j in &mut judged {
                    j.answer_gen = r.generation;
                }
                let missing: Vec<ContainerKey> = r
                    .users
                    .iter()
                    .filter(|k| !judged_keys.contains(*k))
                    .cloned()
                    .collect();
                for k in missing {
                    if let Some(j) = self.job_for_key(&k) {
                        jobs.push(j);
                    }
                }
                self.checked.insert(name);
                // `checked` only holds scheduled references still in use
                // (dropped ones leave both), so counting suffices.
                if self.checked.len() >= self.schedule.len() {
                    self.metrics.full_check_done();
                    self.full_checks += 1;
                    self.checked.clear();
                    // Forget judgements and strings nothing refers to any more.
                    self.judgements.retain(|j| Arc::strong_count(j) > 1);
                    self.strings.sweep();
                }
            }
        }
        let mut effects = Vec::new();
        for j in judged {
            let fresh_answer = j.answer_gen > 0;
            let key = j.key.clone();
            match self.apply_judged(j, now) {
                Applied::Yes(e) => effects.extend(e),
                Applied::No => {}
                // The container changed while a check judged its old state;
                // judge its new state with this answer.
                Applied::Outdated if fresh_answer => jobs.extend(self.job_for_key(&key)),
                Applied::Outdated => {}
            }
        }
        // A workload's StaleImage counts its pods once the whole answer is
        // applied: one check judges every replica, and the Event opened by
        // the first would say "1 of 2 pods".
        for effect in &mut effects {
            if effect.notice != Notice::BecameStale {
                continue;
            }
            let Some(i) = self
                .opened
                .iter()
                .position(|(w, _)| workload_reference(w) == effect.regarding)
            else {
                continue;
            };
            let (w, first) = self.opened.swap_remove(i);
            let counts = self.pod_counts(&w);
            effect.note =
                report::workload_message(Notice::BecameStale, &w, &counts, first.as_deref());
        }
        self.opened.clear();
        (jobs, effects)
    }

    fn job_for_key(&mut self, k: &ContainerKey) -> Option<JudgeJob> {
        let pod = self
            .pods
            .get(&(k.namespace.clone(), k.pod.clone()))?
            .clone();
        let c = pod.containers.iter().find(|c| k.is(c))?;
        let image = self.parse(&c.image);
        Some(self.job_for(&pod, c, image))
    }

    fn apply_judged(&mut self, j: Judged, now: Instant) -> Applied {
        let Some(pod) = self.pods.get(&(j.key.namespace.clone(), j.key.pod.clone())) else {
            return Applied::No;
        };
        let Some(c) = pod.containers.iter().find(|c| j.key.is(c)) else {
            return Applied::No;
        };
        if c.image_id != j.image_id || c.running != j.running {
            return Applied::Outdated; // judged a state the container is no longer in
        }
        // A judgement made with an older answer (or none) than the one
        // already applied must not overwrite it: tasks finish in any order.
        let latest = self
            .normalized(&c.image)
            .and_then(|n| self.refs.get(n))
            .map_or(0, |r| r.generation);
        if j.answer_gen < latest {
            return Applied::No;
        }
        let pod = pod.clone();
        let c = c.clone();
        let workload = self.owners.workload_of(&pod);
        let verdict = &j.judgement.verdict;
        let stale = *verdict == Verdict::Stale;
        let series = ContainerSeries {
            image: self
                .normalized(&c.image)
                .cloned()
                .unwrap_or_else(|| c.image.clone()),
            owner_kind: workload.kind.clone(),
            owner_name: workload.name.clone(),
            node: pod.node.clone().unwrap_or_else(|| Str::from("")),
            verdict: verdict.as_str(),
            reason: reason_label(&j.judgement),
            stale,
        };
        let threshold = self.settings.unknown_threshold;
        let previous = self
            .containers
            .get(&j.key)
            .and_then(|st| st.judgement.as_deref())
            .map(|p| (p.verdict.as_str(), reason_label(p)));
        self.metrics
            .set_container(series_key(&j.key), series, previous);
        if stale && let Some(work) = &mut self.remedy_work {
            work.insert(wkey(&workload), workload.clone());
        }
        let st = self.containers.entry(j.key.clone()).or_default();
        let counted_before = st.counted_in.take();
        // A failed lookup says nothing about the content: a container counted
        // stale stays counted, as its own report stays (`Tracker::observe`).
        let counts = stale
            || (counted_before.is_some()
                && matches!(verdict, Verdict::Unknown(r) if report::is_check_failure(r)));
        if counts {
            st.counted_in = Some(Arc::new(workload.clone()));
        }
        let notice = st.tracker.observe(verdict, now, threshold);
        let failing_for = st.tracker.failing_since.map(|s| now.duration_since(s));
        st.judgement = Some(match self.judgements.get(&j.judgement) {
            Some(shared) => shared.clone(),
            None => {
                let shared = Arc::new(j.judgement.clone());
                self.judgements.insert(shared.clone());
                shared
            }
        });
        let mut effects = Vec::new();
        let mut first_note = None;
        if let Some(n) = notice {
            log_transition(n, &pod, &c, &j.judgement, failing_for);
            let note = self.note(&pod, &c, &j.judgement, n, failing_for);
            first_note = Some(note.clone());
            effects.push(EventEffect {
                notice: n,
                note,
                regarding: container_reference(&pod, &c),
            });
        }
        let same = counted_before.as_deref().map(wkey) == Some(wkey(&workload));
        match counted_before {
            // Moving to another workload (owner learnt late) is not news.
            Some(old) if !(counts && same) => {
                effects.extend(self.workload_delta(&old, -1, None, !counts));
            }
            _ => {}
        }
        if counts && !same {
            effects.extend(self.workload_delta(&workload, 1, first_note.as_deref(), true));
        }
        // A judgement of a workload whose episode is closing may close it.
        effects.extend(self.try_close(&workload));
        Applied::Yes(effects)
    }
}
