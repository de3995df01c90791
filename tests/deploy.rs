//! Checks the shipping manifests under `deploy/`: every object parses into its
//! Kubernetes type (with no unknown fields), RBAC grants exactly the API calls
//! the code makes per overlay, the Deployment is hardened, the alerts and the
//! PrometheusRule agree, and the Grafana dashboard only names real metrics.
//!
//! Rendering follows the subset of kustomize these manifests use
//! (`resources`, `components`); the resolver refuses anything else
//! so it cannot silently diverge from `kubectl kustomize`, which
//! `.ci/deploy-checks.sh` runs on every overlay.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Which optional feature an API call belongs to; overlays enable features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feature {
    /// Always on: watching, judging, Events, leader election.
    Core,
    /// Reading the pull secrets pods name (private registries).
    PullSecrets,
    /// restart / refresh / pin.
    Remedies,
}

/// Where a grant must apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// Every namespace (ClusterRole + ClusterRoleBinding).
    Cluster,
    /// imagedrift's own namespace only (Role + RoleBinding).
    OwnNamespace,
}

/// One API call the controller makes.
struct ApiCall {
    group: &'static str,
    resource: &'static str,
    verb: &'static str,
    scope: Scope,
    feature: Feature,
    why: &'static str,
}

fn call(
    group: &'static str,
    resource: &'static str,
    verb: &'static str,
    scope: Scope,
    feature: Feature,
    why: &'static str,
) -> ApiCall {
    ApiCall {
        group,
        resource,
        verb,
        scope,
        feature,
        why,
    }
}

/// Every API call the code makes, from the code's own table
/// (`imagedrift::rbac`), with where its grant must live.
fn api_calls() -> Vec<ApiCall> {
    use imagedrift::rbac;
    let tables: [(&[rbac::ApiCall], Scope, Feature); 4] = [
        (rbac::API_CALLS, Scope::Cluster, Feature::Core),
        (rbac::LEASE_CALLS, Scope::OwnNamespace, Feature::Core),
        (
            rbac::PULL_SECRET_CALLS,
            Scope::Cluster,
            Feature::PullSecrets,
        ),
        (rbac::REMEDY_CALLS, Scope::Cluster, Feature::Remedies),
    ];
    tables
        .into_iter()
        .flat_map(|(table, scope, feature)| {
            table.iter().map(move |&(group, resource, verb, why)| {
                call(group, resource, verb, scope, feature, why)
            })
        })
        .collect()
}

/// Every installable kustomization under `deploy/` and the features it enables.
const OVERLAYS: &[(&str, &[Feature])] = &[
    ("base", &[Feature::Core]),
    (
        "overlays/pull-secrets",
        &[Feature::Core, Feature::PullSecrets],
    ),
    ("overlays/remedies", &[Feature::Core, Feature::Remedies]),
    ("overlays/prometheus-operator", &[Feature::Core]),
];

/// Every metric the code exports (names without histogram suffixes).
/// Metric names the dashboard and alerts may use; `metric_names_are_the_codes`
/// checks each is a name the code registers.
const METRICS: &[&str] = &[
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
];

const NAMESPACE: &str = "imagedrift";
const SERVICE_ACCOUNT: &str = "imagedrift";
const NONROOT_UID: i64 = 65532;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// All files under `dir` (recursively) whose name ends with `suffix`, sorted.
fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The non-empty YAML documents of a file, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, doc)| {
            <Value as serde::Deserialize>::deserialize(doc).unwrap_or_else(|e| {
                panic!("{} document {}: invalid YAML: {e}", path.display(), i + 1)
            })
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The first path at which `original` has something `round_trip` lacks or
/// differs: a misspelt or misplaced field that the typed parse dropped.
fn first_difference(original: &Value, round_trip: &Value, at: &str) -> Option<String> {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| match b.get(k) {
            None => Some(format!("{at}.{k}")),
            Some(w) => first_difference(v, w, &format!("{at}.{k}")),
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{at}[{i}]"))),
        (a, b) if a == b => None,
        _ => Some(at.to_string()),
    }
}

/// Parses `value` into `T`, rejecting fields that `T` does not have.
fn typed<T: DeserializeOwned + Serialize>(value: &Value, origin: &str) -> Result<T, String> {
    let kind = std::any::type_name::<T>()
        .rsplit("::")
        .next()
        .unwrap_or("object")
        .trim_end_matches('>');
    let parsed: T = serde_json::from_value(value.clone())
        .map_err(|e| format!("{origin}: not a valid {kind}: {e}"))?;
    let back = serde_json::to_value(&parsed).map_err(|e| format!("{origin}: {e}"))?;
    match first_difference(value, &back, "") {
        None => Ok(parsed),
        Some(path) => Err(format!(
            "{origin}: `{path}` is not a field of {kind} (misspelt or misplaced?)"
        )),
    }
}

/// One object of a manifest, parsed into its type.
#[derive(Debug, Clone)]
enum Object {
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
    ConfigMap(Box<ConfigMap>),
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    /// monitoring.coreos.com/v1 (no k8s-openapi type): checked by hand.
    ServiceMonitor(Value),
    /// monitoring.coreos.com/v1 (no k8s-openapi type): checked by hand.
    PrometheusRule(Value),
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn nonempty_array<'a>(v: &'a Value, pointer: &str) -> Option<&'a Vec<Value>> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
}

fn check_service_monitor(v: &Value, origin: &str) -> Result<(), String> {
    require_metadata(v, origin)?;
    if !v.pointer("/spec/selector").is_some_and(Value::is_object) {
        return Err(format!("{origin}: ServiceMonitor needs spec.selector"));
    }
    let endpoints = nonempty_array(v, "/spec/endpoints")
        .ok_or(format!("{origin}: ServiceMonitor needs spec.endpoints"))?;
    for (i, e) in endpoints.iter().enumerate() {
        if str_at(e, "/port").is_none() {
            return Err(format!(
                "{origin}: spec.endpoints[{i}] needs a named `port`"
            ));
        }
    }
    Ok(())
}

fn check_rule_groups(groups: Option<&Vec<Value>>, origin: &str) -> Result<(), String> {
    let groups = groups.ok_or(format!("{origin}: needs a non-empty list of rule groups"))?;
    for (i, g) in groups.iter().enumerate() {
        str_at(g, "/name").ok_or(format!("{origin}: group {i} needs a name"))?;
        let rules =
            nonempty_array(g, "/rules").ok_or(format!("{origin}: group {i} needs rules"))?;
        for (j, r) in rules.iter().enumerate() {
            let named = str_at(r, "/alert").or(str_at(r, "/record"));
            if named.is_none() || str_at(r, "/expr").is_none() {
                return Err(format!(
                    "{origin}: group {i} rule {j} needs `alert` or `record`, and `expr`"
                ));
            }
        }
    }
    Ok(())
}

fn require_metadata(v: &Value, origin: &str) -> Result<(), String> {
    str_at(v, "/metadata/name").ok_or(format!("{origin}: needs metadata.name"))?;
    str_at(v, "/metadata/namespace").ok_or(format!("{origin}: needs metadata.namespace"))?;
    Ok(())
}

fn parse_object(v: &Value, origin: &str) -> Result<Object, String> {
    let api_version = str_at(v, "/apiVersion").ok_or(format!("{origin}: no apiVersion"))?;
    let kind = str_at(v, "/kind").ok_or(format!("{origin}: no kind"))?;
    let origin = &format!("{origin} ({kind})");
    Ok(match (api_version, kind) {
        ("v1", "Namespace") => Object::Namespace(typed(v, origin)?),
        ("v1", "ServiceAccount") => Object::ServiceAccount(typed(v, origin)?),
        ("v1", "ConfigMap") => Object::ConfigMap(typed(v, origin)?),
        ("v1", "Service") => Object::Service(typed(v, origin)?),
        ("apps/v1", "Deployment") => Object::Deployment(typed(v, origin)?),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => Object::ClusterRole(typed(v, origin)?),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            Object::ClusterRoleBinding(typed(v, origin)?)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => Object::Role(typed(v, origin)?),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => Object::RoleBinding(typed(v, origin)?),
        ("monitoring.coreos.com/v1", "ServiceMonitor") => {
            check_service_monitor(v, origin)?;
            Object::ServiceMonitor(v.clone())
        }
        ("monitoring.coreos.com/v1", "PrometheusRule") => {
            require_metadata(v, origin)?;
            check_rule_groups(v.pointer("/spec/groups").and_then(Value::as_array), origin)?;
            Object::PrometheusRule(v.clone())
        }
        _ => {
            return Err(format!(
                "{origin}: unexpected apiVersion/kind {api_version}/{kind}"
            ));
        }
    })
}

/// Keys of a kustomization that the resolver below understands.
const KUSTOMIZATION_KEYS: &[&str] = &["apiVersion", "kind", "resources", "components", "patches"];

/// Checks a kustomization file and returns it.
fn kustomization(dir: &Path) -> Result<Value, String> {
    let path = dir.join("kustomization.yaml");
    let origin = path.display().to_string();
    let docs = yaml_docs(&path);
    let [k] = docs.as_slice() else {
        return Err(format!("{origin}: expected exactly one document"));
    };
    match (str_at(k, "/apiVersion"), str_at(k, "/kind")) {
        (Some("kustomize.config.k8s.io/v1beta1"), Some("Kustomization"))
        | (Some("kustomize.config.k8s.io/v1alpha1"), Some("Component")) => {}
        other => {
            return Err(format!(
                "{origin}: not a Kustomization or Component: {other:?}"
            ));
        }
    }
    let map = k.as_object().ok_or(format!("{origin}: not a mapping"))?;
    if let Some(key) = map
        .keys()
        .find(|key| !KUSTOMIZATION_KEYS.contains(&key.as_str()))
    {
        return Err(format!(
            "{origin}: key `{key}` is not understood by tests/deploy.rs's resolver; teach it"
        ));
    }
    for list in ["resources", "components"] {
        for entry in k.get(list).and_then(Value::as_array).into_iter().flatten() {
            let rel = entry
                .as_str()
                .ok_or(format!("{origin}: {list} entries must be paths"))?;
            if !dir.join(rel).exists() {
                return Err(format!("{origin}: {list} entry {rel} does not exist"));
            }
        }
    }
    Ok(k.clone())
}

/// The objects a kustomization renders.
fn render(dir: &Path) -> Result<Vec<Object>, String> {
    render_values(dir)?
        .iter()
        .map(|(v, origin)| parse_object(v, origin))
        .collect()
}

/// The documents a kustomization renders, with their patches applied. As in
/// kustomize, a component adds its resources to its parent's and its
/// patches apply to everything the parent has gathered so far.
fn render_values(dir: &Path) -> Result<Vec<(Value, String)>, String> {
    let mut docs = Vec::new();
    render_into(dir, &mut docs)?;
    Ok(docs)
}

fn render_into(dir: &Path, docs: &mut Vec<(Value, String)>) -> Result<(), String> {
    let k = kustomization(dir)?;
    let entries = |list: &str| -> Vec<String> {
        k.get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    for rel in entries("resources") {
        let path = dir.join(&rel);
        if path.is_dir() {
            // A resource directory is a kustomization of its own.
            docs.extend(render_values(&path)?);
        } else {
            for (i, doc) in yaml_docs(&path).into_iter().enumerate() {
                docs.push((doc, format!("{} document {}", path.display(), i + 1)));
            }
        }
    }
    for rel in entries("components") {
        render_into(&dir.join(rel), docs)?;
    }
    for patch in k
        .get("patches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        apply_patch(dir, patch, docs)?;
    }
    Ok(())
}

/// Applies one `patches:` entry: a JSON 6902 patch (only `add`, which is
/// all `deploy/` uses) to the objects its target names.
fn apply_patch(dir: &Path, patch: &Value, docs: &mut [(Value, String)]) -> Result<(), String> {
    let origin = dir.join("kustomization.yaml").display().to_string();
    let kind =
        str_at(patch, "/target/kind").ok_or(format!("{origin}: patch without target.kind"))?;
    let name =
        str_at(patch, "/target/name").ok_or(format!("{origin}: patch without target.name"))?;
    let text =
        str_at(patch, "/patch").ok_or(format!("{origin}: patch without an inline `patch`"))?;
    let ops: Vec<Value> =
        serde_yaml_ng::from_str(text).map_err(|e| format!("{origin}: patch: {e}"))?;
    let mut hit = false;
    for (doc, _) in docs.iter_mut() {
        if str_at(doc, "/kind") != Some(kind) || str_at(doc, "/metadata/name") != Some(name) {
            continue;
        }
        hit = true;
        for op in &ops {
            let (Some("add"), Some(path)) = (str_at(op, "/op"), str_at(op, "/path")) else {
                return Err(format!(
                    "{origin}: only `add` operations are understood: {op}"
                ));
            };
            let value = op
                .get("value")
                .cloned()
                .ok_or(format!("{origin}: add without value"))?;
            let (parent, last) = path
                .rsplit_once('/')
                .ok_or(format!("{origin}: bad path {path}"))?;
            let target = doc.pointer_mut(parent).ok_or(format!(
                "{origin}: {path}: no such location in {kind}/{name}"
            ))?;
            match (target, last) {
                (Value::Array(a), "-") => a.push(value),
                (Value::Object(m), key) => {
                    m.insert(key.to_string(), value);
                }
                _ => return Err(format!("{origin}: {path}: cannot add there")),
            }
        }
    }
    if hit {
        Ok(())
    } else {
        Err(format!(
            "{origin}: patch target {kind}/{name} matches nothing"
        ))
    }
}

fn render_overlay(rel: &str) -> Vec<Object> {
    render(&deploy_dir().join(rel)).unwrap_or_else(|e| panic!("rendering {rel}: {e}"))
}

#[test]
fn every_object_under_deploy_parses_into_its_type() {
    let mut errors = Vec::new();
    let mut objects = 0;
    for path in files_under(&deploy_dir(), ".yaml") {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "kustomization.yaml" {
            if let Err(e) = kustomization(path.parent().expect("file has a parent")) {
                errors.push(e);
            }
        } else if path.parent().is_some_and(|p| p.ends_with("prometheus")) {
            // Prometheus rule and test files: checked by the tests below
            // and by promtool.
        } else {
            for (i, doc) in yaml_docs(&path).iter().enumerate() {
                match parse_object(doc, &format!("{} document {}", path.display(), i + 1)) {
                    Ok(_) => objects += 1,
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    assert!(
        errors.is_empty(),
        "invalid manifests:\n{}",
        errors.join("\n")
    );
    assert!(
        objects >= 15,
        "expected the base and components' objects, found {objects}"
    );
}

#[test]
fn typed_parse_rejects_misspelt_fields() {
    let v: Value = serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "x", "namespace": "y"},
        "automountServiceAcountToken": false,
    });
    let err = parse_object(&v, "sa.yaml").expect_err("a misspelt field must be reported");
    assert!(err.contains("automountServiceAcountToken"), "{err}");
}

#[test]
fn every_overlay_is_listed_with_its_features() {
    let listed: BTreeSet<String> = OVERLAYS.iter().map(|(o, _)| o.to_string()).collect();
    let mut found: BTreeSet<String> = ["base".to_string()].into();
    for entry in fs::read_dir(deploy_dir().join("overlays")).expect("deploy/overlays") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        found.insert(format!("overlays/{name}"));
    }
    assert_eq!(
        listed, found,
        "OVERLAYS must name every overlay and the features it enables"
    );
}

type Grant = (Scope, String, String, String);

/// Expands a rule into (scope, group, resource, verb), refusing wildcards and
/// anything narrower or broader than plain resource grants.
fn expand(
    rule: &PolicyRule,
    scope: Scope,
    origin: &str,
    out: &mut BTreeSet<Grant>,
) -> Result<(), String> {
    if rule.non_resource_urls.is_some() || rule.resource_names.is_some() {
        return Err(format!(
            "{origin}: nonResourceURLs/resourceNames are not expected"
        ));
    }
    let groups = rule.api_groups.clone().unwrap_or_default();
    let resources = rule.resources.clone().unwrap_or_default();
    if groups.is_empty() || resources.is_empty() || rule.verbs.is_empty() {
        return Err(format!(
            "{origin}: a rule needs apiGroups, resources and verbs"
        ));
    }
    for g in &groups {
        for r in &resources {
            for v in &rule.verbs {
                if [g, r, v].iter().any(|s| s.contains('*')) {
                    return Err(format!("{origin}: wildcard in {g:?}/{r}/{v}"));
                }
                if !out.insert((scope, g.clone(), r.clone(), v.clone())) {
                    return Err(format!("{origin}: {g:?}/{r}/{v} granted twice"));
                }
            }
        }
    }
    Ok(())
}

fn is_our_service_account(
    subjects: Option<&Vec<k8s_openapi::api::rbac::v1::Subject>>,
    origin: &str,
) -> Result<(), String> {
    let subjects = subjects.map(Vec::as_slice).unwrap_or_default();
    match subjects {
        [s] if s.kind == "ServiceAccount"
            && s.name == SERVICE_ACCOUNT
            && s.namespace.as_deref() == Some(NAMESPACE) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{origin}: must bind exactly ServiceAccount {NAMESPACE}/{SERVICE_ACCOUNT}, binds {subjects:?}"
        )),
    }
}

/// What the rendered objects grant imagedrift's ServiceAccount.
fn grants(objects: &[Object]) -> Result<BTreeSet<Grant>, String> {
    let mut cluster_roles = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for o in objects {
        match o {
            Object::ClusterRole(r) => {
                if r.aggregation_rule.is_some() {
                    return Err("ClusterRole with aggregationRule".into());
                }
                cluster_roles.insert(
                    r.metadata.name.clone().unwrap_or_default(),
                    r.rules.clone().unwrap_or_default(),
                );
            }
            Object::Role(r) => {
                if r.metadata.namespace.as_deref() != Some(NAMESPACE) {
                    return Err(format!(
                        "Role {:?} outside namespace {NAMESPACE}",
                        r.metadata.name
                    ));
                }
                roles.insert(
                    r.metadata.name.clone().unwrap_or_default(),
                    r.rules.clone().unwrap_or_default(),
                );
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    let mut bound = BTreeSet::new();
    for o in objects {
        let (scope, role_ref, origin) = match o {
            Object::ClusterRoleBinding(b) => {
                let origin = format!("ClusterRoleBinding {:?}", b.metadata.name);
                is_our_service_account(b.subjects.as_ref(), &origin)?;
                (Scope::Cluster, &b.role_ref, origin)
            }
            Object::RoleBinding(b) => {
                let origin = format!("RoleBinding {:?}", b.metadata.name);
                is_our_service_account(b.subjects.as_ref(), &origin)?;
                if b.metadata.namespace.as_deref() != Some(NAMESPACE) {
                    return Err(format!("{origin}: outside namespace {NAMESPACE}"));
                }
                (Scope::OwnNamespace, &b.role_ref, origin)
            }
            _ => continue,
        };
        let rules = match role_ref.kind.as_str() {
            "ClusterRole" => cluster_roles.get(&role_ref.name),
            "Role" if scope == Scope::OwnNamespace => roles.get(&role_ref.name),
            other => return Err(format!("{origin}: cannot reference a {other}")),
        }
        .ok_or(format!(
            "{origin}: references missing {} {}",
            role_ref.kind, role_ref.name
        ))?;
        bound.insert((role_ref.kind.clone(), role_ref.name.clone()));
        for rule in rules {
            expand(rule, scope, &origin, &mut out)?;
        }
    }
    let defined = cluster_roles
        .keys()
        .map(|n| ("ClusterRole".to_string(), n.clone()))
        .chain(roles.keys().map(|n| ("Role".to_string(), n.clone())));
    if let Some(unbound) = defined.into_iter().find(|r| !bound.contains(r)) {
        return Err(format!("{unbound:?} is defined but never bound"));
    }
    Ok(out)
}

#[test]
fn rbac_grants_exactly_the_api_calls_of_each_overlay() {
    for (overlay, features) in OVERLAYS {
        let granted = grants(&render_overlay(overlay)).unwrap_or_else(|e| panic!("{overlay}: {e}"));
        let expected: BTreeMap<Grant, &str> = api_calls()
            .iter()
            .filter(|c| features.contains(&c.feature))
            .map(|c| {
                (
                    (c.scope, c.group.into(), c.resource.into(), c.verb.into()),
                    c.why,
                )
            })
            .collect();
        let missing: Vec<_> = expected
            .iter()
            .filter(|(g, _)| !granted.contains(*g))
            .collect();
        let extra: Vec<_> = granted
            .iter()
            .filter(|g| !expected.contains_key(*g))
            .collect();
        assert!(
            missing.is_empty(),
            "{overlay}: the code calls, but RBAC does not grant: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "{overlay}: RBAC grants what no code calls: {extra:?}"
        );
    }
}

#[test]
fn rbac_check_catches_an_extra_verb() {
    let mut objects = render_overlay("base");
    for o in &mut objects {
        if let Object::ClusterRole(r) = o {
            r.rules.get_or_insert_default()[0]
                .verbs
                .push("update".into());
        }
    }
    let granted = grants(&objects).expect("still well-formed");
    assert!(granted.contains(&(Scope::Cluster, "".into(), "pods".into(), "update".into())));
    assert!(
        !api_calls()
            .iter()
            .any(|c| c.resource == "pods" && c.verb == "update")
    );
}

fn find<'a, T>(
    objects: &'a [Object],
    pick: impl Fn(&'a Object) -> Option<&'a T>,
    what: &str,
) -> &'a T {
    let found: Vec<_> = objects.iter().filter_map(pick).collect();
    match found.as_slice() {
        [one] => one,
        other => panic!("expected exactly one {what}, found {}", other.len()),
    }
}

fn deployment(objects: &[Object]) -> &Deployment {
    find(
        objects,
        |o| {
            if let Object::Deployment(d) = o {
                Some(&**d)
            } else {
                None
            }
        },
        "Deployment",
    )
}

fn pod_spec(d: &Deployment) -> &PodSpec {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("Deployment has a pod template spec")
}

/// The controller's image split into repository and `:tag` / `@digest`.
fn release_image(c: &Container) -> (&str, &str) {
    let image = c.image.as_deref().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or_default();
    let at = last
        .find(['@', ':'])
        .map_or(image.len(), |i| image.len() - last.len() + i);
    image.split_at(at)
}

fn controller(spec: &PodSpec) -> &Container {
    spec.containers
        .iter()
        .find(|c| c.name == "imagedrift")
        .expect("a container named imagedrift")
}

#[test]
fn deployment_is_hardened_and_probed() {
    let objects = render_overlay("base");
    let d = deployment(&objects);
    assert_eq!(d.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = pod_spec(d);
    let c = controller(spec);
    assert_eq!(spec.service_account_name.as_deref(), Some(SERVICE_ACCOUNT));
    assert_ne!(
        spec.automount_service_account_token,
        Some(false),
        "the controller needs its token"
    );

    // Probes on the HTTP port the binary listens on.
    let port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("http"))
        .expect("a port named http");
    assert_eq!(port.container_port, 8080);
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    assert!(
        args.contains(&"--listen=0.0.0.0:8080".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--leader-elect".to_string()), "{args:?}");
    for (probe, path) in [
        (&c.liveness_probe, "/livez"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{path} probe"));
        assert_eq!(get.path.as_deref(), Some(path));
        let port = serde_json::to_value(&get.port).expect("port");
        assert!(port == "http" || port == 8080, "{path} probe port {port}");
    }

    // Requests and limits for CPU and memory.
    let resources = c.resources.as_ref().expect("resources");
    for (what, map) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        let map = map.as_ref().unwrap_or_else(|| panic!("resources.{what}"));
        assert!(
            map.contains_key("cpu") && map.contains_key("memory"),
            "resources.{what}: {map:?}"
        );
    }

    // Security context: container settings, falling back to the pod's.
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    let pod_sc = spec.security_context.as_ref();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_ne!(sc.privileged, Some(true));
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(
        caps.add.as_ref().is_none_or(Vec::is_empty),
        "no capabilities added"
    );
    let seccomp = sc
        .seccomp_profile
        .as_ref()
        .or(pod_sc.and_then(|p| p.seccomp_profile.as_ref()));
    assert_eq!(seccomp.map(|s| s.type_.as_str()), Some("RuntimeDefault"));
    let non_root = sc
        .run_as_non_root
        .or(pod_sc.and_then(|p| p.run_as_non_root));
    assert_eq!(non_root, Some(true));
    let uid = sc.run_as_user.or(pod_sc.and_then(|p| p.run_as_user));
    assert_eq!(uid, Some(NONROOT_UID));

    // Downward API for the lease and the event reporter.
    for (name, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let env = c
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("env {name}"));
        let got = env
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str());
        assert_eq!(got, Some(field), "env {name}");
    }

    // A fully qualified release image with a tag or digest, never `latest`.
    let (repo, version) = release_image(c);
    assert!(
        repo.contains('/') && repo.contains('.'),
        "image {repo:?} names its registry"
    );
    assert!(
        !version.is_empty() && version != ":latest",
        "image {repo}{version}"
    );
}

#[test]
fn config_is_mounted_from_the_configmap_and_parses() {
    let objects = render_overlay("base");
    let spec = pod_spec(deployment(&objects));
    let c = controller(spec);
    let config_arg = c
        .args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix("--config="))
        .expect("--config=FILE");
    let (dir, file) = config_arg
        .rsplit_once('/')
        .expect("an absolute config path");
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .expect("config mounted");
    assert_eq!(mount.read_only, Some(true));
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("config volume");
    let cm_name = volume
        .config_map
        .as_ref()
        .map(|c| c.name.as_str())
        .expect("a configMap volume");
    let cm = find(
        &objects,
        |o| match o {
            Object::ConfigMap(c) if c.metadata.name.as_deref() == Some(cm_name) => Some(&**c),
            _ => None,
        },
        "config ConfigMap",
    );
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(file))
        .unwrap_or_else(|| panic!("ConfigMap key {file}"));
    let config: Value = serde_yaml_ng::from_str(text).expect("the config is valid YAML");
    assert!(
        config.get("interval").and_then(Value::as_str).is_some(),
        "config sets interval: {config}"
    );
}

fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

#[test]
fn service_and_service_monitor_reach_the_metrics_port() {
    let objects = render_overlay("overlays/prometheus-operator");
    let d = deployment(&objects);
    let template_labels = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let svc = find(
        &objects,
        |o| {
            if let Object::Service(s) = o {
                Some(&**s)
            } else {
                None
            }
        },
        "Service",
    );
    let svc_spec = svc.spec.as_ref().expect("Service spec");
    assert!(labels_match(
        svc_spec.selector.as_ref().expect("selector"),
        template_labels
    ));
    let svc_port = svc_spec
        .ports
        .iter()
        .flatten()
        .find(|p| p.port == 8080)
        .expect("Service port 8080");
    let target = serde_json::to_value(&svc_port.target_port).expect("targetPort");
    assert!(target == "http" || target == 8080, "targetPort {target}");

    let sm = find(
        &objects,
        |o| {
            if let Object::ServiceMonitor(v) = o {
                Some(v)
            } else {
                None
            }
        },
        "ServiceMonitor",
    );
    let selector: BTreeMap<String, String> = serde_json::from_value(
        sm.pointer("/spec/selector/matchLabels")
            .cloned()
            .unwrap_or_default(),
    )
    .expect("matchLabels");
    assert!(
        labels_match(&selector, svc.metadata.labels.as_ref()),
        "ServiceMonitor selects the Service"
    );
    assert_eq!(
        str_at(sm, "/spec/endpoints/0/port"),
        svc_port.name.as_deref()
    );
    assert!(
        sm.pointer("/spec/namespaceSelector").is_none(),
        "select the own namespace only"
    );
    assert_eq!(
        str_at(sm, "/metadata/namespace"),
        svc.metadata.namespace.as_deref()
    );
    // The job label is the Service's name; ImagedriftDown expects it.
    assert_eq!(svc.metadata.name.as_deref(), Some("imagedrift"));
    assert!(
        rules_file()
            .to_string()
            .contains(r#"up{job=\"imagedrift\"}"#)
    );
}

fn rules_file() -> Value {
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
    for topic in [
        "imagedrift_container_stale",
        "imagedrift_workload_stale_containers",
        "imagedrift_container_verdict",
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
fn namespace_and_service_account_exist_once() {
    let objects = render_overlay("base");
    let ns = find(
        &objects,
        |o| {
            if let Object::Namespace(n) = o {
                Some(&**n)
            } else {
                None
            }
        },
        "Namespace",
    );
    assert_eq!(ns.metadata.name.as_deref(), Some(NAMESPACE));
    let sa = find(
        &objects,
        |o| {
            if let Object::ServiceAccount(s) = o {
                Some(&**s)
            } else {
                None
            }
        },
        "ServiceAccount",
    );
    assert_eq!(sa.metadata.name.as_deref(), Some(SERVICE_ACCOUNT));
    assert_eq!(sa.metadata.namespace.as_deref(), Some(NAMESPACE));
}

#[test]
fn e2e_overlay_replaces_the_release_image_and_patches_a_valid_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let objects = render_overlay("base");
    let (release, _) = release_image(controller(pod_spec(deployment(&objects))));
    let e2e_dir = root.join("tests/e2e/overlay");
    let e2e = yaml_docs(&e2e_dir.join("kustomization.yaml")).remove(0);
    assert_eq!(
        str_at(&e2e, "/images/0/name"),
        Some(release),
        "the e2e overlay must rename the image the base runs"
    );
    let image = format!(
        "{}:{}",
        str_at(&e2e, "/images/0/newName").unwrap_or_default(),
        str_at(&e2e, "/images/0/newTag").unwrap_or_default()
    );
    assert!(
        read(&root.join("tests/e2e/kind.sh")).contains(&format!("IMAGE={image}")),
        "kind.sh loads {image}"
    );
    let patch = yaml_docs(&e2e_dir.join("config.yaml")).remove(0);
    let cm: ConfigMap = typed(&patch, "tests/e2e/overlay/config.yaml").expect("a ConfigMap patch");
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get("imagedrift.yaml"))
        .expect("imagedrift.yaml key");
    let config: Value = serde_yaml_ng::from_str(text).expect("valid YAML");
    assert!(config.get("interval").is_some(), "{config}");
}

#[test]
fn dockerfile_builds_static_and_runs_as_nonroot() {
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"));
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    assert!(
        froms[1].contains("distroless/static") || froms[1].contains("scratch"),
        "{}",
        froms[1]
    );
    assert!(
        text.contains("x86_64-unknown-linux-musl"),
        "a musl (static) build"
    );
    let user = instructions
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "));
    assert_eq!(
        user,
        Some("65532:65532"),
        "the last USER is the nonroot UID the Deployment expects"
    );
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT [") && l.contains("imagedrift"))
    );
    for label in ["title", "source", "version", "revision", "licenses"] {
        assert!(
            text.contains(&format!("org.opencontainers.image.{label}=")),
            "OCI label {label}"
        );
    }
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

#[test]
fn feature_overlays_switch_their_feature_on() {
    for (overlay, var) in [
        ("overlays/pull-secrets", "IMAGEDRIFT_READ_PULL_SECRETS"),
        ("overlays/remedies", "IMAGEDRIFT_ENABLE_REMEDIES"),
    ] {
        for (rendered, want) in [(overlay, true), ("base", false)] {
            let objects = render_overlay(rendered);
            let d = deployment(&objects);
            let env = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .map(|s| s.containers[0].env.clone().unwrap_or_default())
                .unwrap_or_default();
            let on = env
                .iter()
                .any(|e| e.name == var && e.value.as_deref() == Some("true"));
            assert_eq!(on, want, "{rendered}: {var}");
        }
    }
}
