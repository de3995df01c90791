//! The `remedies:` section exactly as documented for config/imagedrift.yaml.

use imagedrift::remedy::RemedyConfig;
use imagedrift::remedy::config::Tolerations;
use imagedrift::remedy::optin::{Enabled, OptIn};
use std::time::Duration;

/// The documented example (the lead copies it into config/imagedrift.yaml).
const EXAMPLE: &str = r#"
remedies:
  # Remedies enabled everywhere: restart, refresh, pin. Empty: all off
  # (a Namespace or workload can still opt in with the
  # imagedrift.io/remedy annotation, e.g. "refresh,restart").
  enabled: []
  # Per-namespace lists replace the global one; [none] opts a namespace out
  # (as does imagedrift.io/remedy: none on the Namespace or the workload).
  namespaces:
    ci: [refresh]
    shop: [refresh, restart]
    payments: [none]
  # No second remedy on one workload within this time.
  cooldown: 30m
  # At most this many remedies in flight across the cluster (a restart or
  # pin counts until its rollout has finished, or inFlightTimeout).
  maxInFlight: 5
  inFlightTimeout: 15m
  # Log and emit Events for what would be done; write nothing else.
  dryRun: false
  # How long a Namespace's imagedrift.io/remedy annotation is reused.
  namespaceCacheTtl: 1m
  # After a remedy is applied, the workload's pods must all run the current
  # digest within this time (imagedrift_remedies_total result "verified"),
  # else it counts "failed" and a Warning RemedyFailed Event says what was
  # tried. Unset: three intervals (15m with interval: 5m). 10s to 24h.
  # verifyTimeout: 15m
  refresh:
    # The refresh pod's activeDeadlineSeconds, and how long imagedrift
    # waits for its pull before deleting it as failed.
    activeDeadline: 120s
    timeout: 150s
    # Anything that exits at once; the pull counts even if it fails.
    command: ["/bin/true"]
    # `all` (operator: Exists) or a list of tolerations.
    tolerations: all
    resources:
      requests: {cpu: 1m, memory: 8Mi}
      limits: {cpu: 100m, memory: 32Mi}
"#;

#[derive(serde::Deserialize)]
struct File {
    remedies: RemedyConfig,
}

#[test]
fn documented_example_parses_to_the_defaults_plus_namespaces() {
    let f: File = serde_yaml_ng::from_str(EXAMPLE).unwrap();
    let c = f.remedies;
    c.validate().unwrap();
    let d = RemedyConfig::default();
    assert_eq!(c.global(), OptIn::Unset);
    assert_eq!(
        c.namespace("ci"),
        OptIn::In(Enabled {
            refresh: true,
            ..Enabled::NONE
        })
    );
    assert_eq!(c.namespace("payments"), OptIn::Out);
    assert_eq!(c.cooldown, d.cooldown);
    assert_eq!(c.cooldown, Duration::from_secs(1800));
    assert_eq!(c.max_in_flight, d.max_in_flight);
    assert_eq!(c.in_flight_timeout, d.in_flight_timeout);
    assert_eq!(c.namespace_cache_ttl, d.namespace_cache_ttl);
    assert_eq!(c.refresh.timeout, d.refresh.timeout);
    assert_eq!(c.refresh.active_deadline.as_secs(), 120);
    assert_eq!(c.refresh.command, d.refresh.command);
    assert_eq!(c.refresh.tolerations, Tolerations::All);
    assert_eq!(c.refresh.resources, d.refresh.resources);
}

#[test]
fn yaml_errors_name_the_key() {
    let e = serde_yaml_ng::from_str::<File>("remedies:\n  enabled: [restart, reboot]\n")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("remedies") && e.contains("line 2"), "{e}");
    assert!(e.contains("\"reboot\""), "{e}");
}
