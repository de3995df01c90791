//! Push → `StaleImage` latency benchmark (not a test). The real
//! `docker-registry` notifies the real `imagedrift run` (default
//! configuration plus the webhook listener, interval 5m) through its
//! `notifications.endpoints`; the fake API server of tests/run_end_to_end.rs
//! records the Events. Each round re-pushes `team/app:v1` with new content
//! and times from the end of the push (the manifest PUT answered) to the
//! moment the fake API received the `StaleImage` Events for both the pod
//! and its Deployment; then the pod "pulls" the new content (a MODIFIED
//! pod) and is judged fresh again before the next round.
//!
//! `cargo bench --bench webhook`; `IMAGEDRIFT_BENCH_PUSHES` (default 50)
//! sets the number of rounds.

#[macro_use]
#[path = "../tests/support/mod.rs"]
mod support;
use support::fake_api;
#[path = "../tests/support/webhook_cluster.rs"]
mod webhook_cluster;

use std::time::Duration;
use support::OCI_MANIFEST;
use tokio::time::Instant;
use webhook_cluster::{app_pod, plain};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn bench(rounds: usize) {
    let mut s = webhook_cluster::start("").await;
    let count = |reason: &str, kind: &str, name: &str, w: &[fake_api::Written]| {
        fake_api::events_about(w, kind, name, reason).len()
    };
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let deadline = Instant::now() + Duration::from_secs(30);
        let w = s.api.written();
        let (pod0, dep0) = (
            count("StaleImage", "Pod", "app-5d9c-x1", &w),
            count("StaleImage", "Deployment", "app", &w),
        );
        let pushed = s
            .pusher
            .image(
                "team/app",
                "v1",
                OCI_MANIFEST,
                "amd64",
                &format!("app v1, build {round}"),
            )
            .await;
        let pushed_at = std::time::Instant::now();
        let api = s.api.clone();
        let took = wait_for!(
            s.guard,
            deadline,
            "StaleImage on the pod and the Deployment",
            {
                let w = api.written();
                let pod = fake_api::events_about(&w, "Pod", "app-5d9c-x1", "StaleImage");
                let dep = fake_api::events_about(&w, "Deployment", "app", "StaleImage");
                if pod.len() > pod0 && dep.len() > dep0 {
                    let at = pod[pod0].at.max(dep[dep0].at);
                    Ok(at.saturating_duration_since(pushed_at))
                } else {
                    Err(format!("{} Events", w.len()))
                }
            }
        );
        latencies.push(took);
        // The node pulls the new content: fresh again (both Events) before the next round.
        let w = s.api.written();
        let (pod1, dep1) = (
            count("ImageUpToDate", "Pod", "app-5d9c-x1", &w),
            count("ImageUpToDate", "Deployment", "app", &w),
        );
        s.api.put(
            fake_api::Kind::Pods,
            app_pod(
                &s.app_image,
                &format!("{}/team/app@{}", s.host, pushed.digest),
            ),
        );
        let api = s.api.clone();
        wait_for!(
            s.guard,
            deadline,
            "ImageUpToDate on the pod and the Deployment",
            {
                let w = api.written();
                if count("ImageUpToDate", "Pod", "app-5d9c-x1", &w) > pod1
                    && count("ImageUpToDate", "Deployment", "app", &w) > dep1
                {
                    Ok(())
                } else {
                    Err(format!("{} Events", w.len()))
                }
            }
        );
    }
    let m = fake_api::metrics(s.listen).await.expect("metrics");
    let n = plain(&m, "imagedrift_webhook_to_verdict_seconds_count");
    let sum = plain(&m, "imagedrift_webhook_to_verdict_seconds_sum");
    latencies.sort();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    println!(
        "push → StaleImage Events (pod and Deployment), {rounds} re-pushes, default config + webhook listener"
    );
    println!("| p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().expect("rounds"))
    );
    println!(
        "imagedrift_webhook_to_verdict_seconds: {n} re-resolves, mean {:.1} ms (of which the 250 ms coalescing window)",
        if n > 0.0 { sum / n * 1000.0 } else { 0.0 }
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing.
    let rounds = std::env::var("IMAGEDRIFT_BENCH_PUSHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50usize)
        .max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench(rounds));
}
