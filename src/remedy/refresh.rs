//! Refresh pods: a short-lived pod per stale node that pulls the tag again
//! with `imagePullPolicy: Always` (and mounts stale image volumes the same
//! way), and how its status tells that the node now holds the current
//! content.

use super::WorkloadRef;
use super::apply::{MANAGED_BY, REFRESH_FOR, kube_error, label_value, truncate};
use super::config::RefreshConfig;
use super::plan::RefreshTarget;
use crate::image_id::RuntimeImageId;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerStatus, ImageVolumeSource, LocalObjectReference, Pod,
    PodSecurityContext, PodSpec, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, WatchEvent, WatchParams};
use std::collections::BTreeMap;

/// Whether a refresh pod has pulled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullStatus {
    /// Not yet known.
    Pending,
    /// Every container reports a current digest.
    Pulled,
    /// It can't succeed any more.
    Failed(String),
}

/// Judges a refresh pod from its status: its containers' `imageID`s
/// (present even when the command failed) against the accepted digests.
pub fn pull_status(pod: &Pod, t: &RefreshTarget) -> PullStatus {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let mut all = true;
    for (i, img) in t.images.iter().enumerate() {
        let name = refresh_container_name(i);
        let Some(cs) = statuses.iter().find(|c| c.name == name) else {
            all = false;
            continue;
        };
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref()
            && matches!(
                reason,
                "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull"
            )
        {
            return PullStatus::Failed(format!(
                "pulling {}: {reason}: {}",
                img.spec_image,
                truncate(w.message.as_deref().unwrap_or_default(), 300)
            ));
        }
        // For an image volume the proof is the volume's digest, not the
        // carrier container's imageID.
        let reported = if img.volume_carrier.is_some() {
            volume_image_ref(cs, &name)
        } else {
            cs.image_id.as_str()
        };
        match RuntimeImageId::parse(reported) {
            Ok(Some(id)) if img.accept.contains(&id.digest) => {}
            Ok(Some(id)) => {
                return PullStatus::Failed(format!(
                    "the node reports {} for {}, not the tag's current digest {}",
                    id.digest, img.spec_image, img.current
                ));
            }
            Ok(None) => all = false,
            Err(e) => {
                return PullStatus::Failed(format!("imageID {reported:?}: {e}"));
            }
        }
    }
    if all {
        return PullStatus::Pulled;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Failed" | "Succeeded")) {
        let why = pod
            .status
            .as_ref()
            .and_then(|s| s.reason.clone())
            .unwrap_or_else(|| "no imageID reported".to_string());
        return PullStatus::Failed(format!("refresh pod ended ({why})"));
    }
    PullStatus::Pending
}

/// The digest a container reports for the image volume `volume` it mounts
/// (`volumeMounts[].volumeStatus.image.imageRef`), empty when none.
fn volume_image_ref<'a>(cs: &'a ContainerStatus, volume: &str) -> &'a str {
    cs.volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|m| m.name == volume)
        .and_then(|m| m.volume_status.as_ref())
        .and_then(|v| v.image.as_ref())
        .map_or("", |i| i.image_ref.as_str())
}

pub(super) async fn wait_pulled(
    pods: &Api<Pod>,
    name: &str,
    mut rv: String,
    t: &RefreshTarget,
) -> Result<(), String> {
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    loop {
        let mut stream = pods
            .watch(&wp, &rv)
            .await
            .map_err(|e| format!("watching refresh pod {name}: {}", kube_error(&e)))?
            .boxed();
        while let Some(ev) = stream.next().await {
            let ev = ev.map_err(|e| format!("watching refresh pod {name}: {}", kube_error(&e)))?;
            let pod = match ev {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => p,
                WatchEvent::Deleted(_) => {
                    return Err(format!("refresh pod {name} was deleted before it pulled"));
                }
                WatchEvent::Bookmark(b) => {
                    rv = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Error(s) => {
                    return Err(format!("watching refresh pod {name}: {}", s.message));
                }
            };
            if let Some(v) = &pod.metadata.resource_version {
                rv = v.clone();
            }
            match pull_status(&pod, t) {
                PullStatus::Pending => {}
                PullStatus::Pulled => return Ok(()),
                PullStatus::Failed(e) => return Err(e),
            }
        }
        // The API server closed the watch: pick it up again, without spinning.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Where a refresh pod mounts the image volume it pulls.
pub const REFRESH_MOUNT: &str = "/imagedrift-refresh";

/// The name of a refresh pod's `i`th container (and of its image volume,
/// when it pulls one).
pub fn refresh_container_name(i: usize) -> String {
    format!("refresh-{i}")
}

/// The refresh pod for one node: bound to it, pulling each image with
/// policy `Always`, running a command that exits at once, tolerating its
/// taints, tiny, short-lived, labelled as imagedrift's, unprivileged.
pub fn refresh_pod(w: &WorkloadRef, t: &RefreshTarget, cfg: &RefreshConfig) -> Pod {
    // An image volume is pulled (policy Always) as a volume of the pod,
    // mounted by a container running an image the node has already.
    let volumes: Vec<Volume> = t
        .images
        .iter()
        .enumerate()
        .filter(|(_, img)| img.volume_carrier.is_some())
        .map(|(i, img)| Volume {
            name: refresh_container_name(i),
            image: Some(ImageVolumeSource {
                reference: Some(img.spec_image.clone()),
                pull_policy: Some("Always".to_string()),
            }),
            ..Volume::default()
        })
        .collect();
    let containers = t
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| Container {
            name: refresh_container_name(i),
            image: Some(
                img.volume_carrier
                    .clone()
                    .unwrap_or_else(|| img.spec_image.clone()),
            ),
            image_pull_policy: Some(
                if img.volume_carrier.is_some() {
                    "IfNotPresent"
                } else {
                    "Always"
                }
                .to_string(),
            ),
            volume_mounts: img.volume_carrier.as_ref().map(|_| {
                vec![VolumeMount {
                    name: refresh_container_name(i),
                    mount_path: REFRESH_MOUNT.to_string(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                }]
            }),
            command: Some(cfg.command.clone()),
            resources: Some(cfg.resources.clone()),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_string()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            ..Container::default()
        })
        .collect();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some("imagedrift-refresh-".to_string()),
            namespace: Some(w.namespace.clone()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.to_string(), "imagedrift".to_string()),
                (REFRESH_FOR.to_string(), label_value(&w.name)),
            ])),
            annotations: Some(BTreeMap::from([(REFRESH_FOR.to_string(), w.to_string())])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(t.node.clone()),
            restart_policy: Some("Never".to_string()),
            active_deadline_seconds: Some(cfg.active_deadline.as_secs() as i64),
            termination_grace_period_seconds: Some(0),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            image_pull_secrets: (!t.pull_secrets.is_empty()).then(|| {
                t.pull_secrets
                    .iter()
                    .map(|s| LocalObjectReference { name: s.clone() })
                    .collect()
            }),
            tolerations: Some(cfg.tolerations.to_spec()),
            // Meets the "restricted" Pod Security Standard; a fixed user
            // means no image needs a non-root USER for the pull to count.
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65532),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_string(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers,
            volumes: (!volumes.is_empty()).then_some(volumes),
            ..PodSpec::default()
        }),
        status: None,
    }
}
