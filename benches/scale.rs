//! Scale benchmark (not a test): the real `imagedrift` binary against the
//! fake API server of the end-to-end test (tests/support/fake_api.rs:
//! paged lists, then watches) serving 10,000 pods whose JSON looks like
//! Deployment pods (managedFields, labels and annotations, env, probes,
//! volumes, 3 containers, ~7 KB each), 100 nodes and their ReplicaSets, with
//! 1,000 unique tags on the real local registry (Debian's `docker-registry`)
//! and 3,000 containers running an older build.
//!
//! Measured from outside, as a cluster would see it: VmHWM/VmRSS from
//! /proc/PID/status, CPU from /proc/PID/stat, `/metrics` over HTTP, and
//! `scan -A -o json` through wait4's rusage. Figures only; nothing asserted.
//!
//! `cargo bench --bench scale` (`IMAGEDRIFT_BENCH_PODS` scales it,
//! `IMAGEDRIFT_BENCH_IDLE_SECS` sets the idle window, 60 by default;
//! `IMAGEDRIFT_BENCH_BIN` measures another build of the binary, e.g. one
//! with a `#[global_allocator]` (how mimalloc and jemalloc were compared);
//! `IMAGEDRIFT_BENCH_PHASES` picks phases from `run,rejudge,modes,scan`;
//! `IMAGEDRIFT_BENCH_KUBECONFIG` loads the same objects into a real API
//! server and measures against it instead: benches/scale_cluster.rs).

mod scale_cluster;
#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{Value, json};
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fake_api::{FakeApi, Kind, serve_fake_api};

const CONTAINERS: usize = 3;
const NODES: usize = 100;

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of a live process, in seconds.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (n(11) + n(12)) / ticks_per_second()
}

/// (VmHWM, VmRSS) of a live process, in MiB.
fn mem_of(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmHWM:") / 1024.0, kib("VmRSS:") / 1024.0)
}

/// A plain HTTP/1.0 GET on loopback: (status, body).
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Containers judged stale, from the per-verdict totals.
fn stale_of(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("imagedrift_containers{") && l.contains("verdict=\"stale\""))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

fn series(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .count()
}

/// A node as a kubelet reports it (heartbeat fields included).
fn node(i: usize, beat: u64) -> Value {
    json!({"metadata": {"name": format!("node-{i}"), "uid": format!("node-uid-{i}"),
        "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": format!("node-{i}"),
            "node.kubernetes.io/instance-type": "m6i.xlarge", "topology.kubernetes.io/zone": format!("zone-{}", i % 3)},
        "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
      "spec": {"podCIDR": format!("10.{}.0.0/24", i % 250), "providerID": format!("aws:///zone/i-{i:017}")},
      "status": {"nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "bootID": format!("boot-{i}"),
            "containerRuntimeVersion": "containerd://2.0.0", "kernelVersion": "6.1.0", "kubeProxyVersion": "", "kubeletVersion": "v1.36.0",
            "machineID": format!("m{i}"), "osImage": "Debian GNU/Linux 12", "systemUUID": format!("u{i}")},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": format!("2026-01-01T00:{:02}:{:02}Z", (beat / 60) % 60, beat % 60),
            "lastTransitionTime": "2026-01-01T00:00:00Z", "message": "kubelet is posting ready status"}],
        "allocatable": {"cpu": "3920m", "memory": "15Gi", "pods": "110"},
        "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}}})
}

/// The managedFields a real API server keeps for a Deployment's pod.
fn managed_fields() -> Value {
    json!([
        {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
            "f:ownerReferences": {".": {}, "k:{\"uid\":\"x\"}": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:env": {".": {}, "k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:ports": {}, "f:readinessProbe": {}, "f:resources": {}, "f:volumeMounts": {}}},
                "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
                "f:terminationGracePeriodSeconds": {}, "f:volumes": {}}}},
        {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:10Z", "subresource": "status",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {},
            "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}}, "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {},
            "f:podIP": {}, "f:podIPs": {".": {}, "k:{\"ip\":\"10.0.0.1\"}": {".": {}, "f:ip": {}}}, "f:startTime": {}}}}
    ])
}

/// One pod of Deployment `d`: 3 containers, each with its image (by index
/// into `refs`) and the digest it runs.
fn pod(i: usize, refs: &[(String, String, String)]) -> Value {
    let d = i / 10;
    let containers: Vec<Value> = (0..CONTAINERS)
        .map(|c| {
            let (image, _, _) = &refs[(i * CONTAINERS + c) % refs.len()];
            let env: Vec<Value> = (0..12)
                .map(|e| json!({"name": format!("SETTING_{e}"), "value": format!("value-{e}-for-service-{d}")}))
                .collect();
            json!({"name": format!("c{c}"), "image": image, "imagePullPolicy": "IfNotPresent",
                "env": env, "ports": [{"containerPort": 8080 + c, "name": format!("http-{c}"), "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080 + c, "scheme": "HTTP"}, "periodSeconds": 10,
                    "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 1},
                "livenessProbe": {"httpGet": {"path": "/live", "port": 8080 + c, "scheme": "HTTP"}, "periodSeconds": 10,
                    "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 1},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"},
                    {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"})
        })
        .collect();
    let statuses: Vec<Value> = (0..CONTAINERS)
        .map(|c| {
            let (image, current, old) = &refs[(i * CONTAINERS + c) % refs.len()];
            // Every tenth container runs the older build: 3,000 of 30,000.
            let running = if (i * CONTAINERS + c).is_multiple_of(10) { old } else { current };
            let repo = image.rsplit_once(':').map_or(image.as_str(), |(n, _)| n);
            json!({"name": format!("c{c}"), "image": image, "imageID": format!("{repo}@{running}"),
                "containerID": format!("containerd://{:064x}", i * 10 + c), "ready": true, "started": true,
                "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:05Z"}},
                "lastState": {}, "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]})
        })
        .collect();
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("app", format!("service-{d}")),
        ("pod-template-hash", "5d9c8f7b6".into()),
        ("app.kubernetes.io/name", format!("service-{d}")),
        ("app.kubernetes.io/instance", "prod".into()),
        ("app.kubernetes.io/version", "1.2.3".into()),
        ("app.kubernetes.io/component", "api".into()),
        ("app.kubernetes.io/part-of", "shop".into()),
        ("app.kubernetes.io/managed-by", "helm".into()),
        ("team", format!("team-{}", d % 40)),
        ("tier", "backend".into()),
        ("env", "production".into()),
    ] {
        labels.insert(k.into(), json!(v));
    }
    json!({
        "metadata": {"namespace": format!("ns-{}", d % 50), "name": format!("service-{d}-5d9c8f7b6-{i:05}"),
            "generateName": format!("service-{d}-5d9c8f7b6-"), "uid": format!("pod-uid-{i:08}"),
            "creationTimestamp": "2026-01-01T00:00:00Z", "labels": labels,
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z",
                "prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/metrics",
                "checksum/config": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "cluster-autoscaler.kubernetes.io/safe-to-evict": "true",
                "kubernetes.io/psp": "restricted", "sidecar.istio.io/inject": "false"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("service-{d}-5d9c8f7b6"),
                "uid": format!("rs-uid-{d}"), "controller": true, "blockOwnerDeletion": true}],
            "managedFields": managed_fields()},
        "spec": {"nodeName": format!("node-{}", i % NODES), "containers": containers,
            "volumes": [{"name": "config", "configMap": {"name": format!("service-{d}-config"), "defaultMode": 420}},
                {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}]}}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "schedulerName": "default-scheduler", "securityContext": {},
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority"},
        "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": format!("10.1.{}.{}", i / 250, i % 250),
            "podIPs": [{"ip": format!("10.1.{}.{}", i / 250, i % 250)}], "startTime": "2026-01-01T00:00:00Z", "qosClass": "Burstable",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "containerStatuses": statuses}
    })
}

fn replica_set(d: usize) -> Value {
    json!({"metadata": {"namespace": format!("ns-{}", d % 50), "name": format!("service-{d}-5d9c8f7b6"),
        "uid": format!("rs-uid-{d}"), "annotations": {"deployment.kubernetes.io/desired-replicas": "10",
            "deployment.kubernetes.io/max-replicas": "13", "deployment.kubernetes.io/revision": "4"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("service-{d}"),
            "uid": format!("deploy-uid-{d}"), "controller": true, "blockOwnerDeletion": true}],
        "managedFields": managed_fields()}})
}

struct Run {
    child: Child,
    listen: String,
    /// Its log file.
    log: std::path::PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// The binary measured: this build, or `IMAGEDRIFT_BENCH_BIN` (another
/// build, for before/after figures).
fn imagedrift() -> Command {
    let bin = std::env::var("IMAGEDRIFT_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_imagedrift").to_string());
    let mut c = Command::new(bin);
    // The runner's info lines say when the first full check is done, so
    // the bench can wait for it without scraping `/metrics` ten times a
    // second (each scrape at 30,000 containers is 11 MB of text, which
    // no Prometheus asks for that often).
    c.env("RUST_LOG", "warn,imagedrift::controller::runner=info");
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
    c.stdin(Stdio::null());
    c
}

fn start_run(dir: &Path, kubeconfig: &Path, name: &str, config: &str) -> Run {
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(&cfg, config).expect("write config");
    let listen = format!("127.0.0.1:{}", support::free_port());
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
    let child = imagedrift()
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--config")
        .arg(&cfg)
        .arg("--listen")
        .arg(&listen)
        .stdout(Stdio::from(log.try_clone().expect("dup log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start imagedrift run");
    Run {
        child,
        listen,
        log: dir.join(format!("{name}.log")),
    }
}

/// Polls `/metrics` every `every` until `pred` holds (at most `limit`):
/// the text then.
fn wait_metrics(
    run: &Run,
    limit: Duration,
    every: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<String> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some((200, text)) = http_get(&run.listen, "/metrics")
            && pred(&text)
        {
            return Some(text);
        }
        std::thread::sleep(every);
    }
    None
}

/// Waits (at most `limit`) for the run's log to say that its first full
/// check is done, then scrapes `/metrics` until `pred` holds: the text then.
fn wait_first_round(run: &Run, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        let log = std::fs::read_to_string(&run.log).unwrap_or_default();
        if log.contains("first full check done") {
            return wait_metrics(
                run,
                until - Instant::now(),
                Duration::from_millis(100),
                pred,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Where the objects are served from.
enum Target {
    /// The fake API server of tests/support.
    Fake(Arc<FakeApi>),
    /// A real API server (`IMAGEDRIFT_BENCH_KUBECONFIG`).
    Real(scale_cluster::Cluster),
}

impl Target {
    /// Events written (fake: creations and patches; real: objects on record).
    fn written(&self, rt: &tokio::runtime::Runtime) -> usize {
        match self {
            Target::Fake(api) => api.written_len(),
            Target::Real(c) => rt.block_on(c.events()),
        }
    }

    /// A node heartbeat.
    fn put_node(&self, rt: &tokio::runtime::Runtime, n: Value) {
        match self {
            Target::Fake(api) => api.put(Kind::Nodes, n),
            Target::Real(c) => rt.block_on(c.beat_node(n)),
        }
    }

    /// A pod changed (here: its status).
    fn put_pod(&self, rt: &tokio::runtime::Runtime, p: Value) {
        match self {
            Target::Fake(api) => api.put(Kind::Pods, p),
            Target::Real(c) => rt.block_on(c.bump_pod(p)),
        }
    }
}

fn main() {
    let pods: usize = std::env::var("IMAGEDRIFT_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let idle_secs: u64 = std::env::var("IMAGEDRIFT_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let tags = (pods / 10).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let registry = support::RegistryProcess::start(support::Options::default());
    let host = registry.host();
    let refs = rt.block_on(support::push_old_and_new(&host, tags));

    let dir = support::TempDir::new("bench-scale");
    let kubeconfig = dir.path().join("kubeconfig");
    let mut bytes = 0usize;
    let real = std::env::var("IMAGEDRIFT_BENCH_KUBECONFIG").ok();
    let cluster = match &real {
        None => {
            let api = FakeApi::new();
            for n in 0..NODES {
                api.put(Kind::Nodes, node(n, 0));
            }
            for d in 0..pods.div_ceil(10) {
                api.put(Kind::ReplicaSets, replica_set(d));
            }
            for i in 0..pods {
                let p = pod(i, &refs);
                bytes += p.to_string().len();
                api.put(Kind::Pods, p);
            }
            let addr = rt.block_on(serve_fake_api(api.clone()));
            std::fs::write(
                &kubeconfig,
                format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
                     contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n\
                     current-context: fake\nusers:\n- name: nobody\n  user: {{}}\n"
                ),
            )
            .expect("kubeconfig");
            Target::Fake(api)
        }
        Some(path) => {
            let c = rt.block_on(scale_cluster::Cluster::connect(path));
            let all: Vec<Value> = (0..pods).map(|i| pod(i, &refs)).collect();
            bytes = all.iter().map(|p| p.to_string().len()).sum();
            rt.block_on(c.load(
                50,
                (0..NODES).map(|n| node(n, 0)).collect(),
                (0..pods.div_ceil(10)).map(replica_set).collect(),
                all,
            ));
            rt.block_on(c.clear_events(50));
            std::fs::copy(path, &kubeconfig).expect("kubeconfig");
            Target::Real(c)
        }
    };
    println!(
        "imagedrift scale benchmark (real binary, {}, real local registry)",
        if real.is_some() {
            "real API server"
        } else {
            "fake API server"
        }
    );
    println!(
        "  pods                          {pods} ({} containers, {:.1} KB JSON each on average)",
        pods * CONTAINERS,
        bytes as f64 / pods as f64 / 1000.0
    );
    println!(
        "  unique tags                   {tags}; stale containers expected {}",
        pods * CONTAINERS / 10
    );

    let phases = std::env::var("IMAGEDRIFT_BENCH_PHASES")
        .unwrap_or_else(|_| "run,rejudge,modes,scan".into());
    let phase = |p: &str| phases.split(',').any(|x| x.trim() == p);
    // The first full verdict: every container judged (the per-verdict
    // totals count all of them), with the expected stale ones found.
    let containers = (pods * CONTAINERS) as f64;
    let expected_stale = (pods * CONTAINERS / 10) as f64;
    let full = move |t: &str| {
        sample(t, "imagedrift_containers") >= containers
            && stale_of(t) >= expected_stale
            && sample(t, "imagedrift_last_full_check_timestamp_seconds") > 0.0
    };
    let mut modes = Vec::new();

    // `run`, default configuration: first full verdict, memory, idle.
    if phase("run") {
        let started = Instant::now();
        let run = start_run(dir.path(), &kubeconfig, "default", "{}\n");
        let pid = run.child.id();
        let Some(text) = wait_first_round(&run, Duration::from_secs(600), full) else {
            eprintln!(
                "no full check within 600 s; see {}",
                dir.path().join("default.log").display()
            );
            std::process::exit(1);
        };
        let first_wall = started.elapsed().as_secs_f64();
        let first_cpu = cpu_of(pid);
        let (hwm_first, rss_first) = mem_of(pid);
        let stale = stale_of(&text);
        let heads = text
            .lines()
            .filter(|l| {
                l.starts_with("imagedrift_registry_requests_total{")
                    && l.contains("method=\"HEAD\"")
            })
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum::<f64>();
        modes.push((
            "all",
            text.len(),
            text.lines().filter(|l| !l.starts_with('#')).count(),
        ));
        println!(
            "  run: first full verdict       {first_wall:.1} s wall, {first_cpu:.1} s CPU ({heads} HEADs, default config)"
        );
        println!("  run: stale containers found   {stale}");
        // The Events of the first verdict (one per stale container and
        // workload) are written after it: idle starts once they stop.
        let settle = Instant::now();
        let cpu_settle = cpu_of(pid);
        let mut last = (cluster.written(&rt), Instant::now());
        while settle.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(250));
            let n = cluster.written(&rt);
            if n != last.0 {
                last = (n, Instant::now());
            } else if last.1.elapsed() >= Duration::from_secs(3) {
                break;
            }
        }
        println!(
            "  run: Events of the first verdict {} written within {:.1} s, {:.2} s CPU",
            last.0,
            last.1.duration_since(settle).as_secs_f64(),
            cpu_of(pid) - cpu_settle
        );
        // Idle: nothing due for minutes; node heartbeats every 10 s, and one
        // pod status bump (a resourceVersion change with the same slim view).
        let cpu0 = cpu_of(pid);
        let t0 = Instant::now();
        let mut beat = 1;
        while t0.elapsed() < Duration::from_secs(idle_secs) {
            std::thread::sleep(
                Duration::from_secs(10)
                    .min(Duration::from_secs(idle_secs).saturating_sub(t0.elapsed())),
            );
            for n in 0..NODES {
                cluster.put_node(&rt, node(n, beat * 10));
            }
            let mut p = pod(beat as usize % pods, &refs);
            p["status"]["conditions"][0]["lastProbeTime"] =
                json!(format!("2026-01-01T01:00:{:02}Z", beat % 60));
            cluster.put_pod(&rt, p);
            beat += 1;
        }
        let idle_cpu = (cpu_of(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
        let (hwm_idle, rss_idle) = mem_of(pid);
        drop(run);
        println!(
            "  run: peak RSS (VmHWM)         {hwm_first:.1} MiB at first verdict, {hwm_idle:.1} MiB after idle"
        );
        println!(
            "  run: steady RSS               {rss_first:.1} MiB after first verdict, {rss_idle:.1} MiB after idle"
        );
        println!(
            "  run: idle CPU                 {idle_cpu:.2} % of a core over {idle_secs} s (heartbeats every 10 s)"
        );
    }

    // `run`, 10 s interval: CPU of one re-check of every reference (a HEAD
    // each: the tag answers live 5 s, as a tagTtl must be shorter than the
    // interval) and re-judgement of every container.
    if phase("rejudge") {
        let run = start_run(
            dir.path(),
            &kubeconfig,
            "rejudge",
            "interval: 10s\nregistries:\n  defaults:\n    tagTtl: 5s\n",
        );
        let pid = run.child.id();
        let rejudge = wait_first_round(&run, Duration::from_secs(600), full).map(|t| {
            let at = sample(&t, "imagedrift_last_full_check_timestamp_seconds");
            let c0 = cpu_of(pid);
            // A scrape a second: the CPU measured includes about ten.
            let next = wait_metrics(
                &run,
                Duration::from_secs(120),
                Duration::from_secs(1),
                |t| sample(t, "imagedrift_last_full_check_timestamp_seconds") > at,
            );
            next.map(|_| cpu_of(pid) - c0)
        });
        drop(run);
        match rejudge {
            Some(Some(c)) => println!(
                "  run: CPU of one re-check      {c:.2} s (every reference, every container)"
            ),
            _ => println!("  run: CPU of one re-check      (no second full check seen)"),
        }
    }

    // `/metrics` and peak RSS per containerSeries mode.
    if phase("modes") {
        for mode in ["stale", "none"] {
            let run = start_run(
                dir.path(),
                &kubeconfig,
                mode,
                &format!("metrics:\n  containerSeries: {mode}\n"),
            );
            if let Some(t) = wait_first_round(&run, Duration::from_secs(600), full) {
                let (hwm, _) = mem_of(run.child.id());
                modes.push((
                    mode,
                    t.len(),
                    t.lines().filter(|l| !l.starts_with('#')).count(),
                ));
                println!("  run: peak RSS, {mode:<5}          {hwm:.1} MiB at first verdict");
                let _ = series(&t, "imagedrift_container_stale");
            }
        }
    }
    for (mode, bytes, n) in &modes {
        println!(
            "  /metrics containerSeries={mode:<5} {:.2} MB, {n} series",
            *bytes as f64 / 1e6
        );
    }

    // `scan -A -o json`.
    if phase("scan") {
        let t = Instant::now();
        let out = dir.path().join("scan.json");
        // Reaped by wait4 below (for its rusage), not by Child::wait. Its peak
        // RSS is read from /proc while it runs (wait4's ru_maxrss would count
        // the pages it shared with this large process between fork and exec).
        #[allow(clippy::zombie_processes)]
        let child = imagedrift()
            .args(["scan", "-A", "-o", "json", "--kubeconfig"])
            .arg(&kubeconfig)
            .stdout(Stdio::from(std::fs::File::create(&out).expect("scan out")))
            .stderr(Stdio::null())
            .spawn()
            .expect("start scan");
        let scan_pid = child.id();
        let mut scan_hwm = 0.0f64;
        let mut status = 0;
        // SAFETY: rusage and status are ours to fill; pid is our child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            let (hwm, _) = mem_of(scan_pid);
            scan_hwm = scan_hwm.max(hwm);
            // SAFETY: as above; WNOHANG returns 0 while it runs.
            let r = unsafe { libc::wait4(scan_pid as i32, &mut status, libc::WNOHANG, &mut usage) };
            if r != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let scan_wall = t.elapsed().as_secs_f64();
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let scan_cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
        let doc: Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap_or_default()).unwrap_or(Value::Null);
        let scan_stale = doc["items"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|i| i["verdict"] == "stale").count());
        println!(
            "  scan -A -o json               {scan_wall:.1} s wall, {scan_cpu:.1} s CPU, peak RSS {scan_hwm:.1} MiB, {scan_stale} stale, exit {}",
            libc::WEXITSTATUS(status)
        );
    }
    drop(registry);
    drop(cluster);
}
