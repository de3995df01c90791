//! `scan` and `explain`: the controller's state filled from one list of
//! each kind instead of watches, every reference checked once, then rows.

use super::reconcile::{Outcome, Row, Settings, State, run_check, run_judge};
use super::schedule::NoJitter;
use super::secrets::PullCredentials;
use super::store::{OwnerMeta, PodView, node_platform};
use super::wire::{SlimNode, SlimOwner, SlimPod};
use crate::facts::Registry;
use crate::metrics::Metrics;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use std::time::Duration;
use tokio::time::Instant;

/// Which pods to look at.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// One namespace; `None` means all namespaces.
    pub namespace: Option<String>,
    /// Label selector.
    pub selector: Option<String>,
    /// One pod by name (explain).
    pub pod: Option<String>,
}

/// Why a one-shot run failed.
#[derive(Debug, thiserror::Error)]
pub enum OneShotError {
    /// Listing pods failed.
    #[error("cannot list pods: {0}")]
    ListPods(#[source] kube::Error),
    /// The named pod does not exist.
    #[error("pod {pod} not found in namespace {namespace}")]
    PodNotFound {
        /// Namespace searched.
        namespace: String,
        /// Pod name.
        pod: String,
    },
    /// Metrics could not be set up.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl OneShotError {
    /// Fixed category.
    pub fn category(&self) -> &'static str {
        match self {
            OneShotError::ListPods(_) => "list_pods",
            OneShotError::PodNotFound { .. } => "pod_not_found",
            OneShotError::Metrics(_) => "metrics",
        }
    }
}

/// Objects per list page: client-go's default, and the watcher's.
pub const PAGE_SIZE: u32 = 500;

/// Lists `api` page by page (`limit` + `continue`), handing each object to
/// `each` as its page arrives: at most one page of slim objects is held.
async fn list_paged<K>(
    api: &Api<K>,
    lp: &ListParams,
    mut each: impl FnMut(K),
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut lp = lp.clone().limit(PAGE_SIZE);
    loop {
        let page = api.list(&lp).await?;
        let next = page.metadata.continue_.filter(|c| !c.is_empty());
        page.items.into_iter().for_each(&mut each);
        match next {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(()),
        }
    }
}

/// Lists one owner kind's metadata into the store. Without it (RBAC), the
/// owner chain stops at that kind: worth a warning, not an error.
async fn list_owners<K>(client: &Client, ns: Option<&str>, kind: &'static str, state: &mut State)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + std::fmt::Debug
        + 'static,
{
    let mut items = Vec::new();
    let listed = list_paged(
        &api::<SlimOwner<K>>(client, ns),
        &ListParams::default(),
        |o| items.extend(OwnerMeta::from_meta(kind, &o.metadata, state.strings())),
    )
    .await;
    match listed {
        Ok(()) => {
            state.replace_owners(kind, items);
        }
        Err(e) => {
            tracing::warn!(error = %e, kind, "cannot list owners; the owner chain stops there")
        }
    }
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Lists, checks and judges; returns one row per container. Lists are
/// paged and decoded slim, each pod folded into the state as its page
/// arrives. Nodes, ReplicaSets and Jobs that can't be listed (RBAC) only
/// cost precision: platforms become unknown, owners stop at the first level.
pub async fn collect<R: Registry, C: PullCredentials>(
    client: Client,
    registry: &R,
    creds: &C,
    scope: &Scope,
    concurrency: usize,
) -> Result<Vec<Row>, OneShotError> {
    Ok(collect_state(client, registry, creds, scope, concurrency)
        .await?
        .rows())
}

/// [`collect`], returning the judged state itself: its rows are then
/// made one at a time ([`State::rows_iter`]).
pub async fn collect_state<R: Registry, C: PullCredentials>(
    client: Client,
    registry: &R,
    creds: &C,
    scope: &Scope,
    concurrency: usize,
) -> Result<State, OneShotError> {
    let ns = scope.namespace.as_deref();
    let mut lp = ListParams::default();
    if let Some(sel) = &scope.selector {
        lp = lp.labels(sel);
    }
    if let Some(pod) = &scope.pod {
        lp = lp.fields(&format!("metadata.name={pod}"));
    }
    let settings = Settings {
        interval: Duration::from_secs(3600),
        spread: Duration::ZERO,
        unknown_threshold: Duration::from_secs(3600),
    };
    let metrics = Metrics::register(&prometheus::Registry::new())?;
    // Nothing scrapes a one-shot run: no per-container records (7 MiB at
    // 30,000 containers), only the totals.
    metrics.set_container_series(crate::metrics::ContainerSeriesMode::None);
    let mut state = State::new(settings, metrics, Box::new(NoJitter));
    // Pods first (a missing pod fails before anything else is asked), each
    // page turned into the views the state keeps as it arrives.
    let mut views = Vec::new();
    let mut listed = 0usize;
    list_paged(&api::<SlimPod>(&client, ns), &lp, |p| {
        listed += 1;
        match PodView::from_slim(&p, state.strings()) {
            Ok(v) => views.push(v),
            Err(e) => tracing::warn!(pod = p.name_any(), error = %e, "ignoring pod"),
        }
    })
    .await
    .map_err(OneShotError::ListPods)?;
    if let (Some(pod), 0) = (&scope.pod, listed) {
        return Err(OneShotError::PodNotFound {
            namespace: ns.unwrap_or("(all)").to_string(),
            pod: pod.clone(),
        });
    }
    let nodes = list_paged(
        &Api::<SlimNode>::all(client.clone()),
        &ListParams::default(),
        |n| {
            let name = n.metadata.name.clone().unwrap_or_default();
            state.apply_node(&name, node_platform(&n));
        },
    )
    .await;
    if let Err(e) = nodes {
        tracing::warn!(error = %e, "cannot list nodes; platforms unknown");
    }
    list_owners::<ReplicaSet>(&client, ns, "ReplicaSet", &mut state).await;
    list_owners::<Job>(&client, ns, "Job", &mut state).await;
    let now = Instant::now();
    let mut pending = Vec::new();
    for v in views {
        pending.extend(state.apply_pod(v, now).0);
    }
    judge_everything(&mut state, registry, creds, concurrency, pending).await;
    Ok(state)
}

/// Checks every due reference and judges every container, until nothing
/// is left (shared by `scan`, `explain` and the benchmark).
pub async fn judge_everything<R: Registry, C: PullCredentials>(
    state: &mut State,
    registry: &R,
    creds: &C,
    concurrency: usize,
    mut pending: Vec<super::reconcile::JudgeJob>,
) {
    let now = Instant::now();
    let checks = state.due_checks(now, usize::MAX);
    // A check judges every container using its reference, with the answer;
    // judging them before, without one, would only be thrown away.
    let covered: std::collections::HashSet<_> = checks
        .iter()
        .flat_map(|c| c.judge.iter().map(|j| j.key.clone()))
        .collect();
    pending.retain(|j| !covered.contains(&j.key));
    // Outcomes are folded in as they arrive, so at most `concurrency`
    // checks' judgements are held at once.
    let mut outcomes = futures::stream::iter(checks)
        .map(|job| run_check(registry, creds, job))
        .buffer_unordered(concurrency.max(1));
    while let Some(o) = outcomes.next().await {
        pending.extend(state.apply_outcome(o, now).0);
    }
    // Containers whose reference needs no check (pinned, invalid).
    while !pending.is_empty() {
        let mut judged = Vec::with_capacity(pending.len());
        for j in &pending {
            judged.push(run_judge(registry, creds, j).await);
        }
        pending = state
            .apply_outcome(
                Outcome {
                    answer: None,
                    judged,
                },
                now,
            )
            .0;
    }
}

/// The exit code of `scan`: 1 when any container is stale, else 0.
pub fn exit_code(rows: &[Row]) -> u8 {
    let stale = rows.iter().any(|r| {
        r.judgement
            .as_ref()
            .is_some_and(|j| j.verdict == crate::verdict::Verdict::Stale)
    });
    u8::from(stale)
}
