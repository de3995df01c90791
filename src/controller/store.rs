//! Stripped views of pods, nodes and owners: only what a verdict, a report
//! or a remedy needs, built once when an object arrives so the cache holds a
//! few hundred bytes per pod instead of the whole object.

use super::wire::{
    ContainerStatusWire, ContainerWire, PodSpecWire, PodStatusWire, SlimNode, SlimPod,
};
use crate::platform::Platform;
use crate::policy::PullPolicy;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::HashSet;
use std::sync::Arc;

/// A shared, immutable string (namespaces, images and owners repeat).
pub type Str = Arc<str>;

/// Deduplicates repeated strings so 10,000 pods of one image share it.
#[derive(Default, Debug)]
pub struct Interner {
    set: HashSet<Str>,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Str {
        if let Some(v) = self.set.get(s) {
            return v.clone();
        }
        let v: Str = Arc::from(s);
        self.set.insert(v.clone());
        v
    }

    /// Drops strings nobody else holds any more.
    pub fn sweep(&mut self) {
        self.set.retain(|s| Arc::strong_count(s) > 1);
    }

    /// How many strings are held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// Which list of the pod spec a container comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainerKind {
    /// `spec.containers`.
    Container,
    /// `spec.initContainers` (a running one, or a restartable sidecar).
    Init,
    /// `spec.ephemeralContainers`.
    Ephemeral,
    /// `spec.volumes[].image`: an OCI image mounted as a volume; the entry's
    /// name is the volume's.
    ImageVolume,
}

impl ContainerKind {
    /// `container`, `init`, `ephemeral` or `image_volume` (JSON
    /// `containerType`, metric label `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Container => "container",
            ContainerKind::Init => "init",
            ContainerKind::Ephemeral => "ephemeral",
            ContainerKind::ImageVolume => "image_volume",
        }
    }

    /// The pod spec field holding it.
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Container => "containers",
            ContainerKind::Init => "initContainers",
            ContainerKind::Ephemeral => "ephemeralContainers",
            ContainerKind::ImageVolume => "volumes",
        }
    }
}

/// An object's controlling owner (`ownerReferences[controller=true]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnerRef {
    /// API version (`apps/v1`).
    pub api_version: Str,
    /// Kind (`ReplicaSet`, `Job`, `StatefulSet`…).
    pub kind: Str,
    /// Name, in the same namespace.
    pub name: Str,
    /// UID, for Event references.
    pub uid: Str,
}

impl OwnerRef {
    /// The controlling owner of an object, if any.
    pub fn controller_of(meta: &ObjectMeta, strings: &mut Interner) -> Option<OwnerRef> {
        let refs = meta.owner_references.as_deref().unwrap_or_default();
        let r: &OwnerReference = refs.iter().find(|r| r.controller == Some(true))?;
        Some(OwnerRef {
            api_version: strings.get(&r.api_version),
            kind: strings.get(&r.kind),
            // Shared by every replica of the owner.
            name: strings.get(&r.name),
            uid: strings.get(&r.uid),
        })
    }
}

/// One container of a pod, as the verdict needs it; an image volume is an
/// entry of its own (kind [`ContainerKind::ImageVolume`]), judged the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerView {
    /// Container name.
    pub name: Str,
    /// Which list it is in.
    pub kind: ContainerKind,
    /// The image written in the spec (never `status.image`).
    pub image: Str,
    /// The live `imagePullPolicy` (the API server has filled it); `None`
    /// when absent or not a valid value.
    pub pull_policy: Option<PullPolicy>,
    /// `status.imageID`, empty when the container has not started (for an
    /// image volume: the `volumeStatus.image.imageRef` some container reports
    /// for it, empty where the kubelet reports none).
    pub image_id: Str,
    /// Whether it is running now (an image volume: whether a container that
    /// mounts it is).
    pub running: bool,
    /// `restartCount`, to notice restarts.
    pub restarts: i32,
}

/// A pod, stripped to what imagedrift needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    /// Namespace.
    pub namespace: Str,
    /// Name.
    pub name: Str,
    /// UID, for Event references.
    pub uid: Str,
    /// The node it runs on, once scheduled.
    pub node: Option<Str>,
    /// Its controlling owner (ReplicaSet, Job, StatefulSet…), if any.
    pub owner: Option<OwnerRef>,
    /// `spec.imagePullSecrets` names.
    pub pull_secrets: Vec<Str>,
    /// Its containers of all three kinds, then its image volumes.
    pub containers: Vec<ContainerView>,
}

/// Why a pod could not be turned into a view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pod has no {0}")]
pub struct ViewError(&'static str);

fn status_of<'a>(
    statuses: &'a [ContainerStatusWire],
    name: &str,
) -> Option<&'a ContainerStatusWire> {
    statuses.iter().find(|s| s.name == name)
}

impl PodView {
    /// Strips a pod decoded in full (tests, tools): re-decodes it slim and
    /// builds the view from that, exactly as the watch path does.
    pub fn from_pod(pod: &Pod, strings: &mut Interner) -> Result<PodView, ViewError> {
        PodView::from_slim(&SlimPod::from(pod), strings)
    }

    /// Builds the view of a pod as decoded from a list or watch. Terminated
    /// init containers that are not sidecars are left out: they are history,
    /// not drift (SEMANTICS.md §1).
    pub fn from_slim(pod: &SlimPod, strings: &mut Interner) -> Result<PodView, ViewError> {
        let meta = &pod.metadata;
        let namespace = strings.get(meta.namespace.as_deref().ok_or(ViewError("namespace"))?);
        let name: Str = Arc::from(meta.name.as_deref().ok_or(ViewError("name"))?);
        let uid: Str = Arc::from(meta.uid.as_deref().unwrap_or_default());
        let spec = pod.spec.as_ref().ok_or(ViewError("spec"))?;
        let empty = PodStatusWire::default();
        let status = pod.status.as_ref().unwrap_or(&empty);
        let mut containers = Vec::with_capacity(spec.containers.len());
        for c in &spec.containers {
            let st = status_of(&status.container_statuses, &c.name);
            containers.push(container_view(c, ContainerKind::Container, st, strings));
        }
        for c in &spec.init_containers {
            let st = status_of(&status.init_container_statuses, &c.name);
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            if sidecar || st.is_some_and(|s| s.state.running) {
                containers.push(container_view(c, ContainerKind::Init, st, strings));
            }
        }
        for c in &spec.ephemeral_containers {
            let st = status_of(&status.ephemeral_container_statuses, &c.name);
            containers.push(container_view(c, ContainerKind::Ephemeral, st, strings));
        }
        containers.extend(image_volume_views(spec, status, strings));
        containers.shrink_to_fit();
        let pull_secrets = spec
            .image_pull_secrets
            .iter()
            .filter(|r| !r.name.is_empty())
            .map(|r| strings.get(&r.name))
            .collect();
        Ok(PodView {
            namespace,
            name,
            uid,
            node: spec
                .node_name
                .as_deref()
                .filter(|n| !n.is_empty())
                .map(|n| strings.get(n)),
            owner: OwnerRef::controller_of(meta, strings),
            pull_secrets,
            containers,
        })
    }
}

/// The pod's image volumes (`spec.volumes[].image`) as entries to judge.
/// The digest in use is the `volumeMounts[].volumeStatus.image.imageRef` of a
/// container that mounts the volume, reported only with the kubelet feature
/// gate `ImageVolumeWithDigest` (SEMANTICS.md §1); a running container's
/// report wins. Without one the entry keeps an empty `image_id` while
/// `running`, which the verdict turns into "digest not reported".
pub fn image_volume_views(
    spec: &PodSpecWire,
    status: &PodStatusWire,
    strings: &mut Interner,
) -> Vec<ContainerView> {
    if !spec.volumes.iter().any(|v| v.image.is_some()) {
        return Vec::new();
    }
    // Every container with its spec mounts and its status, all three lists.
    let lists = [
        (&spec.containers, &status.container_statuses),
        (&spec.init_containers, &status.init_container_statuses),
        (
            &spec.ephemeral_containers,
            &status.ephemeral_container_statuses,
        ),
    ];
    let mut out = Vec::new();
    for v in &spec.volumes {
        let Some(image) = &v.image else { continue };
        let mut running_any = false;
        let mut restarts = 0;
        // (running, imageRef) of the best report so far.
        let mut reported: Option<(bool, &str)> = None;
        for (containers, statuses) in lists {
            for c in containers {
                let st = status_of(statuses, &c.name);
                let status_mount = st
                    .map(|s| s.volume_mounts.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .find(|m| m.name == v.name);
                if !c.volume_mounts.iter().any(|m| m.name == v.name) && status_mount.is_none() {
                    continue;
                }
                let run = st.is_some_and(|s| s.state.running);
                running_any |= run;
                restarts += st.map_or(0, |s| s.restart_count);
                let image_ref = status_mount
                    .and_then(|m| m.volume_status.as_deref())
                    .filter(|r| !r.is_empty());
                if let Some(r) = image_ref
                    && reported.is_none_or(|(was_running, _)| run && !was_running)
                {
                    reported = Some((run, r));
                }
            }
        }
        out.push(ContainerView {
            name: strings.get(&v.name),
            kind: ContainerKind::ImageVolume,
            image: strings.get(image.reference.as_deref().unwrap_or_default()),
            pull_policy: image
                .pull_policy
                .as_deref()
                .and_then(|p| PullPolicy::parse(p).ok()),
            image_id: strings.get(reported.map_or("", |(_, r)| r)),
            running: running_any,
            restarts,
        });
    }
    out
}

fn container_view(
    c: &ContainerWire,
    kind: ContainerKind,
    st: Option<&ContainerStatusWire>,
    strings: &mut Interner,
) -> ContainerView {
    ContainerView {
        name: strings.get(&c.name),
        kind,
        image: strings.get(c.image.as_deref().unwrap_or_default()),
        pull_policy: c
            .image_pull_policy
            .as_deref()
            .and_then(|p| PullPolicy::parse(p).ok()),
        image_id: strings.get(st.map(|s| s.image_id.as_str()).unwrap_or_default()),
        running: st.is_some_and(|s| s.state.running),
        restarts: st.map(|s| s.restart_count).unwrap_or_default(),
    }
}

/// The label that names a node's architecture.
pub const ARCH_LABEL: &str = "kubernetes.io/arch";
/// The label that names a node's OS.
pub const OS_LABEL: &str = "kubernetes.io/os";
/// The label that names a node's architecture variant (`v7`, `v8`). No
/// Kubernetes component sets one; operators of mixed ARM clusters can, so
/// that multi-variant images are judged instead of reported `platform`.
pub const VARIANT_LABEL: &str = "imagedrift.io/arch-variant";

/// A node's platform, from `status.nodeInfo`, falling back to the
/// well-known `kubernetes.io/{os,arch}` labels; `None` when neither says.
pub fn node_platform(node: &SlimNode) -> Option<Platform> {
    let labels = node.metadata.labels.as_ref();
    let label = |k: &str| {
        labels
            .and_then(|l| l.get(k))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
    let os = info
        .map(|i| i.operating_system.as_str())
        .filter(|v| !v.is_empty())
        .or_else(|| label(OS_LABEL))?;
    let arch = info
        .map(|i| i.architecture.as_str())
        .filter(|v| !v.is_empty())
        .or_else(|| label(ARCH_LABEL))?;
    Some(Platform::new(os, arch, label(VARIANT_LABEL)))
}

/// What the controller keeps of a ReplicaSet or Job: its controlling owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerMeta {
    /// Namespace.
    pub namespace: Str,
    /// Kind (`ReplicaSet` or `Job`).
    pub kind: Str,
    /// Name.
    pub name: Str,
    /// Its controlling owner (Deployment, CronJob…), if any.
    pub owner: Option<OwnerRef>,
}

impl OwnerMeta {
    /// Strips an owner object's metadata.
    pub fn from_meta(kind: &str, meta: &ObjectMeta, strings: &mut Interner) -> Option<OwnerMeta> {
        Some(OwnerMeta {
            namespace: strings.get(meta.namespace.as_deref()?),
            kind: strings.get(kind),
            name: Arc::from(meta.name.as_deref()?),
            owner: OwnerRef::controller_of(meta, strings),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn sample() -> Pod {
        pod(json!({
            "metadata": {"namespace": "shop", "name": "web-5d9c-abcde", "uid": "u1",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "u0"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c", "uid": "u2", "controller": true}
                ],
                "annotations": {"big": "x"}},
            "spec": {
                "nodeName": "node-a",
                "imagePullSecrets": [{"name": "regcred"}, {"name": ""}],
                "initContainers": [
                    {"name": "migrate", "image": "app:v1", "imagePullPolicy": "IfNotPresent"},
                    {"name": "proxy", "image": "envoy:v1.30", "imagePullPolicy": "IfNotPresent", "restartPolicy": "Always"}
                ],
                "containers": [
                    {"name": "app", "image": "registry.example/app:v1", "imagePullPolicy": "Always"},
                    {"name": "waiting", "image": "busybox"}
                ],
                "ephemeralContainers": [
                    {"name": "debug", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent"}
                ]
            },
            "status": {
                "containerStatuses": [
                    {"name": "app", "image": "registry.example/app:v1", "imageID": "registry.example/app@sha256:aa", "ready": true,
                     "restartCount": 2, "state": {"running": {}}},
                    {"name": "waiting", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"waiting": {"reason": "ImagePullBackOff"}}}
                ],
                "initContainerStatuses": [
                    {"name": "migrate", "image": "app:v1", "imageID": "x@sha256:bb", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0}}},
                    {"name": "proxy", "image": "envoy:v1.30", "imageID": "docker.io/envoy@sha256:cc", "ready": true,
                     "restartCount": 0, "state": {"running": {}}}
                ],
                "ephemeralContainerStatuses": [
                    {"name": "debug", "image": "busybox:1.36", "imageID": "sha256:dd", "ready": false, "restartCount": 0,
                     "state": {"running": {}}}
                ]
            }
        }))
    }

    #[test]
    fn pod_view_keeps_all_three_kinds_and_drops_finished_init() {
        let mut s = Interner::default();
        let v = PodView::from_pod(&sample(), &mut s).unwrap();
        assert_eq!(&*v.namespace, "shop");
        assert_eq!(v.node.as_deref(), Some("node-a"));
        assert_eq!(v.pull_secrets, vec![Str::from("regcred")]);
        let owner = v.owner.as_ref().unwrap();
        assert_eq!((&*owner.kind, &*owner.name), ("ReplicaSet", "web-5d9c"));
        let names: Vec<(&str, ContainerKind)> =
            v.containers.iter().map(|c| (&*c.name, c.kind)).collect();
        assert_eq!(
            names,
            vec![
                ("app", ContainerKind::Container),
                ("waiting", ContainerKind::Container),
                ("proxy", ContainerKind::Init),
                ("debug", ContainerKind::Ephemeral),
            ]
        );
        let app = &v.containers[0];
        assert_eq!(&*app.image, "registry.example/app:v1");
        assert_eq!(app.pull_policy, Some(PullPolicy::Always));
        assert_eq!(&*app.image_id, "registry.example/app@sha256:aa");
        assert!(app.running);
        assert_eq!(app.restarts, 2);
        let waiting = &v.containers[1];
        assert_eq!(waiting.pull_policy, None);
        assert!(!waiting.running);
        assert_eq!(&*waiting.image_id, "");
        assert_eq!(&*v.containers[3].image_id, "sha256:dd");
    }

    /// A container status; `mounts` are (volume, imageRef) pairs, "" for no
    /// `volumeStatus` (the gate off).
    fn cstatus(
        name: &str,
        state: &str,
        restarts: i32,
        mounts: &[(&str, &str)],
    ) -> serde_json::Value {
        let mounts: Vec<serde_json::Value> = mounts
            .iter()
            .map(|(v, r)| {
                if r.is_empty() {
                    json!({"name": v, "mountPath": format!("/{v}")})
                } else {
                    json!({"name": v, "mountPath": format!("/{v}"), "volumeStatus": {"image": {"imageRef": r}}})
                }
            })
            .collect();
        json!({"name": name, "image": "x", "imageID": "", "ready": false, "restartCount": restarts,
               "state": {state: {}}, "volumeMounts": mounts})
    }

    #[test]
    fn image_volume_entries_table() {
        let vols = json!([
            {"name": "model", "image": {"reference": "reg.example/models/llm:v3", "pullPolicy": "IfNotPresent"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "data", "image": {"reference": "reg.example/data:latest", "pullPolicy": "Always"}}
        ]);
        let spec =
            |containers: serde_json::Value| json!({"volumes": vols, "containers": containers});
        let mounting = |name: &str, vols: &[&str]| {
            let m: Vec<serde_json::Value> = vols
                .iter()
                .map(|v| json!({"name": v, "mountPath": format!("/{v}")}))
                .collect();
            json!({"name": name, "image": "app:v1", "volumeMounts": m})
        };
        // (case, spec, status, expected (name, image, policy, image_id, running, restarts) per image volume)
        type Want = (
            &'static str,
            &'static str,
            Option<PullPolicy>,
            &'static str,
            bool,
            i32,
        );
        let cases: Vec<(&str, serde_json::Value, serde_json::Value, Vec<Want>)> = vec![
            (
                "gate on: the running container's imageRef",
                spec(json!([mounting("app", &["model", "data"])])),
                json!({"containerStatuses": [cstatus("app", "running", 1, &[("model", "reg.example/models/llm@sha256:aa"), ("data", "reg.example/data@sha256:bb")])]}),
                vec![
                    (
                        "model",
                        "reg.example/models/llm:v3",
                        Some(PullPolicy::IfNotPresent),
                        "reg.example/models/llm@sha256:aa",
                        true,
                        1,
                    ),
                    (
                        "data",
                        "reg.example/data:latest",
                        Some(PullPolicy::Always),
                        "reg.example/data@sha256:bb",
                        true,
                        1,
                    ),
                ],
            ),
            (
                "gate off: mounted and running, no digest reported",
                spec(json!([mounting("app", &["model", "data"])])),
                json!({"containerStatuses": [cstatus("app", "running", 0, &[("model", ""), ("data", "")])]}),
                vec![
                    (
                        "model",
                        "reg.example/models/llm:v3",
                        Some(PullPolicy::IfNotPresent),
                        "",
                        true,
                        0,
                    ),
                    (
                        "data",
                        "reg.example/data:latest",
                        Some(PullPolicy::Always),
                        "",
                        true,
                        0,
                    ),
                ],
            ),
            (
                "not started yet: no status at all",
                spec(json!([mounting("app", &["model"])])),
                json!({}),
                vec![
                    (
                        "model",
                        "reg.example/models/llm:v3",
                        Some(PullPolicy::IfNotPresent),
                        "",
                        false,
                        0,
                    ),
                    (
                        "data",
                        "reg.example/data:latest",
                        Some(PullPolicy::Always),
                        "",
                        false,
                        0,
                    ),
                ],
            ),
            (
                "a running container's report wins over a stopped one's",
                spec(json!([
                    mounting("old", &["model"]),
                    mounting("app", &["model"])
                ])),
                json!({"containerStatuses": [
                    cstatus("old", "terminated", 0, &[("model", "reg.example/models/llm@sha256:01")]),
                    cstatus("app", "running", 2, &[("model", "reg.example/models/llm@sha256:02")])]}),
                vec![
                    (
                        "model",
                        "reg.example/models/llm:v3",
                        Some(PullPolicy::IfNotPresent),
                        "reg.example/models/llm@sha256:02",
                        true,
                        2,
                    ),
                    (
                        "data",
                        "reg.example/data:latest",
                        Some(PullPolicy::Always),
                        "",
                        false,
                        0,
                    ),
                ],
            ),
            (
                "mounted by a sidecar and an ephemeral container only",
                json!({"volumes": vols, "containers": [{"name": "app", "image": "app:v1"}],
                       "initContainers": [{"name": "side", "image": "s:v1", "restartPolicy": "Always",
                                           "volumeMounts": [{"name": "model", "mountPath": "/m"}]}],
                       "ephemeralContainers": [{"name": "dbg", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}),
                json!({"containerStatuses": [cstatus("app", "running", 0, &[])],
                       "initContainerStatuses": [cstatus("side", "running", 0, &[("model", "reg.example/models/llm@sha256:cc")])],
                       "ephemeralContainerStatuses": [cstatus("dbg", "running", 0, &[("data", "reg.example/data@sha256:dd")])]}),
                vec![
                    (
                        "model",
                        "reg.example/models/llm:v3",
                        Some(PullPolicy::IfNotPresent),
                        "reg.example/models/llm@sha256:cc",
                        true,
                        0,
                    ),
                    (
                        "data",
                        "reg.example/data:latest",
                        Some(PullPolicy::Always),
                        "reg.example/data@sha256:dd",
                        true,
                        0,
                    ),
                ],
            ),
            (
                "mounted by no container: never running, nothing reported",
                spec(json!([{"name": "app", "image": "app:v1"}])),
                json!({"containerStatuses": [cstatus("app", "running", 0, &[])]}),
                vec![
                    (
                        "model",
                        "reg.example/models/llm:v3",
                        Some(PullPolicy::IfNotPresent),
                        "",
                        false,
                        0,
                    ),
                    (
                        "data",
                        "reg.example/data:latest",
                        Some(PullPolicy::Always),
                        "",
                        false,
                        0,
                    ),
                ],
            ),
            (
                "no reference, an invalid policy",
                json!({"volumes": [{"name": "v", "image": {"pullPolicy": "always"}}],
                       "containers": [mounting("app", &["v"])]}),
                json!({"containerStatuses": [cstatus("app", "running", 0, &[("v", "")])]}),
                vec![("v", "", None, "", true, 0)],
            ),
            (
                "no image volumes: no entries",
                json!({"volumes": [{"name": "scratch", "emptyDir": {}}], "containers": [mounting("app", &["scratch"])]}),
                json!({"containerStatuses": [cstatus("app", "running", 0, &[("scratch", "")])]}),
                vec![],
            ),
        ];
        for (case, spec, status, want) in cases {
            let spec: PodSpecWire = serde_json::from_value(spec).unwrap();
            let status: PodStatusWire = serde_json::from_value(status).unwrap();
            let mut s = Interner::default();
            let got: Vec<Want> = image_volume_views(&spec, &status, &mut s)
                .iter()
                .map(|v| {
                    assert_eq!(v.kind, ContainerKind::ImageVolume, "{case}");
                    let leak =
                        |x: &Str| -> &'static str { Box::leak(x.to_string().into_boxed_str()) };
                    (
                        leak(&v.name),
                        leak(&v.image),
                        v.pull_policy,
                        leak(&v.image_id),
                        v.running,
                        v.restarts,
                    )
                })
                .collect();
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn pod_view_appends_image_volumes_after_containers() {
        let mut s = Interner::default();
        let mut p = sample();
        let spec = p.spec.as_mut().unwrap();
        // A volume named like a container: the kind tells them apart.
        spec.volumes = Some(vec![serde_json::from_value(
            json!({"name": "app", "image": {"reference": "reg.example/m:v1", "pullPolicy": "IfNotPresent"}}),
        )
        .unwrap()]);
        let v = PodView::from_pod(&p, &mut s).unwrap();
        let last = v.containers.last().unwrap();
        assert_eq!(
            (&*last.name, last.kind),
            ("app", ContainerKind::ImageVolume)
        );
        assert_eq!(&*last.image, "reg.example/m:v1");
        assert!(!last.running, "no container mounts it");
        assert_eq!(v.containers.len(), 5);
    }

    #[test]
    fn interner_shares_strings() {
        let mut s = Interner::default();
        let a = PodView::from_pod(&sample(), &mut s).unwrap();
        let b = PodView::from_pod(&sample(), &mut s).unwrap();
        assert!(Arc::ptr_eq(&a.containers[0].image, &b.containers[0].image));
        drop((a, b));
        s.sweep();
        assert!(s.is_empty());
    }

    #[test]
    fn pod_without_spec_or_name_is_an_error() {
        let mut s = Interner::default();
        let e = PodView::from_pod(
            &pod(json!({"metadata": {"namespace": "a", "name": "b"}})),
            &mut s,
        );
        assert_eq!(e.unwrap_err().to_string(), "pod has no spec");
        let e = PodView::from_pod(
            &pod(json!({"metadata": {"namespace": "a"}, "spec": {"containers": []}})),
            &mut s,
        );
        assert_eq!(e.unwrap_err().to_string(), "pod has no name");
    }

    fn node(v: serde_json::Value) -> SlimNode {
        serde_json::from_value(v).unwrap()
    }

    fn info(os: &str, arch: &str) -> serde_json::Value {
        json!({"architecture": arch, "operatingSystem": os, "bootID": "", "containerRuntimeVersion": "",
               "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "",
               "osImage": "", "systemUUID": ""})
    }

    #[test]
    fn node_platform_from_info_labels_and_variant() {
        let n = node(
            json!({"metadata": {"name": "a"}, "status": {"nodeInfo": info("linux", "arm64")}}),
        );
        assert_eq!(node_platform(&n).unwrap().to_string(), "linux/arm64/v8");
        let n = node(
            json!({"metadata": {"name": "a", "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"}}}),
        );
        assert_eq!(node_platform(&n).unwrap().to_string(), "linux/amd64");
        let n = node(
            json!({"metadata": {"name": "a", "labels": {VARIANT_LABEL: "v7"}},
                            "status": {"nodeInfo": info("linux", "arm")}}),
        );
        assert_eq!(node_platform(&n).unwrap().to_string(), "linux/arm/v7");
        let n = node(json!({"metadata": {"name": "a", "labels": {"kubernetes.io/arch": "amd64"}}}));
        assert_eq!(node_platform(&n), None, "no os anywhere");
        let n = node(json!({"metadata": {"name": "a"}, "status": {"nodeInfo": info("", "")}}));
        assert_eq!(node_platform(&n), None);
    }

    #[test]
    fn owner_meta_keeps_controller_only() {
        let mut s = Interner::default();
        let meta: ObjectMeta = serde_json::from_value(json!({"namespace": "shop", "name": "web-5d9c",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1", "controller": true}]}))
        .unwrap();
        let o = OwnerMeta::from_meta("ReplicaSet", &meta, &mut s).unwrap();
        assert_eq!(&*o.owner.unwrap().name, "web");
    }
}
