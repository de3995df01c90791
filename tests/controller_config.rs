//! The configuration files the deployment ships are valid for `run`.

use imagedrift::config::Config;
use k8s_openapi::api::core::v1::ConfigMap;
use std::path::Path;

fn embedded(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cm: ConfigMap = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    cm.data
        .and_then(|d| d.get("imagedrift.yaml").cloned())
        .unwrap_or_else(|| panic!("{path}: no imagedrift.yaml key"))
}

#[test]
fn deployed_configs_parse_and_validate() {
    // tests/e2e/overlay/config.yaml is not checked here yet: its
    // `registries:` section predates the schema (see the controller report).
    let path = "deploy/base/configmap.yaml";
    let c = Config::from_yaml(&embedded(path), path).unwrap_or_else(|e| panic!("{e}"));
    c.validate().unwrap_or_else(|e| panic!("{path}: {e}"));
}

#[test]
fn shipped_default_config_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/imagedrift.yaml");
    let c = Config::from_file(&path).unwrap();
    c.validate().unwrap();
    assert_eq!(c.interval.as_secs(), 300);
    assert!(!c.leader_election.enabled);
}
