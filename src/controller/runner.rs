//! The long-running loop: watch events in, registry checks and verdicts
//! out, Events written by the leader only (see [`super::publish`]). One task owns the [`State`];
//! registry work runs in spawned tasks whose outcomes come back to it.

use super::events::Recorder;
use super::publish::{Publish, publish_events};
use super::reconcile::{
    CheckJob, EventEffect, JudgeJob, Outcome, Settings, State, run_check, run_judge,
};
use super::schedule::Jitter;
use super::secrets::PullCredentials;
use super::store::{OwnerMeta, PodView, node_platform};
use super::wire::{SlimNode, SlimOwner, SlimPod};
use crate::config::Namespaces;
use crate::facts::Registry;
use crate::metrics::Metrics;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One watch event from any of the four watched kinds. (Events are moved
/// once each, straight into a view; boxing them would only add an allocation.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Input {
    /// A pod event.
    Pods(watcher::Event<SlimPod>),
    /// A node event.
    Nodes(watcher::Event<SlimNode>),
    /// A ReplicaSet metadata event.
    ReplicaSets(watcher::Event<SlimOwner<ReplicaSet>>),
    /// A Job metadata event.
    Jobs(watcher::Event<SlimOwner<Job>>),
}

/// A merged stream of watch events.
pub type Inputs = Pin<Box<dyn Stream<Item = Result<Input, watcher::Error>> + Send>>;

/// Whether the first pod and node lists have arrived (`/readyz`).
#[derive(Clone, Default, Debug)]
pub struct Readiness {
    pods: Arc<AtomicBool>,
    nodes: Arc<AtomicBool>,
}

impl Readiness {
    /// Ready once both lists arrived.
    pub fn is_ready(&self) -> bool {
        self.pods.load(Ordering::Relaxed) && self.nodes.load(Ordering::Relaxed)
    }
}

/// Everything the loop needs (controller-rs style: one context).
pub struct Context<R, C> {
    /// The registry.
    pub registry: Arc<R>,
    /// Pull credentials.
    pub credentials: Arc<C>,
    /// The one shared Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Metrics,
    /// Timing.
    pub settings: Settings,
    /// At most this many reference checks at once.
    pub max_concurrent_checks: usize,
    /// Which namespaces count.
    pub namespaces: Namespaces,
    /// Whether this replica leads, and the write guard.
    pub leader: super::leader::Leader,
    /// The API client the Events are read back with.
    pub client: Client,
    /// Readiness flags.
    pub ready: Readiness,
    /// The remedies, when enabled; they act only while this replica leads.
    pub remedies: Option<crate::remedy::Remedies>,
}

/// Why the loop stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The watch streams ended (they should not).
    #[error("the watch streams ended")]
    WatchEnded,
}

impl RunError {
    /// Fixed category.
    pub fn category(&self) -> &'static str {
        "watch_ended"
    }
}

/// Pods per page of the initial list and of each re-list. kube's client
/// holds a page's text twice while decoding it (its chunks, then one copy),
/// so the page is the largest transient item of a list: 100 pods of
/// Deployment size are about 1 MB, where kube's default of 500 put 11 MiB
/// on the peak at 10,000 pods (benches/scale.rs: peak RSS 74 → 69 MiB, and
/// the first verdict 0.9 s sooner, since judging starts with the first page).
const POD_PAGE_SIZE: u32 = 100;

/// Watches pods (filtered as configured), nodes, and ReplicaSet and Job
/// metadata, each decoded straight into its slim wire type (nothing else
/// of an object is ever allocated). Initial lists are paged
/// ([`POD_PAGE_SIZE`] pods a page; the other kinds the watcher's 500), so a
/// re-list holds one page at most.
///
/// Not streaming lists (`sendInitialEvents`, the watcher's
/// `streaming_lists()`): in kube-runtime 5.0 a failed initial watch of that
/// kind is retried as the same watch, never as a paged list, so an API
/// server without the WatchList feature (a feature gate, off in older
/// clusters) or a proxy that drops its bookmark would never start.
/// A failing watch logs one line per back-off step naming the resource and
/// `server`.
pub fn watch_all(
    client: Client,
    namespaces: &Namespaces,
    label_selector: &str,
    server: &str,
) -> Inputs {
    let mut pod_cfg = watcher::Config::default().page_size(POD_PAGE_SIZE);
    if !label_selector.is_empty() {
        pod_cfg = pod_cfg.labels(label_selector);
    }
    let excluded: Vec<String> = namespaces
        .exclude
        .iter()
        .map(|n| format!("metadata.namespace!={n}"))
        .collect();
    if !excluded.is_empty() {
        pod_cfg = pod_cfg.fields(&excluded.join(","));
    }
    let pods: Api<SlimPod> = match namespaces.include.as_slice() {
        [one] => Api::namespaced(client.clone(), one),
        _ => Api::all(client.clone()),
    };
    let pods = watcher(pods, pod_cfg)
        .default_backoff()
        .inspect_err(logged("pods", server))
        .map_ok(Input::Pods);
    let nodes = watcher(
        Api::<SlimNode>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .inspect_err(logged("nodes", server))
    .map_ok(Input::Nodes);
    let rs = watcher(
        Api::<SlimOwner<ReplicaSet>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .inspect_err(logged("replicasets", server))
    .map_ok(Input::ReplicaSets);
    let jobs = watcher(
        Api::<SlimOwner<Job>>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .inspect_err(logged("jobs", server))
    .map_ok(Input::Jobs);
    Box::pin(futures::stream::select_all([
        pods.boxed(),
        nodes.boxed(),
        rs.boxed(),
        jobs.boxed(),
    ]))
}

/// Logs one failed list/watch of `resource` (one line per back-off step of
/// its watcher), naming the resource and the API server.
fn logged(resource: &'static str, server: &str) -> impl Fn(&watcher::Error) + use<> {
    let server = server.to_string();
    move |e| {
        tracing::warn!(
            resource,
            server = %server,
            error = %watch_cause(e),
            "cannot list/watch {resource} at {server}; retrying with back-off"
        )
    }
}

/// The useful part of a watcher error: the API server's answer, or the
/// innermost cause of a failed connection ("Connection refused"), without
/// the layers that repeat "client error (Connect)".
pub fn watch_cause(e: &watcher::Error) -> String {
    let kube = match e {
        watcher::Error::InitialListFailed(k)
        | watcher::Error::WatchStartFailed(k)
        | watcher::Error::WatchFailed(k) => k,
        watcher::Error::WatchError(status) => {
            return format!("{} {}: {}", status.code, status.reason, status.message);
        }
        other => return other.to_string(),
    };
    if let kube::Error::Api(status) = kube {
        return format!("{} {}: {}", status.code, status.reason, status.message);
    }
    let mut inner: &dyn std::error::Error = kube;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let s = inner.to_string();
    s.find(" (os error")
        .map_or(s.clone(), |i| s[..i].to_string())
}

/// Hands the free pages inside glibc's arenas back to the system: glibc
/// returns only the top of an arena by itself, so the holes the list
/// pages and the first judgements leave stay resident otherwise. Called
/// after the pod list and after each full check, right after the most
/// transient memory has been freed (a few milliseconds at 10,000 pods).
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Pods applied between two heap trims while a list streams in: each page
/// of decoded pods leaves holes the next page does not quite fill. Every
/// page ([`POD_PAGE_SIZE`]) measured 3 MiB lower peaks than every tenth, for
/// 0.2 s more CPU over 10,000 pods (benches/scale.rs).
const TRIM_EVERY_PODS: usize = POD_PAGE_SIZE as usize;

/// Buffers owner objects during a re-list so the cache is replaced at once,
/// and counts pods applied since the last heap trim.
#[derive(Default)]
struct OwnerRelist {
    buffers: HashMap<&'static str, Vec<OwnerMeta>>,
    pods_since_trim: usize,
}

/// What one input asks the runner to do next.
#[derive(Default)]
struct Work {
    judge: Vec<JudgeJob>,
    effects: Vec<EventEffect>,
}

fn handle<R, C>(
    ctx: &Context<R, C>,
    state: &mut State,
    relist: &mut OwnerRelist,
    input: Input,
    now: Instant,
) -> Work {
    let mut w = Work::default();
    match input {
        Input::Pods(ev) => match ev {
            watcher::Event::Init => state.begin_pod_relist(),
            watcher::Event::InitDone => {
                w.effects = state.end_pod_relist();
                ctx.ready.pods.store(true, Ordering::Relaxed);
                release_free_heap();
            }
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                relist.pods_since_trim += 1;
                if relist.pods_since_trim >= TRIM_EVERY_PODS {
                    relist.pods_since_trim = 0;
                    release_free_heap();
                }
                let ns = p.namespace().unwrap_or_default();
                if ctx.namespaces.admits(&ns) {
                    match PodView::from_slim(&p, state.strings()) {
                        Ok(view) => (w.judge, w.effects) = state.apply_pod(view, now),
                        Err(e) => {
                            tracing::warn!(namespace = ns, pod = p.name_any(), error = %e, "ignoring pod")
                        }
                    }
                }
            }
            watcher::Event::Delete(p) => {
                w.effects = state.delete_pod(&p.namespace().unwrap_or_default(), &p.name_any());
            }
        },
        Input::Nodes(ev) => match ev {
            watcher::Event::Init => state.begin_node_relist(),
            watcher::Event::InitDone => {
                state.end_node_relist();
                ctx.ready.nodes.store(true, Ordering::Relaxed);
            }
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                w.judge = state.apply_node(&n.name_any(), node_platform(&n));
            }
            watcher::Event::Delete(n) => state.delete_node(&n.name_any()),
        },
        Input::ReplicaSets(ev) => w.judge = owner_event(state, relist, ev),
        Input::Jobs(ev) => w.judge = owner_event(state, relist, ev),
    }
    w
}

fn owner_event<K: Resource<DynamicType = ()>>(
    state: &mut State,
    relist: &mut OwnerRelist,
    ev: watcher::Event<SlimOwner<K>>,
) -> Vec<JudgeJob> {
    let kind: &'static str = if K::kind(&()) == "ReplicaSet" {
        "ReplicaSet"
    } else {
        "Job"
    };
    match ev {
        watcher::Event::Init => {
            relist.buffers.insert(kind, Vec::new());
            Vec::new()
        }
        watcher::Event::InitApply(o) => {
            if let Some(m) = OwnerMeta::from_meta(kind, &o.metadata, state.strings()) {
                relist.buffers.entry(kind).or_default().push(m);
            }
            Vec::new()
        }
        watcher::Event::InitDone => {
            state.replace_owners(kind, relist.buffers.remove(kind).unwrap_or_default())
        }
        watcher::Event::Apply(o) => {
            match OwnerMeta::from_meta(kind, &o.metadata, state.strings()) {
                Some(m) => state.apply_owner(m),
                None => Vec::new(),
            }
        }
        watcher::Event::Delete(o) => {
            state.delete_owner(&o.namespace().unwrap_or_default(), kind, &o.name_any());
            Vec::new()
        }
    }
}

/// The periodic one-line summary: what was judged, and the registry
/// requests since the previous line.
struct SummaryLog {
    requests_before: u64,
    first_round_logged: bool,
}

impl SummaryLog {
    fn new(requests: u64) -> SummaryLog {
        SummaryLog {
            requests_before: requests,
            first_round_logged: false,
        }
    }

    fn log(&mut self, s: &super::reconcile::Summary, requests: u64, what: &str) {
        let since = requests.saturating_sub(self.requests_before);
        self.requests_before = requests;
        tracing::info!(
            containers = s.containers,
            judged = s.judged,
            fresh = s.fresh,
            stale = s.stale,
            pinned = s.pinned,
            unknown = s.unknown,
            unknown_too_long = s.failing,
            stale_workloads = s.stale_workloads,
            references = s.references,
            registry_requests = since,
            registry_requests_total = requests,
            "{what}: {} containers judged, {} stale, {} unknown; {since} registry requests",
            s.judged,
            s.stale,
            s.unknown,
        );
    }
}

enum Done {
    /// A check, with when the webhook it answers arrived.
    Check(Outcome, Option<Instant>),
    Judge(Outcome),
}

/// Runs the controller until `token` is cancelled or the watches end.
pub async fn run<R, C>(
    ctx: Context<R, C>,
    inputs: Inputs,
    jitter: Box<dyn Jitter>,
    token: CancellationToken,
) -> Result<(), RunError>
where
    R: Registry + 'static,
    C: PullCredentials,
{
    run_with_hints(ctx, inputs, jitter, token, None).await
}

/// The next webhook hint; never, without a webhook listener.
async fn next_hint(hints: &mut Option<crate::webhook::Hints>) -> Option<crate::webhook::Hint> {
    match hints {
        Some(h) => h.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// [`run`], also taking push hints from the webhook listener: each marks
/// the watched references it names as due (see [`State::hint`]).
pub async fn run_with_hints<R, C>(
    ctx: Context<R, C>,
    mut inputs: Inputs,
    jitter: Box<dyn Jitter>,
    token: CancellationToken,
    mut hints: Option<crate::webhook::Hints>,
) -> Result<(), RunError>
where
    R: Registry + 'static,
    C: PullCredentials,
{
    let mut state = State::new(ctx.settings, ctx.metrics.clone(), jitter);
    if ctx.remedies.is_some() {
        state.enable_remedies();
    }
    let mut remedy_tasks: JoinSet<(crate::remedy::WorkloadRef, Vec<crate::policy::Remedy>)> =
        JoinSet::new();
    // The Warning Events of failed verifications.
    let mut remedy_reports: JoinSet<()> = JoinSet::new();
    let verify_window = ctx
        .remedies
        .as_ref()
        .map(|r| r.verify_window(ctx.settings.interval));
    let mut remedying: std::collections::HashSet<crate::remedy::WorkloadRef> = Default::default();
    let mut relist = OwnerRelist::default();
    let (tx, rx) = mpsc::channel(4096);
    let publisher = tokio::spawn(publish_events(
        ctx.recorder.clone(),
        ctx.client.clone(),
        ctx.leader.clone(),
        rx,
        ctx.settings.interval,
        token.clone(),
    ));
    // Becoming leader (also at start-up, once the lease is won): reconcile
    // everything open with the Events on record.
    let mut leading = ctx.leader.subscribe();
    if *leading.borrow_and_update() {
        let _ = tx.send(Publish::Takeover(state.open_notices())).await;
    }
    let mut tasks: JoinSet<Done> = JoinSet::new();
    // Which reference each check task checks, so a task that panics still
    // frees its slot and its reference is scheduled again.
    let mut checks: HashMap<tokio::task::Id, super::store::Str> = HashMap::new();
    // The summary line: after the first full round, then once per interval.
    let started = Instant::now();
    let mut summary = SummaryLog::new(ctx.registry.requests_made());
    // At least a minute apart, however short the interval.
    let summary_every = ctx
        .settings
        .interval
        .max(std::time::Duration::from_secs(60));
    let mut next_summary = started + summary_every;
    let result = loop {
        // With every check slot busy, a finishing check wakes the loop;
        // arming the timer for an overdue reference would spin.
        let slots_free = checks.len() < ctx.max_concurrent_checks;
        let wake = state
            .next_due()
            .filter(|_| slots_free)
            .unwrap_or_else(|| Instant::now() + ctx.settings.interval);
        let wake = state.next_verify_deadline().map_or(wake, |at| at.min(wake));
        let now_work = tokio::select! {
            biased;
            _ = token.cancelled() => break Ok(()),
            Ok(()) = leading.changed() => {
                if *leading.borrow_and_update() {
                    let _ = tx.send(Publish::Takeover(state.open_notices())).await;
                }
                Work::default()
            }
            Some(done) = remedy_tasks.join_next(), if !remedy_tasks.is_empty() => {
                match done {
                    Ok((w, applied)) => {
                        remedying.remove(&w);
                        if let Some(window) = verify_window {
                            state.remedy_applied(&w, &applied, Instant::now(), window);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "a remedy task failed"),
                }
                Work::default()
            }
            Some(_) = remedy_reports.join_next(), if !remedy_reports.is_empty() => Work::default(),
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let mut hinted = None;
                let outcome = match done {
                    Ok((id, Done::Check(o, h))) => { checks.remove(&id); hinted = h; o }
                    Ok((_, Done::Judge(o))) => o,
                    Err(e) => {
                        match checks.remove(&e.id()) {
                            Some(reference) => {
                                tracing::error!(error = %e, image = %reference, "a check task failed; retrying after the interval");
                                state.check_abandoned(&reference, Instant::now());
                            }
                            None => tracing::error!(error = %e, "a judge task failed"),
                        }
                        Outcome::default()
                    }
                };
                let full_before = ctx.metrics.last_full_check.get();
                let (judge, effects) = state.apply_outcome(outcome, Instant::now());
                if ctx.metrics.last_full_check.get() != full_before {
                    release_free_heap();
                }
                if let (Some(at), Some(h)) = (hinted, &hints) {
                    h.metrics.to_verdict.observe(at.elapsed().as_secs_f64());
                }
                Work { judge, effects }
            }
            Some(hint) = next_hint(&mut hints) => {
                if let Some(h) = &hints {
                    let mut matched = false;
                    for r in &hint.references {
                        matched |= state.hint(r, hint.received, h.coalesce);
                    }
                    tracing::debug!(source = %hint.source, references = ?hint.references, matched, "push hint");
                    h.metrics.count(hint.source.as_str(), if matched { "accepted" } else { "no_match" });
                }
                Work::default()
            }
            input = inputs.next() => match input {
                None => break Err(RunError::WatchEnded),
                // Logged where the resource is known (`watch_all`), once per back-off step.
                Some(Err(_)) => Work::default(),
                Some(Ok(i)) => handle(&ctx, &mut state, &mut relist, i, Instant::now()),
            },
            _ = tokio::time::sleep_until(wake) => Work::default(),
            _ = tokio::time::sleep_until(next_summary) => {
                next_summary = Instant::now() + summary_every;
                summary.log(&state.summary(), ctx.registry.requests_made(), "summary");
                Work::default()
            }
        };
        if !summary.first_round_logged && state.full_checks() > 0 {
            summary.first_round_logged = true;
            let took = format!("{:.1}s", started.elapsed().as_secs_f64());
            summary.log(
                &state.summary(),
                ctx.registry.requests_made(),
                &format!("first full check done in {took}"),
            );
        }
        for e in now_work.effects {
            if tx.send(Publish::Live(e)).await.is_err() {
                break;
            }
        }
        if !now_work.judge.is_empty() {
            let (reg, creds, jobs) = (
                ctx.registry.clone(),
                ctx.credentials.clone(),
                now_work.judge,
            );
            tasks.spawn(async move {
                let mut judged = Vec::with_capacity(jobs.len());
                for j in &jobs {
                    judged.push(run_judge(&*reg, &*creds, j).await);
                }
                Done::Judge(Outcome {
                    answer: None,
                    judged,
                })
            });
        }
        // Only the leader acts; a follower keeps the (per-workload, bounded)
        // work for when it leads instead of building it to throw away.
        if let Some(remedies) = &ctx.remedies
            && ctx.leader.may_write()
        {
            // One remedy task per workload at a time; the remedies keep
            // their own cooldowns, caps and loop guard.
            for (workload, containers) in state.take_remedy_work() {
                if !remedying.insert(workload.clone()) {
                    continue;
                }
                let remedies = remedies.clone();
                remedy_tasks.spawn(async move {
                    let applied = remedies
                        .handle(&workload, &containers)
                        .await
                        .into_iter()
                        .filter(|(_, o)| *o == crate::remedy::apply::Outcome::Applied)
                        .map(|(r, _)| r)
                        .collect();
                    (workload, applied)
                });
            }
        }
        // Remedies whose effect showed (or whose window ended): counted on
        // every replica that applied them; the Event only by a leader.
        if let Some(remedies) = &ctx.remedies {
            for check in state.take_remedy_checks(Instant::now()) {
                tracing::info!(namespace = %check.workload.namespace, workload = %check.workload, remedies = %super::verify::names(&check.remedies), verified = check.verified, "remedy verification");
                remedies.count_check(&check);
                if !check.verified {
                    let remedies = remedies.clone();
                    remedy_reports.spawn(async move { remedies.warn_unverified(&check).await });
                }
            }
        }
        let free = ctx.max_concurrent_checks.saturating_sub(checks.len());
        for job in state.due_checks(Instant::now(), free) {
            let reference = job.reference.clone();
            let id = spawn_check(&mut tasks, &ctx, job);
            checks.insert(id, reference);
        }
    };
    tasks.abort_all();
    // A refresh pod left behind ends by its activeDeadlineSeconds.
    remedy_tasks.abort_all();
    remedy_reports.abort_all();
    drop(tx);
    let _ = publisher.await;
    result
}

fn spawn_check<R: Registry + 'static, C: PullCredentials>(
    tasks: &mut JoinSet<Done>,
    ctx: &Context<R, C>,
    job: CheckJob,
) -> tokio::task::Id {
    let (reg, creds, metrics) = (
        ctx.registry.clone(),
        ctx.credentials.clone(),
        ctx.metrics.clone(),
    );
    tasks
        .spawn(async move {
            let _timer = metrics.time_check();
            tracing::debug!(image = %job.image, containers = job.judge.len(), "checking reference");
            let hinted = job.hinted;
            Done::Check(run_check(&*reg, &*creds, job).await, hinted)
        })
        .id()
}
