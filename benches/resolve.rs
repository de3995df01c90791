//! Resolver cost against a local registry: requests, manifest GETs and wall
//! time for 1,000 unique tags cold and warm at concurrency 16, 1,000 tags
//! cold with the default registry settings (pace, concurrency), and
//! 10,000 concurrent lookups over 100 refs. Prints figures; asserts nothing
//! about time. Run: `cargo bench --bench resolve` (needs `docker-registry`).

#[path = "../tests/support/mod.rs"]
mod support;

use futures::StreamExt as _;
use imagedrift::facts::Registry as _;
use imagedrift::reference::ImageRef;
use imagedrift::registry::{RegistriesConfig, Resolver};
use oci_client::secrets::RegistryAuth;
use std::time::Instant;
use support::*;

const TAGS: usize = 1000;
const CONCURRENCY: usize = 16;

fn resolver() -> (Resolver, prometheus::Registry) {
    resolver_with(serde_json::json!({
        "defaults": {"requestsPerSecond": 0, "maxConcurrent": CONCURRENCY, "tagTtl": "300s"}
    }))
}

fn resolver_with(json: serde_json::Value) -> (Resolver, prometheus::Registry) {
    let cfg: RegistriesConfig = serde_json::from_value(json).expect("config");
    let reg = prometheus::Registry::new();
    (Resolver::new(cfg, &reg).expect("resolver"), reg)
}

fn gets(m: &prometheus::Registry) -> f64 {
    metric(m, "imagedrift_registry_get_requests_total", &[])
}

fn all_requests(m: &prometheus::Registry) -> f64 {
    metric(m, "imagedrift_registry_requests_total", &[])
}

async fn run_refs(r: &Resolver, refs: &[ImageRef]) -> (usize, std::time::Duration) {
    let start = Instant::now();
    let ok = futures::stream::iter(refs.iter().map(|i| r.resolve_tag(i, &[])))
        .buffer_unordered(CONCURRENCY)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    (ok, start.elapsed())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reg = RegistryProcess::start(Options::default());
    let host = reg.host();
    rt.block_on(async {
        let p = Pusher::new(&host, false, RegistryAuth::Anonymous);
        let first = p.image("bench/app", "t0", OCI_MANIFEST, "amd64", "bench").await;
        // One manifest under 1,000 tags (HEAD cost doesn't depend on content).
        let manifest = {
            let c = reqwest::Client::new();
            let url = format!("http://{host}/v2/bench/app/manifests/{}", first.digest);
            c.get(url).header("accept", OCI_MANIFEST).send().await.expect("get").bytes().await.expect("body").to_vec()
        };
        let tags: Vec<String> = (1..TAGS).map(|i| format!("t{i}")).collect();
        futures::stream::iter(tags.iter().map(|t| p.raw_manifest("bench/app", t, manifest.clone(), OCI_MANIFEST)))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let refs: Vec<ImageRef> =
            (0..TAGS).map(|i| ImageRef::parse(&format!("{host}/bench/app:t{i}")).expect("ref")).collect();

        let (r, m) = resolver();
        let (ok, took) = run_refs(&r, &refs).await;
        println!(
            "cold: {TAGS} unique tags at concurrency {CONCURRENCY}: {ok} resolved, {} requests ({} HEAD), {} manifest GETs, {:.3} s ({:.0} lookups/s)",
            all_requests(&m),
            requests(&m, "HEAD"),
            gets(&m),
            took.as_secs_f64(),
            TAGS as f64 / took.as_secs_f64()
        );
        let before = all_requests(&m);
        let (ok, took) = run_refs(&r, &refs).await;
        println!(
            "warm: {TAGS} unique tags at concurrency {CONCURRENCY}: {ok} resolved, {} requests, {} manifest GETs, {:.3} s",
            all_requests(&m) - before,
            gets(&m),
            took.as_secs_f64()
        );

        // What a user who tuned nothing gets: the default registry config
        // (its pace, concurrency and TTL), 1,000 tags cold.
        let (r, m) = resolver_with(serde_json::json!({}));
        let (ok, took) = run_refs(&r, &refs).await;
        println!(
            "cold, default settings: {TAGS} unique tags: {ok} resolved, {} requests ({} HEAD), {:.3} s ({:.0} lookups/s)",
            all_requests(&m),
            requests(&m, "HEAD"),
            took.as_secs_f64(),
            TAGS as f64 / took.as_secs_f64()
        );

        let (r, m) = resolver();
        let hundred = &refs[..100];
        let start = Instant::now();
        let results = futures::future::join_all((0..10_000).map(|i| r.resolve_tag(&hundred[i % 100], &[]))).await;
        let took = start.elapsed();
        println!(
            "burst: 10000 concurrent lookups over 100 refs: {} resolved, {} requests ({} HEAD), {} manifest GETs, {:.3} s",
            results.iter().filter(|r| r.is_ok()).count(),
            all_requests(&m),
            requests(&m, "HEAD"),
            gets(&m),
            took.as_secs_f64()
        );
    });
}
