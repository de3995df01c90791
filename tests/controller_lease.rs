//! Leader election against a mock API server that keeps one Lease: the
//! replica takes the lease, reports leadership, and releases it when
//! dropped. Every request is recorded and checked against the RBAC table.

use http::{Request, Response};
use imagedrift::controller::leader::{LeaseSettings, elect};
use imagedrift::rbac::LEASE_CALLS;
use kube::client::Body;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Calls = Arc<Mutex<Vec<(String, String)>>>;
type Stored = Arc<Mutex<Option<Value>>>;

fn respond(status: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

/// A one-Lease API server: GET, POST (create) and PATCH (merging `spec`).
fn serve(
    mut api: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    calls: Calls,
    stored: Stored,
) {
    tokio::spawn(async move {
        let mut lease: Option<Value> = None;
        while let Some((req, send)) = api.next_request().await {
            *stored.lock().unwrap() = lease.clone();
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            calls.lock().unwrap().push((method.clone(), path));
            let body = req.into_body().collect_bytes().await.unwrap();
            let resp = match (method.as_str(), &mut lease) {
                ("GET", None) => respond(
                    404,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "metadata": {}}),
                ),
                ("GET", Some(l)) => respond(200, l),
                ("POST", _) => {
                    let mut l: Value = serde_json::from_slice(&body).unwrap();
                    l["metadata"]["namespace"] = json!("imagedrift");
                    l["metadata"]["resourceVersion"] = json!("1");
                    lease = Some(l.clone());
                    respond(201, &l)
                }
                ("PATCH", Some(l)) => {
                    let p: Value = serde_json::from_slice(&body).unwrap();
                    if !l["spec"].is_object() {
                        l["spec"] = json!({});
                    }
                    for (k, v) in p["spec"].as_object().unwrap() {
                        if v.is_null() {
                            l["spec"].as_object_mut().unwrap().remove(k);
                        } else {
                            l["spec"][k] = v.clone();
                        }
                    }
                    respond(200, l)
                }
                _ => respond(405, &json!({})),
            };
            *stored.lock().unwrap() = lease.clone();
            send.send_response(resp);
        }
    });
}

#[tokio::test]
async fn takes_and_releases_the_lease_with_only_the_granted_verbs() {
    let (service, api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let calls: Calls = Arc::default();
    let stored: Stored = Arc::default();
    serve(api, calls.clone(), stored.clone());
    let settings = LeaseSettings {
        name: "imagedrift".into(),
        namespace: "imagedrift".into(),
        identity: "imagedrift-7d9f-abcde".into(),
        duration_seconds: 30,
        retry_period: Duration::from_secs(2),
    };
    let mut leadership = elect(client, &settings).await.unwrap();
    let mut rx = leadership.is_leader.subscribe();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| *l))
        .await
        .expect("never became leader")
        .unwrap();
    let holder = |s: &Stored| {
        s.lock()
            .unwrap()
            .as_ref()
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
    };
    assert_eq!(holder(&stored).as_deref(), Some("imagedrift-7d9f-abcde"));
    let task = leadership.task.take().unwrap();
    drop(rx);
    drop(leadership);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("lease task did not stop when leadership was dropped")
        .unwrap()
        .unwrap();

    let calls = calls.lock().unwrap().clone();
    let verb = |m: &str| match m {
        "GET" => "get",
        "POST" => "create",
        "PATCH" => "patch",
        "PUT" => "update",
        other => panic!("unexpected method {other}"),
    };
    for (method, path) in &calls {
        let v = verb(method);
        assert!(
            path == "/apis/coordination.k8s.io/v1/namespaces/imagedrift/leases/imagedrift"
                || (v == "create"
                    && path == "/apis/coordination.k8s.io/v1/namespaces/imagedrift/leases"),
            "{method} {path}"
        );
        assert!(
            LEASE_CALLS
                .iter()
                .any(|(g, r, verb, _)| *g == "coordination.k8s.io" && *r == "leases" && *verb == v),
            "{method} is not in rbac::LEASE_CALLS"
        );
    }
    let methods: Vec<&str> = calls.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        &methods[..2],
        &["GET", "POST"],
        "looked for the lease, then created it: {methods:?}"
    );
    assert!(
        methods.contains(&"PATCH"),
        "took the lease by patching it: {methods:?}"
    );
    assert_eq!(
        holder(&stored),
        None,
        "released the lease on shutdown: {methods:?}"
    );
}
