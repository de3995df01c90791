//! The workload a pod belongs to: Pod → ReplicaSet → Deployment,
//! Pod → Job → CronJob, StatefulSet, DaemonSet, or the bare pod itself,
//! resolved from cached ReplicaSet/Job metadata (no API read per pod).

use super::store::{OwnerMeta, OwnerRef, PodView, Str};
use std::collections::HashMap;
use std::sync::Arc;

/// The workload that owns a pod (what a restart or pin would patch).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    /// Namespace.
    pub namespace: Str,
    /// API version (`apps/v1`; `v1` for a bare pod).
    pub api_version: Str,
    /// Kind (`Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`,
    /// `ReplicaSet`, `Pod`, or a custom controller's kind).
    pub kind: Str,
    /// Name.
    pub name: Str,
    /// UID, when known (for Event references).
    pub uid: Option<Str>,
}

/// Cached ReplicaSets and Jobs, each with its own controlling owner.
#[derive(Default, Debug)]
pub struct OwnerIndex {
    map: HashMap<(Str, Str, Str), Option<OwnerRef>>,
}

impl OwnerIndex {
    /// Records (or replaces) an intermediate owner.
    pub fn apply(&mut self, o: OwnerMeta) {
        self.map.insert((o.namespace, o.kind, o.name), o.owner);
    }

    /// Forgets an intermediate owner.
    pub fn delete(&mut self, namespace: &str, kind: &str, name: &str) {
        self.map
            .remove(&(Str::from(namespace), Str::from(kind), Str::from(name)));
    }

    /// Replaces every entry of `kind` (after a watch re-list).
    pub fn replace_kind(&mut self, kind: &str, items: Vec<OwnerMeta>) {
        self.map.retain(|(_, k, _), _| &**k != kind);
        for o in items {
            self.apply(o);
        }
    }

    /// How many owners are cached.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The workload of a pod. A ReplicaSet or Job is followed one step to
    /// its own controller (Deployment, CronJob, or e.g. an Argo Rollout); an
    /// uncached or unowned one is the workload itself.
    pub fn workload_of(&self, pod: &PodView) -> Workload {
        let ns = pod.namespace.clone();
        let Some(direct) = &pod.owner else {
            return Workload {
                namespace: ns,
                api_version: Arc::from("v1"),
                kind: Arc::from("Pod"),
                name: pod.name.clone(),
                uid: Some(pod.uid.clone()).filter(|u| !u.is_empty()),
            };
        };
        let of = |r: &OwnerRef| Workload {
            namespace: ns.clone(),
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: Some(r.uid.clone()).filter(|u| !u.is_empty()),
        };
        if matches!(&*direct.kind, "ReplicaSet" | "Job") {
            let key = (ns.clone(), direct.kind.clone(), direct.name.clone());
            if let Some(Some(parent)) = self.map.get(&key) {
                return of(parent);
            }
        }
        of(direct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::store::Interner;

    fn r(kind: &str, name: &str) -> OwnerRef {
        OwnerRef {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}").into(),
        }
    }

    fn pod(owner: Option<OwnerRef>) -> PodView {
        PodView {
            namespace: "ns".into(),
            name: "p-1".into(),
            uid: "pod-uid".into(),
            node: None,
            owner,
            pull_secrets: vec![],
            containers: vec![],
        }
    }

    fn meta(kind: &str, name: &str, owner: Option<OwnerRef>) -> OwnerMeta {
        let mut s = Interner::default();
        OwnerMeta {
            namespace: s.get("ns"),
            kind: s.get(kind),
            name: name.into(),
            owner,
        }
    }

    fn kn(w: Workload) -> (String, String) {
        (w.kind.to_string(), w.name.to_string())
    }

    #[test]
    fn owner_chain_table() {
        let mut idx = OwnerIndex::default();
        idx.apply(meta("ReplicaSet", "web-5d9c", Some(r("Deployment", "web"))));
        idx.apply(meta("ReplicaSet", "bare-rs", None));
        idx.apply(meta("Job", "nightly-2901", Some(r("CronJob", "nightly"))));
        idx.apply(meta("Job", "once", None));
        idx.apply(meta("ReplicaSet", "ro-7f", Some(r("Rollout", "ro"))));
        let cases = [
            (Some(r("ReplicaSet", "web-5d9c")), ("Deployment", "web")),
            (Some(r("ReplicaSet", "bare-rs")), ("ReplicaSet", "bare-rs")),
            (
                Some(r("ReplicaSet", "not-cached")),
                ("ReplicaSet", "not-cached"),
            ),
            (Some(r("Job", "nightly-2901")), ("CronJob", "nightly")),
            (Some(r("Job", "once")), ("Job", "once")),
            (Some(r("StatefulSet", "db")), ("StatefulSet", "db")),
            (Some(r("DaemonSet", "agent")), ("DaemonSet", "agent")),
            (Some(r("ReplicaSet", "ro-7f")), ("Rollout", "ro")),
            (None, ("Pod", "p-1")),
        ];
        for (owner, (kind, name)) in cases {
            let w = idx.workload_of(&pod(owner.clone()));
            assert_eq!(kn(w), (kind.to_string(), name.to_string()), "{owner:?}");
        }
        let w = idx.workload_of(&pod(Some(r("ReplicaSet", "web-5d9c"))));
        assert_eq!(w.uid.as_deref(), Some("uid-web"));
        assert_eq!(&*w.api_version, "apps/v1");
    }

    #[test]
    fn delete_and_relist() {
        let mut idx = OwnerIndex::default();
        idx.apply(meta("ReplicaSet", "web-5d9c", Some(r("Deployment", "web"))));
        idx.delete("ns", "ReplicaSet", "web-5d9c");
        assert_eq!(
            kn(idx.workload_of(&pod(Some(r("ReplicaSet", "web-5d9c"))))).0,
            "ReplicaSet"
        );
        idx.apply(meta("Job", "j", Some(r("CronJob", "c"))));
        idx.replace_kind("ReplicaSet", vec![meta("ReplicaSet", "a", None)]);
        assert_eq!(idx.len(), 2, "jobs kept, replica sets replaced");
    }
}
