//! The RBAC model of tests/deploy.rs: every API call the code makes (from
//! `imagedrift::rbac`), the feature it belongs to, and what the rendered
//! ClusterRoles, Roles and their bindings grant, by scope.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::kustomize::Object;
use super::{NAMESPACE, SERVICE_ACCOUNT};
use crate::{OVERLAYS, render_overlay};

/// Which optional feature an API call belongs to; overlays enable features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Always on: watching, judging, Events, leader election.
    Core,
    /// Reading the pull secrets pods name (private registries).
    PullSecrets,
    /// restart / refresh / pin.
    Remedies,
    /// Reading pull secrets, only in the namespaces that opt in.
    PullSecretsNamespaced,
    /// restart / refresh / pin, only in the namespaces that opt in.
    RemediesNamespaced,
}

/// Where a grant must apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every namespace (ClusterRole + ClusterRoleBinding).
    Cluster,
    /// imagedrift's own namespace only (Role + RoleBinding).
    OwnNamespace,
    /// The namespaces that opt in, each with a RoleBinding to a ClusterRole.
    OptedIn,
}

/// The cluster-scoped resources among those the code calls: a RoleBinding
/// cannot grant them, so a per-namespace feature still needs them cluster-wide.
pub const CLUSTER_SCOPED: &[&str] = &["namespaces", "nodes"];

/// Where a grant for `resource` lives when its feature is limited to the
/// namespaces that opt in.
fn opted_in(resource: &str) -> Scope {
    if CLUSTER_SCOPED.contains(&resource) {
        Scope::Cluster
    } else {
        Scope::OptedIn
    }
}

/// One API call the controller makes.
pub struct ApiCall {
    pub group: &'static str,
    pub resource: &'static str,
    pub verb: &'static str,
    pub scope: Scope,
    pub feature: Feature,
    pub why: &'static str,
}

pub fn call(
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
pub fn api_calls() -> Vec<ApiCall> {
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
    let mut out = Vec::new();
    for (table, scope, feature) in tables {
        for &(group, resource, verb, why) in table {
            out.push(call(group, resource, verb, scope, feature, why));
            // The same calls, granted per namespace by the namespaced variants.
            let namespaced = match feature {
                Feature::PullSecrets => Some(Feature::PullSecretsNamespaced),
                Feature::Remedies => Some(Feature::RemediesNamespaced),
                _ => None,
            };
            if let Some(f) = namespaced {
                out.push(call(group, resource, verb, opted_in(resource), f, why));
            }
        }
    }
    out
}

pub type Grant = (Scope, String, String, String);

/// Expands a rule into (scope, group, resource, verb), refusing wildcards and
/// anything narrower or broader than plain resource grants.
pub fn expand(
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

pub fn is_our_service_account(
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
pub fn grants(objects: &[Object]) -> Result<BTreeSet<Grant>, String> {
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
    let mut opted_in_grants: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    let mut bound = BTreeSet::new();
    for o in objects {
        let (scope, role_ref, origin, per_namespace) = match o {
            Object::ClusterRoleBinding(b) => {
                let origin = format!("ClusterRoleBinding {:?}", b.metadata.name);
                is_our_service_account(b.subjects.as_ref(), &origin)?;
                (Scope::Cluster, &b.role_ref, origin, None)
            }
            Object::RoleBinding(b) => {
                let ns = b.metadata.namespace.clone().unwrap_or_default();
                let origin = format!(
                    "RoleBinding {ns}/{}",
                    b.metadata.name.as_deref().unwrap_or("")
                );
                is_our_service_account(b.subjects.as_ref(), &origin)?;
                let scope = match b.role_ref.kind.as_str() {
                    // A ClusterRole bound in one namespace: that namespace opts in.
                    "ClusterRole" => Scope::OptedIn,
                    _ if ns != NAMESPACE => {
                        return Err(format!("{origin}: a Role outside namespace {NAMESPACE}"));
                    }
                    _ => Scope::OwnNamespace,
                };
                let opted = opted_in_grants.entry(ns).or_default();
                (scope, &b.role_ref, origin, Some(opted))
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
        // Grants per namespace may repeat across namespaces, not within one.
        let target = match per_namespace {
            Some(set) if scope == Scope::OptedIn => set,
            _ => &mut out,
        };
        for rule in rules {
            expand(rule, scope, &origin, target)?;
        }
    }
    for (ns, set) in opted_in_grants {
        for grant in set {
            if CLUSTER_SCOPED.contains(&grant.2.as_str()) {
                return Err(format!(
                    "RoleBinding in {ns}: {} is cluster-scoped; a RoleBinding cannot grant it",
                    grant.2
                ));
            }
            out.insert(grant);
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

/// The namespaces in which a RoleBinding grants imagedrift a ClusterRole.
pub fn opted_in_namespaces(objects: &[Object]) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(|o| match o {
            Object::RoleBinding(b) if b.role_ref.kind == "ClusterRole" => {
                b.metadata.namespace.clone()
            }
            _ => None,
        })
        .collect()
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

fn grant(scope: Scope, group: &str, resource: &str, verb: &str) -> Grant {
    (scope, group.into(), resource.into(), verb.into())
}

#[test]
fn namespaced_overlays_grant_secrets_and_writes_only_where_bound() {
    for (overlay, per_namespace, never_cluster_wide) in [
        (
            "overlays/pull-secrets-namespaced",
            vec![grant(Scope::OptedIn, "", "secrets", "get")],
            vec![grant(Scope::Cluster, "", "secrets", "get")],
        ),
        (
            "overlays/remedies-namespaced",
            vec![
                grant(Scope::OptedIn, "apps", "deployments", "patch"),
                grant(Scope::OptedIn, "", "pods", "create"),
                grant(Scope::OptedIn, "", "pods", "delete"),
            ],
            vec![
                grant(Scope::Cluster, "apps", "deployments", "patch"),
                grant(Scope::Cluster, "", "pods", "create"),
                grant(Scope::Cluster, "", "pods", "delete"),
            ],
        ),
    ] {
        let objects = render_overlay(overlay);
        let granted = grants(&objects).unwrap_or_else(|e| panic!("{overlay}: {e}"));
        for g in &per_namespace {
            assert!(granted.contains(g), "{overlay}: {g:?}");
        }
        for g in &never_cluster_wide {
            assert!(
                !granted.contains(g),
                "{overlay}: {g:?} must not be cluster-wide"
            );
        }
        assert_eq!(
            opted_in_namespaces(&objects),
            BTreeSet::from(["default".to_string()]),
            "{overlay}: the example opts in `default` only"
        );
    }
    // The Namespace's opt-in annotation cannot be granted per namespace.
    let granted = grants(&render_overlay("overlays/remedies-namespaced")).expect("well-formed");
    assert!(granted.contains(&grant(Scope::Cluster, "", "namespaces", "get")));
}

/// The README's and the overlay's recipe: one more RoleBinding, in the new
/// namespace, and nothing else changes.
#[test]
fn adding_a_namespace_is_one_more_role_binding() {
    for overlay in [
        "overlays/pull-secrets-namespaced",
        "overlays/remedies-namespaced",
    ] {
        let mut objects = render_overlay(overlay);
        let before = grants(&objects).expect("well-formed");
        let mut copy = objects
            .iter()
            .find_map(|o| match o {
                Object::RoleBinding(b) if b.role_ref.kind == "ClusterRole" => Some(b.clone()),
                _ => None,
            })
            .expect("a RoleBinding to a ClusterRole");
        copy.metadata.namespace = Some("team-a".into());
        objects.push(Object::RoleBinding(copy));
        assert_eq!(grants(&objects), Ok(before), "{overlay}");
        assert_eq!(
            opted_in_namespaces(&objects),
            BTreeSet::from(["default".to_string(), "team-a".to_string()])
        );
    }
}

#[test]
fn rbac_check_refuses_a_cluster_scoped_grant_per_namespace() {
    let mut objects = render_overlay("overlays/remedies-namespaced");
    let mut rb = objects
        .iter()
        .find_map(|o| match o {
            Object::RoleBinding(b) if b.role_ref.kind == "ClusterRole" => Some(b.clone()),
            _ => None,
        })
        .expect("a RoleBinding to a ClusterRole");
    rb.role_ref.name = "imagedrift-remedies-namespaces".into();
    rb.metadata.name = Some("imagedrift-remedies-namespaces".into());
    objects.push(Object::RoleBinding(rb));
    let err = grants(&objects).expect_err("a RoleBinding cannot grant namespaces");
    assert!(err.contains("cluster-scoped"), "{err}");
}
