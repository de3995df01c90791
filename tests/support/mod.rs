//! Test harness: a real CNCF distribution registry (Debian's
//! `docker-registry`) on 127.0.0.1 with a temporary storage directory, in
//! plain, htpasswd, TLS and token-auth variants; an oci-client pusher for
//! building test images; and helpers to read the resolver's metrics.
#![allow(dead_code)]

#[macro_use]
pub mod fake_api;
pub mod plugins;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("imagedrift-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port (bound, then released for the registry to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A test CA and a server certificate for 127.0.0.1 / localhost.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "imagedrift test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca cert");
        let key = rcgen::KeyPair::generate().expect("server key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca).expect("server cert");
        TestCa {
            ca_pem: ca.as_ref().pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Token-auth settings for the registry (`auth.token`).
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// PEM of the certificate whose key signs the tokens.
    pub root_cert_pem: String,
}

/// How to start the registry.
#[derive(Default)]
pub struct Options {
    pub htpasswd: Option<(String, String)>,
    pub tls: Option<(String, String)>,
    pub token: Option<TokenAuth>,
    /// Appended to the registry's YAML config as is (top-level sections
    /// such as `notifications:`).
    pub extra_config: Option<String>,
}

/// A running `docker-registry`, stopped on drop (and when the test process
/// exits: a shell wrapper kills it when its stdin closes).
pub struct RegistryProcess {
    pub addr: SocketAddr,
    _proc: Proc,
    pub dir: TempDir,
}

/// The shell wrapper; closing its stdin stops the registry.
struct Proc {
    child: Child,
    stdin: ChildStdin,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"\n");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

impl RegistryProcess {
    /// `host:port` as written in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Starts a registry on a free port; if another process took the port
    /// between our probe and the registry's bind, tries another one.
    pub fn start(opts: Options) -> RegistryProcess {
        let dir = TempDir::new("registry");
        for _ in 0..5 {
            if let Some((addr, proc)) = Self::try_start(&opts, &dir) {
                return RegistryProcess {
                    addr,
                    _proc: proc,
                    dir,
                };
            }
        }
        panic!("docker-registry could not bind a free port in 5 tries");
    }

    fn try_start(opts: &Options, dir: &TempDir) -> Option<(SocketAddr, Proc)> {
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key)) = &opts.tls {
            std::fs::write(dir.path().join("cert.pem"), cert).expect("write cert");
            std::fs::write(dir.path().join("key.pem"), key).expect("write key");
            cfg += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            );
        }
        if let Some((user, pass)) = &opts.htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("htpasswd (apache2-utils) is installed");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).expect("write htpasswd");
            cfg += &format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        if let Some(t) = &opts.token {
            std::fs::write(dir.path().join("token.pem"), &t.root_cert_pem)
                .expect("write token cert");
            cfg += &format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                t.realm,
                t.service,
                t.issuer,
                dir.path().join("token.pem").display()
            );
        }
        if let Some(extra) = &opts.extra_config {
            cfg += extra;
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).expect("write config");
        let log = dir.path().join("registry.log");
        let _ = std::fs::remove_file(&log);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"docker-registry serve "$0" >"$1" 2>&1 & p=$!; read _ignored; kill $p; wait $p"#)
            .arg(&cfg_path)
            .arg(&log)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start docker-registry (Debian package docker-registry)");
        let Some(stdin) = child.stdin.take() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no stdin pipe to the registry wrapper");
        };
        let proc = Proc { child, stdin };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        // Ready when the registry itself says it listens on our port (a
        // bare TCP probe could reach another test's process).
        let listening = format!("listening on 127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(&listening)
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Some((addr, proc));
            }
            if text.contains("level=fatal") {
                drop(proc);
                if text.contains("address already in use") {
                    return None;
                }
                panic!("docker-registry failed:\n{text}");
            }
            if Instant::now() > deadline {
                drop(proc);
                panic!("docker-registry did not start on {addr}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Pushes hand-made images with oci-client.
pub struct Pusher {
    pub client: Client,
    pub host: String,
    pub auth: RegistryAuth,
}

/// What a push made.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub digest: String,
    pub config: String,
    pub media_type: &'static str,
    pub size: usize,
}

pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

impl Pusher {
    pub fn new(host: &str, https: bool, auth: RegistryAuth) -> Pusher {
        let config = ClientConfig {
            protocol: if https {
                ClientProtocol::Https
            } else {
                ClientProtocol::Http
            },
            accept_invalid_certificates: true,
            use_monolithic_push: true,
            ..Default::default()
        };
        Pusher {
            client: Client::new(config),
            host: host.to_string(),
            auth,
        }
    }

    fn reference(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), repo.to_string(), tag.to_string())
    }

    async fn login(&self, repo: &str) {
        if !matches!(self.auth, RegistryAuth::Anonymous) {
            self.client
                .auth(
                    &self.reference(repo, "x"),
                    &self.auth,
                    RegistryOperation::Push,
                )
                .await
                .expect("login for push");
        }
    }

    pub async fn blob(&self, repo: &str, data: Vec<u8>) -> String {
        self.login(repo).await;
        let digest = sha256(&data);
        self.client
            .push_blob(&self.reference(repo, "x"), data, &digest)
            .await
            .expect("push blob");
        digest
    }

    pub async fn raw_manifest(
        &self,
        repo: &str,
        tag: &str,
        body: Vec<u8>,
        media_type: &str,
    ) -> String {
        self.login(repo).await;
        let digest = sha256(&body);
        self.client
            .push_manifest_raw(
                &self.reference(repo, tag),
                body,
                media_type.parse().expect("header value"),
            )
            .await
            .expect("push manifest");
        digest
    }

    /// A single-platform image of media type `mt` (OCI or Docker v2) whose
    /// content depends on `seed`.
    pub async fn image(
        &self,
        repo: &str,
        tag: &str,
        mt: &'static str,
        arch: &str,
        seed: &str,
    ) -> Pushed {
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(seed.as_bytes())]},
            "config": {"Labels": {"seed": seed}},
        })
        .to_string()
        .into_bytes();
        let layer = format!("layer {seed}").into_bytes();
        let (config_mt, layer_mt) = if mt == DOCKER_V2 {
            (
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        } else {
            (
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        };
        let config_len = config.len();
        let layer_len = layer.len();
        let config_digest = self.blob(repo, config).await;
        let layer_digest = self.blob(repo, layer).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": mt,
            "config": {"mediaType": config_mt, "digest": config_digest, "size": config_len},
            "layers": [{"mediaType": layer_mt, "digest": layer_digest, "size": layer_len}],
        })
        .to_string()
        .into_bytes();
        let size = manifest.len();
        let digest = self.raw_manifest(repo, tag, manifest, mt).await;
        Pushed {
            digest,
            config: config_digest,
            media_type: mt,
            size,
        }
    }

    /// An index of type `mt` over `children` (platform string, pushed child);
    /// `extra` adds an attestation-like `unknown/unknown` entry.
    pub async fn index(
        &self,
        repo: &str,
        tag: &str,
        mt: &'static str,
        children: &[(&str, &Pushed)],
    ) -> Pushed {
        let manifests: Vec<serde_json::Value> = children
            .iter()
            .map(|(p, c)| {
                let parts: Vec<&str> = p.split('/').collect();
                let mut platform = serde_json::json!({"os": parts[0], "architecture": parts[1]});
                if let Some(v) = parts.get(2) {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({"mediaType": c.media_type, "digest": c.digest, "size": c.size, "platform": platform})
            })
            .collect();
        let body = serde_json::json!({"schemaVersion": 2, "mediaType": mt, "manifests": manifests})
            .to_string()
            .into_bytes();
        let size = body.len();
        let digest = self.raw_manifest(repo, tag, body, mt).await;
        Pushed {
            digest,
            config: String::new(),
            media_type: mt,
            size,
        }
    }
}

/// Sum of a metric's samples whose labels include all of `labels`.
pub fn metric(reg: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for family in reg.gather() {
        if family.name() != name {
            continue;
        }
        for m in family.get_metric() {
            let ok = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if !ok {
                continue;
            }
            // A family is either a counter or a histogram; the other is zero.
            total += m.get_counter().get_value() + m.get_histogram().get_sample_count() as f64;
        }
    }
    total
}

/// Requests the resolver made with `method` (all registries).
pub fn requests(reg: &prometheus::Registry, method: &str) -> f64 {
    metric(
        reg,
        "imagedrift_registry_requests_total",
        &[("method", method)],
    )
}

/// Pushes an old and then a current single-arch image for `n` tags on
/// `host` (16 at a time): `(image, current digest, old digest)` each.
pub async fn push_old_and_new(host: &str, n: usize) -> Vec<(String, String, String)> {
    use futures::StreamExt as _;
    let pusher = Pusher::new(host, false, RegistryAuth::Anonymous);
    let t = Instant::now();
    let pushed: Vec<(String, String, String)> = futures::stream::iter(0..n)
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
                (format!("{host}/{repo}:{tag}"), new.digest, old.digest)
            }
        })
        .buffered(16)
        .collect()
        .await;
    eprintln!(
        "pushed {n} tags (old and current) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    pushed
}
