//! The `remedies:` section of `config/imagedrift.yaml`.

use super::optin::{self, OptIn};
use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Remedy settings; everything is off until a remedy is enabled somewhere.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RemedyConfig {
    /// Remedies enabled in every namespace (`restart`, `refresh`, `pin`).
    pub enabled: RemedyList,
    /// Per-namespace lists; they replace the global list there (`[none]` opts out).
    pub namespaces: BTreeMap<String, RemedyList>,
    /// No second remedy on one workload within this time.
    #[serde(with = "duration")]
    pub cooldown: Duration,
    /// At most this many remedies in flight across the cluster.
    pub max_in_flight: usize,
    /// A restart or pin stops counting as in flight after this, even if its
    /// rollout was never seen to finish.
    #[serde(with = "duration")]
    pub in_flight_timeout: Duration,
    /// Log and emit Events for what would be done; write nothing else.
    pub dry_run: bool,
    /// How long a Namespace's `imagedrift.io/remedy` annotation is reused.
    #[serde(with = "duration")]
    pub namespace_cache_ttl: Duration,
    /// After a remedy is applied, the workload's pods must all run the
    /// current digest within this time (`verified`), else it `failed`.
    /// Unset: three `interval`s ([`RemedyConfig::verify_window`]).
    #[serde(with = "duration::option")]
    pub verify_timeout: Option<Duration>,
    /// The refresh pods.
    pub refresh: RefreshConfig,
}

impl Default for RemedyConfig {
    fn default() -> Self {
        RemedyConfig {
            enabled: RemedyList::default(),
            namespaces: BTreeMap::new(),
            cooldown: Duration::from_secs(30 * 60),
            max_in_flight: 5,
            in_flight_timeout: Duration::from_secs(15 * 60),
            dry_run: false,
            namespace_cache_ttl: Duration::from_secs(60),
            verify_timeout: None,
            refresh: RefreshConfig::default(),
        }
    }
}

/// How refresh pods are built and awaited.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RefreshConfig {
    /// The pod's `activeDeadlineSeconds` (whole seconds).
    #[serde(with = "duration")]
    pub active_deadline: Duration,
    /// How long to wait for the pull before deleting the pod as failed.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// The container's command: anything that exits at once. The pull
    /// counts even if the image has no such file and the command fails.
    pub command: Vec<String>,
    /// `all` (a single `operator: Exists` toleration) or a toleration list.
    pub tolerations: Tolerations,
    /// The container's resources.
    pub resources: ResourceRequirements,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        let q = |s: &str| Quantity(s.to_string());
        RefreshConfig {
            active_deadline: Duration::from_secs(120),
            timeout: Duration::from_secs(150),
            command: vec!["/bin/true".to_string()],
            tolerations: Tolerations::All,
            resources: ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_string(), q("1m")),
                    ("memory".to_string(), q("8Mi")),
                ])),
                limits: Some(BTreeMap::from([
                    ("cpu".to_string(), q("100m")),
                    ("memory".to_string(), q("32Mi")),
                ])),
                ..ResourceRequirements::default()
            },
        }
    }
}

/// Which taints a refresh pod tolerates.
#[derive(Clone, Debug, PartialEq)]
pub enum Tolerations {
    /// Every taint (`[{operator: Exists}]`): the pod must land on its node.
    All,
    /// Exactly these.
    List(Vec<Toleration>),
}

impl Tolerations {
    /// The pod spec's `tolerations`.
    pub fn to_spec(&self) -> Vec<Toleration> {
        match self {
            Tolerations::All => vec![Toleration {
                operator: Some("Exists".to_string()),
                ..Toleration::default()
            }],
            Tolerations::List(l) => l.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for Tolerations {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<Toleration>),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "all" => Ok(Tolerations::All),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "tolerations {w:?}: write `all` or a list of tolerations"
            ))),
            Raw::List(l) => Ok(Tolerations::List(l)),
        }
    }
}

/// A validated list of remedy names (`[refresh, restart]`, `[none]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemedyList(pub OptIn);

impl Default for RemedyList {
    fn default() -> Self {
        RemedyList(OptIn::Unset)
    }
}

impl<'de> Deserialize<'de> for RemedyList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let words = Vec::<String>::deserialize(d)?;
        optin::parse_list(&words, &words.join(","))
            .map(RemedyList)
            .map_err(serde::de::Error::custom)
    }
}

/// A setting the controller can't start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("remedies.{key}: {problem}")]
pub struct ConfigError {
    /// The key at fault, below `remedies.`.
    pub key: &'static str,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl RemedyConfig {
    /// Checks the values serde can't.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, problem: &str| {
            Err(ConfigError {
                key,
                problem: problem.to_string(),
            })
        };
        if self.max_in_flight == 0 {
            return err("maxInFlight", "must be at least 1");
        }
        let deadline = self.refresh.active_deadline;
        if deadline < Duration::from_secs(10) || deadline > Duration::from_secs(3600) {
            return err("refresh.activeDeadline", "must be between 10s and 1h");
        }
        if self
            .verify_timeout
            .is_some_and(|t| t < Duration::from_secs(10) || t > Duration::from_secs(24 * 3600))
        {
            return err(
                "verifyTimeout",
                "must be between 10s and 24h (a rollout needs time); leave it unset for three intervals",
            );
        }
        if self.refresh.timeout < Duration::from_secs(1) {
            return err("refresh.timeout", "must be at least 1s");
        }
        if self.refresh.command.is_empty() {
            return err(
                "refresh.command",
                "must name a command, e.g. [\"/bin/true\"]",
            );
        }
        Ok(())
    }

    /// How long a remedy has to show its effect: `verifyTimeout`, else
    /// three check intervals.
    pub fn verify_window(&self, interval: Duration) -> Duration {
        self.verify_timeout.unwrap_or(interval * 3)
    }

    /// The global list.
    pub fn global(&self) -> OptIn {
        self.enabled.0
    }

    /// The configuration's entry for a namespace.
    pub fn namespace(&self, ns: &str) -> OptIn {
        self.namespaces.get(ns).map(|l| l.0).unwrap_or(OptIn::Unset)
    }
}

/// Durations are written as in the rest of the configuration (`90s`,
/// `30m`, `1h30m`, or bare seconds).
use crate::config::duration_str as duration;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remedy::optin::Enabled;

    #[test]
    fn defaults_are_off_and_safe() {
        let c: RemedyConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.global(), OptIn::Unset);
        assert_eq!(c.cooldown, Duration::from_secs(1800));
        assert_eq!(c.max_in_flight, 5);
        assert!(!c.dry_run);
        assert_eq!(c.refresh.tolerations, Tolerations::All);
        assert_eq!(c.refresh.command, vec!["/bin/true"]);
        assert_eq!(c.verify_timeout, None);
        assert_eq!(
            c.verify_window(Duration::from_secs(300)),
            Duration::from_secs(900),
            "three intervals"
        );
        c.validate().unwrap();
    }

    #[test]
    fn full_section_parses() {
        let c: RemedyConfig = serde_json::from_value(serde_json::json!({
            "enabled": ["restart"],
            "namespaces": {"ci": ["refresh", "restart"], "prod": ["none"]},
            "cooldown": "1h30m",
            "maxInFlight": 2,
            "dryRun": true,
            "verifyTimeout": "20m",
            "refresh": {
                "activeDeadline": "1m",
                "timeout": 90,
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
            }
        }))
        .unwrap();
        assert_eq!(
            c.global(),
            OptIn::In(Enabled {
                restart: true,
                ..Enabled::NONE
            })
        );
        assert_eq!(
            c.namespace("ci"),
            OptIn::In(Enabled {
                restart: true,
                refresh: true,
                pin: false
            })
        );
        assert_eq!(c.namespace("prod"), OptIn::Out);
        assert_eq!(c.namespace("other"), OptIn::Unset);
        assert_eq!(c.cooldown, Duration::from_secs(5400));
        assert_eq!(
            c.verify_window(Duration::from_secs(300)),
            Duration::from_secs(1200)
        );
        assert_eq!(c.refresh.timeout, Duration::from_secs(90));
        match &c.refresh.tolerations {
            Tolerations::List(l) => assert_eq!(l[0].key.as_deref(), Some("gpu")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_values_name_the_problem() {
        let cases = [
            (r#"{"enabled": ["restrat"]}"#, "unknown remedy \"restrat\""),
            (r#"{"enabled": ["none", "pin"]}"#, "mixes `none`"),
            (
                r#"{"cooldown": "30 minutes"}"#,
                "\"30 minutes\": unknown unit",
            ),
            (r#"{"refresh": {"tolerations": "some"}}"#, "write `all`"),
            (r#"{"maxInflight": 3}"#, "unknown field"),
        ];
        for (json, want) in cases {
            let e = serde_json::from_str::<RemedyConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
        let c: RemedyConfig = serde_json::from_str(r#"{"verifyTimeout": "5s"}"#).unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("remedies.verifyTimeout: must be between 10s and 24h"),
        );
        let e = serde_json::from_str::<RemedyConfig>(r#"{"verifyTimeout": "soon"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"soon\" is not a duration"), "{e}");
        let c: RemedyConfig = serde_json::from_str(r#"{"maxInFlight": 0}"#).unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "remedies.maxInFlight: must be at least 1"
        );
    }
}
