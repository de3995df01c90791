//! The subset of kustomize that `deploy/` uses, rendered in Rust so the
//! tests can check what each overlay installs: `resources`, `components`,
//! JSON 6902 `add` patches and `configMapGenerator`. Anything else is
//! refused so it cannot silently diverge from `kubectl kustomize`, which
//! `.ci/deploy-checks.sh` runs on every overlay. Every object is parsed into
//! its Kubernetes type with no unknown fields.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// All files under `dir` (recursively) whose name ends with `suffix`, sorted.
pub fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
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
pub fn yaml_docs(path: &Path) -> Vec<Value> {
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
pub fn first_difference(original: &Value, round_trip: &Value, at: &str) -> Option<String> {
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
pub fn typed<T: DeserializeOwned + Serialize>(value: &Value, origin: &str) -> Result<T, String> {
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
pub enum Object {
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
    ConfigMap(Box<ConfigMap>),
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    NetworkPolicy(Box<NetworkPolicy>),
    /// Only in examples (the webhooks component's Ingress).
    Ingress(Box<k8s_openapi::api::networking::v1::Ingress>),
    /// monitoring.coreos.com/v1 (no k8s-openapi type): checked by hand.
    ServiceMonitor(Value),
    /// monitoring.coreos.com/v1 (no k8s-openapi type): checked by hand.
    PrometheusRule(Value),
}

pub fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

pub fn nonempty_array<'a>(v: &'a Value, pointer: &str) -> Option<&'a Vec<Value>> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
}

pub fn check_service_monitor(v: &Value, origin: &str) -> Result<(), String> {
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

pub fn check_rule_groups(groups: Option<&Vec<Value>>, origin: &str) -> Result<(), String> {
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

pub fn require_metadata(v: &Value, origin: &str) -> Result<(), String> {
    str_at(v, "/metadata/name").ok_or(format!("{origin}: needs metadata.name"))?;
    str_at(v, "/metadata/namespace").ok_or(format!("{origin}: needs metadata.namespace"))?;
    Ok(())
}

pub fn parse_object(v: &Value, origin: &str) -> Result<Object, String> {
    let api_version = str_at(v, "/apiVersion").ok_or(format!("{origin}: no apiVersion"))?;
    let kind = str_at(v, "/kind").ok_or(format!("{origin}: no kind"))?;
    let origin = &format!("{origin} ({kind})");
    Ok(match (api_version, kind) {
        ("v1", "Namespace") => Object::Namespace(typed(v, origin)?),
        ("v1", "ServiceAccount") => Object::ServiceAccount(typed(v, origin)?),
        ("v1", "ConfigMap") => Object::ConfigMap(typed(v, origin)?),
        ("v1", "Service") => Object::Service(typed(v, origin)?),
        ("apps/v1", "Deployment") => Object::Deployment(typed(v, origin)?),
        ("networking.k8s.io/v1", "NetworkPolicy") => Object::NetworkPolicy(typed(v, origin)?),
        ("networking.k8s.io/v1", "Ingress") => Object::Ingress(typed(v, origin)?),
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
pub const KUSTOMIZATION_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "resources",
    "components",
    "patches",
    "configMapGenerator",
];

/// Keys of a `configMapGenerator` entry that the resolver understands.
const GENERATOR_KEYS: &[&str] = &["name", "namespace", "files", "options"];

/// Marks a ConfigMap made by a generator until its name gets its hash.
const GENERATED: &str = "tests.imagedrift.io/generated";

/// Checks a kustomization file and returns it.
pub fn kustomization(dir: &Path) -> Result<Value, String> {
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
pub fn render(dir: &Path) -> Result<Vec<Object>, String> {
    render_values(dir)?
        .iter()
        .map(|(v, origin)| parse_object(v, origin))
        .collect()
}

/// The documents a kustomization renders, with their patches applied and
/// generated ConfigMaps named `NAME-HASH` (referenced by that name). As in
/// kustomize, a component adds its resources to its parent's and its
/// patches apply to everything the parent has gathered so far; the hash is
/// taken last, so a patch of a generated ConfigMap changes its name too.
pub fn render_values(dir: &Path) -> Result<Vec<(Value, String)>, String> {
    let mut docs = Vec::new();
    render_into(dir, &mut docs)?;
    name_generated(&mut docs)?;
    Ok(docs)
}

/// Adds what the kustomization in `dir` renders to `docs` (names not yet hashed).
pub fn render_into(dir: &Path, docs: &mut Vec<(Value, String)>) -> Result<(), String> {
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
            // A resource directory is a kustomization of its own: its
            // patches apply to its own documents only.
            let mut sub = Vec::new();
            render_into(&path, &mut sub)?;
            docs.extend(sub);
        } else {
            for (i, doc) in yaml_docs(&path).into_iter().enumerate() {
                docs.push((doc, format!("{} document {}", path.display(), i + 1)));
            }
        }
    }
    for generator in k
        .get("configMapGenerator")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        docs.push(generate_config_map(dir, generator)?);
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

/// Every file a `configMapGenerator` under `root` reads (not a manifest).
pub fn generator_inputs(root: &Path) -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    for k in files_under(root, "kustomization.yaml") {
        let dir = k.parent().expect("file has a parent");
        for doc in yaml_docs(&k) {
            for g in doc
                .get("configMapGenerator")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let files = generator_files(dir, g).unwrap_or_else(|e| panic!("{e}"));
                out.extend(files.into_iter().map(|(_, p)| p));
            }
        }
    }
    out
}

/// The files a kustomization's `configMapGenerator` reads, as (key, path).
pub fn generator_files(dir: &Path, generator: &Value) -> Result<Vec<(String, PathBuf)>, String> {
    let origin = dir.join("kustomization.yaml").display().to_string();
    let files = generator
        .get("files")
        .and_then(Value::as_array)
        .filter(|f| !f.is_empty())
        .ok_or(format!("{origin}: configMapGenerator without files"))?;
    files
        .iter()
        .map(|f| {
            let f = f
                .as_str()
                .ok_or(format!("{origin}: configMapGenerator files must be paths"))?;
            // `key=path`, or `path` whose file name is the key.
            let (key, rel) = f.split_once('=').unwrap_or_else(|| {
                (
                    Path::new(f)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or(f),
                    f,
                )
            });
            Ok((key.to_string(), dir.join(rel)))
        })
        .collect()
}

/// One `configMapGenerator` entry as a ConfigMap (named by `name_generated`).
fn generate_config_map(dir: &Path, generator: &Value) -> Result<(Value, String), String> {
    let origin = dir.join("kustomization.yaml").display().to_string();
    let map = generator.as_object().ok_or(format!(
        "{origin}: configMapGenerator entry is not a mapping"
    ))?;
    if let Some(key) = map.keys().find(|k| !GENERATOR_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "{origin}: configMapGenerator key `{key}` is not understood by the resolver; teach it"
        ));
    }
    let options = generator.get("options").cloned().unwrap_or(Value::Null);
    if let Some(key) = options
        .as_object()
        .and_then(|o| o.keys().find(|k| k.as_str() != "labels"))
    {
        return Err(format!(
            "{origin}: configMapGenerator option `{key}` is not understood by the resolver; teach it"
        ));
    }
    let name = str_at(generator, "/name").ok_or(format!("{origin}: generator without name"))?;
    let mut data = serde_json::Map::new();
    for (key, path) in generator_files(dir, generator)? {
        if data.insert(key.clone(), Value::from(read(&path))).is_some() {
            return Err(format!("{origin}: configMapGenerator key {key} twice"));
        }
    }
    let mut metadata = serde_json::json!({
        "name": name,
        "annotations": {GENERATED: "true"},
    });
    if let Some(ns) = str_at(generator, "/namespace") {
        metadata["namespace"] = ns.into();
    }
    if let Some(labels) = options.get("labels") {
        metadata["labels"] = labels.clone();
    }
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data,
    });
    Ok((cm, format!("{origin} configMapGenerator {name}")))
}

/// kustomize's name suffix for a generated ConfigMap: the SHA-256 of
/// `{"data":…,"kind":"ConfigMap","name":""}` (keys sorted; kustomize hashes
/// before the generator's name is set), its first ten hex digits with 0, 1,
/// 3, a, e replaced so that it spells no word.
pub fn config_map_hash(data: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let doc: BTreeMap<&str, Value> = [
        ("data", serde_json::to_value(data).expect("strings")),
        ("kind", "ConfigMap".into()),
        ("name", "".into()),
    ]
    .into();
    let json = serde_json::to_string(&doc).expect("serialisable");
    hex::encode(Sha256::digest(json.as_bytes()))[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// Replaces `configMap`, `configMapRef` and `configMapKeyRef` names
/// `original` (volumes, projected volumes, envFrom, env) under `v`.
fn rename_config_map_refs(v: &mut Value, original: &str, hashed: &str) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                let is_ref = matches!(k.as_str(), "configMap" | "configMapRef" | "configMapKeyRef");
                match child.get_mut("name") {
                    Some(name) if is_ref && name.as_str() == Some(original) => {
                        *name = hashed.into();
                    }
                    _ => rename_config_map_refs(child, original, hashed),
                }
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|c| rename_config_map_refs(c, original, hashed)),
        _ => {}
    }
}

/// Names every generated ConfigMap `NAME-HASH` and points the Deployments'
/// volumes and env references in its namespace at the new name.
fn name_generated(docs: &mut [(Value, String)]) -> Result<(), String> {
    let mut renamed = Vec::new();
    for (doc, origin) in docs.iter_mut() {
        let Some(annotations) = doc
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if annotations.remove(GENERATED).is_none() {
            continue;
        }
        if annotations.is_empty() {
            doc["metadata"]
                .as_object_mut()
                .expect("metadata")
                .remove("annotations");
        }
        let data: BTreeMap<String, String> = serde_json::from_value(doc["data"].clone())
            .map_err(|e| format!("{origin}: data: {e}"))?;
        let name = str_at(doc, "/metadata/name")
            .unwrap_or_default()
            .to_string();
        let hashed = format!("{name}-{}", config_map_hash(&data));
        let ns = str_at(doc, "/metadata/namespace").map(str::to_string);
        doc["metadata"]["name"] = hashed.clone().into();
        renamed.push((ns, name, hashed));
    }
    for (doc, _) in docs.iter_mut() {
        if str_at(doc, "/kind") != Some("Deployment") {
            continue;
        }
        let ns = str_at(doc, "/metadata/namespace").map(str::to_string);
        let Some(spec) = doc.pointer_mut("/spec/template/spec") else {
            continue;
        };
        for (_, original, hashed) in renamed.iter().filter(|(n, _, _)| *n == ns) {
            rename_config_map_refs(spec, original, hashed);
        }
    }
    Ok(())
}

/// Applies one `patches:` entry: a JSON 6902 patch (only `add`, which is
/// all `deploy/` uses) to the objects its target names.
pub fn apply_patch(dir: &Path, patch: &Value, docs: &mut [(Value, String)]) -> Result<(), String> {
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
            // JSON pointer escapes (`~1` is `/`, as in label keys).
            let last = &last.replace("~1", "/").replace("~0", "~");
            let target = doc.pointer_mut(parent).ok_or(format!(
                "{origin}: {path}: no such location in {kind}/{name}"
            ))?;
            match (target, last.as_str()) {
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
