//! The resolver against a real CNCF distribution registry: single-arch OCI
//! and Docker v2, OCI index and Docker manifest list, re-pushed tags, caches
//! and single flight, a mirror endpoint, htpasswd basic auth and TLS.

mod support;

use imagedrift::facts::{FailureCategory, Manifest, Registry as _};
use imagedrift::keyring::Keyring;
use imagedrift::platform::Platform;
use imagedrift::reference::{Digest, ImageRef};
use imagedrift::registry::{ManualClock, RegistriesConfig, Resolver};
use oci_client::secrets::RegistryAuth;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use support::*;

fn plain() -> &'static RegistryProcess {
    static R: OnceLock<RegistryProcess> = OnceLock::new();
    R.get_or_init(|| RegistryProcess::start(Options::default()))
}

const USER: &str = "alice";
const PASS: &str = "wonderland";

fn basic() -> &'static RegistryProcess {
    static R: OnceLock<RegistryProcess> = OnceLock::new();
    R.get_or_init(|| {
        RegistryProcess::start(Options {
            htpasswd: Some((USER.into(), PASS.into())),
            ..Default::default()
        })
    })
}

fn tls() -> &'static (RegistryProcess, TestCa) {
    static R: OnceLock<(RegistryProcess, TestCa)> = OnceLock::new();
    R.get_or_init(|| {
        let ca = TestCa::new();
        let reg = RegistryProcess::start(Options {
            tls: Some((ca.cert_pem.clone(), ca.key_pem.clone())),
            ..Default::default()
        });
        (reg, ca)
    })
}

fn config(json: serde_json::Value) -> RegistriesConfig {
    serde_json::from_value(json).expect("config")
}

fn resolver(json: serde_json::Value) -> (Resolver, prometheus::Registry) {
    let reg = prometheus::Registry::new();
    (Resolver::new(config(json), &reg).expect("resolver"), reg)
}

fn resolver_with_clock(
    json: serde_json::Value,
    clock: &ManualClock,
) -> (Resolver, prometheus::Registry) {
    let reg = prometheus::Registry::new();
    (
        Resolver::with_clock(config(json), &reg, Arc::new(clock.clone())).expect("resolver"),
        reg,
    )
}

fn image(host: &str, repo: &str, tag: &str) -> ImageRef {
    ImageRef::parse(&format!("{host}/{repo}:{tag}")).expect("image ref")
}

fn digest(s: &str) -> Digest {
    Digest::parse(s).expect("digest")
}

fn pusher() -> Pusher {
    Pusher::new(&plain().host(), false, RegistryAuth::Anonymous)
}

#[tokio::test]
async fn single_arch_oci_is_one_head_then_cached() {
    let host = plain().host();
    let pushed = pusher()
        .image("single/oci", "v1", OCI_MANIFEST, "amd64", "oci-1")
        .await;
    let (r, m) = resolver(serde_json::json!({}));
    let img = image(&host, "single/oci", "v1");
    let d = r.resolve_tag(&img, &[]).await.expect("resolve");
    assert_eq!(d.digest.as_str(), pushed.digest);
    assert_eq!(d.media_type, OCI_MANIFEST);
    assert!(!d.is_index());
    assert_eq!((requests(&m, "HEAD"), requests(&m, "GET")), (1.0, 0.0));
    // Within the TTL: no request at all.
    let again = r.resolve_tag(&img, &[]).await.expect("resolve");
    assert_eq!(again, d);
    assert_eq!(requests(&m, "HEAD"), 1.0);
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_cache_lookups_total",
            &[("cache", "tag"), ("result", "hit")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_cache_lookups_total",
            &[("cache", "tag"), ("result", "miss")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_requests_total",
            &[("registry", &host), ("status_class", "2xx")]
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "imagedrift_registry_get_requests_total", &[]),
        0.0
    );
    // The manifest by digest: one GET, then cached forever.
    let man = r.manifest(&img, &d.digest, &[]).await.expect("manifest");
    assert_eq!(
        *man,
        Manifest::Image {
            config: digest(&pushed.config),
            platform: None
        }
    );
    r.manifest(&img, &d.digest, &[]).await.expect("manifest");
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_get_requests_total",
            &[("registry", &host)]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_request_duration_seconds",
            &[("method", "GET")]
        ),
        1.0
    );
}

#[tokio::test]
async fn single_arch_docker_v2() {
    let pushed = pusher()
        .image("single/docker", "v1", DOCKER_V2, "arm64", "docker-1")
        .await;
    let (r, m) = resolver(serde_json::json!({}));
    let d = r
        .resolve_tag(&image(&plain().host(), "single/docker", "v1"), &[])
        .await
        .expect("resolve");
    assert_eq!(
        (d.digest.as_str(), d.media_type.as_str()),
        (pushed.digest.as_str(), DOCKER_V2)
    );
    assert_eq!(requests(&m, "GET"), 0.0);
}

async fn multi_arch(repo: &str, index_type: &'static str, child_type: &'static str) {
    let p = pusher();
    let amd = p
        .image(repo, "amd", child_type, "amd64", &format!("{repo}-amd"))
        .await;
    let arm = p
        .image(repo, "arm", child_type, "arm64", &format!("{repo}-arm"))
        .await;
    let idx = p
        .index(
            repo,
            "v1",
            index_type,
            &[("linux/amd64", &amd), ("linux/arm64/v8", &arm)],
        )
        .await;
    let (r, m) = resolver(serde_json::json!({}));
    let img = image(&plain().host(), repo, "v1");
    let d = r.resolve_tag(&img, &[]).await.expect("resolve");
    // All four types in Accept: the index itself, not the amd64 child.
    assert_eq!(
        (d.digest.as_str(), d.media_type.as_str()),
        (idx.digest.as_str(), index_type)
    );
    assert!(d.is_index());
    let index = r.manifest(&img, &d.digest, &[]).await.expect("index");
    let Manifest::Index { entries } = &*index else {
        panic!("not an index: {index:?}")
    };
    let got: Vec<(String, Option<Platform>)> = entries
        .iter()
        .map(|e| (e.digest.to_string(), e.platform.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                amd.digest.clone(),
                Some(Platform::parse("linux/amd64").unwrap())
            ),
            (
                arm.digest.clone(),
                Some(Platform::parse("linux/arm64/v8").unwrap())
            )
        ]
    );
    let child = r
        .manifest(&img, &digest(&arm.digest), &[])
        .await
        .expect("child");
    assert_eq!(
        *child,
        Manifest::Image {
            config: digest(&arm.config),
            platform: None
        }
    );
    // HEAD for the tag; one GET each for index and child, never again.
    r.manifest(&img, &d.digest, &[]).await.expect("index");
    r.manifest(&img, &digest(&arm.digest), &[])
        .await
        .expect("child");
    assert_eq!((requests(&m, "HEAD"), requests(&m, "GET")), (1.0, 2.0));
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_cache_lookups_total",
            &[("cache", "manifest"), ("result", "hit")]
        ),
        2.0
    );
}

#[tokio::test]
async fn multi_arch_oci_index() {
    multi_arch("multi/oci", OCI_INDEX, OCI_MANIFEST).await;
}

#[tokio::test]
async fn multi_arch_docker_manifest_list() {
    multi_arch("multi/docker", DOCKER_LIST, DOCKER_V2).await;
}

#[tokio::test]
async fn repushed_tag_is_seen_after_the_ttl() {
    let p = pusher();
    let clock = ManualClock::new();
    let (r, m) = resolver_with_clock(serde_json::json!({"defaults": {"tagTtl": "60s"}}), &clock);
    let img = image(&plain().host(), "repush/content", "v1");
    let first = p
        .image("repush/content", "v1", OCI_MANIFEST, "amd64", "old")
        .await;
    assert_eq!(
        r.resolve_tag(&img, &[])
            .await
            .expect("resolve")
            .digest
            .as_str(),
        first.digest
    );
    let second = p
        .image("repush/content", "v1", OCI_MANIFEST, "amd64", "new")
        .await;
    assert_ne!(first.digest, second.digest);
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        r.resolve_tag(&img, &[])
            .await
            .expect("cached")
            .digest
            .as_str(),
        first.digest
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        r.resolve_tag(&img, &[])
            .await
            .expect("resolve")
            .digest
            .as_str(),
        second.digest
    );
    assert_eq!(requests(&m, "HEAD"), 2.0);
}

#[tokio::test]
async fn repushed_index_keeps_the_platform_manifest() {
    let p = pusher();
    let repo = "repush/index";
    let amd = p
        .image(repo, "amd", OCI_MANIFEST, "amd64", "same-amd")
        .await;
    let arm = p.image(repo, "arm", OCI_MANIFEST, "arm64", "arm-1").await;
    let arm2 = p.image(repo, "arm2", OCI_MANIFEST, "arm64", "arm-2").await;
    let old = p
        .index(
            repo,
            "v1",
            OCI_INDEX,
            &[("linux/amd64", &amd), ("linux/arm64", &arm)],
        )
        .await;
    let (r, _) = resolver(serde_json::json!({"defaults": {"tagTtl": 0}}));
    let img = image(&plain().host(), repo, "v1");
    assert_eq!(
        r.resolve_tag(&img, &[])
            .await
            .expect("resolve")
            .digest
            .as_str(),
        old.digest
    );
    let new = p
        .index(
            repo,
            "v1",
            OCI_INDEX,
            &[("linux/amd64", &amd), ("linux/arm64", &arm2)],
        )
        .await;
    let d = r.resolve_tag(&img, &[]).await.expect("resolve");
    assert_eq!(d.digest.as_str(), new.digest);
    let amd64 = Platform::parse("linux/amd64").unwrap();
    for idx in [&old.digest, &new.digest] {
        let m = r.manifest(&img, &digest(idx), &[]).await.expect("index");
        let Manifest::Index { entries } = &*m else {
            panic!("not an index")
        };
        let child = entries
            .iter()
            .find(|e| e.platform.as_ref() == Some(&amd64))
            .expect("amd64 entry");
        assert_eq!(child.digest.as_str(), amd.digest);
    }
}

#[tokio::test]
async fn missing_tag_and_repo_are_not_found_and_remembered() {
    let p = pusher();
    p.image("exists/app", "v1", OCI_MANIFEST, "amd64", "exists")
        .await;
    let (r, m) = resolver(serde_json::json!({}));
    let host = plain().host();
    for (img, why) in [
        (
            image(&host, "exists/app", "nope"),
            "the registry has no such tag or digest in this repository (MANIFEST_UNKNOWN)",
        ),
        // distribution 2.8 answers MANIFEST_UNKNOWN for a repository it has
        // never seen too (NAME_UNKNOWN only where the registry says so).
        (image(&host, "nothing/here", "v1"), "(MANIFEST_UNKNOWN)"),
    ] {
        let e = r.resolve_tag(&img, &[]).await.expect_err("missing");
        assert_eq!(e.category, FailureCategory::NotFound, "{e}");
        assert!(e.detail.contains(why), "{e}");
        assert_eq!(r.resolve_tag(&img, &[]).await.expect_err("cached"), e);
    }
    // The HEAD's 404 has no body: one GET each reads the registry's error code.
    assert_eq!(requests(&m, "HEAD"), 2.0);
    assert_eq!(requests(&m, "GET"), 2.0);
    let missing = digest(&sha256(b"never pushed"));
    let e = r
        .manifest(&image(&host, "exists/app", "v1"), &missing, &[])
        .await
        .expect_err("missing");
    assert_eq!(e.category, FailureCategory::NotFound);
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_lookup_failures_total",
            &[("registry", &host), ("category", "not_found")]
        ),
        3.0
    );
}

#[tokio::test]
async fn concurrent_lookups_share_one_request() {
    let pushed = pusher()
        .image("flight/app", "v1", OCI_MANIFEST, "amd64", "flight")
        .await;
    let (r, m) = resolver(serde_json::json!({}));
    let img = image(&plain().host(), "flight/app", "v1");
    let all = futures::future::join_all((0..50).map(|_| r.resolve_tag(&img, &[]))).await;
    assert!(
        all.iter()
            .all(|d| d.as_ref().expect("resolve").digest.as_str() == pushed.digest)
    );
    assert_eq!(requests(&m, "HEAD"), 1.0);
}

#[tokio::test]
async fn mirror_endpoint_serves_docker_hub_names() {
    let p = pusher();
    let pushed = p
        .image("library/mirrored", "1.0", OCI_MANIFEST, "amd64", "mirror")
        .await;
    let (r, m) = resolver(
        serde_json::json!({"hosts": {"docker.io": {"endpoint": format!("http://{}/", plain().host())}}}),
    );
    let img = ImageRef::parse("mirrored:1.0").expect("ref");
    let d = r
        .resolve_tag(&img, &[])
        .await
        .expect("resolve through the mirror");
    assert_eq!(d.digest.as_str(), pushed.digest);
    assert_eq!(
        metric(
            &m,
            "imagedrift_registry_requests_total",
            &[("registry", "docker.io")]
        ),
        1.0
    );
}

#[tokio::test]
async fn cli_resolve_lists_platforms_and_config() {
    let p = pusher();
    let repo = "cli/app";
    let amd = p.image(repo, "amd", OCI_MANIFEST, "amd64", "cli-amd").await;
    let arm = p.image(repo, "arm", OCI_MANIFEST, "arm", "cli-arm").await;
    let idx = p
        .index(
            repo,
            "v1",
            OCI_INDEX,
            &[("linux/amd64", &amd), ("linux/arm/v7", &arm)],
        )
        .await;
    let (r, _) = resolver(serde_json::json!({}));
    let img = image(&plain().host(), repo, "v1");
    let out = imagedrift::registry::cli::resolve(
        &r,
        &img,
        Some(&Platform::parse("linux/arm/v7").unwrap()),
        &[],
    )
    .await
    .expect("resolve");
    let json = serde_json::to_value(&out).expect("json");
    assert_eq!(
        json,
        serde_json::json!({
            "image": format!("{}/{repo}:v1", plain().host()),
            "digest": idx.digest,
            "mediaType": OCI_INDEX,
            "platforms": [
                {"os": "linux", "architecture": "amd64", "digest": amd.digest},
                {"os": "linux", "architecture": "arm", "variant": "v7", "digest": arm.digest, "configDigest": arm.config},
            ]
        })
    );
    let e = imagedrift::registry::cli::resolve(
        &r,
        &img,
        Some(&Platform::parse("linux/s390x").unwrap()),
        &[],
    )
    .await
    .expect_err("no s390x");
    assert_eq!(
        e.to_string(),
        format!(
            "{}/{repo}:v1: the index has no entry for linux/s390x; its platforms are: linux/amd64, linux/arm/v7",
            plain().host()
        )
    );

    // By digest: the index itself, with its platforms.
    let by_digest = ImageRef::parse(&format!("{}/{repo}@{}", plain().host(), idx.digest)).unwrap();
    let out = imagedrift::registry::cli::resolve(&r, &by_digest, None, &[])
        .await
        .expect("resolve by digest");
    assert_eq!(out.digest, idx.digest);
    assert_eq!(out.media_type, OCI_INDEX);
    assert_eq!(out.platforms.as_ref().map(Vec::len), Some(2));

    // A single-platform image asked for another platform says what it is.
    let e = imagedrift::registry::cli::resolve(
        &r,
        &image(&plain().host(), repo, "amd"),
        Some(&Platform::parse("linux/arm64").unwrap()),
        &[],
    )
    .await
    .expect_err("amd64 only");
    assert_eq!(
        e.to_string(),
        format!(
            "{}/{repo}:amd: a single-platform image for linux/amd64, not an index: no content for linux/arm64/v8",
            plain().host()
        )
    );
    let ok = imagedrift::registry::cli::resolve(
        &r,
        &image(&plain().host(), repo, "amd"),
        Some(&Platform::parse("linux/amd64").unwrap()),
        &[],
    )
    .await
    .expect("amd64 fits");
    assert_eq!(ok.config_digest.as_deref(), Some(amd.config.as_str()));
}

#[tokio::test]
async fn cli_resolve_refuses_a_url_and_names_plain_http_behind_https() {
    use imagedrift::registry::cli::{OutputFormat, ResolveArgs, run};
    let host = plain().host();
    let mut args = ResolveArgs {
        image: format!("https://{host}/cli/app:v1"),
        platform: None,
        credentials: imagedrift::credentials::CliCredentialFlags {
            no_docker_config: true,
            ..Default::default()
        },
        config: None,
        output: OutputFormat::Text,
    };
    let e = run(&args).await.expect_err("a URL").to_string();
    assert_eq!(
        e,
        format!(
            "https://{host}/cli/app:v1 is a URL, not an image reference: drop the scheme and write {host}/cli/app:v1"
        )
    );
    // The plain registry, configured as HTTPS.
    let dir = TempDir::new("resolve-plain");
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!("registries:\n  hosts:\n    \"{host}\":\n      insecureHttp: false\n"),
    )
    .unwrap();
    args.image = format!("{host}/cli/app:v1");
    args.config = Some(config);
    let e = run(&args).await.expect_err("HTTPS to HTTP").to_string();
    assert!(
        e.contains(&format!(
            "the registry at {host} answered plain HTTP to an HTTPS request; set registries.hosts.\"{host}\".insecureHttp: true"
        )),
        "{e}"
    );
}

fn creds_json(user: &str, pass: &str, host: &str) -> Vec<u8> {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    serde_json::json!({"auths": {host: {"auth": auth}}})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn basic_auth_tries_every_credential() {
    let reg = basic();
    let host = reg.host();
    let p = Pusher::new(&host, false, RegistryAuth::Basic(USER.into(), PASS.into()));
    let pushed = p
        .image("private/app", "v1", OCI_MANIFEST, "amd64", "private")
        .await;
    let img = image(&host, "private/app", "v1");
    let (r, _) = resolver(serde_json::json!({}));
    let e = r.resolve_tag(&img, &[]).await.expect_err("anonymous");
    assert_eq!(e.category, FailureCategory::Unauthorized, "{e}");

    let wrong =
        Keyring::from_docker_config_json(&creds_json(USER, "wrong", &host), "secret ns/wrong")
            .unwrap()
            .lookup(&img);
    let e = r
        .resolve_tag(&img, &wrong)
        .await
        .expect_err("wrong password");
    assert_eq!(e.category, FailureCategory::Unauthorized);
    assert!(
        e.detail.contains("secret ns/wrong"),
        "names the origin: {e}"
    );
    assert!(
        !e.detail.contains("wrong\"") && !e.detail.contains(PASS),
        "no secret in {e}"
    );

    // A wrong credential first, then the right one: kubelet tries both.
    let mut ring = Keyring::from_docker_config_json(
        &creds_json(USER, "wrong", &format!("{host}/private")),
        "secret ns/wrong",
    )
    .unwrap();
    ring.extend(
        Keyring::from_docker_config_json(&creds_json(USER, PASS, &host), "secret ns/right")
            .unwrap(),
    );
    let creds = ring.lookup(&img);
    assert_eq!(creds.len(), 2);
    let (r, m) = resolver(serde_json::json!({}));
    let d = r
        .resolve_tag(&img, &creds)
        .await
        .expect("resolve with the second credential");
    assert_eq!(d.digest.as_str(), pushed.digest);
    assert!(
        metric(
            &m,
            "imagedrift_registry_requests_total",
            &[("status_class", "4xx")]
        ) >= 1.0
    );

    // The controller's own credentials file, no pull secret at all.
    let dir = TempDir::new("creds");
    let file = dir.path().join("config.json");
    std::fs::write(&file, creds_json(USER, PASS, &host)).unwrap();
    let (r, _) = resolver(serde_json::json!({"credentialsFile": file}));
    assert_eq!(
        r.resolve_tag(&img, &[])
            .await
            .expect("resolve")
            .digest
            .as_str(),
        pushed.digest
    );
}

#[tokio::test]
async fn tls_with_a_custom_ca() {
    let (reg, ca) = tls();
    let host = reg.host();
    let p = Pusher::new(&host, true, RegistryAuth::Anonymous);
    let pushed = p.image("tls/app", "v1", OCI_MANIFEST, "amd64", "tls").await;
    let img = image(&host, "tls/app", "v1");
    let dir = TempDir::new("ca");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.ca_pem).unwrap();

    let (r, _) = resolver(serde_json::json!({"hosts": {&host: {"caBundle": ca_path}}}));
    assert_eq!(
        r.resolve_tag(&img, &[])
            .await
            .expect("trusted CA")
            .digest
            .as_str(),
        pushed.digest
    );

    let (r, _) = resolver(serde_json::json!({"hosts": {&host: {"timeout": "5s"}}}));
    let e = r.resolve_tag(&img, &[]).await.expect_err("unknown CA");
    assert_eq!(e.category, FailureCategory::Tls, "{e}");

    let (r, _) = resolver(serde_json::json!({"hosts": {&host: {"skipTlsVerify": true}}}));
    assert_eq!(
        r.resolve_tag(&img, &[])
            .await
            .expect("verification off")
            .digest
            .as_str(),
        pushed.digest
    );

    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let e = Resolver::new(
        config(serde_json::json!({"hosts": {&host: {"caBundle": bad}}})),
        &prometheus::Registry::new(),
    )
    .err()
    .expect("bad bundle")
    .to_string();
    assert!(e.contains("caBundle"), "{e}");
}

#[tokio::test]
async fn cli_run_prints_text_and_json() {
    use imagedrift::registry::cli::{OutputFormat, ResolveArgs, run};
    let reg = basic();
    let host = reg.host();
    let p = Pusher::new(&host, false, RegistryAuth::Basic(USER.into(), PASS.into()));
    let pushed = p
        .image("cli/single", "v2", DOCKER_V2, "amd64", "cli-single")
        .await;
    let dir = TempDir::new("cli");
    let creds = dir.path().join("config.json");
    std::fs::write(&creds, creds_json(USER, PASS, &host)).unwrap();
    let mut args = ResolveArgs {
        image: format!("{host}/cli/single:v2"),
        platform: Some("linux/amd64".into()),
        credentials: imagedrift::credentials::CliCredentialFlags {
            creds: Some(creds),
            no_docker_config: true,
            ..Default::default()
        },
        config: None,
        output: OutputFormat::Text,
    };
    let text = run(&args).await.expect("resolve");
    assert!(
        text.contains(&format!("digest     {}", pushed.digest)),
        "{text}"
    );
    assert!(text.contains(&format!("mediaType  {DOCKER_V2}")), "{text}");
    assert!(
        text.contains(&format!("config     {}", pushed.config)),
        "{text}"
    );
    args.output = OutputFormat::Json;
    let json: serde_json::Value =
        serde_json::from_str(&run(&args).await.expect("resolve")).unwrap();
    assert_eq!(json["configDigest"], serde_json::json!(pushed.config));
    assert!(json.get("platforms").is_none());
    args.credentials.creds = None;
    let e = run(&args).await.expect_err("no credentials").to_string();
    assert!(e.contains("unauthorized"), "{e}");

    // The same YAML config file as `run`: its credentialsFile is used.
    let config = dir.path().join("imagedrift.yaml");
    std::fs::write(
        &config,
        format!(
            "interval: 5m\nregistries:\n  credentialsFile: {}\n",
            dir.path().join("config.json").display()
        ),
    )
    .unwrap();
    args.config = Some(config.clone());
    let json: serde_json::Value =
        serde_json::from_str(&run(&args).await.expect("resolve with --config")).unwrap();
    assert_eq!(json["digest"], serde_json::json!(pushed.digest.to_string()));
    // A broken config names the key.
    std::fs::write(&config, "registries:\n  defaults:\n    timeout: 0s\n").unwrap();
    let e = run(&args).await.expect_err("invalid config").to_string();
    assert!(e.contains("registries.defaults.timeout"), "{e}");
}
