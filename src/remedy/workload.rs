//! The workload side of a remedy: the patches imagedrift writes (restart,
//! pin, loop-guard annotations) and the state it reads back (annotations,
//! rollout progress, the pod template's containers).

use super::ContainerKind;
use super::apply::RESTARTED_AT;
use super::guard::{self, RolloutState};
use super::plan::{TemplateContainer, WorkloadState};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

/// The restart patch: exactly `kubectl rollout restart`'s, plus the
/// loop-guard annotations on the workload itself.
pub fn restart_patch(annotations: &BTreeMap<String, String>, now: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"annotations": annotations},
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: guard::rfc3339(now)}}}}
    })
}

/// The pin patch: each container's image by name (strategic merge on the
/// container lists), plus the loop-guard annotations.
pub fn pin_patch(
    annotations: &BTreeMap<String, String>,
    pins: &[super::plan::PinTarget],
) -> serde_json::Value {
    let mut spec = serde_json::Map::new();
    for kind in [ContainerKind::Container, ContainerKind::Init] {
        let list: Vec<serde_json::Value> = pins
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| serde_json::json!({"name": p.name, "image": p.to}))
            .collect();
        if !list.is_empty() {
            spec.insert(kind.field().to_string(), serde_json::Value::Array(list));
        }
    }
    // Image volumes by name (`volumes` merges on `name`).
    let volumes: Vec<serde_json::Value> = pins
        .iter()
        .filter(|p| p.kind == ContainerKind::ImageVolume)
        .map(|p| serde_json::json!({"name": p.name, "image": {"reference": p.to}}))
        .collect();
    if !volumes.is_empty() {
        spec.insert("volumes".to_string(), serde_json::Value::Array(volumes));
    }
    serde_json::json!({
        "metadata": {"annotations": annotations},
        "spec": {"template": {"spec": spec}}
    })
}

/// Only the loop-guard annotations.
pub fn annotations_patch(annotations: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": annotations}})
}

pub(super) fn metadata_state(meta: Option<ObjectMeta>) -> Option<WorkloadState> {
    meta.map(|m| WorkloadState {
        annotations: m.annotations.unwrap_or_default(),
        rollout: None,
        template: Vec::new(),
    })
}

pub(super) fn template_of(
    t: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
) -> Vec<TemplateContainer> {
    let Some(spec) = t.and_then(|t| t.spec.as_ref()) else {
        return Vec::new();
    };
    let list = |kind, cs: &[Container]| -> Vec<TemplateContainer> {
        cs.iter()
            .filter_map(|c| {
                Some(TemplateContainer {
                    kind,
                    name: c.name.clone(),
                    image: c.image.clone()?,
                })
            })
            .collect()
    };
    let mut out = list(ContainerKind::Container, &spec.containers);
    out.extend(list(
        ContainerKind::Init,
        spec.init_containers.as_deref().unwrap_or_default(),
    ));
    out.extend(
        spec.volumes
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|v| {
                Some(TemplateContainer {
                    kind: ContainerKind::ImageVolume,
                    name: v.name.clone(),
                    image: v.image.as_ref()?.reference.clone()?,
                })
            }),
    );
    out
}

/// A Deployment's remedy-relevant state.
pub fn deployment_state(d: &Deployment) -> WorkloadState {
    let spec = d.spec.as_ref();
    let status = d.status.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    WorkloadState {
        annotations: d.metadata.annotations.clone().unwrap_or_default(),
        rollout: Some(RolloutState {
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.and_then(|s| s.observed_generation).unwrap_or(0),
            unavailable: status.and_then(|s| s.unavailable_replicas).unwrap_or(0),
            updating: (replicas - status.and_then(|s| s.updated_replicas).unwrap_or(0)).max(0),
        }),
        template: template_of(spec.map(|s| &s.template)),
    }
}

/// A StatefulSet's remedy-relevant state.
pub fn statefulset_state(s: &StatefulSet) -> WorkloadState {
    let spec = s.spec.as_ref();
    let status = s.status.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    let on_delete = spec
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete");
    let rolling = status.is_some_and(|st| {
        st.update_revision.is_some() && st.current_revision != st.update_revision
    });
    WorkloadState {
        annotations: s.metadata.annotations.clone().unwrap_or_default(),
        rollout: Some(RolloutState {
            generation: s.metadata.generation.unwrap_or(0),
            observed_generation: status.and_then(|s| s.observed_generation).unwrap_or(0),
            unavailable: (replicas - status.and_then(|s| s.available_replicas).unwrap_or(0)).max(0),
            updating: if rolling && !on_delete {
                (replicas - status.and_then(|s| s.updated_replicas).unwrap_or(0)).max(0)
            } else {
                0
            },
        }),
        template: template_of(spec.map(|s| &s.template)),
    }
}

/// A DaemonSet's remedy-relevant state.
pub fn daemonset_state(d: &DaemonSet) -> WorkloadState {
    let status = d.status.as_ref();
    WorkloadState {
        annotations: d.metadata.annotations.clone().unwrap_or_default(),
        rollout: Some(RolloutState {
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.and_then(|s| s.observed_generation).unwrap_or(0),
            unavailable: status.and_then(|s| s.number_unavailable).unwrap_or(0),
            updating: status
                .map(|s| s.desired_number_scheduled - s.updated_number_scheduled.unwrap_or(0))
                .unwrap_or(0)
                .max(0),
        }),
        template: template_of(d.spec.as_ref().map(|s| &s.template)),
    }
}
