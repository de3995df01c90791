//! Node-style credentials against a real registry with htpasswd auth:
//! kubelet credential-provider plugins (fake ones, shell scripts speaking
//! the protocol) with their cache and failure modes, docker credential
//! helpers and the CLI's default docker config (through the real binary).

mod support;

use imagedrift::facts::{FailureCategory, Registry as _};
use imagedrift::reference::ImageRef;
use imagedrift::registry::{ManualClock, RegistriesConfig, Resolver};
use oci_client::secrets::RegistryAuth;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use support::plugins::*;
use support::*;

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

fn port() -> u16 {
    basic().addr.port()
}

/// The registry under both names it answers to (two registry hosts for
/// kubelet's cache keys, one process).
fn hosts() -> (String, String) {
    (
        format!("127.0.0.1:{}", port()),
        format!("localhost:{}", port()),
    )
}

async fn push(repo: &str, tag: &str) -> Pushed {
    Pusher::new(
        &basic().host(),
        false,
        RegistryAuth::Basic(USER.into(), PASS.into()),
    )
    .image(repo, tag, OCI_MANIFEST, "amd64", &format!("{repo}:{tag}"))
    .await
}

fn image(s: &str) -> ImageRef {
    ImageRef::parse(s).expect("image")
}

/// A bin dir and provider config for one plugin `name`.
struct Setup {
    dir: TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let dir = TempDir::new(tag);
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        let config = dir.path().join("credential-providers.yaml");
        Setup { dir, config }
    }
    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
    fn json(&self, timeout: &str) -> serde_json::Value {
        serde_json::json!({
            "credentialProviders": {"config": self.config, "binDir": self.bin(), "timeout": timeout},
        })
    }
}

fn resolver(json: serde_json::Value, clock: &ManualClock) -> (Resolver, prometheus::Registry) {
    let reg = prometheus::Registry::new();
    let cfg: RegistriesConfig = serde_json::from_value(json).expect("config");
    (
        Resolver::with_clock(cfg, &reg, Arc::new(clock.clone())).expect("resolver"),
        reg,
    )
}

fn execs(m: &prometheus::Registry, provider: &str) -> f64 {
    metric(
        m,
        "imagedrift_credential_provider_execs_total",
        &[("provider", provider)],
    )
}

fn failures(m: &prometheus::Registry, provider: &str) -> f64 {
    metric(
        m,
        "imagedrift_credential_provider_failures_total",
        &[("provider", provider)],
    )
}

#[tokio::test]
async fn a_plugins_credentials_open_a_private_registry() {
    let pushed = push("plugin/app", "v1").await;
    let (h1, _) = hosts();
    let img = image(&format!("{h1}/plugin/app:v1"));
    let clock = ManualClock::new();

    // Nothing configured: the message says only anonymous was tried.
    let (r, _) = resolver(serde_json::json!({}), &clock);
    let e = r.resolve_tag(&img, &[]).await.expect_err("anonymous");
    assert_eq!(e.category, FailureCategory::Unauthorized, "{e}");
    assert!(
        e.detail.starts_with(&format!(
            "anonymous only: no pull secret, plugin or credentials file matched {h1}/plugin/app"
        )),
        "{e}"
    );

    let s = Setup::new("plugin-ok");
    let plugin = answering_plugin(
        &s.bin(),
        "fake-ecr",
        &response("Registry", Some("1h"), &[(&h1, USER, PASS)]),
    );
    provider_config(
        &s.config,
        &[Entry {
            name: "fake-ecr",
            match_images: &[&h1],
            default_cache_duration: "10m",
            extra: "    args: [get-credentials, --verbose]\n    env:\n      - name: AWS_REGION\n        value: eu-west-1\n",
        }],
    );
    // The plugin sees its args and env, as kubelet passes them.
    let body = r#"echo "$@ $AWS_REGION" > "$0.argv"
cat > "$0.req"
echo run >> "$0.count"
cat "$0.answer""#;
    write_exec(&plugin, body);
    let (r, m) = resolver(s.json("5s"), &clock);
    let d = r
        .resolve_tag(&img, &[])
        .await
        .expect("resolve with the plugin's credentials");
    assert_eq!(d.digest.as_str(), pushed.digest);
    assert_eq!(runs(&plugin), 1);
    assert_eq!(execs(&m, "fake-ecr"), 1.0);
    let req: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plugin.with_extension("req")).unwrap()).unwrap();
    assert_eq!(
        req,
        serde_json::json!({"kind": "CredentialProviderRequest", "apiVersion": PLUGIN_API, "image": img.to_string()})
    );
    assert_eq!(
        std::fs::read_to_string(plugin.with_extension("argv"))
            .unwrap()
            .trim(),
        "get-credentials --verbose eu-west-1"
    );
    // The manifest by digest uses the cached answer: no second exec.
    r.manifest(&img, &d.digest, &[]).await.expect("manifest");
    assert_eq!(runs(&plugin), 1);

    // An image the plugin does not match never runs it.
    let other = image("registry.invalid/app:v1");
    let _ = r.resolve_tag(&other, &[]).await;
    assert_eq!(runs(&plugin), 1);
}

#[tokio::test]
async fn plugins_come_after_pull_secrets_and_before_the_credentials_file() {
    push("order/app", "v1").await;
    let (h1, _) = hosts();
    let img = image(&format!("{h1}/order/app:v1"));
    let s = Setup::new("plugin-order");
    answering_plugin(
        &s.bin(),
        "wrong",
        &response("Global", None, &[(&h1, USER, "not-the-password")]),
    );
    provider_config(
        &s.config,
        &[Entry {
            name: "wrong",
            match_images: &[&h1],
            default_cache_duration: "1h",
            extra: "",
        }],
    );
    // A refused plugin credential, then nothing: the error names it.
    let (r, _) = resolver(s.json("5s"), &ManualClock::new());
    let e = r.resolve_tag(&img, &[]).await.expect_err("refused");
    assert_eq!(e.category, FailureCategory::Unauthorized, "{e}");
    assert!(
        e.detail.contains("1 credential(s) refused")
            && e.detail.contains("credential provider wrong key"),
        "{e}"
    );
    assert!(!e.detail.contains("not-the-password"), "{e}");

    // The credentials file after the plugin: it is tried, and works.
    let file = s.dir.path().join("config.json");
    let auth = base64_auth(USER, PASS);
    std::fs::write(
        &file,
        serde_json::json!({"auths": {&h1: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let mut json = s.json("5s");
    json["credentialsFile"] = serde_json::json!(file);
    let (r, _) = resolver(json, &ManualClock::new());
    r.resolve_tag(&img, &[])
        .await
        .expect("plugin refused, file accepted");
}

fn base64_auth(u: &str, p: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
}

/// 100 lookups within cacheDuration run the plugin once, for each
/// cacheKeyType; what else the answer covers follows the type.
#[tokio::test]
async fn one_exec_per_cache_key_within_cache_duration() {
    push("cache/a", "v1").await;
    push("cache/b", "v1").await;
    let (h1, h2) = hosts();
    // (cacheKeyType, runs after: 100× a on h1, then b on h1, then a on h2)
    let rows = [
        ("Image", [1, 2, 3]),
        ("Registry", [1, 1, 2]),
        ("Global", [1, 1, 1]),
    ];
    for (key_type, want) in rows {
        let s = Setup::new(&format!("cache-{key_type}"));
        let plugin = answering_plugin(
            &s.bin(),
            "fake",
            &response(
                key_type,
                Some("10m"),
                &[(&h1, USER, PASS), (&h2, USER, PASS)],
            ),
        );
        provider_config(
            &s.config,
            &[Entry {
                name: "fake",
                match_images: &[&h1, &h2],
                default_cache_duration: "1h",
                extra: "",
            }],
        );
        let clock = ManualClock::new();
        let (r, m) = resolver(s.json("5s"), &clock);
        let a1 = image(&format!("{h1}/cache/a:v1"));
        for _ in 0..100 {
            r.resolve_tag(&a1, &[]).await.expect("a on h1");
        }
        assert_eq!(
            runs(&plugin),
            want[0],
            "{key_type}: 100 lookups of one image"
        );
        r.resolve_tag(&image(&format!("{h1}/cache/b:v1")), &[])
            .await
            .expect("b on h1");
        assert_eq!(
            runs(&plugin),
            want[1],
            "{key_type}: another image, same registry"
        );
        r.resolve_tag(&image(&format!("{h2}/cache/a:v1")), &[])
            .await
            .expect("a on h2");
        assert_eq!(runs(&plugin), want[2], "{key_type}: another registry");
        assert_eq!(execs(&m, "fake"), want[2] as f64);

        // Past cacheDuration the plugin is asked again.
        let before = runs(&plugin);
        clock.advance(Duration::from_secs(601));
        r.resolve_tag(&a1, &[]).await.expect("after expiry");
        assert_eq!(runs(&plugin), before + 1, "{key_type}: after cacheDuration");
    }
}

#[tokio::test]
async fn cache_duration_zero_and_default() {
    push("dur/app", "v1").await;
    let (h1, _) = hosts();
    let img = image(&format!("{h1}/dur/app:v1"));
    // cacheDuration "0s": never cached, as kubelet.
    let s = Setup::new("dur-zero");
    let plugin = answering_plugin(
        &s.bin(),
        "nocache",
        &response("Image", Some("0s"), &[(&h1, USER, PASS)]),
    );
    provider_config(
        &s.config,
        &[Entry {
            name: "nocache",
            match_images: &[&h1],
            default_cache_duration: "1h",
            extra: "",
        }],
    );
    let (r, _) = resolver(s.json("5s"), &ManualClock::new());
    for _ in 0..3 {
        r.resolve_tag(&img, &[]).await.expect("resolve");
    }
    assert_eq!(runs(&plugin), 3);

    // No cacheDuration: defaultCacheDuration (2m) applies.
    let s = Setup::new("dur-default");
    let plugin = answering_plugin(
        &s.bin(),
        "dflt",
        &response("Image", None, &[(&h1, USER, PASS)]),
    );
    provider_config(
        &s.config,
        &[Entry {
            name: "dflt",
            match_images: &[&h1],
            default_cache_duration: "2m",
            extra: "",
        }],
    );
    let clock = ManualClock::new();
    let (r, _) = resolver(s.json("5s"), &clock);
    r.resolve_tag(&img, &[]).await.expect("resolve");
    clock.advance(Duration::from_secs(119));
    r.resolve_tag(&img, &[]).await.expect("resolve");
    assert_eq!(runs(&plugin), 1, "within defaultCacheDuration");
    clock.advance(Duration::from_secs(2));
    r.resolve_tag(&img, &[]).await.expect("resolve");
    assert_eq!(runs(&plugin), 2, "after defaultCacheDuration");
}

#[tokio::test]
async fn concurrent_lookups_share_one_exec() {
    for repo in ["conc/a", "conc/b", "conc/c"] {
        push(repo, "v1").await;
    }
    let (h1, _) = hosts();
    let s = Setup::new("concurrent");
    let plugin = answering_plugin(
        &s.bin(),
        "slow",
        &response("Registry", Some("1h"), &[(&h1, USER, PASS)]),
    );
    provider_config(
        &s.config,
        &[Entry {
            name: "slow",
            match_images: &[&h1],
            default_cache_duration: "1h",
            // Slow enough that every lookup arrives while it runs.
            extra: "    env:\n      - name: PLUGIN_DELAY\n        value: \"0.5\"\n",
        }],
    );
    let (r, m) = resolver(s.json("10s"), &ManualClock::new());
    // 60 lookups of three images of one registry, all at once.
    let lookups = (0..60).map(|i| {
        let r = r.clone();
        let img = image(&format!("{h1}/conc/{}:v1", ["a", "b", "c"][i % 3]));
        async move { r.resolve_tag(&img, &[]).await }
    });
    let results = futures::future::join_all(lookups).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(runs(&plugin), 1);
    assert_eq!(execs(&m, "slow"), 1.0);
}

/// One plugin script per failure mode, and what the lookup says.
#[tokio::test]
async fn plugin_failures_are_unknown_credential_provider_never_a_crash() {
    push("fail/app", "v1").await;
    let (h1, _) = hosts();
    let img = image(&format!("{h1}/fail/app:v1"));
    let good = response("Global", Some("1h"), &[(&h1, USER, PASS)]);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "exits",
            r#"echo "boom: no IAM role for this pod" >&2; echo "second line" >&2; exit 3"#.into(),
            "exit status 3: boom: no IAM role for this pod",
        ),
        (
            "hangs",
            r#"echo $$ > "$0.pid"; echo "waiting for IMDS" >&2; exec sleep 600"#.into(),
            "did not answer within 1s and was killed (stderr: waiting for IMDS)",
        ),
        (
            "garbage",
            "echo 'this is not json'".into(),
            "no valid CredentialProviderResponse",
        ),
        (
            "version",
            format!("echo '{}'", good.replace("/v1\"", "/v1beta1\"")),
            "answered apiVersion Some(\"credentialprovider.kubelet.k8s.io/v1beta1\")",
        ),
        (
            "flood",
            "yes '{\"kind\":1}' | head -c 5000000".into(),
            "printed more than 1048576 bytes",
        ),
        (
            "nokey",
            format!("echo '{}'", good.replace("Global", "Forever")),
            "cacheKeyType Some(\"Forever\")",
        ),
    ];
    for (name, body, want) in cases {
        let s = Setup::new(&format!("fail-{name}"));
        let path = s.bin().join(name);
        write_exec(&path, &format!("echo run >> \"$0.count\"\n{body}"));
        provider_config(
            &s.config,
            &[Entry {
                name,
                match_images: &[&h1],
                default_cache_duration: "1h",
                extra: "",
            }],
        );
        let (r, m) = resolver(s.json("1s"), &ManualClock::new());
        let e = r.resolve_tag(&img, &[]).await.expect_err(name);
        assert_eq!(
            e.category,
            FailureCategory::CredentialProvider,
            "{name}: {e}"
        );
        assert!(
            e.detail.contains(&format!("credential provider {name}: ")),
            "{name}: {e}"
        );
        assert!(e.detail.contains(want), "{name}: {e} lacks {want}");
        assert!(
            e.detail.contains("was refused with anonymous"),
            "{name}: {e}"
        );
        assert_eq!((execs(&m, name), failures(&m, name)), (1.0, 1.0), "{name}");
        // The failure is remembered for failureTtl: no exec per check.
        let again = r.resolve_tag(&img, &[]).await.expect_err(name);
        assert_eq!(again.category, FailureCategory::CredentialProvider);
        assert_eq!(runs(&path), 1, "{name}");
        if name == "hangs" {
            let pid = std::fs::read_to_string(path.with_extension("pid")).unwrap();
            let gone = poll_until(Duration::from_secs(10), || {
                !Path::new(&format!("/proc/{}", pid.trim())).exists()
                    || std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                        .is_ok_and(|s| s.contains(") Z "))
            });
            assert!(gone, "the hung plugin {} was killed", pid.trim());
        }
    }
}

/// Polls `f` until true, at most `bound`.
fn poll_until(bound: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + bound;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn service_account_token_mode_is_refused_at_start_up() {
    let s = Setup::new("sa-token");
    write_exec(&s.bin().join("gke"), "exit 0");
    provider_config(
        &s.config,
        &[Entry {
            name: "gke",
            match_images: &["*.pkg.dev"],
            default_cache_duration: "1h",
            extra: "    tokenAttributes:\n      serviceAccountTokenAudience: registry.example\n      requireServiceAccount: true\n",
        }],
    );
    let cfg: RegistriesConfig = serde_json::from_value(s.json("5s")).unwrap();
    let e = Resolver::new(cfg, &prometheus::Registry::new())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("providers[0] (gke).tokenAttributes")
            && e.contains("not supported")
            && e.contains("Workload Identity"),
        "{e}"
    );
    // binDir without config, and the other way round, name the missing key.
    for json in [
        serde_json::json!({"credentialProviders": {"binDir": "/x"}}),
        serde_json::json!({"credentialProviders": {"config": "/x"}}),
    ] {
        let cfg: RegistriesConfig = serde_json::from_value(json).unwrap();
        let e = Resolver::new(cfg, &prometheus::Registry::new())
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("registries.credentialProviders."), "{e}");
    }
}

fn cli(args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_imagedrift"));
    cmd.args(args)
        .env_remove("DOCKER_CONFIG")
        .env("HOME", "/nonexistent");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run imagedrift")
}

#[tokio::test]
async fn docker_credential_helpers_and_the_default_docker_config() {
    let pushed = push("helper/app", "v1").await;
    let (h1, _) = hosts();
    let img = format!("{h1}/helper/app:v1");
    let dir = TempDir::new("helper");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-fake");
    write_exec(
        &helper,
        &format!(
            r#"[ "$1" = get ] || exit 9
server=$(cat)
echo "$server" >> "$0.count"
if [ "$server" = "{h1}" ]; then
  printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASS}"}}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi"#
        ),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let path = PathBuf::from(path);

    // credHelpers in --creds.
    let creds = dir.path().join("creds.json");
    std::fs::write(
        &creds,
        serde_json::json!({"credHelpers": {&h1: "fake"}}).to_string(),
    )
    .unwrap();
    let out = cli(
        &[
            "resolve",
            &img,
            "-o",
            "json",
            "--creds",
            creds.to_str().unwrap(),
        ],
        &[("PATH", &path)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["digest"], serde_json::json!(pushed.digest));
    assert_eq!(
        std::fs::read_to_string(helper.with_extension("count"))
            .unwrap()
            .trim(),
        h1
    );

    // credsStore in $DOCKER_CONFIG/config.json, read without any flag.
    let docker = dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(docker.join("config.json"), r#"{"credsStore":"fake"}"#).unwrap();
    let out = cli(
        &["resolve", &img],
        &[("PATH", &path), ("DOCKER_CONFIG", &docker)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&pushed.digest));

    // --no-docker-config skips it: only anonymous was tried, and it says so.
    let out = cli(
        &["resolve", &img, "--no-docker-config"],
        &[("PATH", &path), ("DOCKER_CONFIG", &docker)],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unauthorized") && err.contains("anonymous only"),
        "{err}"
    );

    // ~/.docker/config.json when $DOCKER_CONFIG is unset.
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::write(home.join(".docker/config.json"), r#"{"credsStore":"fake"}"#).unwrap();
    let out = cli(&["resolve", &img], &[("PATH", &path), ("HOME", &home)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A helper with nothing stored is not a failure: anonymous, refused.
    std::fs::write(
        &creds,
        serde_json::json!({"credHelpers": {&h1: "fake"}, "credsStore": "fake"}).to_string(),
    )
    .unwrap();
    let other = format!("localhost:{}/helper/app:v1", port());
    let out = cli(
        &["resolve", &other, "--creds", creds.to_str().unwrap()],
        &[("PATH", &path)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unauthorized: anonymous only"), "{err}");

    // A helper that is missing or fails: credential_provider, named.
    std::fs::write(
        &creds,
        serde_json::json!({"credsStore": "absent"}).to_string(),
    )
    .unwrap();
    let out = cli(
        &["resolve", &img, "--creds", creds.to_str().unwrap()],
        &[("PATH", &path)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("credential_provider: credential helper docker-credential-absent"),
        "{err}"
    );
}

/// The provider config and the credentials file are re-read when they
/// change; a broken new version keeps the old one.
#[tokio::test]
async fn changed_files_are_reloaded_and_broken_ones_ignored() {
    push("reload/app", "v1").await;
    let (h1, _) = hosts();
    let img = image(&format!("{h1}/reload/app:v1"));
    let s = Setup::new("reload");
    let wrong = answering_plugin(
        &s.bin(),
        "wrong",
        &response("Global", None, &[(&h1, USER, "nope")]),
    );
    let right = answering_plugin(
        &s.bin(),
        "right",
        &response("Global", None, &[(&h1, USER, PASS)]),
    );
    let hosts_matched = [h1.as_str()];
    let entry = |name| Entry {
        name,
        match_images: &hosts_matched,
        default_cache_duration: "1h",
        extra: "",
    };
    provider_config(&s.config, &[entry("wrong")]);
    let (r, _) = resolver(s.json("5s"), &ManualClock::new());
    let node = r.node_credentials();
    assert!(r.resolve_tag(&img, &[]).await.is_err());
    assert_eq!(node.reload(), Vec::<PathBuf>::new(), "nothing changed");

    // JSON is fine too, as for kubelet.
    let json = serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1", "kind": "CredentialProviderConfig",
        "providers": [{"name": "right", "matchImages": [&h1], "defaultCacheDuration": "1h",
            "apiVersion": PLUGIN_API}],
    });
    std::fs::write(&s.config, json.to_string()).unwrap();
    assert_eq!(node.reload(), vec![s.config.clone()]);
    r.resolve_tag(&img, &[])
        .await
        .expect("the new provider's credentials");
    assert_eq!((runs(&wrong), runs(&right)), (1, 1));

    // A broken edit: reported, the working config stays.
    std::fs::write(&s.config, "apiVersion: [").unwrap();
    assert_eq!(node.reload(), Vec::<PathBuf>::new());
    assert_eq!(
        node.reload(),
        Vec::<PathBuf>::new(),
        "parsed once, not on every poll"
    );
    let fresh_tag = image(&format!("{h1}/reload/app:v1"));
    r.resolve_tag(&fresh_tag, &[])
        .await
        .expect("still the previous config");
    // A deleted file: the same.
    std::fs::remove_file(&s.config).unwrap();
    assert_eq!(node.reload(), Vec::<PathBuf>::new());
    r.resolve_tag(&fresh_tag, &[])
        .await
        .expect("still the previous config");
}
