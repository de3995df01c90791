//! Slim wire types: pods, nodes and owner metadata decoded straight from
//! list and watch answers into only the fields a verdict, report or remedy
//! reads. serde skips every other field (managedFields, env, probes,
//! annotations…) without allocating it, so memory follows what is kept,
//! not how large each pod's JSON is. Each type is a [`kube::Resource`] with
//! static kind/group/version, so `kube_runtime::watcher` and `Api::list`
//! decode into it directly.
//!
//! No `#[serde(flatten)]` and no `serde_json::Value` here: both buffer
//! the fields they do not name.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// A JSON `null` (or an absent field) as the type's default.
fn null_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// The metadata fields imagedrift reads of any object.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaWire {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    owner_references: Vec<OwnerRefWire>,
}

/// An owner reference; the controlling one is all that is kept.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerRefWire {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
    controller: Option<bool>,
}

impl MetaWire {
    fn into_meta(self, labels: Option<BTreeMap<String, String>>) -> ObjectMeta {
        let owners: Vec<OwnerReference> = self
            .owner_references
            .into_iter()
            .filter(|r| r.controller == Some(true))
            .map(|r| OwnerReference {
                api_version: r.api_version,
                kind: r.kind,
                name: r.name,
                uid: r.uid,
                controller: Some(true),
                block_owner_deletion: None,
            })
            .collect();
        ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            uid: self.uid,
            resource_version: self.resource_version,
            owner_references: (!owners.is_empty()).then_some(owners),
            labels,
            ..ObjectMeta::default()
        }
    }
}

fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    Ok(Option::<MetaWire>::deserialize(d)?
        .unwrap_or_default()
        .into_meta(None))
}

/// A pod as imagedrift decodes it (`/api/v1/pods`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct SlimPod {
    /// Name, namespace, uid, resourceVersion and the controlling owner only.
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// The spec fields a verdict reads.
    pub spec: Option<PodSpecWire>,
    /// The status fields a verdict reads.
    pub status: Option<PodStatusWire>,
}

/// `spec` of a pod, slim.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecWire {
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// `spec.imagePullSecrets[].name`.
    #[serde(default, deserialize_with = "null_default")]
    pub image_pull_secrets: Vec<NameWire>,
    /// `spec.containers`.
    #[serde(default, deserialize_with = "null_default")]
    pub containers: Vec<ContainerWire>,
    /// `spec.initContainers`.
    #[serde(default, deserialize_with = "null_default")]
    pub init_containers: Vec<ContainerWire>,
    /// `spec.ephemeralContainers`.
    #[serde(default, deserialize_with = "null_default")]
    pub ephemeral_containers: Vec<ContainerWire>,
    /// `spec.volumes`: names, and the image of image volumes.
    #[serde(default, deserialize_with = "null_default")]
    pub volumes: Vec<VolumeWire>,
}

/// An object that only has a `name` here (pull secret, volume mount).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct NameWire {
    /// `name`.
    #[serde(default)]
    pub name: String,
}

/// One container of any of the three lists, slim.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerWire {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `image`.
    pub image: Option<String>,
    /// `imagePullPolicy`.
    pub image_pull_policy: Option<String>,
    /// `restartPolicy` (`Always` marks a sidecar init container).
    pub restart_policy: Option<String>,
    /// `volumeMounts[].name`.
    #[serde(default, deserialize_with = "null_default")]
    pub volume_mounts: Vec<NameWire>,
}

/// A pod volume: its name, and its image when it is an image volume.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct VolumeWire {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `image` (an image volume).
    pub image: Option<ImageVolumeWire>,
}

/// `spec.volumes[].image`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageVolumeWire {
    /// `reference`.
    pub reference: Option<String>,
    /// `pullPolicy`.
    pub pull_policy: Option<String>,
}

/// `status` of a pod, slim.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusWire {
    /// `status.containerStatuses`.
    #[serde(default, deserialize_with = "null_default")]
    pub container_statuses: Vec<ContainerStatusWire>,
    /// `status.initContainerStatuses`.
    #[serde(default, deserialize_with = "null_default")]
    pub init_container_statuses: Vec<ContainerStatusWire>,
    /// `status.ephemeralContainerStatuses`.
    #[serde(default, deserialize_with = "null_default")]
    pub ephemeral_container_statuses: Vec<ContainerStatusWire>,
}

/// One container status, slim.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatusWire {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `imageID`.
    #[serde(rename = "imageID", default, deserialize_with = "null_default")]
    pub image_id: String,
    /// `restartCount`.
    #[serde(default, deserialize_with = "null_default")]
    pub restart_count: i32,
    /// `state`: only whether it is running.
    #[serde(default, deserialize_with = "null_default")]
    pub state: StateWire,
    /// `volumeMounts`: the image each image volume resolved to.
    #[serde(default, deserialize_with = "null_default")]
    pub volume_mounts: Vec<VolumeMountStatusWire>,
}

/// `state` of a container status: `running` present or not.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct StateWire {
    /// `state.running` (its fields are not needed).
    #[serde(default, deserialize_with = "present")]
    pub running: bool,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<serde::de::IgnoredAny>::deserialize(d)?.is_some())
}

/// `status.*ContainerStatuses[].volumeMounts[]`, slim.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMountStatusWire {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `volumeStatus.image.imageRef`, when the volume is an image volume.
    #[serde(default, deserialize_with = "image_ref")]
    pub volume_status: Option<String>,
}

#[derive(Deserialize)]
struct VolumeStatusWire {
    image: Option<ImageRefWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageRefWire {
    #[serde(default)]
    image_ref: String,
}

fn image_ref<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<VolumeStatusWire>::deserialize(d)?
        .and_then(|v| v.image)
        .map(|i| i.image_ref))
}

/// A node as imagedrift decodes it (`/api/v1/nodes`): its name, the three
/// platform labels, and `status.nodeInfo`'s OS and architecture. Heartbeat
/// fields (conditions, images, addresses) are skipped.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct SlimNode {
    /// Name, resourceVersion, and only the platform labels.
    #[serde(default, deserialize_with = "node_meta")]
    pub metadata: ObjectMeta,
    /// `status.nodeInfo`, slim.
    pub status: Option<NodeStatusWire>,
}

/// The labels of a node that say its platform.
#[derive(Deserialize, Default)]
struct PlatformLabels {
    #[serde(rename = "kubernetes.io/os")]
    os: Option<String>,
    #[serde(rename = "kubernetes.io/arch")]
    arch: Option<String>,
    #[serde(rename = "imagedrift.io/arch-variant")]
    variant: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NodeMetaFields {
    name: Option<String>,
    resource_version: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    labels: PlatformLabels,
}

fn node_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Option::<NodeMetaFields>::deserialize(d)?.unwrap_or_default();
    let labels: BTreeMap<String, String> = [
        (super::store::OS_LABEL, m.labels.os),
        (super::store::ARCH_LABEL, m.labels.arch),
        (super::store::VARIANT_LABEL, m.labels.variant),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_string(), v?)))
    .collect();
    Ok(ObjectMeta {
        name: m.name,
        resource_version: m.resource_version,
        labels: (!labels.is_empty()).then_some(labels),
        ..ObjectMeta::default()
    })
}

/// `status` of a node, slim.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatusWire {
    /// `status.nodeInfo`.
    pub node_info: Option<NodeInfoWire>,
}

/// `status.nodeInfo`, slim.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfoWire {
    /// `operatingSystem`.
    #[serde(default)]
    pub operating_system: String,
    /// `architecture`.
    #[serde(default)]
    pub architecture: String,
}

/// An owner's metadata (ReplicaSet, Job), fetched metadata-only
/// (`PartialObjectMetadata`) and decoded into name, namespace and the
/// controlling owner: annotations and managedFields are skipped.
#[derive(Debug, Default, Deserialize)]
pub struct SlimOwner<K> {
    /// Name, namespace, uid, resourceVersion and the controlling owner only.
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    #[serde(skip)]
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for SlimOwner<K> {
    fn clone(&self) -> Self {
        SlimOwner {
            metadata: self.metadata.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> SlimOwner<K> {
    /// An owner from its metadata (tests, tools).
    pub fn new(metadata: ObjectMeta) -> SlimOwner<K> {
        SlimOwner {
            metadata,
            kind: PhantomData,
        }
    }
}

impl<K: kube::Resource<DynamicType = ()>> kube::Resource for SlimOwner<K> {
    type DynamicType = ();
    type Scope = K::Scope;
    fn kind(_: &()) -> Cow<'_, str> {
        K::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        K::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        K::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        K::plural(&())
    }
    fn metadata_api() -> bool {
        true
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

macro_rules! core_v1 {
    ($ty:ty, $kind:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;
            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed("")
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed("v1")
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

core_v1!(SlimPod, "Pod", "pods", NamespaceResourceScope);
core_v1!(SlimNode, "Node", "nodes", ClusterResourceScope);

/// Re-decodes a full object into its slim form (tests and tools; the
/// watch and list paths decode the slim form directly).
fn reslim<T: serde::Serialize, S: serde::de::DeserializeOwned + Default>(full: &T) -> S {
    serde_json::to_vec(full)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

impl From<&k8s_openapi::api::core::v1::Pod> for SlimPod {
    fn from(p: &k8s_openapi::api::core::v1::Pod) -> SlimPod {
        reslim(p)
    }
}

impl From<k8s_openapi::api::core::v1::Pod> for SlimPod {
    fn from(p: k8s_openapi::api::core::v1::Pod) -> SlimPod {
        reslim(&p)
    }
}

impl From<&k8s_openapi::api::core::v1::Node> for SlimNode {
    fn from(n: &k8s_openapi::api::core::v1::Node) -> SlimNode {
        reslim(n)
    }
}

impl From<k8s_openapi::api::core::v1::Node> for SlimNode {
    fn from(n: k8s_openapi::api::core::v1::Node) -> SlimNode {
        reslim(&n)
    }
}

impl<K> From<kube::api::PartialObjectMeta<K>> for SlimOwner<K> {
    fn from(o: kube::api::PartialObjectMeta<K>) -> SlimOwner<K> {
        let w: MetaWire = reslim(&o.metadata);
        SlimOwner::new(w.into_meta(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_keeps_what_the_verdict_reads_and_drops_the_rest() {
        let p: SlimPod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"app": "x"}, "annotations": {"big": "y"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "o", "uid": "1"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "2", "controller": true}]},
            "spec": {"nodeName": "n1", "imagePullSecrets": null,
                "containers": [{"name": "app", "image": "nginx:1", "imagePullPolicy": "Always",
                    "env": [{"name": "A", "value": "b"}], "readinessProbe": {"httpGet": {"port": 80}},
                    "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
                "volumes": [{"name": "data", "image": {"reference": "quay.io/x/data:v1", "pullPolicy": "IfNotPresent"}},
                            {"name": "cfg", "configMap": {"name": "c"}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready"}],
                "containerStatuses": [{"name": "app", "imageID": "docker.io/library/nginx@sha256:aa",
                    "restartCount": 3, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/d",
                        "volumeStatus": {"image": {"imageRef": "quay.io/x/data@sha256:bb"}}}]}]}
        }))
        .unwrap();
        assert_eq!(p.metadata.labels, None);
        assert_eq!(p.metadata.annotations, None);
        assert_eq!(p.metadata.managed_fields, None);
        assert_eq!(p.metadata.resource_version.as_deref(), Some("7"));
        let owners = p.metadata.owner_references.as_deref().unwrap();
        assert_eq!(owners.len(), 1, "only the controller is kept");
        assert_eq!(owners[0].name, "rs");
        let spec = p.spec.as_ref().unwrap();
        assert!(spec.image_pull_secrets.is_empty(), "null is empty");
        assert_eq!(spec.containers[0].volume_mounts[0].name, "data");
        let vol = spec.volumes[0].image.as_ref().unwrap();
        assert_eq!(vol.reference.as_deref(), Some("quay.io/x/data:v1"));
        assert_eq!(vol.pull_policy.as_deref(), Some("IfNotPresent"));
        assert!(spec.volumes[1].image.is_none());
        let st = &p.status.as_ref().unwrap().container_statuses[0];
        assert!(st.state.running);
        assert_eq!(st.restart_count, 3);
        assert_eq!(
            st.volume_mounts[0].volume_status.as_deref(),
            Some("quay.io/x/data@sha256:bb")
        );
    }

    #[test]
    fn waiting_and_null_states_are_not_running() {
        for state in [
            json!({"waiting": {}}),
            json!(null),
            json!({"running": null}),
        ] {
            let s: ContainerStatusWire =
                serde_json::from_value(json!({"name": "a", "state": state})).unwrap();
            assert!(!s.state.running, "{state}");
        }
    }

    #[test]
    fn node_keeps_platform_labels_only() {
        let n: SlimNode = serde_json::from_value(json!({
            "metadata": {"name": "n", "labels": {"kubernetes.io/arch": "arm64", "zone": "a",
                "imagedrift.io/arch-variant": "v8"}},
            "status": {"nodeInfo": {"architecture": "arm64", "operatingSystem": "linux", "kernelVersion": "6"},
                "conditions": [{"type": "Ready", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        let labels = n.metadata.labels.unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["kubernetes.io/arch"], "arm64");
        assert_eq!(
            n.status.unwrap().node_info.unwrap().operating_system,
            "linux"
        );
    }

    #[test]
    fn resources_name_their_collections() {
        use kube::Resource;
        assert_eq!(
            SlimPod::url_path(&(), Some("ns")),
            "/api/v1/namespaces/ns/pods"
        );
        assert_eq!(SlimNode::url_path(&(), None), "/api/v1/nodes");
        type Rs = SlimOwner<k8s_openapi::api::apps::v1::ReplicaSet>;
        assert_eq!(Rs::url_path(&(), None), "/apis/apps/v1/replicasets");
        assert!(Rs::metadata_api());
        assert!(!SlimPod::metadata_api());
    }

    #[test]
    fn a_full_pod_reslims() {
        let full: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "ns", "annotations": {"x": "y"}},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}
        }))
        .unwrap();
        let slim = SlimPod::from(&full);
        assert_eq!(slim.metadata.name.as_deref(), Some("a"));
        assert_eq!(slim.metadata.annotations, None);
        assert_eq!(
            slim.spec.unwrap().containers[0].image.as_deref(),
            Some("i:1")
        );
    }
}
