//! A small fake Kubernetes API server for the end-to-end test and the
//! scale benchmark: objects with resource versions, paged lists (`limit` +
//! `continue`), watches that replay history after the requested version
//! (with bookmarks) and then stay open, metadata-only collections, and
//! Event writes recorded. Any other request is logged as unexpected.
//! Also its object builders, the child-process guard and the polling
//! helpers (tests/webhooks.rs, benches/webhook.rs).
#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

/// The four collections the controller watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Pods,
    Nodes,
    ReplicaSets,
    Jobs,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Pods, Kind::Nodes, Kind::ReplicaSets, Kind::Jobs];

    /// The cluster-wide collection path.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Pods => "/api/v1/pods",
            Kind::Nodes => "/api/v1/nodes",
            Kind::ReplicaSets => "/apis/apps/v1/replicasets",
            Kind::Jobs => "/apis/batch/v1/jobs",
        }
    }

    pub fn from_path(p: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.path() == p)
    }

    /// Whether the controller watches only the metadata (`PartialObjectMetadata`).
    pub fn meta_only(self) -> bool {
        matches!(self, Kind::ReplicaSets | Kind::Jobs)
    }

    /// `apiVersion` and `kind` of one object as served.
    pub fn type_meta(self) -> (&'static str, &'static str) {
        match self {
            Kind::Pods => ("v1", "Pod"),
            Kind::Nodes => ("v1", "Node"),
            Kind::ReplicaSets | Kind::Jobs => ("meta.k8s.io/v1", "PartialObjectMetadata"),
        }
    }

    /// `apiVersion` and `kind` of a list as served.
    pub fn list_type_meta(self) -> (&'static str, &'static str) {
        match self {
            Kind::Pods => ("v1", "PodList"),
            Kind::Nodes => ("v1", "NodeList"),
            Kind::ReplicaSets | Kind::Jobs => ("meta.k8s.io/v1", "PartialObjectMetadataList"),
        }
    }

    /// An object as this collection serves it: metadata-only kinds lose
    /// everything but their metadata.
    pub fn wire(self, obj: &Value) -> Value {
        let (api_version, kind) = self.type_meta();
        if self.meta_only() {
            json!({"apiVersion": api_version, "kind": kind, "metadata": obj["metadata"].clone()})
        } else {
            let mut o = obj.clone();
            o["apiVersion"] = json!(api_version);
            o["kind"] = json!(kind);
            o
        }
    }
}

/// A write the controller made (Events only).
#[derive(Clone, Debug)]
pub struct Written {
    /// When the fake API received it.
    pub at: std::time::Instant,
    pub method: Method,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
pub struct Collection {
    /// Current objects by `namespace/name`.
    objects: BTreeMap<String, Value>,
    /// Every change as a watch event, with its resourceVersion.
    history: Vec<(u64, Value)>,
}

#[derive(Default)]
pub struct Inner {
    rv: u64,
    collections: BTreeMap<Kind, Collection>,
    written: Vec<Written>,
    pub requests: Vec<String>,
    pub unexpected: Vec<String>,
    /// Watches opened per kind.
    pub watches: BTreeMap<Kind, usize>,
    /// BOOKMARK events sent per kind.
    pub bookmarks: BTreeMap<Kind, usize>,
    /// List pages served per kind (a `continue` page counts too).
    pub pages: BTreeMap<Kind, usize>,
}

/// A tiny API server: objects with resource versions, lists, watches that
/// replay history after the requested version and then stay open.
pub struct FakeApi {
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    /// While `true`, lists of ReplicaSets and Jobs wait: the pods arrive
    /// (and are judged) before their owners, as happens at random in a cluster.
    pub hold_owner_lists: watch::Sender<bool>,
}

impl FakeApi {
    pub fn new() -> Arc<FakeApi> {
        Arc::new(FakeApi {
            inner: Mutex::new(Inner {
                rv: 100,
                ..Default::default()
            }),
            changed: watch::channel(0).0,
            hold_owner_lists: watch::channel(false).0,
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic in another test thread must not hide this test's result.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(obj: &Value) -> String {
        format!(
            "{}/{}",
            obj["metadata"]["namespace"].as_str().unwrap_or(""),
            obj["metadata"]["name"].as_str().unwrap_or("")
        )
    }

    /// Creates or replaces an object (ADDED or MODIFIED on open watches).
    pub fn put(&self, kind: Kind, mut obj: Value) {
        let rv = {
            let mut inner = self.lock();
            inner.rv += 1;
            let rv = inner.rv;
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let key = FakeApi::key(&obj);
            let c = inner.collections.entry(kind).or_default();
            let type_ = if c.objects.contains_key(&key) {
                "MODIFIED"
            } else {
                "ADDED"
            };
            c.history
                .push((rv, json!({"type": type_, "object": kind.wire(&obj)})));
            c.objects.insert(key, obj);
            rv
        };
        self.changed.send_replace(rv);
    }

    /// Deletes an object (DELETED on open watches).
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) {
        let rv = {
            let mut inner = self.lock();
            inner.rv += 1;
            let rv = inner.rv;
            let c = inner.collections.entry(kind).or_default();
            let mut obj = c
                .objects
                .remove(&format!("{namespace}/{name}"))
                .unwrap_or_else(|| panic!("fake API: no {kind:?} {namespace}/{name} to delete"));
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            c.history
                .push((rv, json!({"type": "DELETED", "object": kind.wire(&obj)})));
            rv
        };
        self.changed.send_replace(rv);
    }

    /// One page of a list: at most `limit` objects (all when `None`) after
    /// the `continue` token, which carries the first page's version and the
    /// last key served, as a real API server's does in its own format.
    pub fn list(&self, kind: Kind, limit: Option<usize>, cont: Option<&str>) -> Value {
        let mut inner = self.lock();
        let (rv, after) = match cont.and_then(|c| c.split_once('|')) {
            Some((rv, key)) => (rv.parse().unwrap_or(inner.rv), Some(key.to_string())),
            None => (inner.rv, None),
        };
        *inner.pages.entry(kind).or_default() += 1;
        let c = inner.collections.entry(kind).or_default();
        let from = match &after {
            Some(k) => std::ops::Bound::Excluded(k.clone()),
            None => std::ops::Bound::Unbounded,
        };
        let mut range = c.objects.range((from, std::ops::Bound::Unbounded));
        let mut items = Vec::new();
        let mut last = None;
        for (k, o) in range.by_ref().take(limit.unwrap_or(usize::MAX)) {
            items.push(kind.wire(o));
            last = Some(k.clone());
        }
        let more = range.next().is_some();
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if let (true, Some(last)) = (more, last) {
            metadata["continue"] = json!(format!("{rv}|{last}"));
            metadata["remainingItemCount"] = json!(c.objects.len() - items.len());
        }
        let (api_version, list_kind) = kind.list_type_meta();
        json!({"apiVersion": api_version, "kind": list_kind, "metadata": metadata, "items": items})
    }

    /// The next line of a watch from `cursor`: a change after it, else a
    /// bookmark if one is owed, else `None` (wait for a change).
    fn next_watch_line(&self, kind: Kind, cursor: &mut u64, bookmark: &mut bool) -> Option<Value> {
        let mut inner = self.lock();
        let rv = inner.rv;
        let c = inner.collections.entry(kind).or_default();
        if let Some((at, ev)) = c.history.iter().find(|(at, _)| *at > *cursor) {
            *cursor = *at;
            return Some(ev.clone());
        }
        if std::mem::take(bookmark) {
            *cursor = rv;
            *inner.bookmarks.entry(kind).or_default() += 1;
            let (api_version, k) = kind.type_meta();
            return Some(
                json!({"type": "BOOKMARK", "object": {"apiVersion": api_version, "kind": k,
                "metadata": {"resourceVersion": rv.to_string()}}}),
            );
        }
        None
    }

    pub fn written(&self) -> Vec<Written> {
        self.lock().written.clone()
    }

    /// How many writes (Events, patches) arrived, without copying them.
    pub fn written_len(&self) -> usize {
        self.lock().written.len()
    }

    pub fn unexpected(&self) -> Vec<String> {
        self.lock().unexpected.clone()
    }

    pub fn request_log(&self) -> String {
        self.lock().requests.join("\n")
    }
}

fn query_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

/// Decodes `%XX` escapes (continue tokens travel URL-encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(h))
                if u8::from_str_radix(std::str::from_utf8(h).unwrap_or(""), 16).is_ok() =>
            {
                out.push(
                    u8::from_str_radix(std::str::from_utf8(h).unwrap_or("0"), 16).unwrap_or(0),
                );
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(code: StatusCode, message: String) -> Response {
    let body = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": message, "reason": code.canonical_reason().unwrap_or(""), "code": code.as_u16()});
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(State(api): State<Arc<FakeApi>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q = query_pairs(req.uri().query().unwrap_or(""));
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let line = format!("{method} {} (Accept: {accept})", req.uri());
    api.lock().requests.push(line.clone());
    let unexpected = |why: &str| {
        let msg = format!("{line}: {why}");
        eprintln!("fake API: unexpected request {msg}");
        api.lock().unexpected.push(msg.clone());
        status(StatusCode::NOT_FOUND, msg)
    };

    if let Some(kind) = Kind::from_path(&path) {
        if method != Method::GET {
            return unexpected("only GET (list, watch) is served on watched collections");
        }
        let watching = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
        if kind.meta_only() {
            let want = if watching {
                "as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
            } else {
                "as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            };
            if !accept.contains(want) {
                return unexpected(&format!("metadata-only collection asked without `{want}`"));
            }
        }
        if !watching {
            if kind.meta_only() {
                let mut held = api.hold_owner_lists.subscribe();
                if held.wait_for(|h| !h).await.is_err() {
                    return status(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
                }
            }
            let limit = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0);
            let cont = q.get("continue").map(|c| percent_decode(c));
            return json_response(StatusCode::OK, &api.list(kind, limit, cont.as_deref()));
        }
        let Some(Ok(from)) = q.get("resourceVersion").map(|v| v.parse::<u64>()) else {
            return unexpected("watch without a numeric resourceVersion");
        };
        *api.lock().watches.entry(kind).or_default() += 1;
        let bookmark = q.get("allowWatchBookmarks").map(String::as_str) == Some("true");
        let rx = api.changed.subscribe();
        let stream = futures::stream::unfold(
            (api.clone(), rx, from, bookmark),
            move |(api, mut rx, mut cursor, mut bookmark)| async move {
                loop {
                    rx.borrow_and_update();
                    if let Some(ev) = api.next_watch_line(kind, &mut cursor, &mut bookmark) {
                        let mut line = ev.to_string().into_bytes();
                        line.push(b'\n');
                        return Some((
                            Ok::<_, Infallible>(Bytes::from(line)),
                            (api, rx, cursor, bookmark),
                        ));
                    }
                    rx.changed().await.ok()?;
                }
            },
        );
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|e| status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()));
    }

    if let Some(rest) = path.strip_prefix("/apis/events.k8s.io/v1/namespaces/") {
        let parts: Vec<&str> = rest.split('/').collect();
        // A leader reads back the Events on an object (fieldSelector on
        // regarding.kind/name/uid) before its first word about it.
        if let (&Method::GET, [ns, "events"]) = (&method, parts.as_slice()) {
            let query = req.uri().query().unwrap_or("").to_string();
            let selector = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("fieldSelector="))
                .map(|v| v.replace("%3D", "=").replace("%2C", ","))
                .unwrap_or_default();
            let wanted: Vec<(String, String)> = selector
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| {
                    (
                        k.trim_start_matches("regarding.").to_string(),
                        v.to_string(),
                    )
                })
                .collect();
            let items: Vec<Value> = api
                .lock()
                .written
                .iter()
                .filter(|w| w.method == Method::POST && w.body["metadata"]["namespace"] == *ns)
                .filter(|w| {
                    wanted
                        .iter()
                        .all(|(k, v)| w.body["regarding"][k] == v.as_str())
                })
                .map(|w| w.body.clone())
                .collect();
            return json_response(
                StatusCode::OK,
                &json!({"apiVersion": "events.k8s.io/v1", "kind": "EventList", "metadata": {}, "items": items}),
            );
        }
        let ok = match (&method, parts.as_slice()) {
            (&Method::POST, [_, "events"]) => StatusCode::CREATED,
            (&Method::PATCH, [_, "events", _]) => StatusCode::OK,
            _ => return unexpected("only POST and PATCH of Events are served"),
        };
        let bytes = match axum::body::to_bytes(req.into_body(), 1 << 20).await {
            Ok(b) => b,
            Err(e) => return unexpected(&format!("unreadable body: {e}")),
        };
        let Ok(mut body) = serde_json::from_slice::<Value>(&bytes) else {
            return unexpected("body is not JSON");
        };
        api.lock().written.push(Written {
            at: std::time::Instant::now(),
            method,
            path: path.clone(),
            body: body.clone(),
        });
        // Answer as the API server does: the object, with a version.
        let rv = {
            let mut inner = api.lock();
            inner.rv += 1;
            inner.rv
        };
        body["metadata"]["resourceVersion"] = json!(rv.to_string());
        return json_response(ok, &body);
    }
    unexpected("not served by the fake API")
}

/// Serves the fake API on a free loopback port.
pub async fn serve_fake_api(api: Arc<FakeApi>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake API");
    let addr = listener.local_addr().expect("fake API addr");
    let app = axum::Router::new().fallback(handle).with_state(api);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

// ---------------------------------------------------------------- objects

pub fn node(name: &str, arch: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"kubernetes.io/arch": arch, "kubernetes.io/os": "linux"}},
        "status": {"nodeInfo": {"architecture": arch, "operatingSystem": "linux", "bootID": "",
            "containerRuntimeVersion": "containerd://2.0.0", "kernelVersion": "", "kubeProxyVersion": "",
            "kubeletVersion": "v1.33.0", "machineID": "", "osImage": "", "systemUUID": ""}}})
}

pub fn owned_meta(name: &str, api_version: &str, owner_kind: &str, owner: &str) -> Value {
    json!({"metadata": {"namespace": "shop", "name": name, "uid": format!("uid-{name}"),
        "ownerReferences": [{"apiVersion": api_version, "kind": owner_kind, "name": owner,
            "uid": format!("uid-{owner}"), "controller": true}]}})
}

pub fn pod(
    name: &str,
    owner: (&str, &str, &str),
    container: &str,
    image: &str,
    image_id: &str,
    restarts: i32,
) -> Value {
    let (api_version, kind, owner_name) = owner;
    json!({
        "metadata": {"namespace": "shop", "name": name, "uid": format!("uid-{name}"),
            "ownerReferences": [{"apiVersion": api_version, "kind": kind, "name": owner_name,
                "uid": format!("uid-{owner_name}"), "controller": true}]},
        "spec": {"nodeName": "node-a",
            "containers": [{"name": container, "image": image, "imagePullPolicy": "IfNotPresent"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": container, "image": image,
            "imageID": image_id, "ready": true, "restartCount": restarts,
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}
    })
}

// ---------------------------------------------------------------- the child

/// The running binary; killed (and its log printed) if the test panics.
pub struct ChildGuard {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub api: Arc<FakeApi>,
}

impl ChildGuard {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails with the child's log if it exited.
    pub fn assert_alive(&mut self, during: &str) {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            panic!("imagedrift exited ({st}) while {during}");
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "---- imagedrift log ----\n{}\n---- fake API requests ----\n{}\n----",
                self.log_text(),
                self.api.request_log()
            );
        }
    }
}

// ---------------------------------------------------------------- helpers

pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The value of the one sample of `name` whose labels include all of
/// `labels`; `None` when there is none.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let Some((set, value)) = rest.strip_prefix('{').and_then(|r| r.rsplit_once("} ")) else {
            continue;
        };
        if labels
            .iter()
            .all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        {
            assert!(
                found.is_none(),
                "two {name} samples match {labels:?}:\n{text}"
            );
            found = value.trim().parse().ok();
        }
    }
    found
}

/// Polls `$check` (a block giving `Result<T, String>`) until it is `Ok`,
/// failing with `$what` and the last observation at `$deadline`; fails at
/// once if the child exited or the fake API saw a request it does not serve.
#[allow(unused_macros)]
macro_rules! wait_for {
    ($guard:expr, $deadline:expr, $what:expr, $check:block) => {{
        let started = tokio::time::Instant::now();
        loop {
            $guard.assert_alive($what);
            let unexpected = $guard.api.unexpected();
            assert!(
                unexpected.is_empty(),
                "the controller made requests the fake API does not serve:\n{}",
                unexpected.join("\n")
            );
            let r: Result<_, String> = async $check.await;
            match r {
                Ok(v) => {
                    // Step timings, shown when a test fails.
                    println!("{} after {:?}", $what, started.elapsed());
                    break v;
                }
                Err(last) if tokio::time::Instant::now() > $deadline => {
                    panic!("timed out waiting for {}; last seen:\n{last}", $what)
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }};
}

pub async fn metrics(addr: std::net::SocketAddr) -> Result<String, String> {
    match http_get(addr, "/metrics").await {
        Some((200, body)) => Ok(body),
        other => Err(format!("/metrics answered {other:?}")),
    }
}

pub fn events_about<'a>(
    written: &'a [Written],
    kind: &str,
    name: &str,
    reason: &str,
) -> Vec<&'a Written> {
    written
        .iter()
        .filter(|w| {
            w.body["regarding"]["kind"] == kind
                && w.body["regarding"]["name"] == name
                && w.body["reason"] == reason
        })
        .collect()
}
