//! A real `docker-registry` whose notifications go to a real `imagedrift
//! run` (the default configuration plus `--webhook-listen` and
//! `--webhook-secrets-dir` enabling the `distribution` and `generic`
//! sources, as deploy/components/webhooks does), and the fake API server with one
//! Deployment's pod running `team/app:v1`. Shared by tests/webhooks.rs and
//! benches/webhook.rs (both declare `support` and `fake_api` at their root).
#![allow(dead_code)]

use crate::fake_api::{self, ChildGuard, FakeApi, Kind};
use crate::support::{OCI_MANIFEST, Options, Pushed, Pusher, RegistryProcess, TempDir};
use oci_client::secrets::RegistryAuth;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The token the registry sends (`Authorization: Bearer …`).
pub const DISTRIBUTION_TOKEN: &str = "registry-notifies-imagedrift";
/// The HMAC secret of the generic source.
pub const GENERIC_SECRET: &str = "generic-hmac-secret";

/// Everything a webhook scenario runs on.
pub struct Setup {
    pub registry: RegistryProcess,
    pub pusher: Pusher,
    pub host: String,
    pub app_image: String,
    pub first: Pushed,
    pub api: Arc<FakeApi>,
    pub guard: ChildGuard,
    /// `/metrics`.
    pub listen: SocketAddr,
    /// The webhook listener.
    pub webhooks: SocketAddr,
    pub dir: TempDir,
}

/// The Deployment's pod, running `image_id`.
pub fn app_pod(app_image: &str, image_id: &str) -> serde_json::Value {
    fake_api::pod(
        "app-5d9c-x1",
        ("apps/v1", "ReplicaSet", "app-5d9c"),
        "app",
        app_image,
        image_id,
        0,
    )
}

/// `imagedrift` with an environment that can't redirect it elsewhere.
fn imagedrift() -> Command {
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

/// The value of an unlabelled sample (`name value`), 0 when absent.
pub fn plain(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A labelled sample, 0 when absent.
pub fn labelled(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    fake_api::sample(text, name, labels).unwrap_or(0.0)
}

/// Registry requests imagedrift made with `method`, from its `/metrics`.
pub fn registry_requests(text: &str, method: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with("imagedrift_registry_requests_total{")
                && l.contains(&format!("method=\"{method}\""))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

/// Starts it all; a non-empty `extra` is a config file's `webhooks:` keys
/// (e.g. `  coalesce: 2s\n`).
/// Returns once the pod was judged fresh and the registry's notification of
/// the first push (queued while imagedrift was not up yet) was handled.
pub async fn start(extra: &str) -> Setup {
    let deadline = Instant::now() + Duration::from_secs(60);
    let webhooks: SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let notifications = format!(
        "notifications:\n  endpoints:\n    - name: imagedrift\n      url: http://{webhooks}/webhooks/distribution\n      headers:\n        Authorization: [\"Bearer {DISTRIBUTION_TOKEN}\"]\n      timeout: 2s\n      threshold: 1\n      backoff: 100ms\n      ignoredmediatypes: [application/octet-stream]\n      ignore:\n        actions: [pull]\n"
    );
    let registry = tokio::task::spawn_blocking(move || {
        RegistryProcess::start(Options {
            extra_config: Some(notifications),
            ..Default::default()
        })
    })
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
    let app_image = format!("{host}/team/app:v1");

    let api = FakeApi::new();
    api.put(Kind::Nodes, fake_api::node("node-a", "amd64"));
    api.put(
        Kind::ReplicaSets,
        fake_api::owned_meta("app-5d9c", "apps/v1", "Deployment", "app"),
    );
    api.put(
        Kind::Jobs,
        fake_api::owned_meta("unused-1", "batch/v1", "CronJob", "unused"),
    );
    api.put(
        Kind::Pods,
        app_pod(&app_image, &format!("{host}/team/app@{}", first.digest)),
    );
    let api_addr = fake_api::serve_fake_api(api.clone()).await;

    let dir = TempDir::new("webhooks");
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
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(
        secrets.join("distribution"),
        format!("{DISTRIBUTION_TOKEN}\n"),
    )
    .unwrap();
    std::fs::write(secrets.join("generic"), GENERIC_SECRET).unwrap();
    // The default configuration (no file unless `extra` says more), the
    // listener and the secrets directory given as the webhooks component
    // does: flags, and a directory whose files name the sources.
    let config = dir.path().join("imagedrift.yaml");
    if !extra.is_empty() {
        std::fs::write(&config, format!("webhooks:\n{extra}")).expect("write config");
    }
    let listen: SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let log = dir.path().join("imagedrift.log");
    let log_file = std::fs::File::create(&log).expect("create log");
    let child = imagedrift()
        .arg("run")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--webhook-listen")
        .arg(webhooks.to_string())
        .arg("--webhook-secrets-dir")
        .arg(&secrets)
        .args(if extra.is_empty() {
            vec![]
        } else {
            vec!["--config".into(), config.clone().into_os_string()]
        })
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
    let fresh = [
        ("namespace", "shop"),
        ("pod", "app-5d9c-x1"),
        ("container", "app"),
        ("verdict", "fresh"),
    ];
    wait_for!(
        guard,
        deadline,
        "the pod judged fresh and the first notification handled",
        {
            let m = fake_api::metrics(listen).await?;
            let from_registry = labelled(
                &m,
                "imagedrift_webhook_requests_total",
                &[("source", "distribution"), ("outcome", "accepted")],
            ) + labelled(
                &m,
                "imagedrift_webhook_requests_total",
                &[("source", "distribution"), ("outcome", "no_match")],
            );
            let accepted = labelled(
                &m,
                "imagedrift_webhook_requests_total",
                &[("source", "distribution"), ("outcome", "accepted")],
            );
            let verdicts = plain(&m, "imagedrift_webhook_to_verdict_seconds_count");
            let is_fresh = labelled(&m, "imagedrift_container_verdict", &fresh);
            if is_fresh == 1.0 && from_registry >= 1.0 && verdicts == accepted {
                Ok(())
            } else {
                Err(format!(
                    "fresh={is_fresh} notifications={from_registry} accepted={accepted} verdicts={verdicts}"
                ))
            }
        }
    );
    Setup {
        registry,
        pusher,
        host,
        app_image,
        first,
        api,
        guard,
        listen,
        webhooks,
        dir,
    }
}
