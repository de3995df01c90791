//! Checks the shipping manifests under `deploy/`: every object parses into its
//! Kubernetes type (with no unknown fields), RBAC grants exactly the API calls
//! the code makes per overlay (cluster-wide or per opted-in namespace), the
//! Deployment is hardened, its config comes from a hashed configMapGenerator,
//! the optional NetworkPolicy admits only the metrics port, the alerts and the
//! PrometheusRule agree, and the Grafana dashboard only names real metrics.
//!
//! Rendering (deploy_support/kustomize.rs) follows the subset of kustomize
//! these manifests use and refuses anything else, so it cannot silently
//! diverge from `kubectl kustomize`, which `.ci/deploy-checks.sh` runs on
//! every overlay. The RBAC model is in deploy_support/rbac.rs.

mod deploy_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use deploy_support::kustomize::*;
use deploy_support::monitoring::rules_file;
use deploy_support::rbac::*;
use deploy_support::{NAMESPACE, NONROOT_UID, SERVICE_ACCOUNT};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec};
use serde_json::Value;

/// Every installable kustomization under `deploy/` and the features it enables.
pub const OVERLAYS: &[(&str, &[Feature])] = &[
    ("base", &[Feature::Core]),
    (
        "overlays/pull-secrets",
        &[Feature::Core, Feature::PullSecrets],
    ),
    ("overlays/remedies", &[Feature::Core, Feature::Remedies]),
    (
        "overlays/pull-secrets-namespaced",
        &[Feature::Core, Feature::PullSecretsNamespaced],
    ),
    (
        "overlays/remedies-namespaced",
        &[Feature::Core, Feature::RemediesNamespaced],
    ),
    ("overlays/prometheus-operator", &[Feature::Core]),
    ("overlays/network-policy", &[Feature::Core]),
    // Plugins run inside imagedrift's pod with its own cloud identity: no
    // Kubernetes API call, so no RBAC beyond the base.
    ("overlays/credentials-eks", &[Feature::Core]),
    ("overlays/credentials-gke", &[Feature::Core]),
    ("overlays/credentials-aks", &[Feature::Core]),
    ("overlays/webhooks", &[Feature::Core]),
];

pub fn render_overlay(rel: &str) -> Vec<Object> {
    render(&deploy_dir().join(rel)).unwrap_or_else(|e| panic!("rendering {rel}: {e}"))
}

#[test]
fn every_object_under_deploy_parses_into_its_type() {
    let mut errors = Vec::new();
    let mut objects = 0;
    let inputs = generator_inputs(&deploy_dir());
    assert!(!inputs.is_empty(), "the base generates its ConfigMap");
    for path in files_under(&deploy_dir(), ".yaml") {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "kustomization.yaml" {
            if let Err(e) = kustomization(path.parent().expect("file has a parent")) {
                errors.push(e);
            }
        } else if inputs.contains(&path) {
            // A configMapGenerator's input (the config): checked by
            // `config_comes_from_a_generator_that_rolls_the_pod`.
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

pub fn find<'a, T>(
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
    // The controller's own parser and validation accept it.
    imagedrift::config::Config::from_yaml(text, "deploy/base/imagedrift.yaml")
        .and_then(|c| c.validate().map(|()| c))
        .unwrap_or_else(|e| panic!("the shipped config: {e}"));
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
fn feature_overlays_switch_their_feature_on() {
    for (overlay, var) in [
        ("overlays/pull-secrets", "IMAGEDRIFT_READ_PULL_SECRETS"),
        ("overlays/remedies", "IMAGEDRIFT_ENABLE_REMEDIES"),
        (
            "overlays/pull-secrets-namespaced",
            "IMAGEDRIFT_READ_PULL_SECRETS",
        ),
        ("overlays/remedies-namespaced", "IMAGEDRIFT_ENABLE_REMEDIES"),
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

/// The name reference of the config volume and the ConfigMap it names.
fn config_volume_and_map(objects: &[Object]) -> (String, &ConfigMap) {
    let spec = pod_spec(deployment(objects));
    let name = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "config")
        .and_then(|v| v.config_map.as_ref())
        .map(|c| c.name.clone())
        .expect("a configMap volume named config");
    let cm = find(
        objects,
        |o| match o {
            Object::ConfigMap(c) if c.metadata.name.as_deref() == Some(&name) => Some(&**c),
            _ => None,
        },
        "the ConfigMap the config volume names",
    );
    (name, cm)
}

/// Copies a directory tree (for rendering an edited copy of `deploy/`).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        let dest = to.join(path.file_name().expect("a name"));
        if path.is_dir() {
            copy_tree(&path, &dest);
        } else {
            fs::copy(&path, &dest).expect("copy");
        }
    }
}

#[test]
fn config_comes_from_a_generator_that_rolls_the_pod() {
    let base = yaml_docs(&deploy_dir().join("base/kustomization.yaml")).remove(0);
    let generators = base["configMapGenerator"]
        .as_array()
        .expect("the base has a configMapGenerator");
    assert_eq!(generators.len(), 1, "{generators:?}");
    assert_eq!(generators[0]["name"], "imagedrift");
    assert!(
        !base.to_string().contains("disableNameSuffixHash"),
        "the name must carry the content hash"
    );
    let objects = render_overlay("base");
    let (name, cm) = config_volume_and_map(&objects);
    let suffix = name.strip_prefix("imagedrift-").expect("imagedrift-<hash>");
    assert_eq!(suffix.len(), 10, "{name}");
    assert!(
        cm.data
            .as_ref()
            .is_some_and(|d| d.contains_key("imagedrift.yaml"))
    );

    // Edit the config in a copy of deploy/: the name, and so the pod
    // template, changes with it.
    let tmp = std::env::temp_dir().join(format!("imagedrift-deploy-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    copy_tree(&deploy_dir(), &tmp);
    let config = tmp.join("base/imagedrift.yaml");
    let text = read(&config);
    assert!(text.contains("interval: 5m"), "{text}");
    fs::write(&config, text.replace("interval: 5m", "interval: 6m")).expect("write");
    let edited = render(&tmp.join("base")).expect("renders");
    let (edited_name, _) = config_volume_and_map(&edited);
    fs::remove_dir_all(&tmp).expect("clean up");
    assert_ne!(edited_name, name, "a changed config must change the name");
    assert!(edited_name.starts_with("imagedrift-"), "{edited_name}");
}

#[test]
fn config_map_names_match_kustomizes() {
    // `kubectl kustomize` (kustomize v5.5.0) names a generated ConfigMap
    // `imagedrift` with the single key imagedrift.yaml = "interval: 5m\n"
    // imagedrift-f6862t9h7k.
    let data = BTreeMap::from([("imagedrift.yaml".to_string(), "interval: 5m\n".to_string())]);
    assert_eq!(config_map_hash(&data), "f6862t9h7k");
    let other = BTreeMap::from([("imagedrift.yaml".to_string(), "interval: 6m\n".to_string())]);
    assert_ne!(config_map_hash(&other), "f6862t9h7k");
}

#[test]
fn network_policy_admits_only_the_metrics_port() {
    let network_policies = |objects: &[Object]| -> Vec<_> {
        objects
            .iter()
            .filter_map(|o| match o {
                Object::NetworkPolicy(n) => Some((**n).clone()),
                _ => None,
            })
            .collect()
    };
    assert!(
        network_policies(&render_overlay("base")).is_empty(),
        "the NetworkPolicy is optional"
    );
    let objects = render_overlay("overlays/network-policy");
    let [np] = network_policies(&objects)
        .try_into()
        .expect("one NetworkPolicy");
    assert_eq!(np.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = np.spec.expect("spec");
    let d = deployment(&objects);
    let template_labels = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    assert!(
        labels_match(
            spec.pod_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
                .expect("matchLabels"),
            template_labels
        ),
        "selects the controller's pods"
    );
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string()][..]),
        "ingress restricted, egress left open (registries are anywhere)"
    );
    assert!(spec.egress.is_none());
    let ingress = spec.ingress.expect("ingress rules");
    let [rule] = ingress.as_slice() else {
        panic!("one ingress rule: {ingress:?}");
    };
    let ports = rule.ports.as_deref().unwrap_or_default();
    let [port] = ports else {
        panic!("exactly one port: {ports:?}");
    };
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(port.end_port, None);
    let container_port = controller(pod_spec(d))
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("http"))
        .expect("the container port named http");
    assert_eq!(container_port.container_port, 8080, "metrics and probes");
    let named = serde_json::to_value(&port.port).expect("port");
    assert!(
        named == "http" || named == 8080,
        "the metrics port, not {named}"
    );
}

/// Each cloud's credentials overlay: an init container copies the vendor's
/// plugin into an emptyDir that imagedrift mounts read-only as its bin dir;
/// the provider config comes from a ConfigMap, parses with imagedrift's own
/// parser and names exactly the plugin copied; the ServiceAccount carries
/// the cloud identity annotation (a placeholder to replace).
#[test]
fn credentials_overlays_mount_a_plugin_and_its_config() {
    for (cloud, plugin, annotation, matches) in [
        (
            "eks",
            "ecr-credential-provider",
            "eks.amazonaws.com/role-arn",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app",
        ),
        (
            "gke",
            "auth-provider-gcp",
            "iam.gke.io/gcp-service-account",
            "europe-docker.pkg.dev/project/repo/app",
        ),
        (
            "aks",
            "acr-credential-provider",
            "azure.workload.identity/client-id",
            "myregistry.azurecr.io/team/app",
        ),
    ] {
        let overlay = format!("overlays/credentials-{cloud}");
        let objects = render_overlay(&overlay);
        let d = deployment(&objects);
        let spec = pod_spec(d);
        let c = controller(spec);
        let env = |name: &str| {
            c.env
                .iter()
                .flatten()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
                .unwrap_or_else(|| panic!("{overlay}: env {name}"))
        };
        let config_path = env("IMAGEDRIFT_IMAGE_CREDENTIAL_PROVIDER_CONFIG");
        let bin_dir = env("IMAGEDRIFT_IMAGE_CREDENTIAL_PROVIDER_BIN_DIR");
        let mount_at = |path: &str| {
            c.volume_mounts
                .iter()
                .flatten()
                .find(|m| path.starts_with(&format!("{}/", m.mount_path)) || path == m.mount_path)
                .unwrap_or_else(|| panic!("{overlay}: nothing mounted at {path}"))
        };
        let volume = |name: &str| {
            spec.volumes
                .iter()
                .flatten()
                .find(|v| v.name == name)
                .unwrap_or_else(|| panic!("{overlay}: volume {name}"))
        };
        // The bin dir: an emptyDir, read-only for imagedrift, written by the init container.
        let bin_mount = mount_at(&bin_dir);
        assert_eq!(bin_mount.mount_path, bin_dir, "{overlay}");
        assert_eq!(bin_mount.read_only, Some(true), "{overlay}");
        assert!(
            volume(&bin_mount.name).empty_dir.is_some(),
            "{overlay}: bin dir is an emptyDir"
        );
        let inits = spec.init_containers.as_deref().unwrap_or_default();
        let [init] = inits else {
            panic!("{overlay}: one init container, found {}", inits.len())
        };
        let init_mount = init
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == bin_mount.name)
            .unwrap_or_else(|| panic!("{overlay}: the init container mounts the bin dir"));
        assert_ne!(init_mount.read_only, Some(true), "{overlay}");
        let command = init.command.clone().unwrap_or_default();
        assert_eq!(
            command.first().map(String::as_str),
            Some("cp"),
            "{overlay}: {command:?}"
        );
        assert_eq!(
            command.last(),
            Some(&format!("{}/{plugin}", init_mount.mount_path)),
            "{overlay}: copies {plugin} into the bin dir"
        );
        assert!(
            init.image
                .as_deref()
                .is_some_and(|i| i.starts_with("example.invalid/")),
            "{overlay}: the plugin image is a placeholder the user replaces"
        );
        // Restricted Pod Security, as the namespace enforces.
        let sc = init
            .security_context
            .as_ref()
            .expect("init securityContext");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{overlay}");
        assert_eq!(sc.run_as_non_root, Some(true), "{overlay}");
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()])
        );
        assert!(
            init.resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .is_some(),
            "{overlay}"
        );

        // The provider config: a ConfigMap, parsed by imagedrift itself.
        let config_mount = mount_at(&config_path);
        assert_eq!(config_mount.read_only, Some(true), "{overlay}");
        let cm_name = volume(&config_mount.name)
            .config_map
            .as_ref()
            .map(|c| c.name.clone())
            .expect("a configMap volume");
        let cm = find(
            &objects,
            |o| match o {
                Object::ConfigMap(c) if c.metadata.name.as_deref() == Some(cm_name.as_str()) => {
                    Some(&**c)
                }
                _ => None,
            },
            "provider ConfigMap",
        );
        let key = config_path.rsplit('/').next().unwrap();
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .unwrap_or_else(|| panic!("{overlay}: key {key}"));
        let bin =
            std::env::temp_dir().join(format!("imagedrift-deploy-{cloud}-{}", std::process::id()));
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join(plugin), "").unwrap();
        let providers = imagedrift::credentials::provider::Providers::parse(
            text,
            Path::new(&config_path),
            &bin,
            std::time::Duration::from_secs(30),
            std::time::Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{overlay}: {e}"));
        fs::remove_dir_all(&bin).unwrap();
        let names: Vec<&str> = providers.list.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [plugin], "{overlay}");
        let image = imagedrift::reference::ImageRef::parse(&format!("{matches}:v1")).unwrap();
        assert_eq!(
            providers.matching(&image).count(),
            1,
            "{overlay}: matches {matches}"
        );
        let other = imagedrift::reference::ImageRef::parse("quay.io/team/app:v1").unwrap();
        assert_eq!(providers.matching(&other).count(), 0, "{overlay}");
        // Files a provider's args name are in the same ConfigMap mount.
        for arg in providers_args(text) {
            if let Some(file) = arg.strip_prefix(&format!("{}/", config_mount.mount_path)) {
                assert!(
                    cm.data.as_ref().is_some_and(|d| d.contains_key(file)),
                    "{overlay}: {arg}"
                );
            }
        }

        // The cloud identity, on the ServiceAccount the pod runs as.
        let sa = find(
            &objects,
            |o| match o {
                Object::ServiceAccount(s) => Some(&**s),
                _ => None,
            },
            "ServiceAccount",
        );
        let value = sa
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotation))
            .unwrap_or_else(|| panic!("{overlay}: annotation {annotation}"));
        assert!(!value.is_empty(), "{overlay}");
    }
    // Azure's webhook mutates only pods labelled for it.
    let objects = render_overlay("overlays/credentials-aks");
    let labels = deployment(&objects)
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(
        labels
            .get("azure.workload.identity/use")
            .map(String::as_str),
        Some("true")
    );
}

fn providers_args(config: &str) -> Vec<String> {
    let v: Value = serde_yaml_ng::from_str(config).expect("provider config YAML");
    v["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["args"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

#[test]
fn webhooks_component_wires_listener_service_secret_and_ingress() {
    let objects = render_overlay("overlays/webhooks");
    let d = deployment(&objects);
    let spec = pod_spec(d);
    let c = controller(spec);
    let env = |name: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
            .unwrap_or_else(|| panic!("env {name}"))
    };
    // The listener's port is the container port the Service targets.
    let listen: std::net::SocketAddr = env("IMAGEDRIFT_WEBHOOK_LISTEN").parse().expect("address");
    let port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("webhooks"))
        .expect("container port webhooks");
    assert_eq!(i64::from(port.container_port), i64::from(listen.port()));
    let svc = find(
        &objects,
        |o| match o {
            Object::Service(s) if s.metadata.name.as_deref() == Some("imagedrift-webhooks") => {
                Some(&**s)
            }
            _ => None,
        },
        "webhook Service",
    );
    let svc_spec = svc.spec.as_ref().expect("Service spec");
    let template_labels = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    assert!(labels_match(
        svc_spec.selector.as_ref().expect("selector"),
        template_labels
    ));
    let svc_port = &svc_spec.ports.as_ref().expect("ports")[0];
    assert_eq!(
        serde_json::to_value(&svc_port.target_port).expect("targetPort"),
        "webhooks"
    );
    // The Secret is mounted where IMAGEDRIFT_WEBHOOK_SECRETS_DIR points.
    let dir = env("IMAGEDRIFT_WEBHOOK_SECRETS_DIR");
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .expect("a mount at the secrets dir");
    assert_eq!(mount.read_only, Some(true));
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the mounted volume");
    let secret = volume.secret.as_ref().expect("a Secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("imagedrift-webhooks"));
    // The base stays without a listener.
    let base = render_overlay("base");
    assert!(
        controller(pod_spec(deployment(&base)))
            .env
            .iter()
            .flatten()
            .all(|e| !e.name.starts_with("IMAGEDRIFT_WEBHOOK"))
    );
    // The Ingress example routes /webhooks/ to that Service port.
    let path = deploy_dir().join("components/webhooks/ingress.example.yaml");
    let docs = yaml_docs(&path);
    let Ok(Object::Ingress(ing)) = parse_object(&docs[0], &path.display().to_string()) else {
        panic!("{} is not an Ingress", path.display());
    };
    let rule = &ing
        .spec
        .as_ref()
        .expect("spec")
        .rules
        .as_ref()
        .expect("rules")[0];
    let p = &rule.http.as_ref().expect("http").paths[0];
    assert_eq!(p.path.as_deref(), Some("/webhooks/"));
    let backend = p.backend.service.as_ref().expect("service backend");
    assert_eq!(Some(backend.name.as_str()), svc.metadata.name.as_deref());
    assert_eq!(
        backend.port.as_ref().and_then(|p| p.name.as_deref()),
        svc_port.name.as_deref()
    );
    assert_eq!(ing.metadata.namespace.as_deref(), Some(NAMESPACE));
}
