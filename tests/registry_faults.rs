//! Faults a real registry can't be made to produce, from a local stub:
//! 429 with Retry-After, 500s, HEAD without a digest, 405 on HEAD, a body
//! that doesn't hash to its digest, oversized and slow bodies, a generic
//! Content-Type, the bearer-token challenge flow, and a dead registry.
//! Time runs on a [`ManualClock`]: waits are recorded, never slept.

mod support;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use imagedrift::facts::{FailureCategory, Registry as _};
use imagedrift::reference::{Digest, ImageRef};
use imagedrift::registry::{Clock as _, ManualClock, Resolver};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// A valid OCI manifest body and its digest.
fn manifest_body(seed: &str) -> (Vec<u8>, String) {
    let body = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(seed.as_bytes()), "size": seed.len()},
        "layers": [],
    })
    .to_string()
    .into_bytes();
    let digest = sha256(&body);
    (body, digest)
}

#[derive(Default)]
struct Stub {
    /// (method, path, authorization header) of every request.
    log: Mutex<Vec<(String, String, Option<String>)>>,
    addr: Mutex<String>,
}

impl Stub {
    fn count(&self, method: &str, path_part: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, p, _)| m == method && p.contains(path_part))
            .count()
    }
    fn count_repo(&self, repo: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p, _)| p.contains(&format!("/v2/{repo}/")))
            .count()
    }
}

fn ok(body: Vec<u8>, headers: &[(&str, &str)], with_body: bool) -> Response {
    let mut r = if with_body {
        Response::new(Body::from(body))
    } else {
        Response::new(Body::empty())
    };
    for (k, v) in headers {
        r.headers_mut().insert(
            k.parse::<axum::http::HeaderName>().unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

async fn handle(State(stub): State<Arc<Stub>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let n = {
        let mut log = stub.log.lock().unwrap();
        log.push((method.to_string(), path.clone(), auth.clone()));
        log.iter()
            .filter(|(m, p, _)| *m == method.as_str() && *p == path)
            .count()
    };
    let get = method == Method::GET;
    let repo = if path == "/token" {
        "token"
    } else {
        path.split('/').nth(2).unwrap_or("")
    };
    let (body, digest) = manifest_body(repo);
    let full = [
        ("content-type", OCI_MANIFEST),
        ("docker-content-digest", digest.as_str()),
    ];
    let no_digest = [("content-type", OCI_MANIFEST)];
    match repo {
        "r429" if n == 1 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "3")]).into_response(),
        "r429long" => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "3600")]).into_response(),
        "r500" if n <= 2 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "r500always" => StatusCode::BAD_GATEWAY.into_response(),
        "r429" | "r500" | "plain" => ok(body, &full, get),
        "nodigest" => ok(body, if get { &full[..] } else { &no_digest[..] }, get),
        "head405" if !get => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        "head405" => ok(body, &full, true),
        "badhash" if !get => ok(body, &no_digest, false),
        "badhash" => {
            let wrong = sha256(b"something else");
            ok(body, &[("content-type", OCI_MANIFEST), ("docker-content-digest", &wrong)], true)
        }
        // By digest: the body doesn't hash to the digest asked for.
        "liar" => ok(b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"}}".to_vec(), &no_digest, get),
        "oversized" if !get => ok(body, &no_digest, false),
        "oversized" => ok(vec![b' '; 5 << 20], &no_digest, true),
        "oversizedchunked" if !get => ok(body, &no_digest, false),
        "oversizedchunked" => {
            let chunks = futures::stream::iter((0..5).map(|_| Ok::<_, std::convert::Infallible>(Bytes::from(vec![b' '; 1 << 20]))));
            let mut r = Response::new(Body::from_stream(chunks));
            r.headers_mut().insert("content-type", OCI_MANIFEST.parse().unwrap());
            r
        }
        "slow" if !get => ok(body, &no_digest, false),
        "slow" => {
            use futures::StreamExt as _;
            let first = futures::stream::once(async { Ok::<_, std::convert::Infallible>(Bytes::from_static(b"{\"schemaVersion\":")) });
            let mut r = Response::new(Body::from_stream(first.chain(futures::stream::pending())));
            r.headers_mut().insert("content-type", OCI_MANIFEST.parse().unwrap());
            r
        }
        "generic" => ok(body, &[("content-type", "application/json"), ("docker-content-digest", digest.as_str())], get),
        "token" => {
            let addr = stub.addr.lock().unwrap().clone();
            if path == "/token" {
                let mut headers = HeaderMap::new();
                headers.insert("content-type", "application/json".parse().unwrap());
                // alice:secret
                if auth.as_deref() != Some("Basic YWxpY2U6c2VjcmV0") {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                return (headers, r#"{"token":"tok-1","expires_in":300}"#).into_response();
            }
            if auth.as_deref() == Some("Bearer tok-1") {
                ok(body, &full, get)
            } else {
                let challenge = format!(r#"Bearer realm="http://{addr}/token",service="stub",scope="repository:token:pull""#);
                (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)]).into_response()
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start() -> (Arc<Stub>, String) {
    let stub = Arc::new(Stub::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    *stub.addr.lock().unwrap() = addr.clone();
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(stub.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (stub, addr)
}

fn resolver(json: serde_json::Value, clock: &ManualClock) -> (Resolver, prometheus::Registry) {
    let reg = prometheus::Registry::new();
    let cfg = serde_json::from_value(json).unwrap();
    (
        Resolver::with_clock(cfg, &reg, Arc::new(clock.clone())).unwrap(),
        reg,
    )
}

fn img(addr: &str, repo: &str) -> ImageRef {
    ImageRef::parse(&format!("{addr}/{repo}:v1")).unwrap()
}

/// The digest of the manifest the stub serves for `repo` (any tag).
fn expected(repo: &str) -> String {
    manifest_body(repo).1
}

#[tokio::test]
async fn retry_after_is_honoured_inline() {
    let (stub, addr) = start().await;
    let clock = ManualClock::new();
    let (r, _) = resolver(serde_json::json!({}), &clock);
    let d = r
        .resolve_tag(&img(&addr, "r429"), &[])
        .await
        .expect("second try succeeds");
    assert_eq!(d.digest.as_str(), expected("r429"));
    assert_eq!(stub.count("HEAD", "/r429/"), 2);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(3)]);
}

#[tokio::test]
async fn long_retry_after_fails_and_holds_the_key() {
    let (stub, addr) = start().await;
    let clock = ManualClock::new();
    let (r, m) = resolver(
        serde_json::json!({"defaults": {"failureTtl": "30s"}}),
        &clock,
    );
    let image = img(&addr, "r429long");
    let e = r.resolve_tag(&image, &[]).await.expect_err("rate limited");
    assert_eq!(e.category, FailureCategory::RateLimited);
    assert!(e.detail.contains("Retry-After 3600"), "{e}");
    // The failure names the request that was refused.
    assert!(e.detail.contains("HEAD http://"), "{e}");
    assert!(clock.sleeps().is_empty());
    // Held for the whole Retry-After, not just the failure TTL.
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        r.resolve_tag(&image, &[]).await.expect_err("held").category,
        FailureCategory::RateLimited
    );
    assert_eq!(stub.count_repo("r429long"), 1);
    clock.advance(Duration::from_secs(3001));
    r.resolve_tag(&image, &[]).await.expect_err("asked again");
    assert_eq!(stub.count_repo("r429long"), 2);
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_lookup_failures_total",
            &[("category", "rate_limited")]
        ),
        2.0
    );
}

#[tokio::test]
async fn server_errors_back_off_then_succeed_or_fail() {
    let (stub, addr) = start().await;
    let clock = ManualClock::new();
    let (r, m) = resolver(serde_json::json!({"defaults": {"maxRetries": 2}}), &clock);
    let d = r
        .resolve_tag(&img(&addr, "r500"), &[])
        .await
        .expect("third try succeeds");
    assert_eq!(d.digest.as_str(), expected("r500"));
    assert_eq!(stub.count("HEAD", "/r500/"), 3);
    let waits = clock.sleeps();
    assert_eq!(waits.len(), 2);
    // Exponential with jitter: within [0.25, 0.5] s, then [0.5, 1] s.
    assert!(
        waits[0] >= Duration::from_millis(250) && waits[0] <= Duration::from_millis(500),
        "{waits:?}"
    );
    assert!(
        waits[1] >= Duration::from_millis(500) && waits[1] <= Duration::from_millis(1000),
        "{waits:?}"
    );

    let e = r
        .resolve_tag(&img(&addr, "r500always"), &[])
        .await
        .expect_err("always 502");
    assert_eq!(e.category, FailureCategory::ServerError);
    assert_eq!(stub.count_repo("r500always"), 3);
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_requests_total",
            &[("status_class", "5xx")]
        ),
        5.0
    );
    // A dead registry is not hammered: the failure is remembered.
    r.resolve_tag(&img(&addr, "r500always"), &[])
        .await
        .expect_err("cached");
    assert_eq!(stub.count_repo("r500always"), 3);
}

#[tokio::test]
async fn head_without_digest_falls_back_to_get_and_hashes() {
    let (stub, addr) = start().await;
    let (r, m) = resolver(serde_json::json!({}), &ManualClock::new());
    let image = img(&addr, "nodigest");
    let d = r.resolve_tag(&image, &[]).await.expect("resolve");
    assert_eq!(d.digest.as_str(), expected("nodigest"));
    assert_eq!(
        (
            stub.count("HEAD", "/nodigest/"),
            stub.count("GET", "/nodigest/")
        ),
        (1, 1)
    );
    assert_eq!(
        metric(&m, "imagedrift_registry_get_requests_total", &[]),
        1.0
    );
    // The body fetched by tag is cached by digest: no second GET.
    r.manifest(&image, &d.digest, &[]).await.expect("manifest");
    assert_eq!(stub.count("GET", "/nodigest/"), 1);
}

#[tokio::test]
async fn head_405_falls_back_to_get() {
    let (stub, addr) = start().await;
    let (r, _) = resolver(serde_json::json!({}), &ManualClock::new());
    let d = r
        .resolve_tag(&img(&addr, "head405"), &[])
        .await
        .expect("resolve");
    assert_eq!(d.digest.as_str(), expected("head405"));
    assert_eq!(d.media_type, OCI_MANIFEST);
    assert_eq!(
        (
            stub.count("HEAD", "/head405/"),
            stub.count("GET", "/head405/")
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn bodies_that_do_not_hash_are_rejected() {
    let (_stub, addr) = start().await;
    let (r, _) = resolver(serde_json::json!({}), &ManualClock::new());
    let e = r
        .resolve_tag(&img(&addr, "badhash"), &[])
        .await
        .expect_err("announced digest mismatch");
    assert_eq!(e.category, FailureCategory::InvalidResponse);
    assert!(e.detail.contains("rejected"), "{e}");
    let asked = Digest::parse(&sha256(b"what we asked for")).unwrap();
    let e = r
        .manifest(&img(&addr, "liar"), &asked, &[])
        .await
        .expect_err("asked digest mismatch");
    assert_eq!(e.category, FailureCategory::InvalidResponse);
    assert!(e.detail.contains(asked.as_str()), "{e}");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let (_stub, addr) = start().await;
    let (r, _) = resolver(serde_json::json!({}), &ManualClock::new());
    for repo in ["oversized", "oversizedchunked"] {
        let e = r
            .resolve_tag(&img(&addr, repo), &[])
            .await
            .expect_err("too big");
        assert_eq!(e.category, FailureCategory::InvalidResponse, "{repo}: {e}");
        assert!(e.detail.contains("limit"), "{repo}: {e}");
    }
}

#[tokio::test]
async fn slow_body_times_out() {
    let (_stub, addr) = start().await;
    let (r, _) = resolver(
        serde_json::json!({"defaults": {"timeout": "300ms", "maxRetries": 0}}),
        &ManualClock::new(),
    );
    let e = r
        .resolve_tag(&img(&addr, "slow"), &[])
        .await
        .expect_err("timeout");
    assert_eq!(e.category, FailureCategory::Timeout, "{e}");
}

#[tokio::test]
async fn generic_content_type_asks_the_body_by_digest() {
    let (stub, addr) = start().await;
    let (r, _) = resolver(serde_json::json!({}), &ManualClock::new());
    let d = r
        .resolve_tag(&img(&addr, "generic"), &[])
        .await
        .expect("resolve");
    let digest = expected("generic");
    assert_eq!(
        (d.digest.as_str(), d.media_type.as_str()),
        (digest.as_str(), OCI_MANIFEST)
    );
    assert_eq!(stub.count("GET", "/generic/"), 1);
}

#[tokio::test]
async fn bearer_challenge_flow_with_token_reuse() {
    use base64::Engine as _;
    let (stub, addr) = start().await;
    let clock = ManualClock::new();
    let (r, m) = resolver(serde_json::json!({}), &clock);
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:secret");
    let cfg = serde_json::json!({"auths": {&addr: {"auth": auth}}}).to_string();
    let creds = imagedrift::keyring::Keyring::from_docker_config_json(cfg.as_bytes(), "test")
        .unwrap()
        .lookup(&img(&addr, "token"));
    let d = r
        .resolve_tag(&img(&addr, "token"), &creds)
        .await
        .expect("resolve");
    assert_eq!(d.digest.as_str(), expected("token"));
    // HEAD → 401 + challenge, token GET, HEAD with the token.
    assert_eq!(
        (stub.count("HEAD", "/token/"), stub.count("GET", "/token")),
        (2, 1)
    );
    // Another tag in the same repository reuses the token: one HEAD.
    let other = ImageRef::parse(&format!("{addr}/token:v2")).unwrap();
    r.resolve_tag(&other, &creds).await.expect("resolve");
    assert_eq!(
        (stub.count("HEAD", "/token/"), stub.count("GET", "/token")),
        (3, 1)
    );
    // Token GETs are requests but not manifest GETs.
    assert_eq!(
        metric(&m, "imagedrift_registry_get_requests_total", &[]),
        0.0
    );
    // Anonymous: the token endpoint refuses, the lookup is unauthorized.
    let e = r
        .resolve_tag(&ImageRef::parse(&format!("{addr}/token:v3")).unwrap(), &[])
        .await
        .expect_err("anonymous");
    assert_eq!(e.category, FailureCategory::Unauthorized, "{e}");
}

#[tokio::test]
async fn dead_registry_is_unreachable_and_remembered() {
    let port = free_port();
    let clock = ManualClock::new();
    let (r, m) = resolver(
        serde_json::json!({"defaults": {"failureTtl": "30s"}}),
        &clock,
    );
    let image = ImageRef::parse(&format!("127.0.0.1:{port}/app:v1")).unwrap();
    let e = r
        .resolve_tag(&image, &[])
        .await
        .expect_err("nothing listens");
    assert_eq!(e.category, FailureCategory::Unreachable, "{e}");
    r.resolve_tag(&image, &[]).await.expect_err("cached");
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_requests_total",
            &[("status_class", "error")]
        ),
        1.0
    );
    // Other tags of the dead registry fail fast too.
    let other = ImageRef::parse(&format!("127.0.0.1:{port}/other:v2")).unwrap();
    let e = r.resolve_tag(&other, &[]).await.expect_err("host is down");
    assert_eq!(e.category, FailureCategory::Unreachable, "{e}");
    assert!(e.detail.contains("not asked again"), "{e}");
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_requests_total",
            &[("status_class", "error")]
        ),
        1.0
    );
    clock.advance(Duration::from_secs(31));
    r.resolve_tag(&image, &[]).await.expect_err("asked again");
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_requests_total",
            &[("status_class", "error")]
        ),
        2.0
    );
}

#[tokio::test]
async fn rate_limit_spaces_requests() {
    let (_stub, addr) = start().await;
    let clock = ManualClock::new();
    let (r, _) = resolver(
        serde_json::json!({"hosts": {&addr: {"requestsPerSecond": 2, "insecureHttp": true}}}),
        &clock,
    );
    for tag in ["a", "b", "c", "d"] {
        r.resolve_tag(
            &ImageRef::parse(&format!("{addr}/plain:{tag}")).unwrap(),
            &[],
        )
        .await
        .expect("resolve");
    }
    // Burst of 2, then one every 0.5 s (the manual clock only moves when slept).
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_millis(500), Duration::from_millis(500)]
    );
}

/// A registry that answers 429 (`Retry-After: 1`) to every request past
/// `per_second` within one second of the resolver's (manual) clock.
struct Quota {
    clock: ManualClock,
    start: tokio::time::Instant,
    per_second: usize,
    /// (second, answered 429) of every request.
    log: Mutex<Vec<(u64, bool)>>,
}

async fn quota_handle(State(q): State<Arc<Quota>>, req: Request) -> Response {
    let second = q.clock.now().duration_since(q.start).as_secs();
    let refused = {
        let mut log = q.log.lock().unwrap();
        let n = log.iter().filter(|(s, _)| *s == second).count();
        let refused = n >= q.per_second;
        log.push((second, refused));
        refused
    };
    if refused {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response();
    }
    let (body, digest) = manifest_body(req.uri().path());
    let full = [
        ("content-type", OCI_MANIFEST),
        ("docker-content-digest", digest.as_str()),
    ];
    ok(body, &full, req.method() == Method::GET)
}

#[tokio::test]
async fn pacing_adapts_to_a_per_second_quota() {
    let clock = ManualClock::new();
    let q = Arc::new(Quota {
        clock: clock.clone(),
        start: clock.now(),
        per_second: 20,
        log: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = axum::Router::new()
        .fallback(quota_handle)
        .with_state(q.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Default settings: no configured rate, so the pace starts unpaced.
    let (r, _) = resolver(serde_json::json!({}), &clock);
    for i in 0..200 {
        r.resolve_tag(
            &ImageRef::parse(&format!("{addr}/quota:t{i}")).unwrap(),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("tag {i}: {e}"));
    }
    let log = q.log.lock().unwrap().clone();
    let refused = log.iter().filter(|(_, r)| *r).count();
    let mut per_second = std::collections::BTreeMap::<u64, (usize, usize)>::new();
    for (s, r) in &log {
        let e = per_second.entry(*s).or_default();
        e.0 += 1;
        e.1 += usize::from(*r);
    }
    eprintln!("request pattern (second: sent, refused): {per_second:?}");
    // The first burst meets the quota once; after that the pace stays
    // under it while recovering, instead of hammering it.
    assert!(refused >= 1, "the quota was reached: {per_second:?}");
    assert!(refused <= 3, "{refused} refusals: {per_second:?}");
    let (first, _) = per_second.iter().find(|(_, (_, r))| *r > 0).unwrap();
    for (s, (sent, _)) in per_second.range(first + 1..) {
        assert!(*sent <= 20, "second {s}: {sent} requests");
    }
    // …and did not crawl: 200 tags in well under 200 s of clock time.
    let span = per_second.keys().last().unwrap();
    assert!(*span < 30, "took {span} s: {per_second:?}");
}
