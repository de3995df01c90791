//! The built binary as a user runs it: exact messages and exit codes for a
//! missing kubeconfig, an unreachable cluster, usage and configuration
//! mistakes, an empty selection, `explain TYPE/NAME`, `--fail-on`,
//! completions and the kubectl plugin name. The cluster is a small fake
//! API server on 127.0.0.1 answering the lists `scan`/`explain` make.

mod support;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use support::TempDir;

/// The binary with an environment that points nowhere by itself.
fn imagedrift(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imagedrift"));
    c.env("HOME", home);
    for v in [
        "KUBECONFIG",
        "RUST_LOG",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        c.env_remove(v);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("IMAGEDRIFT_") {
            c.env_remove(k);
        }
    }
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

fn kubeconfig(dir: &TempDir, server: &str) -> std::path::PathBuf {
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: test\n  context:\n    cluster: c\n    user: u\n    namespace: shop\ncurrent-context: test\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .expect("write kubeconfig");
    path
}

#[test]
fn no_kubeconfig_lists_the_paths_tried() {
    let dir = TempDir::new("cli-nokube");
    let out = imagedrift(dir.path()).arg("scan").output().expect("run");
    assert_eq!(code(&out), 2);
    let home = dir.path().join(".kube").join("config");
    assert_eq!(
        text(&out.stderr),
        format!(
            "imagedrift scan: no kubeconfig found: tried --kubeconfig (not given), $KUBECONFIG (not set), {} (does not exist), and the in-cluster service account (KUBERNETES_SERVICE_HOST not set); point at one with --kubeconfig FILE or KUBECONFIG=FILE\n",
            home.display()
        )
    );
    let out = imagedrift(dir.path())
        .args(["scan", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .expect("run");
    assert_eq!(code(&out), 2);
    assert_eq!(
        text(&out.stderr),
        "imagedrift scan: cannot read the kubeconfig /nonexistent/kubeconfig (--kubeconfig): No such file or directory\n"
    );
}

#[test]
fn an_unreachable_cluster_is_named_with_its_context_and_no_library_lines() {
    let dir = TempDir::new("cli-dead");
    let port = support::free_port();
    let kc = kubeconfig(&dir, &format!("https://127.0.0.1:{port}"));
    let out = imagedrift(dir.path())
        .arg("scan")
        .env("KUBECONFIG", &kc)
        .output()
        .expect("run");
    assert_eq!(code(&out), 2);
    assert_eq!(
        text(&out.stderr),
        format!(
            "imagedrift scan: cannot list pods in namespace shop: cannot reach the Kubernetes API server at https://127.0.0.1:{port} (context \"test\"): Connection refused. Is the cluster running? Check --context / KUBECONFIG (kubectl config current-context)\n"
        )
    );
    // -v shows the libraries' lines too.
    let out = imagedrift(dir.path())
        .args(["-v", "scan"])
        .env("KUBECONFIG", &kc)
        .output()
        .expect("run");
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("kube_client"),
        "{}",
        text(&out.stderr)
    );

    let out = imagedrift(dir.path())
        .args(["explain", "pod/x", "--context", "prod"])
        .env("KUBECONFIG", &kc)
        .output()
        .expect("run");
    assert_eq!(code(&out), 2);
    assert_eq!(
        text(&out.stderr),
        "imagedrift explain: context \"prod\" (--context) is not in the kubeconfig; its contexts are: test (kubectl config get-contexts)\n"
    );
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    let dir = TempDir::new("cli-usage");
    let out = imagedrift(dir.path())
        .args(["scan", "--bogus"])
        .output()
        .expect("run");
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).starts_with("error: unexpected argument '--bogus' found"));

    // A bad value from the environment names the variable.
    let out = imagedrift(dir.path())
        .arg("scan")
        .env("IMAGEDRIFT_OUTPUT", "xml")
        .output()
        .expect("run");
    assert_eq!(code(&out), 2);
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: invalid value 'xml' for '--output <OUTPUT>'"),
        "{err}"
    );
    assert!(
        err.ends_with(
            "note: this value comes from the environment variable IMAGEDRIFT_OUTPUT; fix or unset it\n"
        ),
        "{err}"
    );

    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        "registries:\n  credentialsFile: /nonexistent/config.json\n",
    )
    .unwrap();
    for cmd in [
        vec!["run", "--listen", "127.0.0.1:0"],
        vec!["scan"],
        vec!["resolve", "127.0.0.1:1/app:v1"],
    ] {
        let out = imagedrift(dir.path())
            .args(&cmd)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run");
        assert_eq!(code(&out), 2, "{cmd:?}");
        assert!(
            text(&out.stderr).contains(
                "registries.credentialsFile: cannot read /nonexistent/config.json: No such file or directory; mount the file there or correct the path"
            ),
            "{cmd:?}: {}",
            text(&out.stderr)
        );
    }
    std::fs::write(
        &config,
        "registries:\n  defaults:\n    timeoutSeconds: 10\n",
    )
    .unwrap();
    let out = imagedrift(dir.path())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(code(&out), 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown key `timeoutSeconds`: it is now `timeout`")
            && err.contains(&format!("--> {}:3:5", config.display())),
        "{err}"
    );
    let out = imagedrift(dir.path())
        .args(["run", "--selector", "app in web"])
        .output()
        .expect("run");
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("invalid value for `labelSelector`"),
        "{}",
        text(&out.stderr)
    );
    let out = imagedrift(dir.path())
        .args(["explain", "cronjob/nightly"])
        .output()
        .expect("run");
    assert_eq!(code(&out), 2);
    assert_eq!(
        text(&out.stderr),
        "imagedrift explain: cannot explain \"cronjob\": use pod, deployment, statefulset, daemonset or job (e.g. deployment/nightly)\n"
    );
}

#[test]
fn help_lists_enum_values_and_exit_codes() {
    let dir = TempDir::new("cli-help");
    let out = imagedrift(dir.path())
        .args(["scan", "--help"])
        .output()
        .expect("run");
    assert_eq!(code(&out), 0);
    let help = text(&out.stdout);
    for want in [
        "--fail-on <FAIL_ON>",
        "[env: IMAGEDRIFT_FAIL_ON=]",
        "- stale:",
        "- unknown:",
        "- table:",
        "- wide:",
        "- json:",
        "[env: IMAGEDRIFT_MAX_CONCURRENT_CHECKS=]",
    ] {
        assert!(help.contains(want), "{want} missing from\n{help}");
    }
    // The same flag and variable in `run`.
    let out = imagedrift(dir.path())
        .args(["run", "--help"])
        .output()
        .expect("run");
    let help = text(&out.stdout);
    for want in [
        "--max-concurrent-checks <MAX_CONCURRENT_CHECKS>",
        "[env: IMAGEDRIFT_MAX_CONCURRENT_CHECKS=]",
        "- json:",
    ] {
        assert!(help.contains(want), "{want} missing from\n{help}");
    }
    let out = imagedrift(dir.path())
        .args(["run", "--max-concurrent-checks", "0"])
        .output()
        .expect("run");
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--max-concurrent-checks"),
        "{}",
        text(&out.stderr)
    );
    let out = imagedrift(dir.path()).arg("--help").output().expect("run");
    assert!(text(&out.stdout).contains(
        "Exit codes: 0 ok, 1 found something (stale containers, lint findings), 2 usage, configuration, I/O or cluster errors."
    ));
}

#[test]
fn completions_and_the_kubectl_plugin_name() {
    let dir = TempDir::new("cli-completion");
    for (shell, want) in [
        ("bash", "_imagedrift()"),
        ("zsh", "#compdef imagedrift"),
        ("fish", "complete -c imagedrift"),
    ] {
        let out = imagedrift(dir.path())
            .args(["completion", shell])
            .output()
            .expect("run");
        assert_eq!(code(&out), 0, "{shell}");
        assert!(text(&out.stdout).contains(want), "{shell}");
        assert!(text(&out.stdout).contains("explain"), "{shell}");
    }
    let plugin = dir.path().join("kubectl-imagedrift");
    std::fs::copy(env!("CARGO_BIN_EXE_imagedrift"), &plugin).expect("copy binary");
    let out = Command::new(&plugin)
        .args(["scan", "--help"])
        .env("HOME", dir.path())
        .output()
        .expect("run plugin");
    assert_eq!(code(&out), 0);
    assert!(
        text(&out.stdout).contains("Usage: kubectl imagedrift scan [OPTIONS]"),
        "{}",
        text(&out.stdout)
    );
}

// ------------------------------------------------------------ fake cluster

#[derive(Default)]
struct Fake {
    pods: Vec<Value>,
    seen: Mutex<Vec<String>>,
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": "1"}, "items": items})
}

async fn handle(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    let uri = req.uri().to_string();
    fake.seen.lock().unwrap().push(uri.clone());
    let path = req.uri().path();
    let body = match path {
        "/api/v1/namespaces/shop/pods" => list("PodList", "v1", fake.pods.clone()),
        "/api/v1/nodes" => list("NodeList", "v1", vec![]),
        "/apis/apps/v1/namespaces/shop/replicasets" | "/apis/batch/v1/namespaces/shop/jobs" => {
            list("PartialObjectMetadataList", "meta.k8s.io/v1", vec![])
        }
        "/apis/apps/v1/namespaces/shop/deployments/web" => json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]}]},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}}
        }),
        _ => {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("{path} not found"), "reason": "NotFound", "code": 404});
            return json_response(StatusCode::NOT_FOUND, &status);
        }
    };
    json_response(StatusCode::OK, &body)
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).expect("json"),
    )
        .into_response()
}

/// Serves `fake` on a thread of its own, so the test thread can wait on the
/// binary with `Command::output`.
fn serve(fake: Arc<Fake>) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let app = axum::Router::new().fallback(handle).with_state(fake);
            let _ = axum::serve(listener, app).await;
        });
    });
    rx.recv().expect("fake API address")
}

fn web_pod() -> Value {
    // The registry is a closed port: the verdict is unknown, never stale.
    json!({
        "metadata": {"namespace": "shop", "name": "web-1", "uid": "u1", "labels": {"app": "web", "tier": "front"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "127.0.0.1:1/team/web:v1", "imagePullPolicy": "IfNotPresent"}]},
        "status": {"containerStatuses": [{"name": "app", "image": "127.0.0.1:1/team/web:v1",
            "imageID": format!("127.0.0.1:1/team/web@sha256:{}", "a".repeat(64)), "ready": true,
            "restartCount": 0, "state": {"running": {}}}]}
    })
}

#[test]
fn scan_on_an_empty_selection_says_so_as_kubectl_does() {
    let dir = TempDir::new("cli-empty");
    let addr = serve(Arc::new(Fake::default()));
    let kc = kubeconfig(&dir, &format!("http://{addr}"));
    let out = imagedrift(dir.path())
        .args(["scan", "-l", "app=none"])
        .env("KUBECONFIG", &kc)
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(text(&out.stderr), "No resources found in shop namespace.\n");
    let out = imagedrift(dir.path())
        .args(["scan", "-o", "json"])
        .env("KUBECONFIG", &kc)
        .output()
        .expect("run");
    assert_eq!(code(&out), 0);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc, json!({"items": []}));
}

#[test]
fn explain_a_deployment_judges_the_pods_its_selector_picks() {
    let dir = TempDir::new("cli-explain");
    let fake = Arc::new(Fake {
        pods: vec![web_pod()],
        ..Fake::default()
    });
    let addr = serve(fake.clone());
    let kc = kubeconfig(&dir, &format!("http://{addr}"));
    let out = imagedrift(dir.path())
        .args(["explain", "deployment/web", "-o", "json"])
        .env("KUBECONFIG", &kc)
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["items"][0]["pod"], "web-1");
    assert_eq!(doc["items"][0]["verdict"], "unknown");
    let seen = fake.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|u| u
            == "/api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb%2Ctier+in+%28front%2Cedge%29&limit=500"),
        "{seen:#?}"
    );
    // An unknown verdict fails CI only when asked to.
    let out = imagedrift(dir.path())
        .args(["scan", "--fail-on", "unknown"])
        .env("KUBECONFIG", &kc)
        .output()
        .expect("run");
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("web-1"));
    let out = imagedrift(dir.path())
        .args(["explain", "deploy/gone"])
        .env("KUBECONFIG", &kc)
        .output()
        .expect("run");
    assert_eq!(code(&out), 2);
    assert_eq!(
        text(&out.stderr),
        "imagedrift explain: deployment/gone not found in namespace shop (kubectl get deployment -n shop)\n"
    );
}
