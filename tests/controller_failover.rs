//! Fail-over: two replicas, each with its own lease loop, runner and
//! Recorder, against one small in-memory API server holding one Lease and
//! the Events both write. Time is paused: lease durations and retry
//! periods are virtual, and every wait polls until a condition, bounded.

use http::{Request, Response};
use imagedrift::controller::events::{Recorder, Reporter};
use imagedrift::controller::fake::FakeRegistry;
use imagedrift::controller::leader::{Leadership, LeaseSettings, elect};
use imagedrift::controller::reconcile::Settings;
use imagedrift::controller::runner::{self, Context, Input, Inputs, Readiness};
use imagedrift::controller::schedule::NoJitter;
use imagedrift::controller::secrets::Anonymous;
use imagedrift::facts::{Descriptor, Manifest, OCI_MANIFEST};
use imagedrift::metrics::Metrics;
use imagedrift::reference::{Digest, ImageRef};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::PartialObjectMeta;
use kube::client::Body;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const APP: &str = "registry.example/app:v1";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/imagedrift/leases/imagedrift";
const DURATION: u64 = 15;
const RETRY: Duration = Duration::from_secs(1);

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

/// The shared cluster: one Lease, the Events, and which identities' Lease
/// calls hang (a replica whose renewals stop getting through).
#[derive(Default)]
struct World {
    lease: Option<Value>,
    rv: u64,
    events: Vec<Value>,
    cut_off: HashSet<String>,
}

type Shared = Arc<Mutex<World>>;

fn respond(status: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "metadata": {}})
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(k);
                } else {
                    merge(a.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn answer(w: &mut World, method: &str, path: &str, query: &str, body: Value) -> Response<Body> {
    if path == LEASE || path == LEASE.trim_end_matches("/imagedrift") {
        return match (method, &mut w.lease) {
            ("GET", None) => respond(404, &status(404, "NotFound")),
            ("GET", Some(l)) => respond(200, l),
            ("POST", Some(_)) => respond(409, &status(409, "AlreadyExists")),
            ("POST", None) => {
                w.rv += 1;
                let mut l = body;
                l["metadata"]["resourceVersion"] = json!(w.rv.to_string());
                w.lease = Some(l.clone());
                respond(201, &l)
            }
            ("PATCH", Some(l)) => {
                let want = &body["metadata"]["resourceVersion"];
                if !want.is_null() && *want != l["metadata"]["resourceVersion"] {
                    return respond(409, &status(409, "Conflict"));
                }
                let mut patch = body.clone();
                patch["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("resourceVersion"));
                merge(l, &patch);
                w.rv += 1;
                l["metadata"]["resourceVersion"] = json!(w.rv.to_string());
                respond(200, l)
            }
            _ => respond(405, &status(405, "MethodNotAllowed")),
        };
    }
    if let Some(rest) = path.strip_prefix("/apis/events.k8s.io/v1/namespaces/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match (method, parts.as_slice()) {
            ("POST", [_, "events"]) => {
                w.events.push(body.clone());
                respond(201, &body)
            }
            ("PATCH", [_, "events", name]) => {
                match w.events.iter_mut().find(|e| e["metadata"]["name"] == *name) {
                    Some(e) => {
                        merge(e, &body);
                        respond(200, e)
                    }
                    None => respond(404, &status(404, "NotFound")),
                }
            }
            ("GET", [ns, "events"]) => {
                let selector = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("fieldSelector="))
                    .map(|v| v.replace("%3D", "=").replace("%2C", ","))
                    .unwrap_or_default();
                let wanted: Vec<(String, String)> = selector
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| {
                        let k = k
                            .strip_prefix("regarding.")
                            .expect("selects on regarding.*");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                assert!(
                    wanted.iter().any(|(k, _)| k == "name"),
                    "lists per object: {selector}"
                );
                let items: Vec<Value> = w
                    .events
                    .iter()
                    .filter(|e| e["metadata"]["namespace"] == *ns)
                    .filter(|e| wanted.iter().all(|(k, v)| e["regarding"][k] == v.as_str()))
                    .cloned()
                    .collect();
                respond(
                    200,
                    &json!({"apiVersion": "events.k8s.io/v1", "kind": "EventList", "metadata": {}, "items": items}),
                )
            }
            _ => respond(405, &status(405, "MethodNotAllowed")),
        };
    }
    panic!("unexpected request {method} {path}");
}

/// Serves one replica's client from the shared world.
fn serve(
    mut api: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    world: Shared,
    identity: String,
) {
    tokio::spawn(async move {
        let mut parked = Vec::new();
        while let Some((req, send)) = api.next_request().await {
            if req.uri().path() == LEASE && world.lock().unwrap().cut_off.contains(&identity) {
                parked.push(send); // never answered
                continue;
            }
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let resp = answer(&mut world.lock().unwrap(), &method, &path, &query, body);
            send.send_response(resp);
        }
    });
}

fn registry() -> Arc<FakeRegistry> {
    let reg = Arc::new(FakeRegistry::default());
    let img = ImageRef::parse(APP).unwrap();
    reg.set_tag(
        &img,
        Descriptor {
            digest: d('b'),
            media_type: OCI_MANIFEST.into(),
        },
    );
    for (m, c) in [('a', '1'), ('b', '2')] {
        reg.put_manifest(
            &img,
            d(m),
            Manifest::Image {
                config: d(c),
                platform: None,
            },
        );
    }
    reg
}

fn pod(name: &str, running: char) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": "shop", "name": name, "uid": format!("uid-{name}"), "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c", "uid": "rs", "controller": true}]},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": APP, "imagePullPolicy": "IfNotPresent"}]},
        "status": {"containerStatuses": [{"name": "app", "image": APP, "imageID": format!("registry.example/app@{}", d(running)),
            "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    }))
    .unwrap()
}

struct Replica {
    identity: String,
    tx: mpsc::UnboundedSender<Input>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), runner::RunError>>,
    leadership: Option<Leadership>,
    metrics: Metrics,
}

async fn replica(world: &Shared, identity: &str) -> Replica {
    let (service, api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    serve(api, world.clone(), identity.to_string());
    let client = kube::Client::new(service, "default");
    let settings = LeaseSettings {
        name: "imagedrift".into(),
        namespace: "imagedrift".into(),
        identity: identity.into(),
        duration_seconds: DURATION,
        retry_period: RETRY,
    };
    let leadership = elect(client.clone(), &settings).await.unwrap();
    let prom = prometheus::Registry::new();
    let metrics = Metrics::register(&prom).unwrap();
    leadership.export(metrics.leader.clone());
    let ctx = Context {
        registry: registry(),
        credentials: Arc::new(Anonymous),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "imagedrift".into(),
                instance: Some(identity.into()),
            },
        ),
        metrics: metrics.clone(),
        settings: Settings {
            interval: Duration::from_secs(300),
            spread: Duration::ZERO,
            unknown_threshold: Duration::from_secs(1800),
        },
        max_concurrent_checks: 2,
        namespaces: Default::default(),
        leader: leadership.is_leader.clone(),
        client,
        ready: Readiness::default(),
        remedies: None,
    };
    let (tx, rx) = mpsc::unbounded_channel::<Input>();
    let inputs: Inputs = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|i| (Ok::<_, watcher::Error>(i), rx))
    }));
    let token = CancellationToken::new();
    let task = tokio::spawn(runner::run(ctx, inputs, Box::new(NoJitter), token.clone()));
    Replica {
        identity: identity.into(),
        tx,
        token,
        task,
        leadership: Some(leadership),
        metrics,
    }
}

impl Replica {
    fn leads(&self) -> bool {
        self.leadership
            .as_ref()
            .is_some_and(|l| l.is_leader.may_write())
    }

    /// The workload's objects, as the watches list them.
    fn list(&self, pods: Vec<Pod>) {
        let rs = PartialObjectMeta::<ReplicaSet> {
            metadata: serde_json::from_value(json!({"namespace": "shop", "name": "web-5d9c",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web", "controller": true}]}))
            .unwrap(),
            ..Default::default()
        };
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-a"},
            "status": {"nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "bootID": "", "containerRuntimeVersion": "",
            "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "", "osImage": "", "systemUUID": ""}}}))
        .unwrap();
        let send = |i| self.tx.send(i).unwrap();
        send(Input::ReplicaSets(Event::Init));
        send(Input::ReplicaSets(Event::InitApply(rs.into())));
        send(Input::ReplicaSets(Event::InitDone));
        send(Input::Nodes(Event::Init));
        send(Input::Nodes(Event::InitApply(node.into())));
        send(Input::Nodes(Event::InitDone));
        send(Input::Pods(Event::Init));
        for p in pods {
            send(Input::Pods(Event::InitApply(p.into())));
        }
        send(Input::Pods(Event::InitDone));
    }

    fn metrics(&self) -> String {
        self.metrics.render().unwrap()
    }

    /// A crash (kill -9): nothing is released, nothing more is written.
    fn kill(mut self) {
        self.task.abort();
        if let Some(mut l) = self.leadership.take()
            && let Some(t) = l.task.take()
        {
            t.abort();
        }
    }

    /// A graceful stop: the runner ends, the lease is released.
    async fn stop(mut self) {
        self.token.cancel();
        self.task.await.unwrap().unwrap();
        let mut l = self.leadership.take().unwrap();
        let t = l.task.take().unwrap();
        drop(l);
        t.await.unwrap().unwrap();
    }
}

/// Polls (virtual time, bounded) until `pred` holds.
async fn until(what: &str, limit: Duration, mut pred: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !pred() {
        assert!(
            Instant::now() < end,
            "never happened within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Events with `reason` about the object `name`: (instance, fieldPath, note).
fn events(world: &Shared, reason: &str, name: &str) -> Vec<(String, String, String)> {
    world
        .lock()
        .unwrap()
        .events
        .iter()
        .filter(|e| e["reason"] == reason && e["regarding"]["name"] == name)
        .map(|e| {
            (
                e["reportingInstance"].as_str().unwrap_or("").to_string(),
                e["regarding"]["fieldPath"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                e["note"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn holder(world: &Shared) -> Option<String> {
    world
        .lock()
        .unwrap()
        .lease
        .as_ref()
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_within_one_retry_period() {
    let world: Shared = Arc::default();
    let a = replica(&world, "imagedrift-a").await;
    until("a leads", Duration::from_secs(5), || a.leads()).await;
    let b = replica(&world, "imagedrift-b").await;
    tokio::time::sleep(RETRY * 3).await;
    assert!(!b.leads(), "b follows while a holds the lease");
    assert!(
        b.metrics().contains("imagedrift_leader 0"),
        "{}",
        b.metrics()
    );
    assert!(
        a.metrics().contains("imagedrift_leader 1"),
        "{}",
        a.metrics()
    );

    a.stop().await;
    assert_eq!(holder(&world), None, "a released the lease");
    let released = Instant::now();
    until("b leads", Duration::from_secs(DURATION), || b.leads()).await;
    let gap = released.elapsed();
    assert!(
        gap <= RETRY * 2,
        "b took the released lease after {gap:?}, not within one retry period"
    );
    assert_eq!(holder(&world).as_deref(), Some("imagedrift-b"));
    until("b's metric says leader", Duration::from_secs(1), || {
        b.metrics().contains("imagedrift_leader 1")
    })
    .await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn drift_seen_only_by_the_follower_is_announced_after_the_leader_is_killed() {
    let world: Shared = Arc::default();
    let a = replica(&world, "imagedrift-a").await;
    until("a leads", Duration::from_secs(5), || a.leads()).await;
    let b = replica(&world, "imagedrift-b").await;
    // Only b has seen the pods (a was killed before its own check).
    b.list(vec![pod("web-5d9c-x1", 'a'), pod("web-5d9c-x2", 'a')]);
    until("b judges the pods stale", Duration::from_secs(30), || {
        b.metrics().contains(r#"imagedrift_workload_stale_containers{namespace="shop",owner_kind="Deployment",owner_name="web"} 2"#)
    })
    .await;
    assert!(
        world.lock().unwrap().events.is_empty(),
        "a follower writes nothing"
    );

    let killed = Instant::now();
    a.kill();
    until("b leads", Duration::from_secs(DURATION * 3), || b.leads()).await;
    assert!(
        killed.elapsed() >= Duration::from_secs(DURATION) - RETRY * 2,
        "a killed leader's lease is taken at expiry, not before"
    );
    until(
        "b announces both pods and the Deployment",
        Duration::from_secs(10),
        || {
            events(&world, "StaleImage", "web").len() == 1
                && events(&world, "StaleImage", "web-5d9c-x1").len() == 1
                && events(&world, "StaleImage", "web-5d9c-x2").len() == 1
        },
    )
    .await;
    let pod_events = events(&world, "StaleImage", "web-5d9c-x1");
    assert_eq!(pod_events[0].0, "imagedrift-b");
    assert_eq!(pod_events[0].1, "spec.containers{app}");
    let workload = events(&world, "StaleImage", "web");
    assert!(
        workload[0]
            .2
            .starts_with("2 of 2 pods of Deployment web run stale content (container app)."),
        "{}",
        workload[0].2
    );
    // Nothing more: no duplicate on the next retry tick.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(world.lock().unwrap().events.len(), 3);
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_writes_nothing_the_previous_one_wrote_and_closes_the_episode() {
    let world: Shared = Arc::default();
    let a = replica(&world, "imagedrift-a").await;
    until("a leads", Duration::from_secs(5), || a.leads()).await;
    let b = replica(&world, "imagedrift-b").await;
    a.list(vec![pod("web-5d9c-x1", 'a')]);
    b.list(vec![pod("web-5d9c-x1", 'a')]);
    until("a announces", Duration::from_secs(30), || {
        events(&world, "StaleImage", "web").len() == 1
            && events(&world, "StaleImage", "web-5d9c-x1").len() == 1
    })
    .await;
    until("b judged too", Duration::from_secs(30), || {
        b.metrics().contains(r#"owner_name="web"} 1"#)
    })
    .await;
    // A rollout of imagedrift itself: a stops gracefully, b takes over.
    a.stop().await;
    until("b leads", Duration::from_secs(5), || b.leads()).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        world.lock().unwrap().events.len(),
        2,
        "b read the record back and wrote nothing twice: {:?}",
        world.lock().unwrap().events
    );

    // Fixed by hand (rollout restart after a manual pull): the stale pod
    // terminates, a fresh one replaces it. One ImageUpToDate on the
    // Deployment, naming what fixed it.
    let mut stopping = pod("web-5d9c-x1", 'a');
    stopping
        .status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()[0]
        .state = Some(serde_json::from_value(json!({"terminated": {"exitCode": 0}})).unwrap());
    b.tx.send(Input::Pods(Event::Apply(stopping.into())))
        .unwrap();
    b.tx.send(Input::Pods(Event::Apply(pod("web-7f00-y1", 'b').into())))
        .unwrap();
    until("b closes the episode", Duration::from_secs(30), || {
        events(&world, "ImageUpToDate", "web").len() == 1
    })
    .await;
    let closed = events(&world, "ImageUpToDate", "web");
    assert_eq!(
        closed[0].2,
        "Deployment web runs current content again: new pods run the current digest."
    );
    b.tx.send(Input::Pods(Event::Delete(pod("web-5d9c-x1", 'a').into())))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        events(&world, "ImageUpToDate", "web").len(),
        1,
        "closed once"
    );
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_renewals_hang_steps_down_and_writes_nothing() {
    let world: Shared = Arc::default();
    let a = replica(&world, "imagedrift-a").await;
    until("a leads", Duration::from_secs(5), || a.leads()).await;
    let b = replica(&world, "imagedrift-b").await;
    world.lock().unwrap().cut_off.insert("imagedrift-a".into());
    until("b leads", Duration::from_secs(DURATION * 2), || b.leads()).await;
    assert!(!a.leads(), "a no longer leads by its own clock");
    assert!(
        a.metrics().contains("imagedrift_leader 0"),
        "{}",
        a.metrics()
    );
    a.list(vec![pod("web-5d9c-x1", 'a')]);
    b.list(vec![pod("web-5d9c-x1", 'a')]);
    until("the drift is announced", Duration::from_secs(30), || {
        events(&world, "StaleImage", "web-5d9c-x1").len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let all = world.lock().unwrap().events.clone();
    assert!(
        all.iter().all(|e| e["reportingInstance"] == "imagedrift-b"),
        "only the lease holder wrote: {all:?}"
    );
    assert_eq!(all.len(), 2, "{all:?}");
    a.kill();
    b.stop().await;
}

/// A replica driven by a hand-set lease (the write guard alone).
async fn manual_replica(world: &Shared) -> (imagedrift::controller::leader::ManualLease, Replica) {
    let (service, api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    serve(api, world.clone(), "imagedrift-m".into());
    let client = kube::Client::new(service, "default");
    let (ctl, leader) = imagedrift::controller::leader::Leader::manual();
    let prom = prometheus::Registry::new();
    let metrics = Metrics::register(&prom).unwrap();
    let ctx = Context {
        registry: registry(),
        credentials: Arc::new(Anonymous),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "imagedrift".into(),
                instance: Some("imagedrift-m".into()),
            },
        ),
        metrics: metrics.clone(),
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
        remedies: None,
    };
    let (tx, rx) = mpsc::unbounded_channel::<Input>();
    let inputs: Inputs = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|i| (Ok::<_, watcher::Error>(i), rx))
    }));
    let token = CancellationToken::new();
    let task = tokio::spawn(runner::run(ctx, inputs, Box::new(NoJitter), token.clone()));
    (
        ctl,
        Replica {
            identity: "imagedrift-m".into(),
            tx,
            token,
            task,
            leadership: None,
            metrics,
        },
    )
}

#[tokio::test(start_paused = true)]
async fn a_paused_leader_resumed_past_its_lease_does_not_write() {
    let world: Shared = Arc::default();
    let (ctl, m) = manual_replica(&world).await;
    ctl.grant_until(Instant::now() + Duration::from_secs(DURATION));
    // Paused past the lease: on resuming, its flag still says leader.
    tokio::time::sleep(Duration::from_secs(DURATION + 1)).await;
    m.list(vec![pod("web-5d9c-x1", 'a')]);
    until("m judges the pod stale", Duration::from_secs(30), || {
        m.metrics().contains(r#"owner_name="web"} 1"#)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        world.lock().unwrap().events.is_empty(),
        "no write past the lease: {:?}",
        world.lock().unwrap().events
    );
    // Renewed: what it held back is written (once), on the retry tick.
    ctl.grant_until(Instant::now() + Duration::from_secs(3600));
    until(
        "the held-back Events are written",
        Duration::from_secs(400),
        || world.lock().unwrap().events.len() == 2,
    )
    .await;
    assert_eq!(events(&world, "StaleImage", "web-5d9c-x1")[0].0, m.identity);
    m.token.cancel();
    m.task.await.unwrap().unwrap();
}
