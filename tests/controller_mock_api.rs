//! The controller against a `tower-test` mock API server: watch events are
//! fed in directly, and every request the controller makes (Event POSTs)
//! is asserted exactly. Time is paused: timeouts are virtual.

use http::{Request, Response};
use imagedrift::controller::events::{Recorder, Reporter};
use imagedrift::controller::fake::FakeRegistry;
use imagedrift::controller::leader::Leadership;
use imagedrift::controller::reconcile::Settings;
use imagedrift::controller::runner::{self, Context, Input, Inputs, Readiness};
use imagedrift::controller::schedule::NoJitter;
use imagedrift::controller::secrets::Anonymous;
use imagedrift::controller::wire::{SlimNode as Node, SlimOwner, SlimPod as Pod};
use imagedrift::facts::{
    Credential, Descriptor, IndexEntry, LookupFailure, Manifest, OCI_INDEX, OCI_MANIFEST, Registry,
};
use imagedrift::metrics::Metrics;
use imagedrift::platform::Platform;
use imagedrift::reference::{Digest, ImageRef};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use kube::client::Body;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

fn image(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap()
}

fn pod(
    name: &str,
    node: &str,
    owner: Option<(&str, &str)>,
    image: &str,
    image_id: &str,
    policy: &str,
) -> Pod {
    let owners = owner
        .map(|(k, n)| json!([{"apiVersion": if k == "Job" { "batch/v1" } else { "apps/v1" }, "kind": k, "name": n, "uid": format!("uid-{n}"), "controller": true}]))
        .unwrap_or(json!([]));
    serde_json::from_value(json!({
        "metadata": {"namespace": "shop", "name": name, "uid": format!("uid-{name}"), "ownerReferences": owners},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": image, "imagePullPolicy": policy}]},
        "status": {"containerStatuses": [{"name": "app", "image": image, "imageID": image_id, "ready": true,
            "restartCount": 0, "state": {"running": {}}}]}
    }))
    .unwrap()
}

fn node(name: &str, arch: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"nodeInfo": {"architecture": arch, "operatingSystem": "linux", "bootID": "", "containerRuntimeVersion": "",
            "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "", "osImage": "", "systemUUID": ""}}
    }))
    .unwrap()
}

fn owner_meta<K: kube::Resource<DynamicType = ()> + Default>(
    name: &str,
    owner_kind: &str,
    owner: &str,
) -> SlimOwner<K> {
    SlimOwner::new(
        serde_json::from_value(json!({"namespace": "shop", "name": name,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner, "uid": format!("uid-{owner}"), "controller": true}]}))
        .unwrap(),
    )
}

struct Harness {
    tx: mpsc::UnboundedSender<Input>,
    api: Handle,
    metrics: Metrics,
    token: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), runner::RunError>>,
    ready: Readiness,
    _leadership: Leadership,
}

fn start(registry: Arc<FakeRegistry>, leadership: Leadership) -> Harness {
    start_with(registry, leadership, 4)
}

fn start_with<R: Registry + 'static>(
    registry: Arc<R>,
    leadership: Leadership,
    max_concurrent_checks: usize,
) -> Harness {
    let (service, api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let events_client = client.clone();
    let prom = prometheus::Registry::new();
    let metrics = Metrics::register(&prom).unwrap();
    let metrics_handle = metrics.clone();
    let (tx, rx) = mpsc::unbounded_channel::<Input>();
    let inputs: Inputs = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|i| (Ok::<_, watcher::Error>(i), rx))
    }));
    let ready = Readiness::default();
    let ctx = Context {
        registry,
        credentials: Arc::new(Anonymous),
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "imagedrift".into(),
                instance: Some("imagedrift-0".into()),
            },
        ),
        metrics,
        settings: Settings {
            interval: Duration::from_secs(300),
            spread: Duration::ZERO,
            unknown_threshold: Duration::from_secs(1800),
        },
        max_concurrent_checks,
        namespaces: Default::default(),
        leader: leadership.is_leader.clone(),
        client: events_client,
        ready: ready.clone(),
        remedies: None,
    };
    let token = CancellationToken::new();
    let task = tokio::spawn(runner::run(ctx, inputs, Box::new(NoJitter), token.clone()));
    Harness {
        tx,
        api,
        metrics: metrics_handle,
        token,
        task,
        ready,
        _leadership: leadership,
    }
}

impl Harness {
    fn send(&self, i: Input) {
        self.tx.send(i).unwrap();
    }

    fn list_pods(&self, pods: Vec<Pod>) {
        self.send(Input::Pods(Event::Init));
        for p in pods {
            self.send(Input::Pods(Event::InitApply(p)));
        }
        self.send(Input::Pods(Event::InitDone));
    }

    fn list_nodes(&self, nodes: Vec<Node>) {
        self.send(Input::Nodes(Event::Init));
        for n in nodes {
            self.send(Input::Nodes(Event::InitApply(n)));
        }
        self.send(Input::Nodes(Event::InitDone));
    }

    fn list_replicasets(&self, items: Vec<SlimOwner<ReplicaSet>>) {
        self.send(Input::ReplicaSets(Event::Init));
        for o in items {
            self.send(Input::ReplicaSets(Event::InitApply(o)));
        }
        self.send(Input::ReplicaSets(Event::InitDone));
    }

    /// The next API request, answered with its own body (as the API server
    /// echoes a created object); panics if none comes within 60 virtual seconds.
    /// Reads of Events (the leader reading the record back before its
    /// first word on a subject) are answered with an empty list.
    async fn expect_request(&mut self) -> (http::Method, String, Value) {
        let (req, send) = loop {
            let (req, send) =
                tokio::time::timeout(Duration::from_secs(60), self.api.next_request())
                    .await
                    .expect("timed out waiting for an API request")
                    .expect("API service dropped");
            if req.method() == http::Method::GET && req.uri().path().contains("/events") {
                send.send_response(
                    Response::builder()
                        .status(200)
                        .body(Body::from(
                            serde_json::to_vec(&json!({"apiVersion": "events.k8s.io/v1", "kind": "EventList", "metadata": {}, "items": []}))
                                .unwrap(),
                        ))
                        .unwrap(),
                );
                continue;
            }
            break (req, send);
        };
        let method = req.method().clone();
        let uri = req.uri().to_string();
        let body = req.into_body().collect_bytes().await.unwrap();
        send.send_response(
            Response::builder()
                .status(201)
                .body(Body::from(body.to_vec()))
                .unwrap(),
        );
        (method, uri, serde_json::from_slice(&body).unwrap())
    }

    /// Asserts that no request arrives for `secs` virtual seconds.
    async fn expect_silence(&mut self, secs: u64) {
        if let Ok(Some((req, _))) =
            tokio::time::timeout(Duration::from_secs(secs), self.api.next_request()).await
        {
            panic!("unexpected API request: {} {}", req.method(), req.uri());
        }
    }

    fn metrics(&self) -> String {
        self.metrics.render().unwrap()
    }

    /// Waits (virtual time) until the metrics satisfy `pred`.
    async fn wait_metrics(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        for _ in 0..600 {
            let m = self.metrics();
            if pred(&m) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("metrics never showed {what}:\n{}", self.metrics());
    }

    async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap().unwrap();
    }
}

const APP: &str = "registry.example/app:v1";

/// A single-arch tag moved from manifest `a` (config `c`) to `b` (config `e`).
fn moved_tag() -> Arc<FakeRegistry> {
    let reg = Arc::new(FakeRegistry::default());
    let img = image(APP);
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
            config: d('c'),
            platform: None,
        },
    );
    reg.put_manifest(
        &img,
        d('b'),
        Manifest::Image {
            config: d('e'),
            platform: None,
        },
    );
    reg
}

fn running_a() -> String {
    format!("registry.example/app@{}", d('a'))
}

#[tokio::test(start_paused = true)]
async fn stale_container_posts_exact_events_once_on_pod_and_workload() {
    let mut h = start(moved_tag(), Leadership::always());
    h.list_replicasets(vec![owner_meta("web-5d9c", "Deployment", "web")]);
    h.list_nodes(vec![node("node-a", "amd64")]);
    h.list_pods(vec![pod(
        "web-5d9c-x1",
        "node-a",
        Some(("ReplicaSet", "web-5d9c")),
        APP,
        &running_a(),
        "IfNotPresent",
    )]);

    let (method, uri, body) = h.expect_request().await;
    assert_eq!(method, http::Method::POST);
    assert_eq!(uri, "/apis/events.k8s.io/v1/namespaces/shop/events?");
    assert_eq!(body["reason"], "StaleImage");
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["action"], "CheckImage");
    assert_eq!(body["reportingController"], "imagedrift");
    assert_eq!(body["reportingInstance"], "imagedrift-0");
    assert_eq!(
        body["regarding"],
        json!({"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-5d9c-x1", "uid": "uid-web-5d9c-x1",
            "fieldPath": "spec.containers{app}"})
    );
    let want = format!(
        "Container app runs stale content for registry.example/app:v1 on node node-a: running {a}, the tag now serves {b}. \
         Pull policy: IfNotPresent, which equals the default for this tag (`v1` is not `latest`). \
         A restart does not help under IfNotPresent (a node that has the tag cached reuses the old content). \
         What works: refresh the tag on the stale nodes (a short pull with imagePullPolicy: Always there); \
         or pin the workload to the current digest; or set imagePullPolicy: Always in the container, then restart. \
         Pinned reference: registry.example/app:v1@{b}.",
        a = d('a'),
        b = d('b'),
    );
    assert_eq!(body["note"], want.as_str());
    assert!(want.len() <= 1024);

    // The owning Deployment (through the cached ReplicaSet) gets one too.
    let (method, _, body) = h.expect_request().await;
    assert_eq!(method, http::Method::POST);
    assert_eq!(body["reason"], "StaleImage");
    assert_eq!(
        body["regarding"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web", "uid": "uid-web"})
    );
    let note = body["note"].as_str().unwrap();
    assert!(note.starts_with("1 of 1 pod of Deployment web runs stale content (container app). First: Container app runs stale"), "{note}");

    // Unchanged verdict: the same pod again, and a re-check one interval later: no Event.
    h.send(Input::Pods(Event::Apply(pod(
        "web-5d9c-x1",
        "node-a",
        Some(("ReplicaSet", "web-5d9c")),
        APP,
        &running_a(),
        "IfNotPresent",
    ))));
    h.expect_silence(900).await;
    let m = h.metrics();
    assert!(m.contains(r#"imagedrift_workload_stale_containers{namespace="shop",owner_kind="Deployment",owner_name="web"} 1"#), "{m}");
    assert!(h.ready.is_ready());

    // The rollout replaces the stale pod: the Deployment runs current content again.
    h.send(Input::Pods(Event::Delete(pod(
        "web-5d9c-x1",
        "node-a",
        Some(("ReplicaSet", "web-5d9c")),
        APP,
        "",
        "IfNotPresent",
    ))));
    let (_, _, body) = h.expect_request().await;
    assert_eq!(body["reason"], "ImageUpToDate");
    assert_eq!(body["type"], "Normal");
    assert_eq!(body["regarding"]["kind"], "Deployment");
    assert_eq!(
        body["note"],
        "Deployment web runs current content again: none of its pods remain."
    );
    h.expect_silence(10).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn back_to_fresh_posts_image_up_to_date() {
    let reg = moved_tag();
    let mut h = start(reg.clone(), Leadership::always());
    h.list_nodes(vec![node("node-a", "amd64")]);
    h.list_pods(vec![pod(
        "bare",
        "node-a",
        None,
        APP,
        &running_a(),
        "Always",
    )]);
    let (_, _, body) = h.expect_request().await;
    assert_eq!(body["reason"], "StaleImage");
    let note = body["note"].as_str().unwrap();
    assert!(
        note.contains(
            "Pull policy: Always (written in the pod spec). A restart helps: a rollout restart"
        ),
        "{note}"
    );
    // A bare pod: no second (workload) Event.
    // The pod restarts onto the current digest.
    let new_id = format!("registry.example/app@{}", d('b'));
    h.send(Input::Pods(Event::Apply(pod(
        "bare", "node-a", None, APP, &new_id, "Always",
    ))));
    let (_, _, body) = h.expect_request().await;
    assert_eq!(body["reason"], "ImageUpToDate");
    assert_eq!(body["type"], "Normal");
    assert_eq!(body["regarding"]["name"], "bare");
    h.expect_silence(900).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn non_leader_judges_and_exports_metrics_but_writes_nothing() {
    let mut h = start(moved_tag(), Leadership::never());
    h.list_nodes(vec![node("node-a", "amd64")]);
    h.list_pods(vec![pod(
        "bare",
        "node-a",
        None,
        APP,
        &running_a(),
        "IfNotPresent",
    )]);
    h.wait_metrics("a stale verdict", |m| {
        m.contains(r#"pod="bare",reason="different-config",verdict="stale"} 1"#)
    })
    .await;
    h.expect_silence(900).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn metric_series_appear_and_disappear_with_pods_and_follow_owner_chain() {
    let reg = moved_tag();
    let mut h = start(reg.clone(), Leadership::never());
    h.list_nodes(vec![node("node-a", "amd64")]);
    h.send(Input::Jobs(Event::Init));
    h.send(Input::Jobs(Event::InitApply(owner_meta::<Job>(
        "nightly-29001",
        "CronJob",
        "nightly",
    ))));
    h.send(Input::Jobs(Event::InitDone));
    h.list_pods(vec![pod(
        "nightly-29001-q",
        "node-a",
        Some(("Job", "nightly-29001")),
        APP,
        &running_a(),
        "IfNotPresent",
    )]);
    let m = h
        .wait_metrics("the pod's stale series", |m| {
            m.contains(r#"imagedrift_container_stale{container="app",image="registry.example/app:v1",kind="container",namespace="shop",node="node-a",owner_kind="CronJob",owner_name="nightly",pod="nightly-29001-q"} 1"#)
        })
        .await;
    assert!(m.contains("imagedrift_unique_images 1"), "{m}");
    assert!(m.contains(r#"imagedrift_workload_stale_containers{namespace="shop",owner_kind="CronJob",owner_name="nightly"} 1"#), "{m}");
    assert!(
        !m.contains("imagedrift_last_full_check_timestamp_seconds 0\n"),
        "a full check completed: {m}"
    );
    assert_eq!(reg.resolves(), 1);

    h.send(Input::Pods(Event::Delete(pod(
        "nightly-29001-q",
        "node-a",
        None,
        APP,
        "",
        "IfNotPresent",
    ))));
    let m = h
        .wait_metrics("the series gone", |m| !m.contains("nightly-29001-q"))
        .await;
    assert!(!m.contains("owner_name=\"nightly\""), "{m}");
    assert!(m.contains("imagedrift_unique_images 0"), "{m}");
    h.expect_silence(10).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn node_platform_decides_multi_arch_verdicts() {
    // The tag was re-pushed: amd64 content changed, arm64 content is identical.
    let reg = Arc::new(FakeRegistry::default());
    let img = image(APP);
    let entry = |digest: Digest, arch: &str| IndexEntry {
        digest,
        media_type: OCI_MANIFEST.into(),
        platform: Some(Platform::new("linux", arch, None)),
    };
    reg.set_tag(
        &img,
        Descriptor {
            digest: d('2'),
            media_type: OCI_INDEX.into(),
        },
    );
    reg.put_manifest(
        &img,
        d('1'),
        Manifest::Index {
            entries: vec![entry(d('a'), "amd64"), entry(d('f'), "arm64")],
        },
    );
    reg.put_manifest(
        &img,
        d('2'),
        Manifest::Index {
            entries: vec![entry(d('b'), "amd64"), entry(d('f'), "arm64")],
        },
    );
    reg.put_manifest(
        &img,
        d('a'),
        Manifest::Image {
            config: d('c'),
            platform: None,
        },
    );
    reg.put_manifest(
        &img,
        d('b'),
        Manifest::Image {
            config: d('e'),
            platform: None,
        },
    );
    reg.put_manifest(
        &img,
        d('f'),
        Manifest::Image {
            config: d('9'),
            platform: None,
        },
    );
    let mut h = start(reg.clone(), Leadership::never());
    h.list_nodes(vec![node("amd", "amd64"), node("arm", "arm64")]);
    let old_index = format!("registry.example/app@{}", d('1'));
    h.list_pods(vec![
        pod("on-amd", "amd", None, APP, &old_index, "IfNotPresent"),
        pod("on-arm", "arm", None, APP, &old_index, "IfNotPresent"),
    ]);
    let m = h
        .wait_metrics("both verdicts", |m| {
            m.contains(r#"pod="on-amd",reason="different-config",verdict="stale"} 1"#)
                && m.contains(r#"pod="on-arm",reason="same-platform-child",verdict="fresh"} 1"#)
        })
        .await;
    assert!(
        m.contains(r#"node="arm",owner_kind="Pod",owner_name="on-arm",pod="on-arm"} 0"#),
        "{m}"
    );
    assert_eq!(
        reg.resolves(),
        1,
        "one resolve for two pods sharing the reference"
    );
    h.expect_silence(10).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn readiness_waits_for_pod_and_node_lists() {
    let mut h = start(moved_tag(), Leadership::never());
    h.list_pods(vec![]);
    h.wait_metrics("startup", |m| m.contains("imagedrift_build_info"))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!h.ready.is_ready(), "nodes not listed yet");
    h.list_nodes(vec![]);
    for _ in 0..100 {
        if h.ready.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(h.ready.is_ready());
    h.expect_silence(1).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn checks_beyond_the_concurrency_limit_wait_their_turn() {
    let reg = Arc::new(FakeRegistry::default());
    let mut pods = Vec::new();
    for i in 0..3 {
        let name = format!("registry.example/app{i}:v1");
        let img = image(&name);
        reg.set_tag(
            &img,
            Descriptor {
                digest: d('a'),
                media_type: OCI_MANIFEST.into(),
            },
        );
        let id = format!("registry.example/app{i}@{}", d('a'));
        pods.push(pod(&format!("p{i}"), "node-a", None, &name, &id, "Always"));
    }
    let mut h = start_with(reg.clone(), Leadership::never(), 1);
    h.list_nodes(vec![node("node-a", "amd64")]);
    h.list_pods(pods);
    h.wait_metrics("three fresh verdicts", |m| {
        m.matches(r#"reason="same-digest",verdict="fresh"} 1"#)
            .count()
            == 3
    })
    .await;
    assert_eq!(reg.resolves(), 3);
    h.expect_silence(10).await;
    h.stop().await;
}

/// A registry with a bug: resolving one reference panics (counted).
struct Panicky(Arc<FakeRegistry>, Arc<std::sync::atomic::AtomicUsize>);

impl Registry for Panicky {
    async fn resolve_tag(
        &self,
        image: &ImageRef,
        creds: &[Credential],
    ) -> Result<Descriptor, LookupFailure> {
        if image.path().contains("boom") {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            panic!("a bug while resolving {image}");
        }
        self.0.resolve_tag(image, creds).await
    }

    async fn manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
        creds: &[Credential],
    ) -> Result<Arc<Manifest>, LookupFailure> {
        self.0.manifest(image, digest, creds).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_check_frees_its_slot_and_is_retried() {
    let reg = Arc::new(FakeRegistry::default());
    let good = image(APP);
    reg.set_tag(
        &good,
        Descriptor {
            digest: d('a'),
            media_type: OCI_MANIFEST.into(),
        },
    );
    // Sorted first, so it takes the only check slot first.
    let boom = "registry.example/a-boom:v1";
    let pods = vec![
        pod(
            "p0",
            "node-a",
            None,
            boom,
            &format!("registry.example/a-boom@{}", d('a')),
            "Always",
        ),
        pod("p1", "node-a", None, APP, &running_a(), "Always"),
    ];
    let panics = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut h = start_with(
        Arc::new(Panicky(reg.clone(), panics.clone())),
        Leadership::never(),
        1,
    );
    h.list_nodes(vec![node("node-a", "amd64")]);
    h.list_pods(pods);
    h.wait_metrics("the other reference checked", |m| {
        m.contains(r#"imagedrift_container_verdict{container="app",kind="container",namespace="shop",pod="p1",reason="same-digest",verdict="fresh"} 1"#)
    })
    .await;
    assert_eq!(reg.resolves(), 1);
    assert_eq!(panics.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The panicked reference is due again after one interval, not stuck.
    tokio::time::sleep(Duration::from_secs(301)).await;
    assert_eq!(panics.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(reg.resolves(), 2, "the good reference's next check ran too");
    h.expect_silence(1).await;
    h.stop().await;
}
