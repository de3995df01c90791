//! Controller benchmark (not a test): 10,000 synthetic pods with 30,000
//! containers using 1,000 unique references. Prints resident memory with the
//! store full, the CPU time of a full re-judgement and the bytes cached per
//! pod.
//!
//! `cargo bench --bench controller` resolves the references against the real
//! local registry (Debian's `docker-registry`, started here, with an old and
//! a current image pushed for each reference); `IMAGEDRIFT_BENCH_REGISTRY=fake`
//! uses an in-memory registry instead. `IMAGEDRIFT_BENCH_PODS` scales it.

#[path = "../tests/support/mod.rs"]
mod support;

use imagedrift::controller::fake::FakeRegistry;
use imagedrift::controller::oneshot::judge_everything;
use imagedrift::controller::reconcile::{Settings, State};
use imagedrift::controller::schedule::NoJitter;
use imagedrift::controller::secrets::Anonymous;
use imagedrift::controller::store::PodView;
use imagedrift::facts::{Descriptor, Manifest, OCI_MANIFEST, Registry};
use imagedrift::metrics::Metrics;
use imagedrift::reference::{Digest, ImageRef};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Counts live heap bytes, so "bytes cached per pod" is exact rather than
/// blurred by allocator fragmentation in RSS.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn digest(n: u64, salt: u64) -> Digest {
    Digest::parse(&format!("sha256:{:032x}{:032x}", n, salt)).expect("synthetic digest")
}

fn reference(i: usize) -> String {
    format!(
        "registry{}.example.com/team-{}/service-{i}:v{}",
        i % 7,
        i % 40,
        i % 13
    )
}

/// The references and, for each, the digest its tag serves now and an
/// older one that some containers still run.
struct Universe {
    references: Vec<String>,
    current: Vec<Digest>,
    old: Vec<Digest>,
}

impl Universe {
    fn synthetic(refs: usize) -> Universe {
        Universe {
            references: (0..refs).map(reference).collect(),
            current: (0..refs).map(|r| digest(r as u64, 0)).collect(),
            old: (0..refs).map(|r| digest(r as u64, 1)).collect(),
        }
    }
}

fn synthetic_pod(i: usize, u: &Universe) -> Pod {
    let refs = u.references.len();
    let containers: Vec<_> = (0..3)
        .map(|c| {
            let r = (i * 3 + c) % refs;
            json!({"name": format!("c{c}"), "image": u.references[r], "imagePullPolicy": "IfNotPresent",
                   "env": [{"name": "X", "value": "y"}], "resources": {"requests": {"cpu": "10m"}}})
        })
        .collect();
    let statuses: Vec<_> = (0..3)
        .map(|c| {
            let r = (i * 3 + c) % refs;
            // Every tenth container runs an older manifest (stale).
            let running = if (i + c).is_multiple_of(10) { &u.old[r] } else { &u.current[r] };
            let repo = &u.references[r];
            let repo = repo.rsplit_once(':').map_or(repo.as_str(), |(n, _)| n).to_string();
            json!({"name": format!("c{c}"), "image": u.references[r], "imageID": format!("{repo}@{running}"),
                   "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": format!("ns-{}", i % 50), "name": format!("web-{i}-abcde"), "uid": format!("uid-{i:08}"),
            "labels": {"app": "web", "pod-template-hash": "abcde"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("web-{}-rs", i / 10),
                                 "uid": format!("rs-{}", i / 10), "controller": true}]},
        "spec": {"nodeName": format!("node-{}", i % 100), "containers": containers},
        "status": {"phase": "Running", "containerStatuses": statuses}
    }))
    .expect("synthetic pod")
}

fn main() {
    let pods: usize = std::env::var("IMAGEDRIFT_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let refs = (pods / 10).max(1);
    let fake = std::env::var("IMAGEDRIFT_BENCH_REGISTRY").is_ok_and(|v| v == "fake");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if fake {
        let universe = Universe::synthetic(refs);
        let registry = FakeRegistry::default();
        for r in 0..refs {
            let img = ImageRef::parse(&universe.references[r]).expect("synthetic reference");
            let (current, old) = (universe.current[r].clone(), universe.old[r].clone());
            registry.set_tag(
                &img,
                Descriptor {
                    digest: current.clone(),
                    media_type: OCI_MANIFEST.into(),
                },
            );
            registry.put_manifest(
                &img,
                current,
                Manifest::Image {
                    config: digest(r as u64, 100),
                    platform: None,
                },
            );
            registry.put_manifest(
                &img,
                old,
                Manifest::Image {
                    config: digest(r as u64, 101),
                    platform: None,
                },
            );
        }
        rt.block_on(bench(
            "in-memory registry",
            pods,
            &universe,
            &registry,
            || format!("{} / {}", registry.resolves(), registry.fetches()),
        ));
    } else {
        let process = support::RegistryProcess::start(support::Options::default());
        let host = process.host();
        let prom = prometheus::Registry::new();
        // No request-rate limit (the default 10/s would make the first check
        // last minutes), and tag answers kept across the simulated interval so
        // the re-judgement measures judging, not the loopback registry.
        let config: imagedrift::registry::RegistriesConfig = serde_json::from_value(json!({
            "defaults": {"requestsPerSecond": 0, "maxConcurrent": 16, "tagTtl": "1h"}
        }))
        .expect("registries config");
        let resolver = imagedrift::registry::Resolver::new(config, &prom).expect("resolver");
        let universe = rt.block_on(push_universe(&host, refs));
        rt.block_on(bench(
            "real local registry",
            pods,
            &universe,
            &resolver,
            || {
                format!(
                    "{} HEAD / {} GET",
                    support::requests(&prom, "HEAD"),
                    support::requests(&prom, "GET")
                )
            },
        ));
    }
}

/// Pushes an old and a current single-arch image for every reference.
async fn push_universe(host: &str, refs: usize) -> Universe {
    use futures::StreamExt as _;
    let pusher = support::Pusher::new(host, false, oci_client::secrets::RegistryAuth::Anonymous);
    let t = std::time::Instant::now();
    let pushed: Vec<(String, Digest, Digest)> = futures::stream::iter(0..refs)
        .map(|i| {
            let pusher = &pusher;
            async move {
                let repo = format!("team-{}/service-{i}", i % 40);
                let tag = format!("v{}", i % 13);
                let old = pusher
                    .image(&repo, &tag, OCI_MANIFEST, "amd64", &format!("old-{i}"))
                    .await;
                let new = pusher
                    .image(&repo, &tag, OCI_MANIFEST, "amd64", &format!("new-{i}"))
                    .await;
                let parse = |d: &str| Digest::parse(d).expect("pushed digest");
                (
                    format!("{host}/{repo}:{tag}"),
                    parse(&new.digest),
                    parse(&old.digest),
                )
            }
        })
        .buffered(16)
        .collect()
        .await;
    eprintln!(
        "pushed {} references (old and current) in {:.1} s",
        refs,
        t.elapsed().as_secs_f64()
    );
    Universe {
        references: pushed.iter().map(|p| p.0.clone()).collect(),
        current: pushed.iter().map(|p| p.1.clone()).collect(),
        old: pushed.iter().map(|p| p.2.clone()).collect(),
    }
}

async fn bench<R: Registry>(
    label: &str,
    pods: usize,
    universe: &Universe,
    registry: &R,
    requests: impl Fn() -> String,
) {
    {
        let settings = Settings {
            interval: Duration::from_secs(300),
            spread: Duration::ZERO,
            unknown_threshold: Duration::from_secs(1800),
        };
        let prom = prometheus::Registry::new();
        let metrics = Metrics::register(&prom).expect("metrics");
        let mut state = State::new(settings, metrics.clone(), Box::new(NoJitter));
        let rss_before = rss_kib();
        let live_before = live();

        // Fill the store the way the watcher does: one object at a time,
        // stripped into a view, the object dropped.
        let t = Instant::now();
        let cpu0 = cpu_seconds();
        let mut pending = Vec::new();
        for i in 0..pods {
            let p = synthetic_pod(i, universe);
            let view = PodView::from_pod(&p, state.strings()).expect("view");
            pending.extend(state.apply_pod(view, t).0);
        }
        let cpu_fill = cpu_seconds() - cpu0;
        drop(pending);
        let rss_views = rss_kib();
        let live_views = live();

        // First full check: resolve every reference, judge every container.
        let cpu1 = cpu_seconds();
        judge_everything(&mut state, registry, &Anonymous, 8, Vec::new()).await;
        let cpu_first = cpu_seconds() - cpu1;
        let rss_full = rss_kib();
        let live_full = live();
        let rows = state.rows();
        let stale = rows
            .iter()
            .filter(|r| {
                r.judgement
                    .as_ref()
                    .is_some_and(|j| j.verdict.as_str() == "stale")
            })
            .count();
        let containers = rows.len();
        drop(rows);

        // A full re-judgement one interval later (the steady state).
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(301)).await;
        let cpu2 = cpu_seconds();
        judge_everything(&mut state, registry, &Anonymous, 8, Vec::new()).await;
        let cpu_rejudge = cpu_seconds() - cpu2;
        let rss_after = rss_kib();
        let cpu3 = cpu_seconds();
        let text = metrics.render().expect("render");
        let cpu_scrape = cpu_seconds() - cpu3;
        let rss_scrape = rss_kib();
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        let scrape_mib = text.len() as f64 / 1048576.0;
        drop(text);

        println!("imagedrift controller benchmark ({label})");
        println!("  pods                         {pods}");
        println!("  containers                   {containers}");
        println!("  unique references            {}", state.reference_count());
        println!("  stale containers             {stale}");
        println!("  registry requests            {}", requests());
        println!("  metric series                {series}");
        println!(
            "  RSS before store             {:.1} MiB",
            rss_before as f64 / 1024.0
        );
        println!(
            "  RSS with views cached        {:.1} MiB",
            rss_views as f64 / 1024.0
        );
        println!(
            "  RSS store full (+verdicts, metrics) {:.1} MiB",
            rss_full as f64 / 1024.0
        );
        println!(
            "  RSS after re-judgement       {:.1} MiB",
            rss_after as f64 / 1024.0
        );
        println!(
            "  heap bytes cached per pod    {:.0} (views and reference index only: {:.0})",
            live_full.saturating_sub(live_before) as f64 / pods as f64,
            live_views.saturating_sub(live_before) as f64 / pods as f64
        );
        println!(
            "  RSS growth per pod           {:.0}",
            (rss_full.saturating_sub(rss_before) * 1024) as f64 / pods as f64
        );
        println!(
            "  RSS after a /metrics scrape  {:.1} MiB ({scrape_mib:.1} MiB of text)",
            rss_scrape as f64 / 1024.0
        );
        println!("  CPU: one /metrics scrape     {cpu_scrape:.3} s");
        println!("  CPU: fill store              {cpu_fill:.3} s");
        println!("  CPU: first full check        {cpu_first:.3} s");
        println!("  CPU: full re-judgement       {cpu_rejudge:.3} s");
    }
}
