//! The remedies against a `tower-test` mock API server that records every
//! request: the exact restart, pin and refresh-pod bodies, clean-up, the
//! guards across repeated verdicts, dry run, and a non-leader's silence.
//! Time is injected (patch bodies) or paused (refresh timeouts).

use http::{Request, Response};
use imagedrift::controller::events::{Recorder, Reporter};
use imagedrift::controller::leader::{Leader, ManualLease};
use imagedrift::policy::{EffectivePolicy, PullPolicy};
use imagedrift::reference::{Digest, ImageRef};
use imagedrift::remedy::apply::Outcome;
use imagedrift::remedy::plan::SkipReason;
use imagedrift::remedy::{
    Clock, ContainerKind, Remedies, RemedyConfig, StaleContainer, WorkloadKind, WorkloadRef,
};
use imagedrift::verdict::Verdict;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------- harness

#[derive(Clone, Debug)]
struct Req {
    method: String,
    /// Path and query.
    uri: String,
    body: Option<Value>,
}

impl Req {
    fn is_event(&self) -> bool {
        self.uri.starts_with("/apis/events.k8s.io/")
    }
    fn line(&self) -> String {
        format!("{} {}", self.method, self.uri)
    }
}

/// The fake cluster's state.
struct World {
    namespace_annotation: Option<String>,
    deployment: Value,
    bare_pod_annotations: Value,
    /// The refresh pod's status sent on the watch; `None`: the watch hangs.
    refresh_status: Option<Value>,
    log: Vec<Req>,
    /// This replica's leadership (the test flips it).
    leader: Option<ManualLease>,
    /// Lose leadership when the refresh pod's watch starts.
    lose_leadership_on_watch: bool,
    /// Responses never sent (hanging watches), kept alive.
    parked: Vec<tower_test::mock::SendResponse<Response<Body>>>,
    created: usize,
}

type Shared = Arc<Mutex<World>>;

fn deployment(image: &str, policy: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web", "generation": 4, "annotations": {}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "app", "image": image, "imagePullPolicy": policy}
            ]}}
        },
        "status": {"observedGeneration": 4, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    })
}

fn world(dep: Value) -> Shared {
    Arc::new(Mutex::new(World {
        namespace_annotation: None,
        deployment: dep,
        bare_pod_annotations: json!({}),
        refresh_status: Some(pulled_status(&d('a'))),
        log: Vec::new(),
        leader: None,
        lose_leadership_on_watch: false,
        parked: Vec::new(),
        created: 0,
    }))
}

fn pulled_status(digest: &Digest) -> Value {
    json!({"phase": "Failed", "containerStatuses": [{
        "name": "refresh-0", "image": "nginx:1.25", "imageID": format!("docker.io/library/nginx@{digest}"),
        "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 128, "reason": "StartError"}}
    }]})
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

fn respond(w: &mut World, req: &Req) -> Option<(u16, Value)> {
    let path = req.uri.split('?').next().unwrap_or_default();
    let not_found = (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    );
    Some(match (req.method.as_str(), path) {
        (_, p) if p.starts_with("/apis/events.k8s.io/v1/namespaces/") => {
            (201, req.body.clone().unwrap_or(json!({})))
        }
        ("GET", "/api/v1/namespaces/shop") => {
            let mut meta = json!({"name": "shop"});
            if let Some(a) = &w.namespace_annotation {
                meta["annotations"] = json!({"imagedrift.io/remedy": a});
            }
            (
                200,
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": meta}),
            )
        }
        ("GET", "/apis/apps/v1/namespaces/shop/deployments/web") => (200, w.deployment.clone()),
        ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web") => {
            let patch = req.body.clone().unwrap_or_default();
            merge(&mut w.deployment, &patch);
            if patch.get("spec").is_some() {
                let g = w.deployment["metadata"]["generation"].as_i64().unwrap_or(0);
                w.deployment["metadata"]["generation"] = json!(g + 1);
            }
            (200, w.deployment.clone())
        }
        (
            "GET",
            "/api/v1/namespaces/shop/pods/agent-7" | "/api/v1/namespaces/shop/pods/agent-8",
        ) => (
            200,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": "agent-7", "namespace": "shop", "annotations": w.bare_pod_annotations}}),
        ),
        ("POST", "/api/v1/namespaces/shop/pods") => {
            w.created += 1;
            let mut pod = req.body.clone().unwrap_or_default();
            pod["metadata"]["name"] = json!(format!("imagedrift-refresh-x{}", w.created));
            pod["metadata"]["resourceVersion"] = json!("100");
            (201, pod)
        }
        ("GET", "/api/v1/namespaces/shop/pods") if req.uri.contains("watch=true") => {
            if w.lose_leadership_on_watch
                && let Some(l) = &w.leader
            {
                l.revoke();
            }
            let status = w.refresh_status.clone()?;
            let ev = json!({"type": "MODIFIED", "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("imagedrift-refresh-x{}", w.created), "namespace": "shop", "resourceVersion": "101"},
                "status": status
            }});
            (200, ev)
        }
        ("DELETE", p) if p.starts_with("/api/v1/namespaces/shop/pods/imagedrift-refresh-") => (
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
        ),
        _ => not_found,
    })
}

fn mock_client(w: Shared) -> Client {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body = serde_json::from_slice::<Value>(&bytes).ok();
            let req = Req { method, uri, body };
            let mut world = w.lock().unwrap();
            world.log.push(req.clone());
            match respond(&mut world, &req) {
                Some((code, v)) => send.send_response(
                    Response::builder()
                        .status(code)
                        .body(Body::from(serde_json::to_vec(&v).unwrap()))
                        .unwrap(),
                ),
                None => world.parked.push(send),
            }
        }
    });
    Client::new(svc, "default")
}

struct TestClock(Mutex<Timestamp>);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

impl TestClock {
    fn advance(&self, secs: i64) {
        let mut t = self.0.lock().unwrap();
        *t = Timestamp::from_second(t.as_second() + secs).unwrap();
    }
}

struct Setup {
    remedies: Remedies,
    world: Shared,
    registry: prometheus::Registry,
    clock: Arc<TestClock>,
}

const T0: &str = "2026-03-01T12:00:00Z";

fn setup(dep: Value, config: Value, leader: bool) -> Setup {
    let w = world(dep);
    let client = mock_client(w.clone());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "imagedrift".into(),
            instance: None,
        },
    );
    let config: RemedyConfig = serde_json::from_value(config).unwrap();
    let registry = prometheus::Registry::new();
    let (ctl, rx) = Leader::manual();
    if leader {
        ctl.grant_until(tokio::time::Instant::now() + std::time::Duration::from_secs(3600));
    }
    w.lock().unwrap().leader = Some(ctl);
    let clock = Arc::new(TestClock(Mutex::new(T0.parse().unwrap())));
    let remedies = Remedies::new(client, recorder, config, &registry, rx)
        .unwrap()
        .with_clock(clock.clone());
    Setup {
        remedies,
        world: w,
        registry,
        clock,
    }
}

impl Setup {
    /// Non-Event requests, as `METHOD uri`.
    fn calls(&self) -> Vec<String> {
        let w = self.world.lock().unwrap();
        w.log
            .iter()
            .filter(|r| !r.is_event())
            .map(Req::line)
            .collect()
    }
    fn requests(&self) -> Vec<Req> {
        let w = self.world.lock().unwrap();
        w.log.iter().filter(|r| !r.is_event()).cloned().collect()
    }
    /// Events written: (type, reason, note).
    fn events(&self) -> Vec<(String, String, String)> {
        let w = self.world.lock().unwrap();
        w.log
            .iter()
            .filter(|r| r.is_event())
            .map(|r| {
                let b = r.body.clone().unwrap_or_default();
                assert!(b["regarding"]["name"].as_str().is_some());
                (
                    b["type"].as_str().unwrap_or_default().to_string(),
                    b["reason"].as_str().unwrap_or_default().to_string(),
                    b["note"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
    /// Event writes as (method, action, reason): a POST is a new Event, a
    /// PATCH adds to an existing series.
    fn event_writes(&self) -> Vec<(String, String, String)> {
        let w = self.world.lock().unwrap();
        w.log
            .iter()
            .filter(|r| r.is_event())
            .map(|r| {
                let b = r.body.clone().unwrap_or_default();
                let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
                (r.method.clone(), s("action"), s("reason"))
            })
            .collect()
    }
    fn event_reasons(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.1).collect()
    }
    fn clear(&self) {
        self.world.lock().unwrap().log.clear();
    }
    fn metric(&self, remedy: &str, result: &str) -> f64 {
        for fam in self.registry.gather() {
            if fam.name() != "imagedrift_remedies_total" {
                continue;
            }
            for m in fam.get_metric() {
                let labels: Vec<(&str, &str)> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                if labels == [("remedy", remedy), ("result", result)] {
                    return m.get_counter().get_value();
                }
            }
        }
        0.0
    }
}

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

fn stale(image: &str, policy: PullPolicy, current: Digest) -> StaleContainer {
    let parsed = ImageRef::parse(image).unwrap();
    StaleContainer {
        pod: "web-abc".into(),
        container: "app".into(),
        kind: ContainerKind::Container,
        node: Some("node-1".into()),
        spec_image: image.into(),
        policy: EffectivePolicy::infer_from_live(&parsed, policy),
        image: parsed,
        current_digest: current,
        also_current: vec![],
        running_digest: Some(d('0')),
        verdict: Verdict::Stale,
        pull_secrets: vec!["regcred".into()],
    }
}

fn web() -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "shop".into(),
        name: "web".into(),
        uid: Some("uid-web".into()),
    }
}

const GET_NS: &str = "GET /api/v1/namespaces/shop";
const GET_WEB: &str = "GET /apis/apps/v1/namespaces/shop/deployments/web";
const PATCH_WEB: &str =
    "PATCH /apis/apps/v1/namespaces/shop/deployments/web?&fieldManager=imagedrift";

fn guard_annotations(digest: &Digest, at: &str, with: &str) -> Value {
    json!({
        "imagedrift.io/remedied-at": at,
        "imagedrift.io/remedied-digest": digest.as_str(),
        "imagedrift.io/remedied-with": with,
    })
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn restart_sends_kubectls_patch_with_the_loop_guard() {
    let s = setup(
        deployment("nginx:latest", "Always"),
        json!({"enabled": ["restart"]}),
        true,
    );
    let out = s
        .remedies
        .handle(&web(), &[stale("nginx:latest", PullPolicy::Always, d('a'))])
        .await;
    assert_eq!(
        out,
        vec![(imagedrift::policy::Remedy::Restart, Outcome::Applied)]
    );
    assert_eq!(s.calls(), vec![GET_NS, GET_WEB, PATCH_WEB]);
    let patch = s.requests()[2].body.clone().unwrap();
    assert_eq!(
        patch,
        json!({
            "metadata": {"annotations": guard_annotations(&d('a'), T0, "restart")},
            "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": T0}}}}
        })
    );
    let events = s.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "Normal");
    assert_eq!(events[0].1, "RemedyRestart");
    assert!(
        events[0].2.starts_with("Restart the workload"),
        "{}",
        events[0].2
    );
    let ev = s
        .world
        .lock()
        .unwrap()
        .log
        .iter()
        .find(|r| r.is_event())
        .cloned()
        .unwrap();
    let regarding = &ev.body.unwrap()["regarding"];
    assert_eq!(regarding["kind"], "Deployment");
    assert_eq!(regarding["apiVersion"], "apps/v1");
    assert_eq!(regarding["uid"], "uid-web");
    assert_eq!(s.metric("restart", "applied"), 1.0);
}

#[tokio::test]
async fn no_restart_under_if_not_present() {
    let s = setup(
        deployment("nginx:1.25", "IfNotPresent"),
        json!({"enabled": ["restart"]}),
        true,
    );
    let out = s
        .remedies
        .handle(
            &web(),
            &[stale("nginx:1.25", PullPolicy::IfNotPresent, d('a'))],
        )
        .await;
    assert_eq!(
        out,
        vec![(
            imagedrift::policy::Remedy::Restart,
            Outcome::Skipped(SkipReason::WouldNotHelp)
        )]
    );
    assert_eq!(s.calls(), vec![GET_NS, GET_WEB], "no PATCH");
    let events = s.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "Warning");
    assert_eq!(events[0].1, "RestartWouldNotHelp");
    assert!(events[0].2.contains("IfNotPresent"), "{}", events[0].2);
    assert!(events[0].2.contains("remedy refresh"), "{}", events[0].2);
    assert_eq!(s.metric("restart", "would_not_help"), 1.0);
}

fn expected_refresh_pod(owner_label: &str, owner_annotation: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "imagedrift-refresh-",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/managed-by": "imagedrift", "imagedrift.io/refresh-for": owner_label},
            "annotations": {"imagedrift.io/refresh-for": owner_annotation}
        },
        "spec": {
            "nodeName": "node-1",
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 120,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "imagePullSecrets": [{"name": "regcred"}],
            "tolerations": [{"operator": "Exists"}],
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "refresh-0",
                "image": "nginx:1.25",
                "imagePullPolicy": "Always",
                "command": ["/bin/true"],
                "resources": {
                    "requests": {"cpu": "1m", "memory": "8Mi"},
                    "limits": {"cpu": "100m", "memory": "32Mi"}
                },
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    })
}

const POST_POD: &str = "POST /api/v1/namespaces/shop/pods?";
const WATCH_POD: &str = "GET /api/v1/namespaces/shop/pods?&watch=true&timeoutSeconds=290&fieldSelector=metadata.name%3Dimagedrift-refresh-x1&allowWatchBookmarks=true&resourceVersion=100";
const DELETE_POD: &str = "DELETE /api/v1/namespaces/shop/pods/imagedrift-refresh-x1?";

#[tokio::test]
async fn refresh_pod_then_restart_then_cleanup() {
    let s = setup(
        deployment("nginx:1.25", "IfNotPresent"),
        json!({"enabled": ["refresh", "restart"]}),
        true,
    );
    let out = s
        .remedies
        .handle(
            &web(),
            &[stale("nginx:1.25", PullPolicy::IfNotPresent, d('a'))],
        )
        .await;
    use imagedrift::policy::Remedy::{RefreshNode, Restart};
    assert_eq!(
        out,
        vec![(RefreshNode, Outcome::Applied), (Restart, Outcome::Applied)]
    );
    assert_eq!(
        s.calls(),
        vec![GET_NS, GET_WEB, POST_POD, WATCH_POD, DELETE_POD, PATCH_WEB]
    );
    let reqs = s.requests();
    assert_eq!(
        reqs[2].body.clone().unwrap(),
        expected_refresh_pod("web", "Deployment/web")
    );
    assert_eq!(reqs[4].body.clone().unwrap()["gracePeriodSeconds"], 0);
    assert_eq!(
        reqs[5].body.clone().unwrap()["metadata"]["annotations"],
        guard_annotations(&d('a'), T0, "refresh,restart")
    );
    assert_eq!(s.event_reasons(), vec!["RemedyRefresh", "RemedyRestart"]);
    assert_eq!(s.metric("refresh", "applied"), 1.0);
    assert_eq!(s.metric("restart", "applied"), 1.0);
}

fn agent() -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Pod,
        namespace: "shop".into(),
        name: "agent-7".into(),
        uid: None,
    }
}

#[tokio::test]
async fn bare_pod_refresh_and_memory_loop_guard() {
    let s = setup(
        deployment("unused", "Always"),
        json!({"enabled": ["refresh"]}),
        true,
    );
    let c = [stale("nginx:1.25", PullPolicy::IfNotPresent, d('a'))];
    let out = s.remedies.handle(&agent(), &c).await;
    assert_eq!(
        out,
        vec![(imagedrift::policy::Remedy::RefreshNode, Outcome::Applied)]
    );
    assert_eq!(
        s.calls(),
        vec![
            GET_NS,
            "GET /api/v1/namespaces/shop/pods/agent-7",
            POST_POD,
            WATCH_POD,
            DELETE_POD
        ]
    );
    assert_eq!(
        s.requests()[2].body.clone().unwrap(),
        expected_refresh_pod("agent-7", "Pod/agent-7")
    );

    // The same stale verdict again, much later: the loop guard (in memory:
    // a bare pod is never patched) holds.
    s.clear();
    s.clock.advance(3 * 3600);
    let out = s.remedies.handle(&agent(), &c).await;
    assert_eq!(
        out,
        vec![(
            imagedrift::policy::Remedy::RefreshNode,
            Outcome::Skipped(SkipReason::LoopGuard)
        )]
    );
    assert!(!s.calls().iter().any(|c| c.starts_with("POST")));
    assert_eq!(s.event_reasons(), vec!["RemedySkipped"]);
    assert_eq!(s.metric("refresh", "skipped_loop_guard"), 1.0);

    // The next CI agent on the same node, for the same digest: the node
    // was refreshed already.
    s.clear();
    let next = WorkloadRef {
        name: "agent-8".into(),
        ..agent()
    };
    let out = s.remedies.handle(&next, &c).await;
    assert_eq!(
        out,
        vec![(
            imagedrift::policy::Remedy::RefreshNode,
            Outcome::Skipped(SkipReason::LoopGuard)
        )]
    );
    assert_eq!(s.calls(), vec!["GET /api/v1/namespaces/shop/pods/agent-8"]);
    assert!(
        s.events()[0].2.contains("node node-1 already pulled"),
        "{:?}",
        s.events()
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_timeout_deletes_the_pod_and_fails() {
    let s = setup(
        deployment("nginx:1.25", "IfNotPresent"),
        json!({"enabled": ["refresh", "restart"], "refresh": {"timeout": "60s"}}),
        true,
    );
    s.world.lock().unwrap().refresh_status = None; // the watch never answers
    let out = s
        .remedies
        .handle(
            &web(),
            &[stale("nginx:1.25", PullPolicy::IfNotPresent, d('a'))],
        )
        .await;
    assert_eq!(
        out,
        vec![(imagedrift::policy::Remedy::RefreshNode, Outcome::Failed)]
    );
    // Deleted, and no restart after a failed refresh.
    assert_eq!(
        s.calls(),
        vec![GET_NS, GET_WEB, POST_POD, WATCH_POD, DELETE_POD]
    );
    let events = s.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("Warning", "RemedyFailed")
    );
    assert!(events[0].2.contains("within 60s"), "{}", events[0].2);
    assert_eq!(s.metric("refresh", "failed"), 1.0);
}

#[tokio::test]
async fn refresh_that_pulls_other_content_fails() {
    let s = setup(
        deployment("nginx:1.25", "IfNotPresent"),
        json!({"enabled": ["refresh"]}),
        true,
    );
    s.world.lock().unwrap().refresh_status = Some(pulled_status(&d('e')));
    let out = s
        .remedies
        .handle(
            &web(),
            &[stale("nginx:1.25", PullPolicy::IfNotPresent, d('a'))],
        )
        .await;
    assert_eq!(
        out,
        vec![(imagedrift::policy::Remedy::RefreshNode, Outcome::Failed)]
    );
    assert_eq!(
        s.calls(),
        vec![GET_NS, GET_WEB, POST_POD, WATCH_POD, DELETE_POD]
    );
    let note = &s.events()[0].2;
    assert!(
        note.contains(&format!("the node reports {}", d('e'))),
        "{note}"
    );
}

#[tokio::test]
async fn pin_patches_the_image_in_the_users_spelling() {
    let s = setup(
        deployment("nginx:1.25", "IfNotPresent"),
        json!({"enabled": ["pin"]}),
        true,
    );
    let out = s
        .remedies
        .handle(
            &web(),
            &[stale("nginx:1.25", PullPolicy::IfNotPresent, d('a'))],
        )
        .await;
    assert_eq!(
        out,
        vec![(imagedrift::policy::Remedy::PinDigest, Outcome::Applied)]
    );
    assert_eq!(s.calls(), vec![GET_NS, GET_WEB, PATCH_WEB]);
    assert_eq!(
        s.requests()[2].body.clone().unwrap(),
        json!({
            "metadata": {"annotations": guard_annotations(&d('a'), T0, "pin")},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": format!("nginx:1.25@{}", d('a'))}
            ]}}}
        })
    );
    let events = s.events();
    assert_eq!(events[0].1, "RemedyPin");
    assert!(events[0].2.contains("GitOps"), "{}", events[0].2);
}

#[tokio::test]
async fn cooldown_and_loop_guard_hold_across_repeated_verdicts() {
    use imagedrift::policy::Remedy::Restart;
    let s = setup(
        deployment("nginx:latest", "Always"),
        json!({"enabled": ["restart"], "cooldown": "30m"}),
        true,
    );
    let first = [stale("nginx:latest", PullPolicy::Always, d('a'))];
    assert_eq!(
        s.remedies.handle(&web(), &first).await,
        vec![(Restart, Outcome::Applied)]
    );

    // The same digest again (the loop guard reads the annotation the patch wrote).
    s.clear();
    s.clock.advance(5 * 60);
    assert_eq!(
        s.remedies.handle(&web(), &first).await,
        vec![(Restart, Outcome::Skipped(SkipReason::LoopGuard))]
    );
    assert_eq!(s.calls(), vec![GET_NS, GET_WEB]);
    let skipped = |action: &str| {
        vec![(
            "POST".to_string(),
            action.to_string(),
            "RemedySkipped".to_string(),
        )]
    };
    assert_eq!(s.event_writes(), skipped("RestartSkippedLoopGuard"));

    // The tag moved again, still within the cooldown.
    s.clear();
    s.clock.advance(5 * 60);
    let second = [stale("nginx:latest", PullPolicy::Always, d('b'))];
    assert_eq!(
        s.remedies.handle(&web(), &second).await,
        vec![(Restart, Outcome::Skipped(SkipReason::Cooldown))]
    );
    assert_eq!(s.calls(), vec![GET_NS, GET_WEB]);
    // A new Event, not a repeat of the loop-guard one (its note would be lost).
    assert_eq!(s.event_writes(), skipped("RestartSkippedCooldown"));

    // After the cooldown, but the restart is still rolling out.
    s.clear();
    s.clock.advance(25 * 60);
    assert_eq!(
        s.remedies.handle(&web(), &second).await,
        vec![(Restart, Outcome::Skipped(SkipReason::Rollout))]
    );

    // Rolled out: the new digest gets its restart.
    {
        let mut w = s.world.lock().unwrap();
        let g = w.deployment["metadata"]["generation"].clone();
        w.deployment["status"]["observedGeneration"] = g;
    }
    s.clear();
    assert_eq!(
        s.remedies.handle(&web(), &second).await,
        vec![(Restart, Outcome::Applied)]
    );
    // (The Namespace was read less than a minute ago: cached.)
    assert_eq!(s.calls(), vec![GET_WEB, PATCH_WEB]);
    assert_eq!(
        s.requests()[1].body.clone().unwrap()["metadata"]["annotations"]["imagedrift.io/remedied-digest"],
        d('b').as_str()
    );
    assert_eq!(s.metric("restart", "applied"), 2.0);

    assert_eq!(s.metric("restart", "skipped_loop_guard"), 1.0);
    assert_eq!(s.metric("restart", "skipped_cooldown"), 1.0);
    assert_eq!(s.metric("restart", "skipped_rollout"), 1.0);
}

#[tokio::test]
async fn dry_run_writes_nothing_but_events() {
    let s = setup(
        deployment("nginx:1.25", "IfNotPresent"),
        json!({"enabled": ["refresh", "restart"], "dryRun": true}),
        true,
    );
    let c = [stale("nginx:1.25", PullPolicy::IfNotPresent, d('a'))];
    let out = s.remedies.handle(&web(), &c).await;
    use imagedrift::policy::Remedy::{RefreshNode, Restart};
    assert_eq!(
        out,
        vec![(RefreshNode, Outcome::DryRun), (Restart, Outcome::DryRun)]
    );
    assert_eq!(s.calls(), vec![GET_NS, GET_WEB], "reads only");
    let events = s.events();
    assert_eq!(s.event_reasons(), vec!["RemedyRefresh", "RemedyRestart"]);
    assert!(
        events.iter().all(|e| e.2.starts_with("Dry run: would")),
        "{events:?}"
    );
    assert_eq!(s.metric("restart", "dry_run"), 1.0);

    // The guards behave as they would for real.
    s.clear();
    let out = s.remedies.handle(&web(), &c).await;
    assert_eq!(
        out,
        vec![
            (RefreshNode, Outcome::Skipped(SkipReason::LoopGuard)),
            (Restart, Outcome::Skipped(SkipReason::LoopGuard))
        ]
    );
    assert_eq!(s.calls(), vec![GET_WEB]);
}

#[tokio::test]
async fn a_non_leader_makes_no_request_at_all() {
    let s = setup(
        deployment("nginx:latest", "Always"),
        json!({"enabled": ["restart", "refresh", "pin"]}),
        false,
    );
    let out = s
        .remedies
        .handle(&web(), &[stale("nginx:latest", PullPolicy::Always, d('a'))])
        .await;
    assert!(out.is_empty());
    tokio::task::yield_now().await;
    assert!(s.world.lock().unwrap().log.is_empty());
}

#[tokio::test]
async fn namespace_none_opts_out_silently() {
    let s = setup(
        deployment("nginx:latest", "Always"),
        json!({"enabled": ["restart"]}),
        true,
    );
    s.world.lock().unwrap().namespace_annotation = Some("none".into());
    let c = [stale("nginx:latest", PullPolicy::Always, d('a'))];
    assert!(s.remedies.handle(&web(), &c).await.is_empty());
    assert_eq!(s.calls(), vec![GET_NS, GET_WEB]);
    assert!(s.events().is_empty());

    // The Namespace is cached: the next call reads only the workload.
    s.clear();
    assert!(s.remedies.handle(&web(), &c).await.is_empty());
    assert_eq!(s.calls(), vec![GET_WEB]);
}

#[tokio::test]
async fn workload_annotation_enables_and_bad_values_are_reported() {
    let mut dep = deployment("nginx:latest", "Always");
    dep["metadata"]["annotations"] = json!({"imagedrift.io/remedy": "restart"});
    let s = setup(dep, json!({}), true);
    let c = [stale("nginx:latest", PullPolicy::Always, d('a'))];
    assert_eq!(
        s.remedies.handle(&web(), &c).await,
        vec![(imagedrift::policy::Remedy::Restart, Outcome::Applied)]
    );

    let mut dep = deployment("nginx:latest", "Always");
    dep["metadata"]["annotations"] = json!({"imagedrift.io/remedy": "restart,reboot"});
    let s = setup(dep, json!({"enabled": ["restart"]}), true);
    assert!(s.remedies.handle(&web(), &c).await.is_empty());
    assert_eq!(s.calls(), vec![GET_NS, GET_WEB]);
    let events = s.events();
    assert_eq!(events[0].0, "Warning");
    assert_eq!(events[0].1, "RemedyAnnotationInvalid");
    assert!(events[0].2.contains("\"reboot\""), "{}", events[0].2);
    assert_eq!(s.metric("none", "invalid_opt_in"), 1.0);
}

#[tokio::test]
async fn max_in_flight_holds_other_workloads_back() {
    let s = setup(
        deployment("nginx:latest", "Always"),
        json!({"enabled": ["restart"], "maxInFlight": 1}),
        true,
    );
    let c = [stale("nginx:latest", PullPolicy::Always, d('a'))];
    assert_eq!(
        s.remedies.handle(&web(), &c).await,
        vec![(imagedrift::policy::Remedy::Restart, Outcome::Applied)]
    );
    // `web` is rolling out (generation 5 not observed): a second workload waits.
    s.clear();
    let other = WorkloadRef {
        kind: WorkloadKind::Pod,
        name: "agent-7".into(),
        ..web()
    };
    let ifnp = [stale("nginx:1.25", PullPolicy::IfNotPresent, d('a'))];
    let s2 = s.remedies.clone();
    // The bare pod opts in to refresh by annotation.
    s.world.lock().unwrap().bare_pod_annotations = json!({"imagedrift.io/remedy": "refresh"});
    assert_eq!(
        s2.handle(&other, &ifnp).await,
        vec![(
            imagedrift::policy::Remedy::RefreshNode,
            Outcome::Skipped(SkipReason::InFlight)
        )]
    );
    // At capacity, the in-flight rollout was re-read before deciding (the
    // Namespace's annotation is still cached).
    assert_eq!(
        s.calls(),
        vec!["GET /api/v1/namespaces/shop/pods/agent-7", GET_WEB]
    );

    // Once `web` has rolled out, the slot is free.
    {
        let mut w = s.world.lock().unwrap();
        let g = w.deployment["metadata"]["generation"].clone();
        w.deployment["status"]["observedGeneration"] = g;
    }
    s.clear();
    assert_eq!(
        s2.handle(&other, &ifnp).await,
        vec![(imagedrift::policy::Remedy::RefreshNode, Outcome::Applied)]
    );
    assert_eq!(
        s.calls(),
        vec![
            "GET /api/v1/namespaces/shop/pods/agent-7",
            GET_WEB,
            POST_POD,
            WATCH_POD,
            DELETE_POD
        ]
    );
}

#[tokio::test]
async fn losing_leadership_mid_refresh_stops_before_the_restart() {
    let s = setup(
        deployment("nginx:1.25", "IfNotPresent"),
        json!({"enabled": ["refresh", "restart"]}),
        true,
    );
    s.world.lock().unwrap().lose_leadership_on_watch = true;
    let out = s
        .remedies
        .handle(
            &web(),
            &[stale("nginx:1.25", PullPolicy::IfNotPresent, d('a'))],
        )
        .await;
    use imagedrift::policy::Remedy::{RefreshNode, Restart};
    assert_eq!(
        out,
        vec![
            (RefreshNode, Outcome::Applied),
            (Restart, Outcome::NotLeader)
        ]
    );
    // No write at all without the lease, not even deleting the refresh
    // pod (its activeDeadlineSeconds ends it): no restart patch, no Event.
    assert_eq!(s.calls(), vec![GET_NS, GET_WEB, POST_POD, WATCH_POD]);
    assert!(s.events().is_empty());
    assert_eq!(s.metric("restart", "skipped_not_leader"), 1.0);
}
