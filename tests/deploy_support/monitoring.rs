//! What tests/deploy.rs checks of the monitoring that ships: the alert rules
//! and their unit tests, the PrometheusRule, the Grafana dashboard, and that
//! each metric they name is one the code registers.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::kustomize::*;
use crate::{find, render_overlay};

/// Every metric the code exports (names without histogram suffixes).
/// Metric names the dashboard and alerts may use; `metric_names_are_the_codes`
/// checks each is a name the code registers.
pub const METRICS: &[&str] = &[
    "imagedrift_container_stale",
    "imagedrift_container_verdict",
    "imagedrift_workload_stale_containers",
    "imagedrift_containers",
    "imagedrift_check_duration_seconds",
    "imagedrift_last_full_check_timestamp_seconds",
    "imagedrift_unique_images",
    "imagedrift_build_info",
    "imagedrift_registry_requests_total",
    "imagedrift_registry_get_requests_total",
    "imagedrift_registry_cache_lookups_total",
    "imagedrift_registry_request_duration_seconds",
    "imagedrift_registry_lookup_failures_total",
    "imagedrift_remedies_total",
    "imagedrift_credential_provider_execs_total",
    "imagedrift_credential_provider_failures_total",
    "imagedrift_webhook_requests_total",
    "imagedrift_webhook_to_verdict_seconds",
];

pub fn rules_file() -> Value {
    let docs = yaml_docs(&deploy_dir().join("prometheus/imagedrift.rules.yaml"));
    docs.into_iter().next().expect("a rules document")
}

#[test]
fn prometheus_rule_carries_the_same_alerts_as_the_rules_file() {
    let rules = rules_file();
    check_rule_groups(
        rules.get("groups").and_then(Value::as_array),
        "imagedrift.rules.yaml",
    )
    .expect("rules file");
    let objects = render_overlay("overlays/prometheus-operator");
    let pr = find(
        &objects,
        |o| {
            if let Object::PrometheusRule(v) = o {
                Some(v)
            } else {
                None
            }
        },
        "PrometheusRule",
    );
    assert_eq!(
        pr.pointer("/spec/groups"),
        rules.get("groups"),
        "edit both, or regenerate the PrometheusRule"
    );
}

fn alerts(rules: &Value) -> Vec<&Value> {
    rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect()
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let rules = rules_file();
    let tests_doc = yaml_docs(&deploy_dir().join("prometheus/imagedrift.rules.test.yaml"));
    let tests = tests_doc.first().expect("a test document");
    let rule_files = tests["rule_files"].as_array().expect("rule_files");
    assert_eq!(rule_files, &[Value::from("imagedrift.rules.yaml")]);
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .collect();
    for alert in alerts(&rules) {
        let name = alert["alert"].as_str().expect("alerting rules only");
        let mine: Vec<_> = cases.iter().filter(|c| c["alertname"] == name).collect();
        let firing = |c: &&&Value| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
        assert!(mine.iter().any(firing), "{name}: no test where it fires");
        assert!(
            mine.iter().any(|c| !firing(c)),
            "{name}: no test where it stays quiet"
        );
        assert!(
            alert["labels"]["severity"].is_string(),
            "{name}: label severity"
        );
        for key in ["summary", "description"] {
            assert!(
                alert["annotations"][key].is_string(),
                "{name}: annotation {key}"
            );
        }
    }
}

/// The `imagedrift_*` metric names an expression uses, histogram suffixes removed.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("imagedrift_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(if METRICS.contains(&base) { base } else { name }.to_string());
        rest = &tail[end..];
    }
    out
}

fn unknown_metrics(exprs: &[String]) -> BTreeSet<String> {
    exprs
        .iter()
        .flat_map(|e| metric_names(e))
        .filter(|m| !METRICS.contains(&m.as_str()))
        .collect()
}

#[test]
fn alerts_use_only_exported_metrics() {
    let rules = rules_file();
    let exprs: Vec<String> = alerts(&rules)
        .iter()
        .filter_map(|a| a["expr"].as_str().map(String::from))
        .collect();
    assert!(!exprs.is_empty());
    assert_eq!(unknown_metrics(&exprs), BTreeSet::new());
    assert_eq!(
        unknown_metrics(&["rate(imagedrift_registry_request_total[5m])".into()]),
        ["imagedrift_registry_request_total".to_string()].into(),
        "a misspelt metric is caught"
    );
}

fn dashboard() -> Value {
    let path = deploy_dir().join("grafana/imagedrift.json");
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

/// Every panel, including those nested in collapsed rows.
fn panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(panels(p));
    }
    out
}

#[test]
fn grafana_dashboard_is_valid_and_covers_the_topics() {
    let files = files_under(&deploy_dir().join("grafana"), ".json");
    assert_eq!(files.len(), 1, "one dashboard: {files:?}");
    let d = dashboard();
    assert!(
        d["title"].is_string() && d["uid"].is_string(),
        "title and uid"
    );
    let all = panels(&d);
    let mut exprs = Vec::new();
    for p in &all {
        assert!(p["title"].is_string(), "panel without title: {p}");
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("panel {} has no query", p["title"]));
        for t in targets {
            exprs.push(
                t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel {}: target without expr", p["title"]))
                    .to_string(),
            );
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {} uses the datasource variable",
            p["title"]
        );
    }
    assert_eq!(unknown_metrics(&exprs), BTreeSet::new());
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    // Every panel draws in every `metrics.containerSeries` mode: the
    // per-container families exist only in `all`.
    for per_container in ["imagedrift_container_stale", "imagedrift_container_verdict"] {
        assert!(
            !used.contains(per_container),
            "the dashboard reads {per_container}, which containerSeries stale/none drop"
        );
    }
    for topic in [
        "imagedrift_workload_stale_containers",
        "imagedrift_containers",
        "imagedrift_registry_requests_total",
        "imagedrift_registry_lookup_failures_total",
        "imagedrift_registry_get_requests_total",
        "imagedrift_check_duration_seconds",
    ] {
        assert!(used.contains(topic), "the dashboard shows no {topic}");
    }
    let ids: Vec<_> = all.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), all.len(), "every panel has a numeric id");
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "panel ids are unique"
    );
}

#[test]
fn metric_names_are_the_codes() {
    let mut code = String::new();
    for f in files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), ".rs") {
        code.push_str(&read(&f));
    }
    for name in METRICS {
        assert!(
            code.contains(&format!("\"{name}\"")),
            "{name} is not registered anywhere in src/"
        );
    }
}
