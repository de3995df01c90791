//! Every Kubernetes API call imagedrift makes, as a table: the deployment's
//! ClusterRole and Role are checked against it (one source of truth).

/// One permitted API call: (API group, resource, verb, why).
pub type ApiCall = (&'static str, &'static str, &'static str, &'static str);

/// Calls made by `imagedrift run` in the base deployment.
pub const API_CALLS: &[ApiCall] = &[
    (
        "",
        "pods",
        "list",
        "watch every pod's spec images, pull policies and container statuses",
    ),
    (
        "",
        "pods",
        "watch",
        "watch every pod's spec images, pull policies and container statuses",
    ),
    (
        "",
        "nodes",
        "list",
        "each node's platform (status.nodeInfo, kubernetes.io/arch)",
    ),
    (
        "",
        "nodes",
        "watch",
        "each node's platform (status.nodeInfo, kubernetes.io/arch)",
    ),
    (
        "apps",
        "replicasets",
        "list",
        "owner chain Pod -> ReplicaSet -> Deployment (metadata only)",
    ),
    (
        "apps",
        "replicasets",
        "watch",
        "owner chain Pod -> ReplicaSet -> Deployment (metadata only)",
    ),
    (
        "batch",
        "jobs",
        "list",
        "owner chain Pod -> Job -> CronJob (metadata only)",
    ),
    (
        "batch",
        "jobs",
        "watch",
        "owner chain Pod -> Job -> CronJob (metadata only)",
    ),
    (
        "events.k8s.io",
        "events",
        "create",
        "StaleImage, ImageUpToDate and DriftCheckFailed Events",
    ),
    (
        "events.k8s.io",
        "events",
        "patch",
        "repeated Events become a series (as kube's Recorder does)",
    ),
    (
        "events.k8s.io",
        "events",
        "list",
        "a leader reads back the Events on an object (fieldSelector regarding.*) before its first word on it, so nothing another replica wrote is written twice",
    ),
];

/// Calls made for leader election (`--leader-elect`), namespaced to the
/// Lease's namespace (a Role). The lease loop reads, creates and patches
/// the Lease (a merge patch with `resourceVersion`); it never uses `update`.
pub const LEASE_CALLS: &[ApiCall] = &[
    (
        "coordination.k8s.io",
        "leases",
        "get",
        "read the leader Lease",
    ),
    (
        "coordination.k8s.io",
        "leases",
        "create",
        "create the leader Lease when missing",
    ),
    (
        "coordination.k8s.io",
        "leases",
        "patch",
        "take, renew and release the leader Lease",
    ),
];

/// Calls made when reading pull secrets is enabled (the pull-secrets
/// overlay): one `get` per secret name, cached; never list or watch.
pub const PULL_SECRET_CALLS: &[ApiCall] = &[(
    "",
    "secrets",
    "get",
    "read a pod's imagePullSecrets by name",
)];

/// Calls made by the remedies (`remedy::apply`; the remedies overlay).
/// Watching refresh pods uses the base `pods` `watch`.
pub const REMEDY_CALLS: &[ApiCall] = &[
    (
        "apps",
        "deployments",
        "get",
        "rollout state and loop-guard annotation before a restart or pin",
    ),
    (
        "apps",
        "deployments",
        "patch",
        "restart (kubectl rollout restart's patch) and pin",
    ),
    (
        "apps",
        "statefulsets",
        "get",
        "rollout state and loop-guard annotation before a restart or pin",
    ),
    ("apps", "statefulsets", "patch", "restart and pin"),
    (
        "apps",
        "daemonsets",
        "get",
        "rollout state and loop-guard annotation before a restart or pin",
    ),
    ("apps", "daemonsets", "patch", "restart and pin"),
    ("", "pods", "create", "refresh pod bound to a stale node"),
    ("", "pods", "delete", "refresh pod clean-up"),
    ("", "pods", "get", "opt-in annotation of bare pods"),
    ("", "namespaces", "get", "namespace opt-in annotation"),
    ("apps", "replicasets", "get", "opt-in annotation"),
    ("batch", "jobs", "get", "opt-in annotation"),
    ("batch", "cronjobs", "get", "opt-in annotation"),
];

/// Calls made by `scan` and `explain` (the user's own credentials).
pub const CLI_CALLS: &[ApiCall] = &[
    (
        "",
        "pods",
        "list",
        "list pods to judge (explain: one pod, by field selector)",
    ),
    ("", "nodes", "list", "node platforms"),
    ("apps", "replicasets", "list", "owner chain (metadata only)"),
    ("batch", "jobs", "list", "owner chain (metadata only)"),
    (
        "",
        "secrets",
        "get",
        "a pod's imagePullSecrets by name, with --read-pull-secrets",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_explained_and_unique() {
        for table in [
            API_CALLS,
            LEASE_CALLS,
            PULL_SECRET_CALLS,
            REMEDY_CALLS,
            CLI_CALLS,
        ] {
            let mut seen = std::collections::HashSet::new();
            for (g, r, v, why) in table {
                assert!(!why.is_empty());
                assert!(seen.insert((g, r, v)), "duplicate {g}/{r} {v}");
                assert!(
                    ["get", "list", "watch", "create", "patch", "delete"].contains(v),
                    "{v}"
                );
            }
        }
        assert!(
            !PULL_SECRET_CALLS
                .iter()
                .any(|(_, _, v, _)| *v == "list" || *v == "watch")
        );
    }
}
