//! End to end: the real `imagedrift run` binary against a real local
//! registry (Debian's `docker-registry`) and a small fake Kubernetes API
//! server written here. The fake speaks what the controller's watchers ask
//! for (list + watch of pods and nodes, metadata-only list + watch of
//! ReplicaSets and Jobs, bookmarks) and records every Event written; any
//! other request is logged and fails the test.
//!
//! Scenario: two pods judged fresh (first under their ReplicaSet and Job,
//! then, once the held-back owner lists land, under their Deployment and
//! CronJob); the tag of one is re-pushed, the next
//! check (every 10s, the shortest interval) judges it stale and the
//! controller writes `StaleImage` Events for the pod and its Deployment; the
//! node pulls the new content (a MODIFIED pod) and it is fresh again; the
//! pod is deleted and its series vanish; SIGTERM stops the process cleanly.
//! `scan` reads the same fake cluster. Every wait polls for a condition
//! under one overall deadline (about 11 s per test).

#[macro_use]
mod support;

use axum::http::Method;
use oci_client::secrets::RegistryAuth;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::{OCI_INDEX, OCI_MANIFEST, Options, Pusher, RegistryProcess, TempDir};
use tokio::time::Instant;

// The fake API server lives in tests/support/fake_api.rs (the scale bench
// serves its pods from it too).
use support::fake_api::{
    ChildGuard, FakeApi, Kind, events_about, http_get, metrics, node, owned_meta, pod, sample,
    serve_fake_api,
};

// ---------------------------------------------------------------- objects

/// The registry and the fake cluster both tests start from.
struct Cluster {
    registry: RegistryProcess,
    pusher: Pusher,
    host: String,
    /// What `team/app:v1` served first (the app pod runs it).
    first: support::Pushed,
    app_image: String,
    tools_image: String,
    api: Arc<FakeApi>,
    dir: TempDir,
    kubeconfig: PathBuf,
}

/// The registry: a single-arch tag and a multi-arch index. The cluster: one
/// amd64 node, a Deployment's pod running `team/app:v1`, a CronJob's pod
/// running the multi-arch tag (containerd reports the index digest); both
/// under `IfNotPresent`, as the API server defaults a `:v1` tag.
async fn cluster() -> Cluster {
    let registry = tokio::task::spawn_blocking(|| RegistryProcess::start(Options::default()))
        .await
        .expect("start registry");
    let host = registry.host();
    let pusher = Pusher::new(&host, false, RegistryAuth::Anonymous);
    let first = pusher
        .image(
            "team/app",
            "v1",
            OCI_MANIFEST,
            "amd64",
            "app v1, first build",
        )
        .await;
    let amd64 = pusher
        .image("team/tools", "amd64", OCI_MANIFEST, "amd64", "tools amd64")
        .await;
    let arm64 = pusher
        .image("team/tools", "arm64", OCI_MANIFEST, "arm64", "tools arm64")
        .await;
    let index = pusher
        .index(
            "team/tools",
            "v2",
            OCI_INDEX,
            &[("linux/amd64", &amd64), ("linux/arm64/v8", &arm64)],
        )
        .await;

    let app_image = format!("{host}/team/app:v1");
    let tools_image = format!("{host}/team/tools:v2");
    let api = FakeApi::new();
    api.put(Kind::Nodes, node("node-a", "amd64"));
    api.put(
        Kind::ReplicaSets,
        owned_meta("app-5d9c", "apps/v1", "Deployment", "app"),
    );
    api.put(
        Kind::Jobs,
        owned_meta("nightly-29000", "batch/v1", "CronJob", "nightly"),
    );
    api.put(
        Kind::Pods,
        app_pod(&app_image, &format!("{host}/team/app@{}", first.digest), 0),
    );
    api.put(
        Kind::Pods,
        pod(
            "nightly-29000-q7",
            ("batch/v1", "Job", "nightly-29000"),
            "tools",
            &tools_image,
            &format!("{host}/team/tools@{}", index.digest),
            0,
        ),
    );
    let api_addr = serve_fake_api(api.clone()).await;

    let dir = TempDir::new("run-e2e");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{api_addr}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n    namespace: default\n\
             current-context: fake\nusers:\n- name: nobody\n  user: {{}}\n"
        ),
    )
    .expect("write kubeconfig");
    Cluster {
        registry,
        pusher,
        host,
        first,
        app_image,
        tools_image,
        api,
        dir,
        kubeconfig,
    }
}

/// The Deployment's pod, running `image_id`.
fn app_pod(app_image: &str, image_id: &str, restarts: i32) -> Value {
    pod(
        "app-5d9c-x1",
        ("apps/v1", "ReplicaSet", "app-5d9c"),
        "app",
        app_image,
        image_id,
        restarts,
    )
}

/// The binary, with an environment that can't redirect it elsewhere.
/// Fails clearly if the file is not this package's build (another checkout
/// sharing `CARGO_TARGET_DIR` may have replaced it since cargo built it).
fn imagedrift() -> Command {
    let out = Command::new(env!("CARGO_BIN_EXE_imagedrift"))
        .arg("--version")
        .output()
        .expect("run imagedrift --version");
    let version = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        version.trim(),
        concat!("imagedrift ", env!("CARGO_PKG_VERSION")),
        "{} is another build than this test's (shared CARGO_TARGET_DIR?)",
        env!("CARGO_BIN_EXE_imagedrift")
    );
    let mut c = Command::new(env!("CARGO_BIN_EXE_imagedrift"));
    c.env("RUST_LOG", "info,imagedrift=debug");
    for v in [
        "KUBECONFIG",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        c.env_remove(v);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reports_a_repushed_tag_through_metrics_and_events() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let Cluster {
        registry,
        pusher,
        host,
        first,
        app_image,
        tools_image,
        api,
        dir,
        kubeconfig,
    } = cluster().await;
    api.hold_owner_lists.send_replace(true);

    let config = dir.path().join("imagedrift.yaml");
    // 10s is the shortest interval; no jitter; tags are not reused between checks.
    std::fs::write(
        &config,
        "interval: 10s\njitter: 0\nregistries:\n  defaults:\n    tagTtl: 1s\n",
    )
    .expect("write config");
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .expect("listen addr");
    let log = dir.path().join("imagedrift.log");
    let log_file = std::fs::File::create(&log).expect("create log");
    let child = imagedrift()
        .arg("run")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--config")
        .arg(&config)
        .arg("--log-format")
        .arg("json")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().expect("dup log")))
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("start imagedrift");
    let mut guard = ChildGuard {
        child: Some(child),
        log,
        api: api.clone(),
    };

    // 1. Ready once the first pod and node lists arrived (the owner lists
    //    are held back); both containers judged fresh, first under their
    //    direct owners, then, once the owner lists land, under the
    //    Deployment and the CronJob at once.
    wait_for!(guard, deadline, "/readyz to answer 200", {
        match http_get(listen, "/readyz").await {
            Some((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let pod_labels = [
        ("namespace", "shop"),
        ("pod", "app-5d9c-x1"),
        ("container", "app"),
    ];
    let app_stale = [
        ("namespace", "shop"),
        ("pod", "app-5d9c-x1"),
        ("container", "app"),
        ("image", app_image.as_str()),
        ("owner_kind", "Deployment"),
        ("owner_name", "app"),
        ("node", "node-a"),
    ];
    let tools_stale = [
        ("namespace", "shop"),
        ("pod", "nightly-29000-q7"),
        ("container", "tools"),
        ("image", tools_image.as_str()),
        ("owner_kind", "CronJob"),
        ("owner_name", "nightly"),
        ("node", "node-a"),
    ];
    let verdict = |v: &'static str| {
        let mut l = pod_labels.to_vec();
        l.push(("verdict", v));
        l
    };
    wait_for!(
        guard,
        deadline,
        "both containers judged fresh under their direct owners",
        {
            let text = metrics(listen).await?;
            let app = sample(
                &text,
                "imagedrift_container_stale",
                &[
                    ("pod", "app-5d9c-x1"),
                    ("owner_kind", "ReplicaSet"),
                    ("owner_name", "app-5d9c"),
                ],
            );
            let tools = sample(
                &text,
                "imagedrift_container_stale",
                &[
                    ("pod", "nightly-29000-q7"),
                    ("owner_kind", "Job"),
                    ("owner_name", "nightly-29000"),
                ],
            );
            if app == Some(0.0) && tools == Some(0.0) {
                Ok(())
            } else {
                Err(text)
            }
        }
    );
    api.hold_owner_lists.send_replace(false);
    wait_for!(guard, deadline, "both containers judged fresh", {
        let text = metrics(listen).await?;
        let ok = sample(&text, "imagedrift_container_stale", &app_stale) == Some(0.0)
            && sample(&text, "imagedrift_container_verdict", &verdict("fresh")) == Some(1.0)
            && sample(&text, "imagedrift_container_stale", &tools_stale) == Some(0.0)
            && sample(
                &text,
                "imagedrift_container_verdict",
                &[("pod", "nightly-29000-q7"), ("verdict", "fresh")],
            ) == Some(1.0);
        if ok { Ok(()) } else { Err(text) }
    });
    assert!(
        api.written().is_empty(),
        "no Event while everything is fresh: {:?}",
        api.written()
    );
    // The log says when the first full round is done, with its counts as
    // JSON fields.
    let line = wait_for!(guard, deadline, "the first-round summary line", {
        json_log_line(&guard.log_text(), |f| {
            f["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("first full check done in "))
        })
        .ok_or_else(|| guard.log_text())
    });
    let f = &line["fields"];
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(
        (
            &f["containers"],
            &f["judged"],
            &f["fresh"],
            &f["stale"],
            &f["unknown"]
        ),
        (&json!(2), &json!(2), &json!(2), &json!(0), &json!(0)),
        "{line}"
    );
    assert!(
        f["registry_requests"].as_u64().is_some_and(|n| n >= 2),
        "{line}"
    );
    assert!(
        f["message"]
            .as_str()
            .is_some_and(|m| m.contains(": 2 containers judged, 0 stale, 0 unknown; ")),
        "{line}"
    );

    // 2. The tag is re-pushed with new content; the next check (≤ 10s)
    //    judges the running container stale.
    let second = pusher
        .image(
            "team/app",
            "v1",
            OCI_MANIFEST,
            "amd64",
            "app v1, second build",
        )
        .await;
    assert_ne!(first.digest, second.digest);
    wait_for!(guard, deadline, "the app container judged stale", {
        let text = metrics(listen).await?;
        let ok = sample(&text, "imagedrift_container_stale", &app_stale) == Some(1.0)
            && sample(&text, "imagedrift_container_verdict", &verdict("stale")) == Some(1.0)
            && sample(
                &text,
                "imagedrift_workload_stale_containers",
                &[
                    ("namespace", "shop"),
                    ("owner_kind", "Deployment"),
                    ("owner_name", "app"),
                ],
            ) == Some(1.0)
            && sample(&text, "imagedrift_container_stale", &tools_stale) == Some(0.0);
        if ok { Ok(()) } else { Err(text) }
    });
    let written = wait_for!(
        guard,
        deadline,
        "StaleImage Events for the pod and its Deployment",
        {
            let w = api.written();
            let pod_ev = events_about(&w, "Pod", "app-5d9c-x1", "StaleImage").len();
            let dep_ev = events_about(&w, "Deployment", "app", "StaleImage").len();
            if pod_ev >= 1 && dep_ev >= 1 {
                Ok(w)
            } else {
                Err(format!("{w:#?}"))
            }
        }
    );
    let pod_events = events_about(&written, "Pod", "app-5d9c-x1", "StaleImage");
    assert_eq!(
        pod_events.len(),
        1,
        "one StaleImage per transition: {written:#?}"
    );
    let ev = pod_events[0];
    assert_eq!(ev.method, Method::POST);
    assert_eq!(ev.path, "/apis/events.k8s.io/v1/namespaces/shop/events");
    assert_eq!(ev.body["type"], "Warning");
    assert_eq!(ev.body["regarding"]["namespace"], "shop");
    assert_eq!(ev.body["regarding"]["uid"], "uid-app-5d9c-x1");
    assert_eq!(ev.body["reportingController"], "imagedrift");
    let note = ev.body["note"].as_str().expect("note");
    for needle in [
        "Container app",
        app_image.as_str(),
        first.digest.as_str(),
        second.digest.as_str(),
        "node-a",
        "IfNotPresent",
        "restart does not help",
    ] {
        assert!(note.contains(needle), "note lacks {needle:?}: {note}");
    }
    assert!(note.len() <= 1024, "note within the Event limit: {note}");
    // One info line for the transition, naming the container and both
    // digests as fields.
    let stale_line = json_log_line(&guard.log_text(), |f| {
        f["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("stale:"))
    })
    .unwrap_or_else(|| panic!("no stale transition line:\n{}", guard.log_text()));
    let f = &stale_line["fields"];
    assert_eq!(stale_line["level"], "INFO", "{stale_line}");
    for (k, v) in [
        ("namespace", "shop"),
        ("pod", "app-5d9c-x1"),
        ("container", "app"),
        ("kind", "container"),
        ("node", "node-a"),
        ("verdict", "stale"),
        ("reason", "different-config"),
        ("running", first.digest.as_str()),
        ("current", second.digest.as_str()),
    ] {
        assert_eq!(f[k], v, "field {k}: {stale_line}");
    }
    let dep = events_about(&written, "Deployment", "app", "StaleImage");
    assert_eq!(dep.len(), 1, "{written:#?}");
    assert_eq!(dep[0].body["regarding"]["apiVersion"], "apps/v1");
    assert_eq!(dep[0].body["regarding"]["namespace"], "shop");
    assert!(
        written
            .iter()
            .all(|w| w.body["regarding"]["name"] != "nightly-29000-q7"
                && w.body["regarding"]["name"] != "nightly"),
        "nothing about the fresh CronJob pod: {written:#?}"
    );

    // 3. The node pulls the new content (a MODIFIED pod with the new
    //    imageID): fresh again, judged from the cached answer.
    api.put(
        Kind::Pods,
        app_pod(&app_image, &format!("{host}/team/app@{}", second.digest), 1),
    );
    wait_for!(guard, deadline, "the app container fresh again", {
        let text = metrics(listen).await?;
        let w = api.written();
        let ok = sample(&text, "imagedrift_container_stale", &app_stale) == Some(0.0)
            && sample(&text, "imagedrift_container_verdict", &verdict("fresh")) == Some(1.0)
            && events_about(&w, "Pod", "app-5d9c-x1", "ImageUpToDate").len() == 1
            && events_about(&w, "Deployment", "app", "ImageUpToDate").len() == 1;
        if ok {
            Ok(())
        } else {
            Err(format!("{text}\n{w:#?}"))
        }
    });

    let fresh_line = json_log_line(&guard.log_text(), |f| {
        f["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("fresh again:"))
    })
    .unwrap_or_else(|| panic!("no fresh-again line:\n{}", guard.log_text()));
    assert_eq!(fresh_line["fields"]["pod"], "app-5d9c-x1", "{fresh_line}");
    assert_eq!(
        fresh_line["fields"]["running"],
        second.digest.as_str(),
        "{fresh_line}"
    );
    // The Deployment's episode closes, and the log says so with its cause.
    let closed = json_log_line(&guard.log_text(), |f| {
        f["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("fresh again: the workload"))
    })
    .unwrap_or_else(|| panic!("no episode-closed line:\n{}", guard.log_text()));
    let f = &closed["fields"];
    assert_eq!(
        (&f["namespace"], &f["kind"], &f["name"], &f["pods"]),
        (
            &json!("shop"),
            &json!("Deployment"),
            &json!("app"),
            &json!(1)
        ),
        "{closed}"
    );
    assert!(
        f["cause"].as_str().is_some_and(|c| !c.is_empty()),
        "{closed}"
    );

    // 4. The pod goes: its series go with it; the other pod's stay.
    api.delete(Kind::Pods, "shop", "app-5d9c-x1");
    wait_for!(guard, deadline, "the deleted pod's series to vanish", {
        let text = metrics(listen).await?;
        let gone = !text.contains("pod=\"app-5d9c-x1\"");
        let other = sample(&text, "imagedrift_container_stale", &tools_stale) == Some(0.0);
        if gone && other { Ok(()) } else { Err(text) }
    });

    // Every collection was listed and watched as a controller should.
    {
        let inner = api.lock();
        for kind in Kind::ALL {
            assert!(
                inner.watches.get(&kind).copied().unwrap_or(0) >= 1
                    && inner.bookmarks.get(&kind).copied().unwrap_or(0) >= 1,
                "no watch of {kind:?} asking for bookmarks:\n{}",
                inner.requests.join("\n")
            );
        }
    }

    // 5. SIGTERM: a clean exit within the shutdown grace.
    let pid = guard.child.as_ref().expect("child").id();
    // SAFETY: sending a signal to our own child process by its id.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill(SIGTERM)");
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let c = guard.child.as_mut().expect("child");
        if let Some(st) = c.try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            Instant::now() < stop_deadline,
            "imagedrift did not exit within 20s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    guard.child = None;
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{}",
        guard.log_text()
    );
    let log_text = guard.log_text();
    assert!(log_text.contains("SIGTERM"), "{log_text}");
    // The fake spoke what the watchers and the recorder need: no watch
    // retried, no Event refused, nothing else worth a warning.
    let complaints: Vec<&str> = log_text
        .lines()
        .filter(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) => v["level"] == "WARN" || v["level"] == "ERROR",
            // Every line is JSON with --log-format json.
            Err(_) => true,
        })
        .collect();
    assert!(complaints.is_empty(), "warnings in the log:\n{log_text}");
    assert!(
        !log_text.contains('\u{1b}'),
        "no terminal colour codes in a log written to a file:\n{log_text}"
    );
    assert!(
        api.unexpected().is_empty(),
        "unexpected requests: {:?}",
        api.unexpected()
    );
    drop(registry);
}

/// The first JSON log line whose `fields` satisfy `pred`.
fn json_log_line(log: &str, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| pred(&v["fields"]))
}

/// Runs a one-shot command to its end (killed at `deadline`); returns its
/// exit code, stdout and stderr.
async fn one_shot(
    mut cmd: Command,
    dir: &TempDir,
    deadline: Instant,
) -> (Option<i32>, String, String) {
    let out = dir.path().join("one-shot.out");
    let err = dir.path().join("one-shot.err");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::fs::File::create(&out).expect("create stdout file"),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(&err).expect("create stderr file"),
        ))
        .spawn()
        .expect("start imagedrift");
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the one-shot command did not finish in time; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (
        status.code(),
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

fn scan_item<'a>(report: &'a Value, pod: &str) -> &'a Value {
    report["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["pod"] == pod))
        .unwrap_or_else(|| panic!("no item for pod {pod}: {report:#}"))
}

/// `imagedrift scan` reads the same fake cluster once (lists, metadata-only
/// owner lists) and exits 0, then 1 once the tag moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_judges_the_same_cluster_once() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let c = cluster().await;
    let scan = || {
        let mut cmd = imagedrift();
        cmd.args(["scan", "-A", "-o", "json", "--kubeconfig"])
            .arg(&c.kubeconfig);
        cmd
    };

    let (code, stdout, stderr) = one_shot(scan(), &c.dir, deadline).await;
    assert_eq!(
        code,
        Some(0),
        "nothing stale yet; stderr:\n{stderr}\nstdout:\n{stdout}"
    );
    let report: Value = serde_json::from_str(&stdout).expect("scan -o json prints JSON");
    let app = scan_item(&report, "app-5d9c-x1");
    assert_eq!(app["verdict"], "fresh", "{app:#}");
    assert_eq!(app["image"], c.app_image.as_str());
    assert_eq!(app["owner"], json!({"kind": "Deployment", "name": "app"}));
    assert_eq!(app["pullPolicy"], "IfNotPresent");
    assert_eq!(app["node"], "node-a");
    let tools = scan_item(&report, "nightly-29000-q7");
    assert_eq!(tools["verdict"], "fresh", "{tools:#}");
    assert_eq!(tools["image"], c.tools_image.as_str());
    assert_eq!(
        tools["owner"],
        json!({"kind": "CronJob", "name": "nightly"})
    );

    let second = c
        .pusher
        .image(
            "team/app",
            "v1",
            OCI_MANIFEST,
            "amd64",
            "app v1, second build",
        )
        .await;
    let (code, stdout, stderr) = one_shot(scan(), &c.dir, deadline).await;
    assert_eq!(
        code,
        Some(1),
        "something stale; stderr:\n{stderr}\nstdout:\n{stdout}"
    );
    let report: Value = serde_json::from_str(&stdout).expect("scan -o json prints JSON");
    let app = scan_item(&report, "app-5d9c-x1");
    assert_eq!(app["verdict"], "stale", "{app:#}");
    assert_eq!(app["runningDigest"], c.first.digest.as_str(), "{app:#}");
    assert_eq!(app["currentDigest"], second.digest.as_str(), "{app:#}");
    assert_eq!(scan_item(&report, "nightly-29000-q7")["verdict"], "fresh");
    assert!(
        c.api.unexpected().is_empty(),
        "scan made requests the fake API does not serve:\n{}\nall requests:\n{}",
        c.api.unexpected().join("\n"),
        c.api.request_log()
    );
    assert!(c.api.written().is_empty(), "scan writes nothing");
}

/// Writes `content` as `dir/config.json` the way kubelet updates a mounted
/// Secret: a new timestamped directory, then an atomic swap of the `..data`
/// symlink that `config.json` points through.
fn atomic_write(dir: &std::path::Path, generation: u32, content: &str) {
    let data = dir.join(format!("..gen_{generation}"));
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("config.json"), content).expect("write");
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..gen_{generation}"), &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    let link = dir.join("config.json");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("..data/config.json", &link).expect("link");
    }
}

fn docker_auth(host: &str, user: &str, pass: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    json!({"auths": {host: {"auth": auth}}}).to_string()
}

/// A rotated password in the credentials file (a Secret updated in place)
/// reaches a running controller without a restart: the container goes from
/// unknown (unauthorized) to fresh, and the log says the file was reloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_rereads_a_changed_credentials_file() {
    let deadline = Instant::now() + Duration::from_secs(90);
    let registry = tokio::task::spawn_blocking(|| {
        RegistryProcess::start(Options {
            htpasswd: Some(("ci".into(), "rotated-2".into())),
            ..Default::default()
        })
    })
    .await
    .expect("start registry");
    let host = registry.host();
    let pushed = Pusher::new(
        &host,
        false,
        RegistryAuth::Basic("ci".into(), "rotated-2".into()),
    )
    .image("private/app", "v1", OCI_MANIFEST, "amd64", "private app")
    .await;
    let image = format!("{host}/private/app:v1");
    let api = FakeApi::new();
    api.put(Kind::Nodes, node("node-a", "amd64"));
    api.put(
        Kind::ReplicaSets,
        owned_meta("app-5d9c", "apps/v1", "Deployment", "app"),
    );
    api.put(
        Kind::Pods,
        app_pod(&image, &format!("{host}/private/app@{}", pushed.digest), 0),
    );
    let api_addr = serve_fake_api(api.clone()).await;
    let dir = TempDir::new("run-reload");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{api_addr}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n    namespace: default\n\
             current-context: fake\nusers:\n- name: nobody\n  user: {{}}\n"
        ),
    )
    .expect("write kubeconfig");
    let secret = dir.path().join("registry-credentials");
    std::fs::create_dir_all(&secret).expect("secret dir");
    // Yesterday's password.
    atomic_write(&secret, 1, &docker_auth(&host, "ci", "rotated-1"));
    let config = dir.path().join("imagedrift.yaml");
    std::fs::write(
        &config,
        format!(
            "interval: 10s\njitter: 0\nregistries:\n  defaults:\n    tagTtl: 1s\n    failureTtl: 1s\n  credentialsFile: {}\n",
            secret.join("config.json").display()
        ),
    )
    .expect("write config");
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .expect("listen addr");
    let log = dir.path().join("imagedrift.log");
    let log_file = std::fs::File::create(&log).expect("create log");
    let child = imagedrift()
        .arg("run")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().expect("dup log")))
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("start imagedrift");
    let mut guard = ChildGuard {
        child: Some(child),
        log,
        api: api.clone(),
    };
    let verdict = |v: &'static str, reason: &'static str| {
        let mut l = vec![
            ("namespace", "shop"),
            ("pod", "app-5d9c-x1"),
            ("container", "app"),
            ("verdict", v),
        ];
        if !reason.is_empty() {
            l.push(("reason", reason));
        }
        l
    };
    wait_for!(
        guard,
        deadline,
        "unknown (unauthorized) with the old password",
        {
            let text = metrics(listen).await?;
            match sample(
                &text,
                "imagedrift_container_verdict",
                &verdict("unknown", "unauthorized"),
            ) {
                Some(1.0) => Ok(()),
                other => Err(format!("{other:?}\n{text}")),
            }
        }
    );

    // The Secret is rotated: kubelet swaps the ..data symlink.
    atomic_write(&secret, 2, &docker_auth(&host, "ci", "rotated-2"));
    wait_for!(guard, deadline, "the reload logged", {
        let log = guard.log_text();
        if log.contains("reloaded the registry credentials file") {
            Ok(())
        } else {
            Err(log)
        }
    });
    wait_for!(
        guard,
        deadline,
        "fresh with the new password, same process",
        {
            let text = metrics(listen).await?;
            match sample(&text, "imagedrift_container_verdict", &verdict("fresh", "")) {
                Some(1.0) => Ok(()),
                other => Err(format!("{other:?}\n{text}")),
            }
        }
    );
    guard.assert_alive("after the reload");

    // A broken edit keeps the working credentials (and says so).
    atomic_write(&secret, 3, "{not json");
    wait_for!(guard, deadline, "the invalid file reported", {
        let log = guard.log_text();
        if log.contains("keeping the previous credentials") {
            Ok(())
        } else {
            Err(log)
        }
    });
    guard.assert_alive("after an invalid credentials file");
    let log = guard.log_text();
    assert!(
        !log.contains("rotated-1") && !log.contains("rotated-2"),
        "a password in the log:\n{log}"
    );
    drop(registry);
}
