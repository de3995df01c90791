//! Registry push webhooks. The listener in-process: every source's payload
//! with its authentication accepted and mapped to the right reference;
//! wrong and missing signatures, oversized and malformed bodies, unknown
//! sources and rate limits refused, changing nothing. End to end: the real
//! `docker-registry` notifies the real `imagedrift run` (the fake API
//! server of tests/run_end_to_end.rs in front of it): a re-push is a
//! `StaleImage` Event on the pod and its Deployment without waiting for the
//! 5-minute interval, a push for an unwatched reference makes no registry
//! request, and a burst of 100 pushes of one tag is one re-resolve.

#[macro_use]
mod support;
use support::fake_api;
#[path = "support/webhook_cluster.rs"]
mod webhook_cluster;

use imagedrift::webhook::auth::sign;
use imagedrift::webhook::matcher::Matcher;
use imagedrift::webhook::server::Webhooks;
use imagedrift::webhook::{self, Hint, Source, WebhookConfig, WebhookMetrics};
use std::net::SocketAddr;
use std::time::Duration;
use support::{OCI_MANIFEST, TempDir};
use tokio::sync::mpsc;
use tokio::time::Instant;
use webhook_cluster::{GENERIC_SECRET, labelled, plain, registry_requests};

// ------------------------------------------------------------ the listener

const TOKEN: &str = "s3cret-token";
const HMAC: &str = "hmac-key";

struct Listener {
    addr: SocketAddr,
    hints: mpsc::Receiver<Hint>,
    prom: prometheus::Registry,
    _dir: TempDir,
    _token: tokio_util::sync::CancellationToken,
}

/// A listener with every source enabled (GitHub and generic with the HMAC
/// key, the others with the token; ACR reads a custom header), hosts
/// aliased as `registries.hosts` would.
async fn listener(extra: &str) -> Listener {
    let dir = TempDir::new("webhook-listener");
    let token_file = dir.path().join("token");
    let hmac_file = dir.path().join("hmac");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::write(&hmac_file, HMAC).unwrap();
    let mut yaml = format!("listen: 127.0.0.1:1\n{extra}sources:\n");
    for s in Source::ALL {
        let file = if s.signs_body() {
            &hmac_file
        } else {
            &token_file
        };
        let header = if s == Source::Acr {
            ", header: X-Acr-Token"
        } else {
            ""
        };
        yaml += &format!("  {s}: {{secretFile: {}{header}}}\n", file.display());
    }
    let config: WebhookConfig = serde_saphyr::from_str(&yaml).unwrap();
    let registries: imagedrift::registry::RegistriesConfig = serde_saphyr::from_str(
        "hosts:\n  registry.example:5000:\n    endpoint: http://127.0.0.1:5999\n",
    )
    .unwrap();
    let prom = prometheus::Registry::new();
    let metrics = WebhookMetrics::register(&prom).unwrap();
    let (tx, hints) = webhook::channel(Duration::from_millis(250), metrics.clone());
    let router = Webhooks::new(&config, Matcher::new(&registries), metrics, tx)
        .unwrap()
        .router();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn(imagedrift::http::serve(l, router, token.clone()));
    Listener {
        addr,
        hints: hints.rx,
        prom,
        _dir: dir,
        _token: token,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/webhooks")
            .join(format!("{name}.json")),
    )
    .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn outcome(prom: &prometheus::Registry, source: &str, outcome: &str) -> f64 {
    support::metric(
        prom,
        "imagedrift_webhook_requests_total",
        &[("source", source), ("outcome", outcome)],
    )
}

/// The request each source's sender makes, authenticated as it can.
fn authenticated(
    c: &reqwest::Client,
    addr: SocketAddr,
    source: Source,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let url = format!("http://{addr}/webhooks/{source}");
    match source {
        Source::Github => c
            .post(url)
            .header("X-GitHub-Event", "package")
            .header("X-Hub-Signature-256", sign(HMAC.as_bytes(), &body)),
        Source::Generic => c
            .post(url)
            .header("X-Imagedrift-Signature-256", sign(HMAC.as_bytes(), &body)),
        // Docker Hub and Quay can set no header: the token rides in the URL.
        Source::Dockerhub | Source::Quay => c.post(format!("{url}?token={TOKEN}")),
        // Harbor sends its "Auth Header" verbatim.
        Source::Harbor => c.post(url).header("Authorization", TOKEN),
        Source::Acr => c.post(url).header("X-Acr-Token", TOKEN),
        Source::Distribution | Source::Gitlab => c
            .post(url)
            .header("Authorization", format!("Bearer {TOKEN}")),
    }
    .header("Content-Type", "application/json")
    .body(body)
}

#[tokio::test]
async fn every_source_is_accepted_with_its_authentication_and_mapped_to_normalised_references() {
    let mut l = listener("").await;
    let c = client();
    let rows: [(Source, &[&str]); 8] = [
        (Source::Distribution, &["registry.example:5000/team/app:v1"]),
        (Source::Harbor, &["harbor.example.com/library/nginx:1.27"]),
        (
            Source::Dockerhub,
            &["docker.io/svendowideit/testhook:latest"],
        ),
        (Source::Github, &["ghcr.io/octo-org/app:v2.1"]),
        (
            Source::Quay,
            &[
                "quay.io/mynamespace/repository:latest",
                "quay.io/mynamespace/repository:v1.2",
            ],
        ),
        (Source::Acr, &["myregistry.azurecr.io/hello-world:v1"]),
        (
            Source::Gitlab,
            &["registry.gitlab.example.com/group/project/api:main"],
        ),
        (
            Source::Generic,
            &[
                "docker.io/library/nginx:1.27",
                "registry.example/team/app:v1",
            ],
        ),
    ];
    for (source, want) in rows {
        let r = authenticated(&c, l.addr, source, fixture(source.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{source}: {}", r.text().await.unwrap());
        let hint = l.hints.recv().await.unwrap();
        assert_eq!(hint.source, source);
        assert_eq!(hint.references, want, "{source}");
    }
    // A push announced under an endpoint's address also names the host
    // configured with that endpoint.
    let body = br#"{"image": "127.0.0.1:5999/team/app:v1"}"#.to_vec();
    let r = authenticated(&c, l.addr, Source::Generic, body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        l.hints.recv().await.unwrap().references,
        [
            "127.0.0.1:5999/team/app:v1",
            "registry.example:5000/team/app:v1"
        ]
    );
    // Events that move no tag are answered 202 and hand nothing on.
    let r = c
        .post(format!("http://{}/webhooks/github", l.addr))
        .header("X-GitHub-Event", "ping")
        .header("X-Hub-Signature-256", sign(HMAC.as_bytes(), b"{}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(outcome(&l.prom, "github", "ignored"), 1.0);
    assert!(l.hints.try_recv().is_err());
}

#[tokio::test]
async fn refused_requests_change_nothing_and_are_counted() {
    let mut l = listener("").await;
    let c = client();
    let url = |s: &str| format!("http://{}/webhooks/{s}", l.addr);
    let body = fixture("github");

    // Wrong signature: signed with another key, or another body.
    let r = c
        .post(url("github"))
        .header("X-GitHub-Event", "package")
        .header("X-Hub-Signature-256", sign(b"not-the-key", &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(url("generic"))
        .header(
            "X-Imagedrift-Signature-256",
            sign(HMAC.as_bytes(), b"{\"image\": \"a/b:c\"}"),
        )
        .body(r#"{"image": "a/b:d"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Missing signature / token; a wrong token.
    let r = c
        .post(url("github"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("X-Hub-Signature-256"));
    let r = c
        .post(url("distribution"))
        .body(fixture("distribution"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(url("distribution"))
        .header("Authorization", "Bearer guessed")
        .body(fixture("distribution"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(outcome(&l.prom, "github", "unauthorized"), 2.0);
    assert_eq!(outcome(&l.prom, "generic", "unauthorized"), 1.0);
    assert_eq!(outcome(&l.prom, "distribution", "unauthorized"), 2.0);

    // Oversized: declared, and streamed without a length.
    let big = vec![b' '; imagedrift::webhook::server::MAX_BODY + 1];
    let r = authenticated(&c, l.addr, Source::Generic, big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let stream = futures::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = c
        .post(url("distribution"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(outcome(&l.prom, "generic", "too_large"), 1.0);
    assert_eq!(outcome(&l.prom, "distribution", "too_large"), 1.0);

    // Malformed JSON, correctly signed.
    let r = authenticated(&c, l.addr, Source::Generic, b"{\"image\": ".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = authenticated(&c, l.addr, Source::Harbor, b"[1, 2]".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .starts_with("harbor payload is not valid")
    );
    assert_eq!(outcome(&l.prom, "generic", "malformed"), 1.0);

    // Unknown source.
    let r = c.post(url("nexus")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(outcome(&l.prom, "unknown", "malformed"), 1.0);
    // Not a POST.
    let r = c.get(url("generic")).send().await.unwrap();
    assert_eq!(r.status(), 405);

    assert!(
        l.hints.try_recv().is_err(),
        "no refused request reached the loop"
    );
}

#[tokio::test]
async fn each_source_is_rate_limited_on_its_own() {
    let mut l = listener("requestsPerSecond: 0.001\nburst: 3\n").await;
    let c = client();
    let body = br#"{"image": "registry.example/team/app:v1"}"#.to_vec();
    for _ in 0..3 {
        let r = authenticated(&c, l.addr, Source::Generic, body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let r = authenticated(&c, l.addr, Source::Generic, body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let r = authenticated(&c, l.addr, Source::Distribution, fixture("distribution"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "another source has its own bucket");
    assert_eq!(outcome(&l.prom, "generic", "rate_limited"), 1.0);
    let mut n = 0;
    while l.hints.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 4);
}

// ---------------------------------------------------------------- end to end

fn signed_generic(c: &reqwest::Client, addr: SocketAddr, image: &str) -> reqwest::RequestBuilder {
    let body = serde_json::json!({ "image": image })
        .to_string()
        .into_bytes();
    c.post(format!("http://{addr}/webhooks/generic"))
        .header(
            "X-Imagedrift-Signature-256",
            sign(GENERIC_SECRET.as_bytes(), &body),
        )
        .body(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repush_announced_by_the_registry_is_reported_without_waiting_for_the_interval() {
    let mut s = webhook_cluster::start("").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = fake_api::metrics(s.listen).await.unwrap();
    let accepted = labelled(
        &before,
        "imagedrift_webhook_requests_total",
        &[("source", "distribution"), ("outcome", "accepted")],
    );
    let verdicts = plain(&before, "imagedrift_webhook_to_verdict_seconds_count");

    // The re-push; the registry itself sends the notification. The tag's
    // answer from the first check is still in the tag cache (60s): the
    // hinted re-resolve must not be answered from it.
    let pushed_at = std::time::Instant::now();
    let second = s
        .pusher
        .image(
            "team/app",
            "v1",
            OCI_MANIFEST,
            "amd64",
            "app v1, second build",
        )
        .await;
    assert_ne!(second.digest, s.first.digest);
    let api = s.api.clone();
    wait_for!(
        s.guard,
        deadline,
        "StaleImage Events on the pod and its Deployment",
        {
            let w = api.written();
            let pod = fake_api::events_about(&w, "Pod", "app-5d9c-x1", "StaleImage");
            let deploy = fake_api::events_about(&w, "Deployment", "app", "StaleImage");
            match (pod.first(), deploy.first()) {
                (Some(p), Some(d)) => Ok((p.at.max(d.at)) - pushed_at),
                _ => Err(format!("{} Events written", w.len())),
            }
        }
    );
    let after = fake_api::metrics(s.listen).await.unwrap();
    assert_eq!(
        labelled(
            &after,
            "imagedrift_webhook_requests_total",
            &[("source", "distribution"), ("outcome", "accepted")]
        ),
        accepted + 1.0
    );
    assert_eq!(
        plain(&after, "imagedrift_webhook_to_verdict_seconds_count"),
        verdicts + 1.0
    );
    let note = fake_api::events_about(&s.api.written(), "Pod", "app-5d9c-x1", "StaleImage")[0].body
        ["note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        note.contains(&second.digest[7..19]) || note.contains(&second.digest),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwatched_pushes_cost_nothing_and_a_burst_is_one_re_resolve() {
    // A 2s window: the 100 requests below land in it however loaded the
    // machine; a bucket for all 101 requests (the default burst is 100).
    let mut s = webhook_cluster::start("  coalesce: 2s\n  burst: 200\n").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = client();
    let m0 = fake_api::metrics(s.listen).await.unwrap();
    let heads0 = registry_requests(&m0, "HEAD");
    let gets0 = registry_requests(&m0, "GET");

    // A push for a repository no pod uses, on the very registry imagedrift
    // watches: matched against nothing, no registry request.
    let r = signed_generic(&c, s.webhooks, &format!("{}/team/other:v1", s.host))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let listen = s.listen;
    wait_for!(
        s.guard,
        deadline,
        "the unwatched push counted as no_match",
        {
            let m = fake_api::metrics(listen).await?;
            match labelled(
                &m,
                "imagedrift_webhook_requests_total",
                &[("source", "generic"), ("outcome", "no_match")],
            ) {
                1.0 => Ok(()),
                n => Err(format!("no_match={n}")),
            }
        }
    );
    let m1 = fake_api::metrics(s.listen).await.unwrap();
    assert_eq!(
        registry_requests(&m1, "HEAD"),
        heads0,
        "no registry request for an unwatched push"
    );
    assert_eq!(registry_requests(&m1, "GET"), gets0);

    // 100 pushes of the watched tag at once: one re-resolve.
    let verdicts0 = plain(&m1, "imagedrift_webhook_to_verdict_seconds_count");
    let sends = (0..100).map(|_| signed_generic(&c, s.webhooks, &s.app_image).send());
    for r in futures::future::join_all(sends).await {
        assert_eq!(r.unwrap().status(), 202);
    }
    wait_for!(
        s.guard,
        deadline,
        "the 100 hints matched and their re-resolve judged",
        {
            let m = fake_api::metrics(listen).await?;
            let accepted = labelled(
                &m,
                "imagedrift_webhook_requests_total",
                &[("source", "generic"), ("outcome", "accepted")],
            );
            let verdicts = plain(&m, "imagedrift_webhook_to_verdict_seconds_count");
            if accepted == 100.0 && verdicts > verdicts0 {
                Ok(())
            } else {
                Err(format!("accepted={accepted} verdicts={verdicts}"))
            }
        }
    );
    let m2 = fake_api::metrics(s.listen).await.unwrap();
    assert_eq!(
        plain(&m2, "imagedrift_webhook_to_verdict_seconds_count"),
        verdicts0 + 1.0
    );
    assert_eq!(
        registry_requests(&m2, "HEAD"),
        heads0 + 1.0,
        "one re-resolve: one HEAD"
    );
    assert_eq!(
        registry_requests(&m2, "GET"),
        gets0,
        "same content: nothing fetched"
    );
}
