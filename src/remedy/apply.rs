//! The shell: reads the workload and its Namespace, asks [`plan`], and
//! performs the plan on the leader: refresh pods, the restart patch, the pin
//! patch, the loop-guard annotations. Every action and skip becomes an Event
//! on the workload and a count of `imagedrift_remedies_total{remedy,result}`.

use super::config::RemedyConfig;
use super::guard::{
    self, GuardRecord, InFlight, InFlightEntry, REMEDIED_AT, REMEDIED_DIGEST, REMEDIED_WITH,
};
use super::optin;
use super::plan::{
    InFlightView, Limits, NodePull, Plan, PlanInput, RefreshTarget, SkipReason, Step,
    WorkloadState, plan,
};
use super::{StaleContainer, WorkloadKind, WorkloadRef};
use crate::controller::events::{Event, EventType, Recorder};
use crate::controller::leader::Leader;
use crate::policy::Remedy;
use crate::reference::Digest;
use crate::verdict::Verdict;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use prometheus::{IntCounterVec, Opts, Registry};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::refresh::wait_pulled;
pub use super::refresh::{
    PullStatus, REFRESH_MOUNT, pull_status, refresh_container_name, refresh_pod,
};
use super::workload::metadata_state;
pub use super::workload::{
    annotations_patch, daemonset_state, deployment_state, pin_patch, restart_patch,
    statefulset_state,
};

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Label on refresh pods: who manages them.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label (and annotation, untruncated) on refresh pods: the workload served.
pub const REFRESH_FOR: &str = "imagedrift.io/refresh-for";
/// The field manager of imagedrift's patches.
pub const FIELD_MANAGER: &str = "imagedrift";

/// The time, injectable so tests see exact patch bodies.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Setting up the remedies failed.
#[derive(Debug, thiserror::Error)]
pub enum RemedyError {
    /// The metric could not be registered (registered twice?).
    #[error("registering metric imagedrift_remedies_total: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
}

impl RemedyError {
    /// Fixed category.
    pub fn category(&self) -> &'static str {
        match self {
            RemedyError::Metrics(_) => "metrics",
            RemedyError::Config(_) => "config",
        }
    }
}

/// What became of one remedy for one workload; the metric's `result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Done.
    Applied,
    /// Applied, and the workload's pods came to run the current digest
    /// within the verify window.
    Verified,
    /// Would have been done (dry run): only an Event was written.
    DryRun,
    /// Tried and failed: the write failed, or it was applied but the
    /// workload's pods did not run the current digest within the verify window.
    Failed,
    /// Not done, for this reason.
    Skipped(SkipReason),
    /// The opt-in annotation could not be read: nothing done.
    InvalidOptIn,
    /// Leadership was lost before the write.
    NotLeader,
}

impl Outcome {
    /// The metric `result` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Verified => "verified",
            Outcome::DryRun => "dry_run",
            Outcome::Failed => "failed",
            Outcome::Skipped(r) => r.as_str(),
            Outcome::InvalidOptIn => "invalid_opt_in",
            Outcome::NotLeader => "skipped_not_leader",
        }
    }
}

/// The remedies, ready to act on stale workloads.
#[derive(Clone)]
pub struct Remedies {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    recorder: Recorder,
    config: RemedyConfig,
    counter: IntCounterVec,
    leader: Leader,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

/// How long in-memory guard records are kept (at least the cooldown).
const MEMORY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[derive(Default)]
struct State {
    /// Loop-guard records kept in memory (bare pods, Jobs; dry runs; and a
    /// backstop when an annotation patch failed).
    records: HashMap<WorkloadRef, GuardRecord>,
    in_flight: InFlight,
    /// Successful node pulls and when, so no node is refreshed twice for
    /// one digest (bare pods such as CI agents are new workloads each time).
    refreshed: HashMap<NodePull, Timestamp>,
    /// Namespace annotation values and when they were read.
    namespaces: HashMap<String, (Option<String>, Timestamp)>,
}

impl State {
    /// Drops in-memory records older than `keep`: bare pods come and go
    /// (a CI agent per build), so the maps must not grow for ever.
    fn forget_before(&mut self, now: Timestamp, keep: std::time::Duration) {
        let fresh = |at: &Timestamp| at.checked_add(keep).map(|end| end > now).unwrap_or(true);
        self.records.retain(|_, r| r.at.as_ref().is_none_or(fresh));
        self.refreshed.retain(|_, at| fresh(at));
    }
}

impl Remedies {
    /// Validates `config` and registers the metric on `metrics`.
    pub fn new(
        client: Client,
        recorder: Recorder,
        config: RemedyConfig,
        metrics: &Registry,
        leader: Leader,
    ) -> Result<Remedies, RemedyError> {
        config.validate()?;
        let counter = IntCounterVec::new(
            Opts::new(
                "imagedrift_remedies_total",
                "Remedies for stale containers by remedy and result",
            ),
            &["remedy", "result"],
        )?;
        metrics.register(Box::new(counter.clone()))?;
        Ok(Remedies {
            inner: Arc::new(Inner {
                client,
                recorder,
                config,
                counter,
                leader,
                clock: Arc::new(SystemClock),
                state: Mutex::new(State::default()),
            }),
        })
    }

    /// The same remedies reading time from `clock` (tests).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Remedies {
        let inner = match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.clock = clock;
                inner
            }
            Err(shared) => Inner {
                client: shared.client.clone(),
                recorder: shared.recorder.clone(),
                config: shared.config.clone(),
                counter: shared.counter.clone(),
                leader: shared.leader.clone(),
                clock,
                state: Mutex::new(State::default()),
            },
        };
        Remedies {
            inner: Arc::new(inner),
        }
    }

    /// Handles one workload whose verdicts changed: decides, then acts,
    /// reporting each remedy's outcome. A refresh waits for its pods (up to
    /// `refresh.timeout`), so callers spawn this rather than await it inline.
    /// A replica that doesn't lead does nothing, not even reads.
    pub async fn handle(
        &self,
        workload: &WorkloadRef,
        containers: &[StaleContainer],
    ) -> Vec<(Remedy, Outcome)> {
        if !self.is_leader()
            || !containers
                .iter()
                .any(|c| c.verdict == Verdict::Stale && !c.image.is_pinned())
        {
            return Vec::new();
        }
        let cfg = &self.inner.config;

        // Opt-in: the Namespace's annotation and the workload's own.
        let ns_value = match self.namespace_annotation(&workload.namespace).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, namespace = %workload.namespace, "cannot read the Namespace's remedy annotation; doing nothing");
                return Vec::new();
            }
        };
        let state = match self.fetch_state(workload).await {
            Ok(Some(s)) => s,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, namespace = %workload.namespace, workload = %workload, "cannot read the workload; doing nothing");
                return Vec::new();
            }
        };
        let parsed = (
            optin::parse_annotation(state.annotations.get(optin::ANNOTATION).map(String::as_str)),
            optin::parse_annotation(ns_value.as_deref()),
        );
        let (w_opt, ns_opt) = match parsed {
            (Ok(w), Ok(n)) => (w, n),
            (Err(e), _) => {
                return self
                    .invalid_opt_in(workload, &workload.to_string(), e)
                    .await;
            }
            (_, Err(e)) => {
                let at = format!("Namespace {}", workload.namespace);
                return self.invalid_opt_in(workload, &at, e).await;
            }
        };
        let enabled = optin::resolve(
            w_opt,
            ns_opt,
            cfg.namespace(&workload.namespace),
            cfg.global(),
        );
        if enabled.is_empty() {
            return Vec::new();
        }

        if self.in_flight_len() >= cfg.max_in_flight {
            self.settle_in_flight().await;
        }

        let now = self.inner.clock.now();
        let plan = self.decide(workload, containers, &state, enabled, now);
        self.execute(workload, plan, now).await
    }

    /// Plans, and claims the in-flight slot under the same lock so that two
    /// concurrent calls for one workload can't both act.
    fn decide(
        &self,
        workload: &WorkloadRef,
        containers: &[StaleContainer],
        state: &WorkloadState,
        enabled: optin::Enabled,
        now: Timestamp,
    ) -> Plan {
        let cfg = &self.inner.config;
        let mut st = self.lock();
        st.in_flight.expire(now, cfg.in_flight_timeout);
        if let Some(r) = &state.rollout {
            st.in_flight.settle(workload, r);
        }
        st.forget_before(now, cfg.cooldown.max(MEMORY));
        let record = GuardRecord::latest(
            GuardRecord::from_annotations(&state.annotations),
            st.records.get(workload).cloned(),
        );
        let refreshed: HashSet<NodePull> = st.refreshed.keys().cloned().collect();
        let plan = plan(&PlanInput {
            workload,
            containers,
            state,
            enabled,
            record: record.as_ref(),
            in_flight: InFlightView {
                total: st.in_flight.len(),
                this_workload: st.in_flight.get(workload).is_some(),
            },
            limits: Limits {
                cooldown: cfg.cooldown,
                max_in_flight: cfg.max_in_flight,
            },
            refreshed: &refreshed,
            now,
        });
        if let Some(first) = plan.steps.first().filter(|_| !cfg.dry_run) {
            st.in_flight.start(
                workload.clone(),
                InFlightEntry {
                    remedy: first.remedy(),
                    since: now,
                    generation: None,
                    executing: true,
                },
            );
        }
        plan
    }

    /// A malformed opt-in annotation: nothing runs, and the Event says why.
    async fn invalid_opt_in(
        &self,
        workload: &WorkloadRef,
        at: &str,
        e: optin::OptInError,
    ) -> Vec<(Remedy, Outcome)> {
        let msg = format!(
            "annotation {} on {at} is invalid, so no remedy runs: {e}",
            optin::ANNOTATION
        );
        self.inner
            .counter
            .with_label_values(&["none", Outcome::InvalidOptIn.as_str()])
            .inc();
        self.event(workload, "Remedy", "RemedyAnnotationInvalid", &msg)
            .await;
        Vec::new()
    }

    async fn execute(
        &self,
        workload: &WorkloadRef,
        plan: Plan,
        now: Timestamp,
    ) -> Vec<(Remedy, Outcome)> {
        let mut outcomes = Vec::new();
        for skip in &plan.skips {
            let outcome = Outcome::Skipped(skip.reason);
            let reason =
                if skip.reason == SkipReason::WouldNotHelp && skip.remedies == [Remedy::Restart] {
                    "RestartWouldNotHelp"
                } else {
                    "RemedySkipped"
                };
            for r in &skip.remedies {
                outcomes.push((*r, outcome));
            }
            self.count_all(&skip.remedies, outcome);
            let names: Vec<&str> = skip.remedies.iter().map(|r| r.as_str()).collect();
            let note = format!("Remedy {} not done: {}", names.join(","), skip.message);
            // The Recorder folds Events with equal (action, reason) into one
            // series that keeps the first note, so each skip kind has its own action.
            let first = skip.remedies.first().copied().unwrap_or(Remedy::Restart);
            let action = format!("{}Skipped{}", action_of(first), skip_action(skip.reason));
            self.event(workload, &action, reason, &note).await;
        }
        if plan.steps.is_empty() {
            return outcomes;
        }
        let with: Vec<&str> = plan.steps.iter().map(|s| s.remedy().as_str()).collect();
        let annotations = BTreeMap::from([
            (
                REMEDIED_DIGEST.to_string(),
                guard::digests_value(&plan.digests),
            ),
            (REMEDIED_AT.to_string(), guard::rfc3339(now)),
            (REMEDIED_WITH.to_string(), with.join(",")),
        ]);
        let targets = plan
            .digests
            .iter()
            .map(|d| d.short())
            .collect::<Vec<_>>()
            .join(", ");

        if self.inner.config.dry_run {
            for step in &plan.steps {
                let r = step.remedy();
                let note = format!("Dry run: would {}", describe_step(step, &targets));
                self.report(workload, r, Outcome::DryRun, reason_of(r), &note)
                    .await;
                outcomes.push((r, Outcome::DryRun));
            }
            self.remember(workload, &plan.digests, now, None);
            return outcomes;
        }

        let mut generation = None;
        let mut ok = true;
        let last = plan.steps.len() - 1;
        for (i, step) in plan.steps.iter().enumerate() {
            let r = step.remedy();
            if !self.is_leader() {
                tracing::info!(workload = %workload, remedy = r.as_str(), "lost leadership; stopping");
                self.count(r, Outcome::NotLeader);
                outcomes.push((r, Outcome::NotLeader));
                ok = false;
                break;
            }
            // The loop-guard annotations ride on the last patch.
            let result = match step {
                Step::Refresh(targets) => {
                    let r = self.refresh(workload, targets).await;
                    // Each node that pulled is recorded, even if another failed.
                    let mut st = self.lock();
                    for (t, ok) in targets.iter().zip(&r.1) {
                        if *ok {
                            st.refreshed.extend(t.pulls().map(|p| (p, now)));
                        }
                    }
                    r.0
                }
                Step::Restart => {
                    let patch = restart_patch(&annotations, now);
                    self.patch(workload, &patch).await.map(|g| generation = g)
                }
                Step::Pin(pins) => {
                    let patch = pin_patch(&annotations, pins);
                    self.patch(workload, &patch).await.map(|g| generation = g)
                }
            };
            match result {
                Ok(()) => {
                    let note = capitalize(&describe_step(step, &targets));
                    self.report(workload, r, Outcome::Applied, reason_of(r), &note)
                        .await;
                    outcomes.push((r, Outcome::Applied));
                }
                Err(e) => {
                    let note = format!("Remedy {} failed, nothing further done: {e}", r.as_str());
                    self.report(workload, r, Outcome::Failed, "RemedyFailed", &note)
                        .await;
                    outcomes.push((r, Outcome::Failed));
                    ok = false;
                    break;
                }
            }
            // A refresh alone on a rolling workload: record the guard on it.
            if i == last
                && matches!(step, Step::Refresh(_))
                && workload.kind.rolls_out()
                && let Err(e) = self.patch(workload, &annotations_patch(&annotations)).await
            {
                tracing::warn!(error = %e, workload = %workload, "cannot record the loop guard on the workload; keeping it in memory");
            }
        }

        // A failed remedy still starts the cooldown, but not the loop guard:
        // the same digest may be tried again later.
        let digests = if ok {
            plan.digests.clone()
        } else {
            BTreeSet::new()
        };
        self.remember(workload, &digests, now, generation.filter(|_| ok));
        outcomes
    }

    /// Records the loop guard in memory and moves the in-flight entry on.
    fn remember(
        &self,
        workload: &WorkloadRef,
        digests: &BTreeSet<Digest>,
        now: Timestamp,
        generation: Option<i64>,
    ) {
        let mut st = self.lock();
        let prev = st.records.get(workload).map(|r| r.digests.clone());
        st.records.insert(
            workload.clone(),
            GuardRecord {
                digests: if digests.is_empty() {
                    prev.unwrap_or_default()
                } else {
                    digests.clone()
                },
                at: Some(now),
            },
        );
        match generation {
            // The rollout the patch started counts until it has finished.
            Some(g) => {
                if let Some(e) = st.in_flight.get(workload).cloned() {
                    st.in_flight.start(
                        workload.clone(),
                        InFlightEntry {
                            generation: Some(g),
                            executing: false,
                            ..e
                        },
                    );
                }
            }
            None => st.in_flight.finish(workload),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The write guard: leads, with an unexpired lease by this replica's
    /// monotonic clock. Checked right before every write.
    fn is_leader(&self) -> bool {
        self.inner.leader.may_write()
    }

    fn in_flight_len(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// At capacity: re-read the workloads whose rollouts count as in flight.
    async fn settle_in_flight(&self) {
        let waiting = self.lock().in_flight.settleable();
        for w in waiting {
            match self.fetch_state(&w).await {
                Ok(Some(WorkloadState {
                    rollout: Some(r), ..
                })) => self.lock().in_flight.settle(&w, &r),
                Ok(_) => self.lock().in_flight.finish(&w),
                Err(e) => {
                    tracing::debug!(error = %e, workload = %w, "cannot re-read an in-flight workload")
                }
            }
        }
    }

    /// The Namespace's `imagedrift.io/remedy`, cached for `namespaceCacheTtl`.
    async fn namespace_annotation(&self, ns: &str) -> Result<Option<String>, kube::Error> {
        let now = self.inner.clock.now();
        let ttl = self.inner.config.namespace_cache_ttl;
        if let Some((v, at)) = self.lock().namespaces.get(ns)
            && at.checked_add(ttl).is_ok_and(|end| end > now)
        {
            return Ok(v.clone());
        }
        let api: Api<Namespace> = Api::all(self.inner.client.clone());
        let value = api
            .get_metadata_opt(ns)
            .await?
            .and_then(|m| m.metadata.annotations)
            .and_then(|mut a| a.remove(optin::ANNOTATION));
        self.lock()
            .namespaces
            .insert(ns.to_string(), (value.clone(), now));
        Ok(value)
    }

    /// Reads the workload; `None` when it is gone.
    async fn fetch_state(&self, w: &WorkloadRef) -> Result<Option<WorkloadState>, kube::Error> {
        let c = self.inner.client.clone();
        let ns = w.namespace.as_str();
        Ok(match w.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(c, ns)
                .get_opt(&w.name)
                .await?
                .map(|d| deployment_state(&d)),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(c, ns)
                .get_opt(&w.name)
                .await?
                .map(|s| statefulset_state(&s)),
            WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(c, ns)
                .get_opt(&w.name)
                .await?
                .map(|d| daemonset_state(&d)),
            WorkloadKind::ReplicaSet => metadata_state(
                Api::<ReplicaSet>::namespaced(c, ns)
                    .get_metadata_opt(&w.name)
                    .await?
                    .map(|m| m.metadata),
            ),
            WorkloadKind::Job => metadata_state(
                Api::<Job>::namespaced(c, ns)
                    .get_metadata_opt(&w.name)
                    .await?
                    .map(|m| m.metadata),
            ),
            WorkloadKind::CronJob => metadata_state(
                Api::<CronJob>::namespaced(c, ns)
                    .get_metadata_opt(&w.name)
                    .await?
                    .map(|m| m.metadata),
            ),
            WorkloadKind::Pod => metadata_state(
                Api::<Pod>::namespaced(c, ns)
                    .get_metadata_opt(&w.name)
                    .await?
                    .map(|m| m.metadata),
            ),
        })
    }

    /// A strategic-merge patch on a rolling workload; returns the
    /// generation it produced.
    async fn patch(
        &self,
        w: &WorkloadRef,
        patch: &serde_json::Value,
    ) -> Result<Option<i64>, String> {
        let c = self.inner.client.clone();
        let ns = w.namespace.as_str();
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let p = Patch::Strategic(patch);
        if !self.is_leader() {
            return Err(format!(
                "not patching {w}: this replica no longer holds an unexpired lease"
            ));
        }
        let generation = match w.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(c, ns)
                .patch(&w.name, &pp, &p)
                .await
                .map(|o| o.meta().generation),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(c, ns)
                .patch(&w.name, &pp, &p)
                .await
                .map(|o| o.meta().generation),
            WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(c, ns)
                .patch(&w.name, &pp, &p)
                .await
                .map(|o| o.meta().generation),
            other => return Err(format!("a {other} is never patched")),
        };
        generation.map_err(|e| format!("patching {w}: {}", kube_error(&e)))
    }

    /// Refreshes every node at once; fails if any node fails. Also says
    /// which targets succeeded.
    async fn refresh(
        &self,
        w: &WorkloadRef,
        targets: &[RefreshTarget],
    ) -> (Result<(), String>, Vec<bool>) {
        let results = join_all(targets.iter().map(|t| self.refresh_node(w, t))).await;
        let ok = results.iter().map(Result::is_ok).collect();
        let failures: Vec<String> = targets
            .iter()
            .zip(results)
            .filter_map(|(t, r)| r.err().map(|e| format!("node {}: {e}", t.node)))
            .collect();
        if failures.is_empty() {
            (Ok(()), ok)
        } else {
            (Err(failures.join("; ")), ok)
        }
    }

    /// One refresh pod: create, wait until it reports the pulled digest,
    /// delete (always, even on failure or timeout).
    async fn refresh_node(&self, w: &WorkloadRef, t: &RefreshTarget) -> Result<(), String> {
        let cfg = &self.inner.config.refresh;
        let pods: Api<Pod> = Api::namespaced(self.inner.client.clone(), &w.namespace);
        let pod = refresh_pod(w, t, cfg);
        if !self.is_leader() {
            return Err(
                "not creating the refresh pod: this replica no longer holds an unexpired lease"
                    .into(),
            );
        }
        let created = pods
            .create(&PostParams::default(), &pod)
            .await
            .map_err(|e| format!("creating the refresh pod: {}", kube_error(&e)))?;
        let Some(name) = created.metadata.name.clone() else {
            return Err("the API server returned the refresh pod without a name".into());
        };
        let rv = created
            .metadata
            .resource_version
            .clone()
            .unwrap_or_else(|| "0".to_string());
        let result = match pull_status(&created, t) {
            PullStatus::Pending => {
                match tokio::time::timeout(cfg.timeout, wait_pulled(&pods, &name, rv, t)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "refresh pod {name} did not report the pull within {}s",
                        cfg.timeout.as_secs()
                    )),
                }
            }
            PullStatus::Pulled => Ok(()),
            PullStatus::Failed(e) => Err(e),
        };
        // No write without the lease, not even deleting our own pod: its
        // activeDeadlineSeconds ends it.
        if !self.is_leader() {
            tracing::info!(pod = %name, namespace = %w.namespace, "lease lost: leaving the refresh pod to its activeDeadlineSeconds");
            return result;
        }
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match pods.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(error = %kube_error(&e), pod = %name, namespace = %w.namespace, "cannot delete refresh pod (its activeDeadlineSeconds ends it)")
            }
        }
        result
    }

    /// How long a remedy has to show its effect (see
    /// [`RemedyConfig::verify_window`]).
    pub fn verify_window(&self, interval: std::time::Duration) -> std::time::Duration {
        self.inner.config.verify_window(interval)
    }

    /// Counts how a verification ended: each remedy `verified` or `failed`.
    pub fn count_check(&self, check: &crate::controller::verify::RemedyCheck) {
        let outcome = if check.verified {
            Outcome::Verified
        } else {
            Outcome::Failed
        };
        self.count_all(&check.remedies, outcome);
    }

    /// The Warning `RemedyFailed` Event of a failed verification, on the
    /// workload, naming what was tried (leader only).
    pub async fn warn_unverified(&self, check: &crate::controller::verify::RemedyCheck) {
        // Its own action: the Recorder folds Events with equal (action,
        // reason) into one series keeping the first note.
        self.event(&check.workload, "Verify", "RemedyFailed", &check.note)
            .await;
    }

    async fn report(&self, w: &WorkloadRef, r: Remedy, o: Outcome, reason: &str, note: &str) {
        self.count(r, o);
        self.event(w, action_of(r), reason, note).await;
    }

    fn count(&self, r: Remedy, o: Outcome) {
        self.inner
            .counter
            .with_label_values(&[r.as_str(), o.as_str()])
            .inc();
    }

    fn count_all(&self, rs: &[Remedy], o: Outcome) {
        for r in rs {
            self.count(*r, o);
        }
    }

    /// One Event on the workload (leader only).
    async fn event(&self, w: &WorkloadRef, action: &str, reason: &str, note: &str) {
        if !self.is_leader() {
            return;
        }
        tracing::info!(namespace = %w.namespace, workload = %w, action, reason, note, "remedy");
        let ev = Event {
            type_: if warning(reason) {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(truncate(note, 1024)),
            action: action.to_string(),
            secondary: None,
        };
        let reference = ObjectReference {
            api_version: Some(w.kind.api_version().to_string()),
            kind: Some(w.kind.as_str().to_string()),
            name: Some(w.name.clone()),
            namespace: Some(w.namespace.clone()),
            uid: w.uid.clone(),
            ..ObjectReference::default()
        };
        if let Err(e) = self.inner.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, reason, workload = %w, "cannot write Event");
        }
    }
}

fn describe_step(step: &Step, targets: &str) -> String {
    match step {
        Step::Restart => format!(
            "restart the workload (as kubectl rollout restart) so its pods pull the tag's current content ({targets})"
        ),
        Step::Refresh(ts) => {
            let nodes: Vec<&str> = ts.iter().map(|t| t.node.as_str()).collect();
            let mut images: Vec<&str> = ts
                .iter()
                .flat_map(|t| t.images.iter().map(|i| i.spec_image.as_str()))
                .collect();
            images.sort_unstable();
            images.dedup();
            format!(
                "pull {} again on node(s) {} so they serve the tag's current content ({targets})",
                images.join(", "),
                nodes.join(", ")
            )
        }
        Step::Pin(ps) => {
            let list: Vec<String> = ps
                .iter()
                .map(|p| format!("{}: {} -> {}", p.name, p.from, p.to))
                .collect();
            format!(
                "pin {} (GitOps tools will report this as drift from Git)",
                list.join(", ")
            )
        }
    }
}

fn reason_of(r: Remedy) -> &'static str {
    match r {
        Remedy::Restart => "RemedyRestart",
        Remedy::RefreshNode => "RemedyRefresh",
        Remedy::PinDigest => "RemedyPin",
        Remedy::SetPolicyAlways | Remedy::ReprovisionNode => "RemedySkipped",
    }
}

fn action_of(r: Remedy) -> &'static str {
    match r {
        Remedy::Restart => "Restart",
        Remedy::RefreshNode => "Refresh",
        Remedy::PinDigest => "Pin",
        Remedy::SetPolicyAlways => "SetPolicyAlways",
        Remedy::ReprovisionNode => "ReprovisionNode",
    }
}

fn skip_action(r: SkipReason) -> &'static str {
    match r {
        SkipReason::WouldNotHelp => "WouldNotHelp",
        SkipReason::Unsupported => "Unsupported",
        SkipReason::Cooldown => "Cooldown",
        SkipReason::Rollout => "Rollout",
        SkipReason::LoopGuard => "LoopGuard",
        SkipReason::InFlight => "InFlight",
    }
}

fn warning(reason: &str) -> bool {
    matches!(
        reason,
        "RestartWouldNotHelp" | "RemedyFailed" | "RemedyAnnotationInvalid"
    )
}

pub(super) fn kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

/// The sentence with its first letter in upper case.
fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// At most `max` bytes, cut on a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// A label value (at most 63 characters, alphanumeric at both ends).
pub(super) fn label_value(s: &str) -> String {
    let cut: String = s.chars().take(63).collect();
    cut.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remedy::ContainerKind;
    use crate::remedy::guard::RolloutState;
    use crate::remedy::plan::{RefreshImage, TemplateContainer};

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn target() -> RefreshTarget {
        RefreshTarget {
            node: "n1".into(),
            images: vec![RefreshImage {
                volume_carrier: None,
                spec_image: "nginx:1.25".into(),
                current: d('a'),
                accept: BTreeSet::from([d('a'), d('c')]),
            }],
            pull_secrets: vec![],
        }
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": status}))
            .unwrap()
    }

    #[test]
    fn pull_status_cases() {
        let t = target();
        let a = d('a');
        let b = d('b');
        let c = d('c');
        let cases = [
            (serde_json::json!({}), PullStatus::Pending),
            (
                serde_json::json!({"containerStatuses": [{"name": "refresh-0", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
                PullStatus::Pending,
            ),
            // containerd: the index digest, command failed or not.
            (
                serde_json::json!({"containerStatuses": [{"name": "refresh-0", "image": "", "imageID": format!("docker.io/library/nginx@{a}"), "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 128, "reason": "StartError"}}}]}),
                PullStatus::Pulled,
            ),
            // CRI-O: a platform digest the controller named as also current.
            (
                serde_json::json!({"containerStatuses": [{"name": "refresh-0", "image": "", "imageID": format!("docker.io/library/nginx@{c}"), "ready": false, "restartCount": 0}]}),
                PullStatus::Pulled,
            ),
            (
                serde_json::json!({"containerStatuses": [{"name": "refresh-0", "image": "", "imageID": format!("docker.io/library/nginx@{b}"), "ready": false, "restartCount": 0}]}),
                PullStatus::Failed(format!(
                    "the node reports {b} for nginx:1.25, not the tag's current digest {a}"
                )),
            ),
            (
                serde_json::json!({"containerStatuses": [{"name": "refresh-0", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "denied"}}}]}),
                PullStatus::Failed("pulling nginx:1.25: ImagePullBackOff: denied".into()),
            ),
            (
                serde_json::json!({"phase": "Failed", "reason": "DeadlineExceeded"}),
                PullStatus::Failed("refresh pod ended (DeadlineExceeded)".into()),
            ),
        ];
        for (i, (status, want)) in cases.into_iter().enumerate() {
            assert_eq!(pull_status(&pod(status), &t), want, "case {i}");
        }
    }

    #[test]
    fn rollout_state_per_kind() {
        let dep: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d", "generation": 3, "annotations": {"a": "b"}},
            "spec": {"replicas": 3, "selector": {}, "template": {"spec": {
                "containers": [{"name": "app", "image": "nginx:1"}],
                "initContainers": [{"name": "side", "image": "envoy:1"}]}}},
            "status": {"observedGeneration": 3, "updatedReplicas": 2, "unavailableReplicas": 1}
        }))
        .unwrap();
        let st = deployment_state(&dep);
        assert_eq!(
            st.rollout,
            Some(RolloutState {
                generation: 3,
                observed_generation: 3,
                unavailable: 1,
                updating: 1
            })
        );
        assert_eq!(st.annotations.get("a").map(String::as_str), Some("b"));
        assert_eq!(
            st.template,
            vec![
                TemplateContainer {
                    kind: ContainerKind::Container,
                    name: "app".into(),
                    image: "nginx:1".into()
                },
                TemplateContainer {
                    kind: ContainerKind::Init,
                    name: "side".into(),
                    image: "envoy:1".into()
                },
            ]
        );

        let sts = |strategy: &str| -> StatefulSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "s", "generation": 2},
                "spec": {"replicas": 3, "serviceName": "s", "selector": {}, "template": {},
                         "updateStrategy": {"type": strategy}},
                "status": {"observedGeneration": 2, "replicas": 3, "availableReplicas": 3,
                           "updatedReplicas": 1, "currentRevision": "r1", "updateRevision": "r2"}
            }))
            .unwrap()
        };
        let rolling = statefulset_state(&sts("RollingUpdate")).rollout.unwrap();
        assert_eq!((rolling.unavailable, rolling.updating), (0, 2));
        assert!(rolling.in_progress().is_some());
        // OnDelete never finishes on its own: not a rollout in progress.
        let on_delete = statefulset_state(&sts("OnDelete")).rollout.unwrap();
        assert_eq!(on_delete.in_progress(), None);

        let ds: DaemonSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "generation": 7},
            "spec": {"selector": {}, "template": {}},
            "status": {"observedGeneration": 7, "currentNumberScheduled": 4, "desiredNumberScheduled": 4,
                       "numberMisscheduled": 0, "numberReady": 4, "numberUnavailable": 0, "updatedNumberScheduled": 4}
        }))
        .unwrap();
        assert_eq!(daemonset_state(&ds).rollout.unwrap().in_progress(), None);
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("web"), "web");
        let long = format!("{}-x", "a".repeat(62));
        assert_eq!(label_value(&long), "a".repeat(62));
        assert_eq!(truncate("héllo", 3), "...");
        assert_eq!(truncate("hello", 10), "hello");
    }
}
