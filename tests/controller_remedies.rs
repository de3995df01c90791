//! The runner hands stale workloads to the remedies: with `restart`
//! enabled and policy Always, a stale Deployment gets `kubectl rollout
//! restart`'s patch; without leadership nothing is written.

use http::{Request, Response};
use imagedrift::controller::events::{Recorder, Reporter};
use imagedrift::controller::fake::FakeRegistry;
use imagedrift::controller::leader::{Leader, Leadership};
use imagedrift::controller::reconcile::Settings;
use imagedrift::controller::runner::{self, Context, Input, Inputs, Readiness};
use imagedrift::controller::schedule::NoJitter;
use imagedrift::controller::secrets::Anonymous;
use imagedrift::controller::wire::{SlimNode as Node, SlimOwner, SlimPod as Pod};
use imagedrift::facts::{Descriptor, Manifest, OCI_MANIFEST};
use imagedrift::metrics::Metrics;
use imagedrift::reference::{Digest, ImageRef};
use imagedrift::remedy::{Remedies, RemedyConfig};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::client::Body;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const APP: &str = "registry.example/app:v1";

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

type Log = Arc<Mutex<Vec<(String, String, Value)>>>;

/// An API server holding one namespace and one Deployment; records requests.
fn api_server(mut api: tower_test::mock::Handle<Request<Body>, Response<Body>>, log: Log) {
    tokio::spawn(async move {
        let mut deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web", "generation": 4, "annotations": {}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "app", "image": APP, "imagePullPolicy": "Always"}]}}},
            "status": {"observedGeneration": 4, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
        });
        while let Some((req, send)) = api.next_request().await {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            log.lock()
                .unwrap()
                .push((method.clone(), path.clone(), body.clone()));
            let answer = match (method.as_str(), path.as_str()) {
                ("GET", p) if p.contains("/events") => {
                    json!({"apiVersion": "events.k8s.io/v1", "kind": "EventList", "metadata": {}, "items": []})
                }
                (_, p) if p.contains("/events") => body,
                ("GET", "/api/v1/namespaces/shop") => {
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
                }
                ("GET", "/apis/apps/v1/namespaces/shop/deployments/web") => deployment.clone(),
                ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web") => {
                    merge(&mut deployment, &body);
                    deployment.clone()
                }
                other => panic!("unexpected request {other:?}"),
            };
            send.send_response(
                Response::builder()
                    .status(200)
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
    });
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn inputs() -> (mpsc::UnboundedSender<Input>, Inputs) {
    let (tx, rx) = mpsc::unbounded_channel::<Input>();
    let s: Inputs = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|i| (Ok::<_, watcher::Error>(i), rx))
    }));
    (tx, s)
}

fn objects(tx: &mpsc::UnboundedSender<Input>) {
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-a", "labels": {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}}})).unwrap();
    let rs = SlimOwner::<ReplicaSet>::new(
        serde_json::from_value(json!({"namespace": "shop", "name": "web-5d9c",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web", "controller": true}]}))
        .unwrap(),
    );
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "shop", "name": "web-5d9c-x1", "uid": "p1", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c", "uid": "rs", "controller": true}]},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": APP, "imagePullPolicy": "Always"}]},
        "status": {"containerStatuses": [{"name": "app", "image": APP, "imageID": format!("registry.example/app@{}", d('a')),
            "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    }))
    .unwrap();
    tx.send(Input::ReplicaSets(Event::Init)).unwrap();
    tx.send(Input::ReplicaSets(Event::InitApply(rs))).unwrap();
    tx.send(Input::ReplicaSets(Event::InitDone)).unwrap();
    tx.send(Input::Nodes(Event::Init)).unwrap();
    tx.send(Input::Nodes(Event::InitApply(node))).unwrap();
    tx.send(Input::Nodes(Event::InitDone)).unwrap();
    tx.send(Input::Pods(Event::Init)).unwrap();
    tx.send(Input::Pods(Event::InitApply(pod))).unwrap();
    tx.send(Input::Pods(Event::InitDone)).unwrap();
}

fn start(
    leader: Leader,
    log: Log,
) -> (
    mpsc::UnboundedSender<Input>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), runner::RunError>>,
) {
    let (tx, token, task, _) = start_with(leader, log, json!({"enabled": ["restart"]}));
    (tx, token, task)
}

/// [`start`] with this `remedies:` section; also returns the metrics registry.
fn start_with(
    leader: Leader,
    log: Log,
    remedies: Value,
) -> (
    mpsc::UnboundedSender<Input>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), runner::RunError>>,
    prometheus::Registry,
) {
    let reg = Arc::new(FakeRegistry::default());
    let img = ImageRef::parse(APP).unwrap();
    reg.set_tag(
        &img,
        Descriptor {
            digest: d('b'),
            media_type: OCI_MANIFEST.into(),
        },
    );
    reg.put_manifest(
        &img,
        d('a'),
        Manifest::Image {
            config: d('1'),
            platform: None,
        },
    );
    reg.put_manifest(
        &img,
        d('b'),
        Manifest::Image {
            config: d('2'),
            platform: None,
        },
    );
    let (service, api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    api_server(api, log);
    let client = kube::Client::new(service, "default");
    let prom = prometheus::Registry::new();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "imagedrift".into(),
            instance: None,
        },
    );
    let config: RemedyConfig = serde_json::from_value(remedies).unwrap();
    let remedies = Remedies::new(
        client.clone(),
        recorder.clone(),
        config,
        &prom,
        leader.clone(),
    )
    .unwrap();
    let ctx = Context {
        registry: reg,
        credentials: Arc::new(Anonymous),
        recorder,
        metrics: Metrics::register(&prom).unwrap(),
        settings: Settings {
            interval: Duration::from_secs(300),
            spread: Duration::ZERO,
            unknown_threshold: Duration::from_secs(1800),
        },
        max_concurrent_checks: 2,
        namespaces: Default::default(),
        leader,
        client,
        ready: Readiness::default(),
        remedies: Some(remedies),
    };
    let (tx, inputs) = inputs();
    let token = CancellationToken::new();
    let task = tokio::spawn(runner::run(ctx, inputs, Box::new(NoJitter), token.clone()));
    (tx, token, task, prom)
}

#[tokio::test(start_paused = true)]
async fn stale_deployment_under_always_is_restarted_by_the_leader() {
    let log: Log = Arc::default();
    let leadership = Leadership::always();
    let (tx, token, task) = start(leadership.is_leader.clone(), log.clone());
    objects(&tx);
    let patched = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let found = log
                .lock()
                .unwrap()
                .iter()
                .find(|(m, p, _)| m == "PATCH" && p.ends_with("/deployments/web"))
                .cloned();
            if let Some(f) = found {
                return f;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the Deployment was never restarted");
    let restarted_at = &patched.2["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"];
    assert!(restarted_at.is_string(), "{}", patched.2);
    token.cancel();
    task.await.unwrap().unwrap();
    let reasons: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p, _)| p.contains("/events"))
        .filter_map(|(_, _, b)| b["reason"].as_str().map(String::from))
        .collect();
    assert!(reasons.iter().any(|r| r == "StaleImage"), "{reasons:?}");
}

#[tokio::test(start_paused = true)]
async fn a_non_leader_hands_nothing_to_the_remedies() {
    let log: Log = Arc::default();
    let leadership = Leadership::never();
    let (tx, token, task) = start(leadership.is_leader.clone(), log.clone());
    objects(&tx);
    tokio::time::sleep(Duration::from_secs(900)).await;
    token.cancel();
    task.await.unwrap().unwrap();
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
}

fn patched(log: &Log) -> bool {
    log.lock()
        .unwrap()
        .iter()
        .any(|(m, p, _)| m == "PATCH" && p.ends_with("/deployments/web"))
}

#[tokio::test(start_paused = true)]
async fn a_follower_that_becomes_leader_acts_on_what_it_judged_stale() {
    let log: Log = Arc::default();
    let (leader, is_leader) = Leader::manual();
    let (tx, token, task) = start(is_leader, log.clone());
    objects(&tx);
    // One check has judged the container stale; a follower writes nothing.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
    leader.grant_until(tokio::time::Instant::now() + Duration::from_secs(3600));
    // The next event the loop handles (well before the reference's next
    // check at 300s) hands the kept work to the remedies.
    tx.send(Input::Nodes(Event::Delete(Node {
        metadata: kube::api::ObjectMeta {
            name: Some("gone".into()),
            ..Default::default()
        },
        ..Default::default()
    })))
    .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !patched(&log) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the new leader did not act on the stale Deployment before the next check");
    token.cancel();
    task.await.unwrap().unwrap();
}

/// `imagedrift_remedies_total{remedy,result}`, 0 when absent.
fn remedies_total(prom: &prometheus::Registry, remedy: &str, result: &str) -> u64 {
    prom.gather()
        .iter()
        .filter(|f| f.name() == "imagedrift_remedies_total")
        .flat_map(|f| f.get_metric().iter())
        .find(|m| {
            let labels: Vec<(&str, &str)> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            labels.contains(&("remedy", remedy)) && labels.contains(&("result", result))
        })
        .map_or(0, |m| m.get_counter().get_value() as u64)
}

/// The Events written so far with `reason`: (type, action, note).
fn written(log: &Log, reason: &str) -> Vec<(String, String, String)> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(m, p, b)| m == "POST" && p.ends_with("/events") && b["reason"] == reason)
        .map(|(_, _, b)| {
            let s = |k: &str| b[k].as_str().unwrap_or("").to_string();
            (s("type"), s("action"), s("note"))
        })
        .collect()
}

/// Polls (virtual time, bounded) until `pred` holds.
async fn until(what: &str, limit: Duration, mut pred: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + limit;
    while !pred() {
        assert!(
            tokio::time::Instant::now() < end,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A runner with the restart remedy (verify window 2m), once it has
/// applied the restart to the stale Deployment.
struct Applied {
    /// Held: dropping it would end the leadership.
    _leadership: Leadership,
    log: Log,
    tx: mpsc::UnboundedSender<Input>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), runner::RunError>>,
    prom: prometheus::Registry,
}

async fn restart_applied() -> Applied {
    let log: Log = Arc::default();
    let leadership = Leadership::always();
    let (tx, token, task, prom) = start_with(
        leadership.is_leader.clone(),
        log.clone(),
        json!({"enabled": ["restart"], "verifyTimeout": "2m"}),
    );
    objects(&tx);
    until("the restart is applied", Duration::from_secs(60), || {
        remedies_total(&prom, "restart", "applied") == 1
    })
    .await;
    Applied {
        _leadership: leadership,
        log,
        tx,
        token,
        task,
        prom,
    }
}

#[tokio::test(start_paused = true)]
async fn a_restart_whose_new_pods_run_the_current_digest_is_verified_and_named_by_the_close() {
    let Applied {
        _leadership,
        log,
        tx,
        token,
        task,
        prom,
    } = restart_applied().await;
    assert!(patched(&log));
    // The rollout the patch started: a new ReplicaSet's pod on the current
    // digest, then the old pod goes.
    let rs = SlimOwner::<ReplicaSet>::new(
        serde_json::from_value(json!({"namespace": "shop", "name": "web-6e1f",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web", "controller": true}]}))
        .unwrap(),
    );
    tx.send(Input::ReplicaSets(Event::Apply(rs))).unwrap();
    let new_pod: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "shop", "name": "web-6e1f-y1", "uid": "p2", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-6e1f", "uid": "rs2", "controller": true}]},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": APP, "imagePullPolicy": "Always"}]},
        "status": {"containerStatuses": [{"name": "app", "image": APP, "imageID": format!("registry.example/app@{}", d('b')),
            "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    }))
    .unwrap();
    tx.send(Input::Pods(Event::Apply(new_pod))).unwrap();
    let old: Pod =
        serde_json::from_value(json!({"metadata": {"namespace": "shop", "name": "web-5d9c-x1"}}))
            .unwrap();
    tx.send(Input::Pods(Event::Delete(old))).unwrap();
    until("the restart is verified", Duration::from_secs(60), || {
        remedies_total(&prom, "restart", "verified") == 1
    })
    .await;
    until("the episode closes", Duration::from_secs(30), || {
        !written(&log, "ImageUpToDate").is_empty()
    })
    .await;
    let closes = written(&log, "ImageUpToDate");
    assert_eq!(
        closes,
        [(
            "Normal".to_string(),
            "CheckImage".to_string(),
            "Deployment web runs current content again: its pods run the current digest after restart by imagedrift.".to_string()
        )]
    );
    // Past the window: settled once, nothing failed.
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(remedies_total(&prom, "restart", "failed"), 0);
    assert_eq!(remedies_total(&prom, "restart", "verified"), 1);
    assert!(written(&log, "RemedyFailed").is_empty());
    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_restart_whose_pods_stay_stale_fails_when_the_verify_window_ends() {
    let Applied {
        _leadership,
        log,
        tx: _tx,
        token,
        task,
        prom,
    } = restart_applied().await;
    let applied = tokio::time::Instant::now();
    // No rollout ever shows up.
    until(
        "the restart fails its verification",
        Duration::from_secs(600),
        || remedies_total(&prom, "restart", "failed") == 1,
    )
    .await;
    let took = applied.elapsed();
    assert!(
        took >= Duration::from_secs(119) && took <= Duration::from_secs(125),
        "failed at the end of the 2m window, not {took:?}"
    );
    assert_eq!(remedies_total(&prom, "restart", "verified"), 0);
    until("the Warning is written", Duration::from_secs(10), || {
        !written(&log, "RemedyFailed").is_empty()
    })
    .await;
    let warnings = written(&log, "RemedyFailed");
    assert_eq!(
        warnings,
        [(
            "Warning".to_string(),
            "Verify".to_string(),
            "Remedy restart was applied to Deployment web, but its pods did not all run the current digest within 2m (remedies.verifyTimeout): 1 of 1 pod still runs stale content (container app).".to_string()
        )]
    );
    assert!(written(&log, "ImageUpToDate").is_empty());
    token.cancel();
    task.await.unwrap().unwrap();
}
