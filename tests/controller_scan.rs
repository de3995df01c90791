//! `scan` / `explain` against a mock API server: the exact list requests,
//! the JSON shape, the exit code, and graceful loss of optional lists.

use http::{Request, Response};
use imagedrift::controller::fake::FakeRegistry;
use imagedrift::controller::oneshot::{OneShotError, Scope, collect, exit_code};
use imagedrift::controller::output;
use imagedrift::controller::secrets::{Anonymous, ApiSecrets, KeyringParser, SecretCredentials};
use imagedrift::facts::{
    Credential, Descriptor, FailureCategory, LookupFailure, Manifest, OCI_MANIFEST, Registry,
    Secret,
};
use imagedrift::reference::{Digest, ImageRef};
use kube::client::Body;
use serde_json::{Value, json};
use std::time::Duration;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

fn pod(name: &str, image: &str, image_id: &str) -> Value {
    json!({
        "metadata": {"namespace": "shop", "name": name, "uid": name,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c", "uid": "rs", "controller": true}]},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]},
        "status": {"containerStatuses": [{"name": "app", "image": image, "imageID": image_id, "ready": true,
            "restartCount": 0, "state": {"running": {}}}]}
    })
}

async fn answer(api: &mut Handle, want_uri: &str, status: u16, body: Value) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), api.next_request())
        .await
        .expect("request never came")
        .expect("service dropped");
    assert_eq!(req.method(), http::Method::GET);
    assert_eq!(req.uri().to_string(), want_uri);
    let resp = Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    send.send_response(resp);
}

fn registry() -> FakeRegistry {
    let reg = FakeRegistry::default();
    let img = ImageRef::parse("registry.example/app:v1").unwrap();
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
    reg
}

#[tokio::test]
async fn scan_lists_once_judges_and_prints_the_documented_json() {
    let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
            pod("web-5d9c-1", "registry.example/app:v1", &format!("registry.example/app@{}", d('a'))),
            pod("web-5d9c-2", "registry.example/app:v1", &format!("registry.example/app@{}", d('b'))),
        ]});
        answer(
            &mut api,
            "/api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb&limit=500",
            200,
            pods,
        )
        .await;
        let forbidden = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Forbidden",
            "message": "nodes is forbidden", "code": 403, "metadata": {}});
        answer(&mut api, "/api/v1/nodes?&limit=500", 403, forbidden).await;
        let rs = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": [
            {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"namespace": "shop", "name": "web-5d9c",
              "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]}}
        ]});
        answer(
            &mut api,
            "/apis/apps/v1/namespaces/shop/replicasets?&limit=500",
            200,
            rs,
        )
        .await;
        let jobs = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": []});
        answer(
            &mut api,
            "/apis/batch/v1/namespaces/shop/jobs?&limit=500",
            200,
            jobs,
        )
        .await;
        api
    });
    let scope = Scope {
        namespace: Some("shop".into()),
        selector: Some("app=web".into()),
        pod: None,
    };
    let rows = collect(client, &registry(), &Anonymous, &scope, 4)
        .await
        .unwrap();
    let mut api = server.await.unwrap();
    assert!(
        !matches!(
            tokio::time::timeout(Duration::from_millis(50), api.next_request()).await,
            Ok(Some(_))
        ),
        "no further API calls"
    );
    assert_eq!(exit_code(&rows), 1, "something is stale");
    let doc: Value = serde_json::from_str(&output::json(&rows)).unwrap();
    assert_eq!(
        doc["items"][0],
        json!({
            "namespace": "shop", "pod": "web-5d9c-1", "container": "app", "containerType": "container",
            "node": "node-a", "image": "registry.example/app:v1", "normalizedImage": "registry.example/app:v1",
            "pullPolicy": "IfNotPresent", "pullPolicySource": "default", "verdict": "stale",
            "reason": "different-config", "runningDigest": d('a').to_string(), "currentDigest": d('b').to_string(),
            "platform": null, "owner": {"kind": "Deployment", "name": "web"},
            "remedies": ["refresh", "pin", "set-policy-always"],
            "pinnedReference": format!("registry.example/app:v1@{}", d('b'))
        })
    );
    assert_eq!(doc["items"][1]["verdict"], "fresh");
    assert!(doc["items"][1].get("pinnedReference").is_none());
    assert_eq!(doc["items"][1]["remedies"], json!([]));
    let table = output::table(&rows, false);
    assert!(
        table.starts_with("NAMESPACE   POD          CONTAINER   VERDICT   REASON"),
        "{table}"
    );
    let wide = output::table(&rows, true);
    assert!(wide.contains("Deployment/web"), "{wide}");
    let text = output::explain(&rows[..1]);
    assert!(text.contains("pull policy:       IfNotPresent, which equals the default for this tag (`v1` is not `latest`)"), "{text}");
    assert!(
        text.contains("what to do:        A restart does not help under IfNotPresent"),
        "{text}"
    );
    // Concrete: the pinned reference and the exact kubectl commands.
    let pin = format!("registry.example/app:v1@{}", d('b'));
    assert!(
        text.contains(&format!("  pinned reference:  {pin}\n")),
        "{text}"
    );
    assert!(
        text.contains(
            "  commands:          crictl pull registry.example/app:v1   # on node node-a"
        ),
        "{text}"
    );
    assert!(
        text.contains("kubectl -n shop rollout restart deployment/web   # after the refresh"),
        "{text}"
    );
    assert!(
        text.contains(
            "kubectl -n shop annotate deployment/web imagedrift.io/remedy=refresh,restart"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "kubectl -n shop set image deployment/web app={pin}\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(r#"kubectl -n shop patch deployment/web -p '{"spec":{"template":{"spec":{"containers":[{"name":"app","imagePullPolicy":"Always"}]}}}}'"#),
        "{text}"
    );
}

#[tokio::test]
async fn explain_of_a_missing_pod_is_an_error() {
    let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let empty = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []});
        answer(
            &mut api,
            "/api/v1/namespaces/shop/pods?&fieldSelector=metadata.name%3Dghost&limit=500",
            200,
            empty,
        )
        .await;
    });
    let scope = Scope {
        namespace: Some("shop".into()),
        selector: None,
        pod: Some("ghost".into()),
    };
    let err = collect(client, &registry(), &Anonymous, &scope, 1)
        .await
        .unwrap_err();
    server.await.unwrap();
    assert!(matches!(err, OneShotError::PodNotFound { .. }));
    assert_eq!(err.to_string(), "pod ghost not found in namespace shop");
}

/// A private registry: answers only with the `u:p` credential.
struct Private(FakeRegistry);

impl Private {
    fn check(creds: &[Credential]) -> Result<(), LookupFailure> {
        let ok = creds.iter().any(|c| {
            matches!(&c.secret, Secret::Basic { username, password } if username == "u" && password == "p")
        });
        if ok {
            Ok(())
        } else {
            Err(LookupFailure::new(
                FailureCategory::Unauthorized,
                "HTTP 401",
            ))
        }
    }
}

impl Registry for Private {
    async fn resolve_tag(
        &self,
        image: &ImageRef,
        creds: &[Credential],
    ) -> Result<Descriptor, LookupFailure> {
        Private::check(creds)?;
        self.0.resolve_tag(image, creds).await
    }

    async fn manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
        creds: &[Credential],
    ) -> Result<std::sync::Arc<Manifest>, LookupFailure> {
        Private::check(creds)?;
        self.0.manifest(image, digest, creds).await
    }
}

#[tokio::test]
async fn scan_with_pull_secrets_reads_them_by_name_and_resolves_with_them() {
    use base64::Engine as _;
    let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let mut p = pod(
            "web-5d9c-1",
            "registry.example/app:v1",
            &format!("registry.example/app@{}", d('a')),
        );
        p["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
        let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [p]});
        answer(
            &mut api,
            "/api/v1/namespaces/shop/pods?&limit=500",
            200,
            pods,
        )
        .await;
        let empty =
            |kind: &str| json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": []});
        answer(&mut api, "/api/v1/nodes?&limit=500", 200, empty("NodeList")).await;
        answer(
            &mut api,
            "/apis/apps/v1/namespaces/shop/replicasets?&limit=500",
            200,
            empty("PartialObjectMetadataList"),
        )
        .await;
        answer(
            &mut api,
            "/apis/batch/v1/namespaces/shop/jobs?&limit=500",
            200,
            empty("PartialObjectMetadataList"),
        )
        .await;
        let auth = base64::engine::general_purpose::STANDARD.encode("u:p");
        let config = json!({"auths": {"registry.example": {"auth": auth}}}).to_string();
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"namespace": "shop", "name": "regcred"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)}});
        answer(
            &mut api,
            "/api/v1/namespaces/shop/secrets/regcred",
            200,
            secret,
        )
        .await;
        api
    });
    let scope = Scope {
        namespace: Some("shop".into()),
        selector: None,
        pod: None,
    };
    let creds = SecretCredentials::new(
        ApiSecrets(client.clone()),
        KeyringParser,
        Duration::from_secs(60),
    );
    let rows = collect(client, &Private(registry()), &creds, &scope, 1)
        .await
        .unwrap();
    let mut api = server.await.unwrap();
    assert!(
        !matches!(
            tokio::time::timeout(Duration::from_millis(50), api.next_request()).await,
            Ok(Some(_))
        ),
        "the secret is read once"
    );
    let doc: Value = serde_json::from_str(&output::json(&rows)).unwrap();
    assert_eq!(doc["items"][0]["verdict"], "stale", "{doc}");
}

#[tokio::test]
async fn scan_pages_its_lists_with_continue_tokens() {
    let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let image_id = format!("registry.example/app@{}", d('b'));
        let page = |name: &str, cont: Option<&str>| {
            let mut meta = json!({"resourceVersion": "7"});
            if let Some(c) = cont {
                meta["continue"] = json!(c);
            }
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": meta,
                   "items": [pod(name, "registry.example/app:v1", &image_id)]})
        };
        answer(
            &mut api,
            "/api/v1/pods?&limit=500",
            200,
            page("web-5d9c-1", Some("t1")),
        )
        .await;
        answer(
            &mut api,
            "/api/v1/pods?&limit=500&continue=t1",
            200,
            page("web-5d9c-2", Some("t2")),
        )
        .await;
        answer(
            &mut api,
            "/api/v1/pods?&limit=500&continue=t2",
            200,
            page("web-5d9c-3", None),
        )
        .await;
        let empty =
            |kind: &str| json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": []});
        answer(&mut api, "/api/v1/nodes?&limit=500", 200, empty("NodeList")).await;
        answer(
            &mut api,
            "/apis/apps/v1/replicasets?&limit=500",
            200,
            empty("PartialObjectMetadataList"),
        )
        .await;
        answer(
            &mut api,
            "/apis/batch/v1/jobs?&limit=500",
            200,
            empty("PartialObjectMetadataList"),
        )
        .await;
    });
    let rows = collect(client, &registry(), &Anonymous, &Scope::default(), 2)
        .await
        .unwrap();
    server.await.unwrap();
    let pods: Vec<&str> = rows.iter().map(|r| &*r.pod.name).collect();
    assert_eq!(pods, ["web-5d9c-1", "web-5d9c-2", "web-5d9c-3"]);
    assert_eq!(exit_code(&rows), 0, "all three fresh");
}
