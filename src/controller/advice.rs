//! "What to do" for one judged container, as `explain` prints it: concrete
//! steps (a ready-to-paste pinned reference, the exact kubectl commands,
//! the flags or keys that give imagedrift credentials), never "retry
//! later" where something can be done. Pure: built from a [`Row`].

use super::reconcile::Row;
use super::report;
use super::store::ContainerKind;
use crate::facts::FailureCategory;
use crate::policy::{PullPolicy, Remedy};
use crate::registry::hint;
use crate::verdict::{UnknownReason, Verdict};

/// The advice: one sentence, then commands (each ready to paste).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advice {
    /// What to do, in words.
    pub text: String,
    /// `repo:tag@sha256:…`: the spec image pinned to what the tag serves
    /// today (stale containers only).
    pub pinned_reference: Option<String>,
    /// Commands, in the order to try them.
    pub commands: Vec<String>,
}

/// The spec image as written, pinned to `digest` (an existing digest is
/// replaced), so it pastes back into the same spec.
pub fn pinned(spec_image: &str, digest: &str) -> String {
    let base = spec_image.split_once('@').map_or(spec_image, |(b, _)| b);
    format!("{base}@{digest}")
}

/// `deployment/web` for kubectl, for the kinds whose pod template kubectl
/// can change (`None` for a Job, whose template is immutable, and for
/// custom controllers).
fn kubectl_target(kind: &str, name: &str) -> Option<String> {
    let k = match kind {
        "Deployment" => "deployment",
        "StatefulSet" => "statefulset",
        "DaemonSet" => "daemonset",
        "ReplicaSet" => "replicaset",
        "CronJob" => "cronjob",
        "Pod" => "pod",
        _ => return None,
    };
    Some(format!("{k}/{name}"))
}

fn can_roll(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet")
}

/// The advice for a row.
pub fn advise(r: &Row) -> Advice {
    let Some(j) = &r.judgement else {
        return text("nothing yet: the container has not been checked.");
    };
    match &j.verdict {
        Verdict::Fresh => text("nothing: it runs the content its tag serves today."),
        Verdict::Pinned => {
            text("nothing: the spec pins a digest, so the tag moving does not change what runs.")
        }
        Verdict::Stale => stale(r, j.evidence.current_digest.as_ref().map(|d| d.as_str())),
        Verdict::Unknown(reason) => unknown(r, reason),
    }
}

fn text(s: &str) -> Advice {
    Advice {
        text: s.into(),
        ..Advice::default()
    }
}

fn stale(r: &Row, current: Option<&str>) -> Advice {
    let ns = &*r.pod.namespace;
    let c = &*r.container.name;
    let volume = r.container.kind == ContainerKind::ImageVolume;
    let w = &r.workload;
    let pinned_reference = current.map(|d| pinned(&r.container.image, d));
    let target = kubectl_target(&w.kind, &w.name);
    let mut commands = Vec::new();
    let remedies = r
        .policy
        .as_ref()
        .map_or_else(|| vec![Remedy::PinDigest], |p| p.remedies());
    for remedy in remedies {
        match remedy {
            Remedy::Restart => {
                if can_roll(&w.kind) {
                    commands.push(format!(
                        "kubectl -n {ns} rollout restart {}",
                        target.as_deref().unwrap_or_default()
                    ));
                }
            }
            Remedy::RefreshNode => {
                let node = r.pod.node.as_deref().unwrap_or("NODE");
                commands.push(format!("crictl pull {}   # on node {node}", image_name(r)));
                if can_roll(&w.kind) {
                    commands.push(format!(
                        "kubectl -n {ns} rollout restart {}   # after the refresh",
                        target.as_deref().unwrap_or_default()
                    ));
                }
            }
            Remedy::PinDigest => match (&target, &pinned_reference) {
                (Some(t), Some(p)) if !volume && r.container.kind != ContainerKind::Ephemeral => {
                    commands.push(format!("kubectl -n {ns} set image {t} {c}={p}"));
                }
                (Some(t), Some(p)) if volume => commands.push(format!(
                    "kubectl -n {ns} edit {t}   # set image.reference of volume {c} to {p}"
                )),
                _ => {}
            },
            Remedy::SetPolicyAlways => {
                // A pod's imagePullPolicy cannot change in place; a Job's
                // template is immutable.
                if let Some(t) = &target
                    && !volume
                    && r.container.kind != ContainerKind::Ephemeral
                    && &*w.kind != "Pod"
                {
                    let list = if r.container.kind == ContainerKind::Init {
                        "initContainers"
                    } else {
                        "containers"
                    };
                    let entry =
                        format!(r#"{{"{list}":[{{"name":"{c}","imagePullPolicy":"Always"}}]}}"#);
                    let template = format!(r#"{{"template":{{"spec":{entry}}}}}"#);
                    let patch = if &*w.kind == "CronJob" {
                        format!(r#"{{"spec":{{"jobTemplate":{{"spec":{template}}}}}}}"#)
                    } else {
                        format!(r#"{{"spec":{template}}}"#)
                    };
                    commands.push(format!("kubectl -n {ns} patch {t} -p '{patch}'"));
                }
            }
            Remedy::ReprovisionNode => {}
        }
    }
    let mut text = report::remedy_sentence(r.policy.as_ref());
    if &*w.kind == "Job" {
        text.push_str(" A Job's pod template cannot change: the next Job (or CronJob run) picks up the pin or policy.");
    }
    if let Some(t) = &target
        && can_roll(&w.kind)
        && r.policy
            .as_ref()
            .is_some_and(|p| p.policy == PullPolicy::IfNotPresent)
    {
        // The opt-in annotation (with `run --enable-remedies`).
        commands.push(format!(
            "kubectl -n {ns} annotate {t} imagedrift.io/remedy=refresh,restart   # or let imagedrift refresh and restart it"
        ));
    }
    Advice {
        text,
        pinned_reference,
        commands,
    }
}

/// The normalised image (the spec's text when it does not parse).
fn image_name(r: &Row) -> String {
    r.image
        .as_ref()
        .map_or_else(|_| r.container.image.to_string(), |i| i.to_string())
}

fn host(r: &Row) -> String {
    r.image
        .as_ref()
        .map_or_else(|_| "the registry".into(), |i| i.domain().to_string())
}

fn unknown(r: &Row, reason: &UnknownReason) -> Advice {
    let host = host(r);
    let image = image_name(r);
    let detail = r
        .judgement
        .as_ref()
        .and_then(|j| j.evidence.detail.as_deref())
        .unwrap_or("")
        .to_ascii_lowercase();
    let resolve = format!("imagedrift resolve {image}");
    let (s, commands): (String, Vec<String>) = match reason {
        UnknownReason::NotRunning if r.container.kind == ContainerKind::ImageVolume => (
            "nothing yet: no container that mounts the volume is running, so there is no digest to compare.".into(),
            vec![],
        ),
        UnknownReason::NotRunning => (
            "nothing yet: the container is not running, so there is no digest to compare.".into(),
            vec![],
        ),
        UnknownReason::Pending => (
            "nothing yet: the container has not been checked.".into(),
            vec![],
        ),
        UnknownReason::VolumeDigestNotReported => (
            "a digest pin (image.reference repo:tag@sha256:…) makes the volume's content certain. The kubelet reports the running digest only with the feature gate ImageVolumeWithDigest (alpha in 1.36) on the API server and the kubelets, and a runtime whose container status names the volume's image.".into(),
            vec![format!("{resolve}   # the digest to pin")],
        ),
        UnknownReason::Platform => (
            "label the node with its architecture variant (kubernetes.io/arch, and the variant for arm), or check which platforms the image has.".into(),
            vec![resolve],
        ),
        UnknownReason::UnverifiableImageId | UnknownReason::InvalidImageId => (
            "the runtime reports an image ID that names no registry digest (an image built or loaded on the node?); pin the workload to a digest to make what runs certain.".into(),
            vec![format!("{resolve}   # the digest to pin")],
        ),
        UnknownReason::NestedIndex => (
            "the tag serves an index inside an index, which imagedrift does not follow; pin the workload to the digest of the image you mean.".into(),
            vec![resolve],
        ),
        UnknownReason::Lookup(_, category) => lookup(*category, &host, &detail, &image, resolve),
    };
    Advice {
        text: s,
        pinned_reference: None,
        commands,
    }
}

fn lookup(
    category: FailureCategory,
    host: &str,
    detail: &str,
    image: &str,
    resolve: String,
) -> (String, Vec<String>) {
    let text = hint::for_failure(category, host, detail, image);
    let test_creds = format!("{resolve} --creds ~/.docker/config.json   # test a credential");
    let commands = match category {
        FailureCategory::Unauthorized | FailureCategory::Denied => vec![test_creds],
        FailureCategory::Unreachable if hint::is_dns_failure(detail) => {
            vec![format!(
                "getent hosts {}",
                host.split(':').next().unwrap_or(host)
            )]
        }
        FailureCategory::InvalidResponse => vec![format!("{resolve} -o json")],
        FailureCategory::RateLimited
        | FailureCategory::InvalidReference
        | FailureCategory::CredentialProvider => vec![],
        _ => vec![resolve],
    };
    (text, commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_keeps_the_spelling_and_replaces_a_digest() {
        assert_eq!(
            pinned("registry.example/team/app:v1", "sha256:abc"),
            "registry.example/team/app:v1@sha256:abc"
        );
        assert_eq!(
            pinned("app:v1@sha256:old", "sha256:new"),
            "app:v1@sha256:new"
        );
    }

    use crate::controller::owner::Workload;
    use crate::controller::store::{ContainerView, PodView};
    use crate::policy::EffectivePolicy;
    use crate::reference::{Digest, ImageRef};
    use crate::verdict::{Evidence, Judgement, LookupTarget, Rule};
    use std::sync::Arc;

    fn row(kind: ContainerKind, owner: &str, policy: PullPolicy, verdict: Verdict) -> Row {
        let image = ImageRef::parse("registry.example/team/app:v1").unwrap();
        let d = |c: char| Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap();
        Row {
            pod: PodView {
                namespace: "shop".into(),
                name: "web-1".into(),
                uid: "u".into(),
                node: Some("node-a".into()),
                owner: None,
                pull_secrets: vec![],
                containers: vec![],
            },
            container: ContainerView {
                name: "app".into(),
                kind,
                image: "registry.example/team/app:v1".into(),
                pull_policy: Some(policy),
                image_id: "".into(),
                running: true,
                restarts: 0,
            },
            policy: Some(EffectivePolicy::infer_from_live(&image, policy)),
            image: Ok(Arc::new(image)),
            workload: Workload {
                namespace: "shop".into(),
                api_version: "apps/v1".into(),
                kind: owner.into(),
                name: "web".into(),
                uid: None,
            },
            judgement: Some(Judgement {
                verdict,
                evidence: Evidence {
                    running_digest: Some(d('a')),
                    current_digest: Some(d('b')),
                    platform: None,
                    current_manifest: None,
                    current_config: None,
                    rule: Rule::DifferentConfig,
                    detail: Some(
                        "HEAD https://registry.example/v2/team/app/manifests/v1: HTTP 401".into(),
                    ),
                },
            }),
        }
    }

    #[test]
    fn stale_under_always_restarts_or_pins() {
        let a = advise(&row(
            ContainerKind::Container,
            "StatefulSet",
            PullPolicy::Always,
            Verdict::Stale,
        ));
        let pin = format!("registry.example/team/app:v1@sha256:{}", "b".repeat(64));
        assert_eq!(a.pinned_reference.as_deref(), Some(pin.as_str()));
        assert_eq!(
            a.commands,
            vec![
                "kubectl -n shop rollout restart statefulset/web".to_string(),
                format!("kubectl -n shop set image statefulset/web app={pin}"),
            ]
        );
    }

    #[test]
    fn a_stale_image_volume_is_edited_not_set_image() {
        let a = advise(&row(
            ContainerKind::ImageVolume,
            "Deployment",
            PullPolicy::IfNotPresent,
            Verdict::Stale,
        ));
        assert!(
            a.commands
                .iter()
                .all(|c| !c.contains(" set image ") && !c.contains(" patch ")),
            "{a:?}"
        );
        assert!(
            a.commands.iter().any(|c| c.starts_with("kubectl -n shop edit deployment/web   # set image.reference of volume app to registry.example/team/app:v1@sha256:")),
            "{a:?}"
        );
    }

    #[test]
    fn a_cronjob_init_container_gets_the_job_template_patch() {
        let a = advise(&row(
            ContainerKind::Init,
            "CronJob",
            PullPolicy::IfNotPresent,
            Verdict::Stale,
        ));
        assert!(
            a.commands.contains(&r#"kubectl -n shop patch cronjob/web -p '{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[{"name":"app","imagePullPolicy":"Always"}]}}}}}}'"#.to_string()),
            "{a:?}"
        );
        // A CronJob is not rolled.
        assert!(a.commands.iter().all(|c| !c.contains("rollout")), "{a:?}");
    }

    #[test]
    fn unauthorized_names_the_credential_options_and_a_test_command() {
        let a = advise(&row(
            ContainerKind::Container,
            "Deployment",
            PullPolicy::IfNotPresent,
            Verdict::Unknown(UnknownReason::Lookup(
                LookupTarget::Tag,
                FailureCategory::Unauthorized,
            )),
        ));
        assert!(
            a.text.contains("--read-pull-secrets") && a.text.contains("--creds"),
            "{a:?}"
        );
        assert_eq!(
            a.commands,
            vec!["imagedrift resolve registry.example/team/app:v1 --creds ~/.docker/config.json   # test a credential".to_string()]
        );
        assert_eq!(a.pinned_reference, None);
    }

    #[test]
    fn kubectl_targets() {
        assert_eq!(
            kubectl_target("Deployment", "web").as_deref(),
            Some("deployment/web")
        );
        assert_eq!(kubectl_target("Job", "j"), None);
        assert!(can_roll("StatefulSet") && !can_roll("CronJob"));
    }
}
