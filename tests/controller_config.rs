//! The configuration files the deployment ships are valid for `run`.

use imagedrift::config::Config;
use std::path::Path;

#[test]
fn deployed_configs_parse_and_validate() {
    // tests/e2e/overlay/config.yaml is not checked here yet: its
    // `registries:` section predates the schema (see the controller report).
    // The file deploy/base's configMapGenerator turns into the ConfigMap.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/imagedrift.yaml");
    let c = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    c.validate()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn shipped_default_config_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/imagedrift.yaml");
    let c = Config::from_file(&path).unwrap();
    c.validate().unwrap();
    assert_eq!(c.interval.as_secs(), 300);
    assert!(!c.leader_election.enabled);
}
