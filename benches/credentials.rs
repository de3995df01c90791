//! What node-style credentials cost a resolver against a local registry
//! with htpasswd auth, through the code path `run` uses: plugin runs for
//! 1,000 unique tags (an ECR-like plugin answering `Registry` for 12 h),
//! the per-lookup overhead of cached plugin credentials against a
//! credentials file, and one plugin run when nothing is cached. Prints
//! figures; asserts nothing about time. Run: `cargo bench --bench credentials`
//! (needs `docker-registry`).

#[path = "../tests/support/mod.rs"]
mod support;

use futures::StreamExt as _;
use imagedrift::facts::Registry as _;
use imagedrift::reference::ImageRef;
use imagedrift::registry::{RegistriesConfig, Resolver};
use oci_client::secrets::RegistryAuth;
use std::path::Path;
use std::time::{Duration, Instant};
use support::plugins::*;
use support::*;

const TAGS: usize = 1000;
const CONCURRENCY: usize = 16;
const USER: &str = "bench";
const PASS: &str = "secret";

fn resolver(extra: serde_json::Value, tag_ttl: u64) -> (Resolver, prometheus::Registry) {
    let mut json = serde_json::json!({
        "defaults": {"requestsPerSecond": 0, "maxConcurrent": CONCURRENCY, "tagTtl": format!("{tag_ttl}s")}
    });
    for (k, v) in extra.as_object().expect("object") {
        json[k] = v.clone();
    }
    let cfg: RegistriesConfig = serde_json::from_value(json).expect("config");
    let reg = prometheus::Registry::new();
    (Resolver::new(cfg, &reg).expect("resolver"), reg)
}

async fn run_refs(r: &Resolver, refs: &[ImageRef]) -> (usize, Duration) {
    let start = Instant::now();
    let ok = futures::stream::iter(refs.iter().map(|i| r.resolve_tag(i, &[])))
        .buffer_unordered(CONCURRENCY)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    (ok, start.elapsed())
}

fn execs(m: &prometheus::Registry) -> f64 {
    metric(m, "imagedrift_credential_provider_execs_total", &[])
}

fn plugin_setup(dir: &Path, host: &str, key_type: &str, duration: &str) -> serde_json::Value {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    answering_plugin(
        &bin,
        "ecr-like",
        &response(key_type, Some(duration), &[(host, USER, PASS)]),
    );
    let config = dir.join("providers.yaml");
    provider_config(
        &config,
        &[Entry {
            name: "ecr-like",
            match_images: &[host],
            default_cache_duration: "12h",
            extra: "",
        }],
    );
    serde_json::json!({"credentialProviders": {"config": config, "binDir": bin}})
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reg = RegistryProcess::start(Options {
        htpasswd: Some((USER.into(), PASS.into())),
        ..Default::default()
    });
    let host = reg.host();
    let dir = TempDir::new("bench-creds");
    rt.block_on(async {
        let p = Pusher::new(&host, false, RegistryAuth::Basic(USER.into(), PASS.into()));
        let first = p.image("bench/app", "t0", OCI_MANIFEST, "amd64", "bench").await;
        let manifest = {
            let c = reqwest::Client::new();
            let url = format!("http://{host}/v2/bench/app/manifests/{}", first.digest);
            c.get(url)
                .basic_auth(USER, Some(PASS))
                .header("accept", OCI_MANIFEST)
                .send()
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body")
                .to_vec()
        };
        let tags: Vec<String> = (1..TAGS).map(|i| format!("t{i}")).collect();
        futures::stream::iter(tags.iter().map(|t| p.raw_manifest("bench/app", t, manifest.clone(), OCI_MANIFEST)))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let refs: Vec<ImageRef> =
            (0..TAGS).map(|i| ImageRef::parse(&format!("{host}/bench/app:t{i}")).expect("ref")).collect();

        // 1. An ECR-like plugin: cold, then warm (tag cache), 1,000 tags.
        let plugin = plugin_setup(&dir.path().join("registry-key"), &host, "Registry", "12h");
        let (r, m) = resolver(plugin.clone(), 300);
        let (ok, cold) = run_refs(&r, &refs).await;
        let cold_execs = execs(&m);
        let (ok2, warm) = run_refs(&r, &refs).await;
        println!(
            "plugin (cacheKeyType Registry, 12h): {TAGS} unique tags cold: {ok} resolved, {cold_execs} plugin runs, {:.3} s; warm: {ok2} resolved, {} plugin runs in total, {:.3} s",
            cold.as_secs_f64(),
            execs(&m),
            warm.as_secs_f64()
        );

        // 2. Per-lookup overhead: tags never reused, so every lookup asks
        //    its credentials and the registry; plugin (cached) vs file.
        let file = dir.path().join("config.json");
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
        std::fs::write(&file, serde_json::json!({"auths": {&host: {"auth": auth}}}).to_string()).expect("file");
        for (what, extra) in [
            ("credentials file", serde_json::json!({"credentialsFile": file})),
            ("cached plugin", plugin),
        ] {
            let (r, m) = resolver(extra, 0);
            run_refs(&r, &refs[..50]).await;
            let (ok, took) = run_refs(&r, &refs).await;
            println!(
                "{what}: {TAGS} lookups to the registry (tag TTL 0): {ok} resolved, {:.3} s ({:.0} µs per lookup), {} plugin runs",
                took.as_secs_f64(),
                took.as_secs_f64() * 1e6 / TAGS as f64,
                execs(&m)
            );
        }

        // 3. One plugin run: cacheDuration 0s, so every lookup runs it.
        let uncached = plugin_setup(&dir.path().join("no-cache"), &host, "Image", "0s");
        let (r, m) = resolver(uncached, 0);
        let n = 100;
        let start = Instant::now();
        for i in refs.iter().take(n) {
            r.resolve_tag(i, &[]).await.expect("resolve");
        }
        let took = start.elapsed();
        println!(
            "plugin never cached (cacheDuration 0s): {n} sequential lookups, {} plugin runs, {:.1} ms per lookup (run + registry)",
            execs(&m),
            took.as_secs_f64() * 1e3 / n as f64
        );
    });
}
