//! Token auth against a real registry: distribution's `auth.token` mode
//! with a small token issuer of our own (ES256 JWTs whose signing
//! certificate is the registry's `rootcertbundle`). Covers basic credentials
//! exchanged for a token, a refresh (identity) token, anonymous tokens for
//! public repositories, and refusals.

mod support;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use imagedrift::facts::{Credential, FailureCategory, Registry as _, Secret};
use imagedrift::reference::ImageRef;
use imagedrift::registry::{RegistriesConfig, Resolver};
use oci_client::secrets::RegistryAuth;
use std::sync::{Arc, OnceLock};
use support::*;

const SERVICE: &str = "test-registry";
const ISSUER: &str = "test-issuer";
const USER: &str = "bob";
const PASS: &str = "builder";
const REFRESH: &str = "refresh-abc";

struct Issuer {
    key: ring::signature::EcdsaKeyPair,
    cert_der: Vec<u8>,
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Issuer {
    fn new() -> (Issuer, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "token signer");
        let cert = params.self_signed(&key).expect("cert");
        let rng = ring::rand::SystemRandom::new();
        let signing = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &rng,
        )
        .expect("pkcs8");
        (
            Issuer {
                key: signing,
                cert_der: cert.der().to_vec(),
            },
            cert.pem(),
        )
    }

    /// A token granting `access` (repository name → actions) to `subject`.
    fn token(&self, subject: &str, access: &[(String, Vec<String>)]) -> String {
        let header = serde_json::json!({
            "typ": "JWT", "alg": "ES256",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&self.cert_der)],
        });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let access: Vec<serde_json::Value> =
            access.iter().map(|(name, actions)| serde_json::json!({"type": "repository", "name": name, "actions": actions})).collect();
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": subject, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", fastrand::u64(..)),
            "access": access,
        });
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", b64url(sig.as_ref()))
    }
}

/// Handles `GET /token` (basic or anonymous) and `POST /token` (refresh
/// token). Named users get what they ask; anonymous callers get pull on
/// `public/*` only.
async fn issue(issuer: Arc<Issuer>, req: Request) -> Response {
    let post = req.method() == axum::http::Method::POST;
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let query = req.uri().query().unwrap_or("").to_string();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let params = if post {
        String::from_utf8_lossy(&body).to_string()
    } else {
        query
    };
    let pairs: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{params}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    );
    let subject = if post {
        if get("grant_type").as_deref() != Some("refresh_token")
            || get("refresh_token").as_deref() != Some(REFRESH)
        {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        Some(USER)
    } else {
        match auth {
            None => None,
            Some(a) if a == basic => Some(USER),
            Some(_) => return StatusCode::UNAUTHORIZED.into_response(),
        }
    };
    let access: Vec<(String, Vec<String>)> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .filter_map(|(_, s)| {
            let mut parts = s.splitn(3, ':');
            let (_, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<String> = actions.split(',').map(str::to_string).collect();
            match subject {
                Some(_) => Some((name.to_string(), actions)),
                None if name.starts_with("public/") => {
                    Some((name.to_string(), vec!["pull".to_string()]))
                }
                None => None,
            }
        })
        .collect();
    let token = issuer.token(subject.unwrap_or(""), &access);
    let key = if post { "access_token" } else { "token" };
    (
        [("content-type", "application/json")],
        serde_json::json!({key: token, "expires_in": 300}).to_string(),
    )
        .into_response()
}

fn registry() -> &'static RegistryProcess {
    static R: OnceLock<RegistryProcess> = OnceLock::new();
    R.get_or_init(|| {
        let (issuer, cert_pem) = Issuer::new();
        let issuer = Arc::new(issuer);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind issuer");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app =
                    axum::Router::new().fallback(move |req: Request| issue(issuer.clone(), req));
                let _ = axum::serve(listener, app).await;
            });
        });
        RegistryProcess::start(Options {
            token: Some(TokenAuth {
                realm: format!("http://{addr}/token"),
                service: SERVICE.into(),
                issuer: ISSUER.into(),
                root_cert_pem: cert_pem,
            }),
            ..Default::default()
        })
    })
}

fn resolver() -> (Resolver, prometheus::Registry) {
    let reg = prometheus::Registry::new();
    (
        Resolver::new(RegistriesConfig::default(), &reg).expect("resolver"),
        reg,
    )
}

fn cred(secret: Secret) -> Vec<Credential> {
    vec![Credential {
        secret,
        origin: "secret ns/token".into(),
    }]
}

async fn push(repo: &str, seed: &str) -> Pushed {
    let host = registry().host();
    Pusher::new(&host, false, RegistryAuth::Basic(USER.into(), PASS.into()))
        .image(repo, "v1", OCI_MANIFEST, "amd64", seed)
        .await
}

#[tokio::test]
async fn basic_credentials_are_exchanged_for_a_token() {
    let pushed = push("team/app", "token-basic").await;
    let img = ImageRef::parse(&format!("{}/team/app:v1", registry().host())).unwrap();
    let (r, m) = resolver();
    let d = r
        .resolve_tag(
            &img,
            &cred(Secret::Basic {
                username: USER.into(),
                password: PASS.into(),
            }),
        )
        .await
        .expect("resolve");
    assert_eq!(d.digest.as_str(), pushed.digest);
    // HEAD → 401 challenge, token GET, HEAD with the token.
    assert_eq!((requests(&m, "HEAD"), requests(&m, "GET")), (2.0, 1.0));
    assert_eq!(
        metric(&m, "imagedrift_registry_get_requests_total", &[]),
        0.0
    );
    // The manifest GET reuses the cached token: no new token request.
    r.manifest(
        &img,
        &d.digest,
        &cred(Secret::Basic {
            username: USER.into(),
            password: PASS.into(),
        }),
    )
    .await
    .expect("manifest");
    assert_eq!((requests(&m, "HEAD"), requests(&m, "GET")), (2.0, 2.0));
}

#[tokio::test]
async fn refresh_token_is_posted() {
    let pushed = push("team/refresh", "token-refresh").await;
    let img = ImageRef::parse(&format!("{}/team/refresh:v1", registry().host())).unwrap();
    let (r, m) = resolver();
    let d = r
        .resolve_tag(&img, &cred(Secret::IdentityToken(REFRESH.into())))
        .await
        .expect("resolve");
    assert_eq!(d.digest.as_str(), pushed.digest);
    assert_eq!(requests(&m, "POST"), 1.0);
}

#[tokio::test]
async fn anonymous_token_for_public_repositories() {
    let pushed = push("public/app", "token-public").await;
    let img = ImageRef::parse(&format!("{}/public/app:v1", registry().host())).unwrap();
    let (r, _) = resolver();
    assert_eq!(
        r.resolve_tag(&img, &[])
            .await
            .expect("anonymous pull")
            .digest
            .as_str(),
        pushed.digest
    );
}

#[tokio::test]
async fn refusals_are_unauthorized() {
    push("team/secret", "token-secret").await;
    let img = ImageRef::parse(&format!("{}/team/secret:v1", registry().host())).unwrap();
    let (r, _) = resolver();
    // Anonymous token without access: the registry still says 401.
    let e = r.resolve_tag(&img, &[]).await.expect_err("anonymous");
    assert_eq!(e.category, FailureCategory::Unauthorized, "{e}");
    // Wrong password: the token endpoint refuses; anonymous fallback fails too.
    let (r, _) = resolver();
    let e = r
        .resolve_tag(
            &img,
            &cred(Secret::Basic {
                username: USER.into(),
                password: "nope".into(),
            }),
        )
        .await
        .expect_err("wrong");
    assert_eq!(e.category, FailureCategory::Unauthorized, "{e}");
    assert!(
        e.detail.contains("secret ns/token") && !e.detail.contains("nope"),
        "{e}"
    );
}

#[tokio::test]
async fn a_credential_provider_plugins_password_is_exchanged_for_a_token() {
    use support::plugins::*;
    let pushed = push("team/plugin", "token-plugin").await;
    let host = registry().host();
    let img = ImageRef::parse(&format!("{host}/team/plugin:v1")).unwrap();
    let dir = TempDir::new("token-plugin");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let plugin = answering_plugin(
        &bin,
        "token-plugin",
        &response("Registry", Some("1h"), &[(&host, USER, PASS)]),
    );
    let config = dir.path().join("providers.yaml");
    provider_config(
        &config,
        &[Entry {
            name: "token-plugin",
            match_images: &[&host],
            default_cache_duration: "1h",
            extra: "",
        }],
    );
    let cfg: RegistriesConfig = serde_json::from_value(serde_json::json!({
        "credentialProviders": {"config": config, "binDir": bin}
    }))
    .unwrap();
    let r = Resolver::new(cfg, &prometheus::Registry::new()).expect("resolver");
    let d = r.resolve_tag(&img, &[]).await.expect("resolve");
    assert_eq!(d.digest.as_str(), pushed.digest);
    r.manifest(&img, &d.digest, &[]).await.expect("manifest");
    assert_eq!(runs(&plugin), 1);
}
