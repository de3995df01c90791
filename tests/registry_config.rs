//! The `registries:` section as the controller embeds it in
//! config/imagedrift.yaml: the documented example parses and validates,
//! and mistakes name their key.

use imagedrift::registry::RegistriesConfig;

#[derive(serde::Deserialize)]
struct File {
    registries: RegistriesConfig,
}

const EXAMPLE: &str = r#"
registries:
  defaults:
    timeout: 10s
    maxConcurrent: 8
    requestsPerSecond: 10
    tagTtl: 300s
    failureTtl: 30s
    manifestCacheBytes: 67108864
    maxRetries: 2
    maxRetryWait: 30s
  hosts:
    "docker.io":
      endpoint: https://mirror.internal:5000
    "registry.internal:5000":
      caBundle: /etc/imagedrift/ca.pem
      timeout: 5s
      maxConcurrent: 4
      requestsPerSecond: 5
    "dev-registry.local:5000":
      insecureHttp: true
  credentialsFile: /etc/imagedrift/registry-credentials/config.json
"#;

#[test]
fn documented_example_parses_and_validates() {
    let f: File = serde_yaml_ng::from_str(EXAMPLE).expect("example parses");
    f.registries.validate().expect("example is valid");
    assert_eq!(f.registries.hosts.len(), 3);
    assert_eq!(f.registries.defaults.max_concurrent, 8);
    assert_eq!(
        f.registries.hosts["docker.io"].endpoint.as_deref(),
        Some("https://mirror.internal:5000")
    );
}

#[test]
fn empty_section_is_the_default() {
    let f: File = serde_yaml_ng::from_str("registries: {}").expect("parses");
    assert_eq!(f.registries, RegistriesConfig::default());
}

#[test]
fn mistakes_name_the_key() {
    let typo = "registries:\n  defaults:\n    timeoutSecond: 3\n";
    let e = serde_yaml_ng::from_str::<File>(typo)
        .err()
        .expect("unknown key")
        .to_string();
    assert!(e.contains("timeoutSecond"), "{e}");
    let bad = "registries:\n  hosts:\n    r.example:\n      endpoint: not a url\n";
    let f: File = serde_yaml_ng::from_str(bad).expect("parses");
    let e = f
        .registries
        .validate()
        .expect_err("bad endpoint")
        .to_string();
    assert!(e.contains("registries.hosts.\"r.example\".endpoint"), "{e}");
}
