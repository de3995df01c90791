//! Image volumes (`spec.volumes[].image`) judged like containers: the
//! verdict input, Events, metrics, scan rows, and the refresh and pin
//! remedies; Unknown with its own reason where the kubelet reports no digest.

use imagedrift::controller::fake::FakeRegistry;
use imagedrift::controller::output;
use imagedrift::controller::reconcile::{
    ContainerKey, Outcome, Settings, State, run_check, run_judge,
};
use imagedrift::controller::report::Notice;
use imagedrift::controller::schedule::NoJitter;
use imagedrift::controller::secrets::Anonymous;
use imagedrift::controller::store::{ContainerKind, PodView};
use imagedrift::facts::{Descriptor, Manifest, OCI_MANIFEST};
use imagedrift::metrics::Metrics;
use imagedrift::policy::{EffectivePolicy, PullPolicy};
use imagedrift::reference::{Digest, ImageRef};
use imagedrift::remedy::apply::{PullStatus, pin_patch, pull_status, refresh_pod};
use imagedrift::remedy::config::RefreshConfig;
use imagedrift::remedy::optin::Enabled;
use imagedrift::remedy::plan::{
    InFlightView, Limits, PlanInput, RefreshImage, RefreshTarget, Step, TemplateContainer,
    WorkloadState, plan,
};
use imagedrift::remedy::{StaleContainer, WorkloadKind, WorkloadRef};
use imagedrift::verdict::{UnknownReason, Verdict};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;
use tokio::time::Instant;

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

const THRESHOLD: Duration = Duration::from_secs(1800);

fn state(metrics: &Metrics) -> State {
    State::new(
        Settings {
            interval: Duration::from_secs(300),
            spread: Duration::ZERO,
            unknown_threshold: THRESHOLD,
        },
        metrics.clone(),
        Box::new(NoJitter),
    )
}

/// A running pod: container `app` (fresh, example.com/app:v1) mounting the
/// image volume `app` (example.com/model:v1, IfNotPresent) — the same name on
/// purpose. `volume_ref` is the volume's reported digest ("" = the gate off).
fn pod(s: &mut State, name: &str, volume_ref: &str) -> PodView {
    let mount = if volume_ref.is_empty() {
        json!({"name": "app", "mountPath": "/model"})
    } else {
        json!({"name": "app", "mountPath": "/model", "volumeStatus": {"image": {"imageRef": volume_ref}}})
    };
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": name, "uid": name},
        "spec": {
            "nodeName": "n1",
            "volumes": [{"name": "app", "image": {"reference": "example.com/model:v1", "pullPolicy": "IfNotPresent"}}],
            "containers": [{"name": "app", "image": "example.com/app:v1", "imagePullPolicy": "IfNotPresent",
                            "volumeMounts": [{"name": "app", "mountPath": "/model"}]}]
        },
        "status": {"containerStatuses": [{
            "name": "app", "image": "example.com/app:v1", "imageID": format!("example.com/app@{}", d('a')),
            "ready": true, "restartCount": 0, "state": {"running": {}}, "volumeMounts": [mount]}]}
    }))
    .unwrap();
    PodView::from_pod(&pod, s.strings()).unwrap()
}

fn key(pod: &str, kind: ContainerKind) -> ContainerKey {
    ContainerKey {
        namespace: "ns".into(),
        pod: pod.into(),
        container: "app".into(),
        kind,
    }
}

/// The app tag serves `a` (fresh); the model tag moved from `b` to `c`, with
/// a different config: a volume still on `b` is stale.
fn registry() -> FakeRegistry {
    let reg = FakeRegistry::default();
    let app = ImageRef::parse("example.com/app:v1").unwrap();
    let model = ImageRef::parse("example.com/model:v1").unwrap();
    let desc = |c| Descriptor {
        digest: d(c),
        media_type: OCI_MANIFEST.into(),
    };
    reg.set_tag(&app, desc('a'));
    reg.set_tag(&model, desc('c'));
    for (m, config) in [('b', '1'), ('c', '2')] {
        reg.put_manifest(
            &model,
            d(m),
            Manifest::Image {
                config: d(config),
                platform: None,
            },
        );
    }
    reg
}

/// Applies a pod, judges it, runs every due check; returns the Events.
async fn settle(
    s: &mut State,
    reg: &FakeRegistry,
    p: PodView,
    now: Instant,
) -> Vec<imagedrift::controller::reconcile::EventEffect> {
    let (jobs, mut effects) = s.apply_pod(p, now);
    let mut judged = Vec::new();
    for j in &jobs {
        judged.push(run_judge(reg, &Anonymous, j).await);
    }
    effects.extend(
        s.apply_outcome(
            Outcome {
                answer: None,
                judged,
            },
            now,
        )
        .1,
    );
    for c in s.due_checks(now, 10) {
        let o = run_check(reg, &Anonymous, c).await;
        let (more, e) = s.apply_outcome(o, now);
        assert!(more.is_empty());
        effects.extend(e);
    }
    effects
}

#[tokio::test(start_paused = true)]
async fn a_stale_image_volume_is_reported_apart_from_its_same_named_container() {
    let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
    let mut s = state(&metrics);
    s.enable_remedies();
    let reg = registry();
    let t0 = Instant::now();
    let p = pod(&mut s, "p1", &format!("example.com/model@{}", d('b')));
    let effects = settle(&mut s, &reg, p, t0).await;

    assert_eq!(
        s.judgement(&key("p1", ContainerKind::Container))
            .unwrap()
            .verdict,
        Verdict::Fresh
    );
    assert_eq!(
        s.judgement(&key("p1", ContainerKind::ImageVolume))
            .unwrap()
            .verdict,
        Verdict::Stale
    );
    let stale: Vec<_> = effects
        .iter()
        .filter(|e| e.notice == Notice::BecameStale)
        .collect();
    assert_eq!(stale.len(), 1, "{effects:?}");
    assert!(
        stale[0].note.starts_with(&format!(
            "Image volume app runs stale content for example.com/model:v1 on node n1: running {}, the tag now serves {}",
            d('b'),
            d('c')
        )),
        "{}",
        stale[0].note
    );
    assert!(
        stale[0]
            .note
            .contains("A restart does not help under IfNotPresent")
    );

    let text = metrics.render().unwrap();
    assert!(text.contains(r#"imagedrift_container_stale{container="app",image="example.com/model:v1",kind="image_volume",namespace="ns",node="n1",owner_kind="Pod",owner_name="p1",pod="p1"} 1"#), "{text}");
    assert!(text.contains(r#"imagedrift_container_stale{container="app",image="example.com/app:v1",kind="container",namespace="ns",node="n1",owner_kind="Pod",owner_name="p1",pod="p1"} 0"#), "{text}");
    assert!(text.contains(r#"imagedrift_container_verdict{container="app",kind="image_volume",namespace="ns",pod="p1",reason="different-config",verdict="stale"} 1"#), "{text}");

    // scan: both rows, the volume marked as such.
    let rows = s.rows();
    assert_eq!(rows.len(), 2);
    let table = output::table(&rows, false);
    assert!(table.contains("app (volume)"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&output::json(&rows)).unwrap();
    // `scan -o json` writes it item by item: the same bytes, and the counts
    // its exit code follows.
    let mut streamed = Vec::new();
    let counts = output::write_json(s.rows_iter(), &mut streamed).unwrap();
    assert_eq!(
        String::from_utf8(streamed).unwrap(),
        output::json(&rows) + "\n"
    );
    assert_eq!(counts, (1, 0), "one stale, none unknown");
    let vol = &json["items"][1];
    assert_eq!(vol["containerType"], "image_volume");
    assert_eq!(vol["verdict"], "stale");
    assert_eq!(vol["pullPolicy"], "IfNotPresent");
    assert_eq!(
        vol["remedies"],
        json!(["refresh", "pin", "set-policy-always"])
    );
    let explain = output::explain(&rows);
    assert!(
        explain.contains("Image volume app of pod ns/p1"),
        "{explain}"
    );

    // The remedies see the volume as one more stale entry of the workload.
    let work = s.take_remedy_work();
    assert_eq!(work.len(), 1);
    let vols: Vec<&StaleContainer> = work[0]
        .1
        .iter()
        .filter(|c| c.kind == ContainerKind::ImageVolume)
        .collect();
    assert_eq!(vols.len(), 1);
    assert_eq!(vols[0].spec_image, "example.com/model:v1");
    assert_eq!(vols[0].policy.policy, PullPolicy::IfNotPresent);
    assert_eq!(vols[0].verdict, Verdict::Stale);

    // The pod goes: every series goes with it.
    s.delete_pod("ns", "p1");
    assert_eq!(metrics.container_series(), 0);
}

#[tokio::test(start_paused = true)]
async fn without_the_kubelet_gate_a_volume_is_unknown_and_says_why() {
    let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
    let mut s = state(&metrics);
    let reg = registry();
    let t0 = Instant::now();
    let p = pod(&mut s, "p1", "");
    let effects = settle(&mut s, &reg, p.clone(), t0).await;
    assert!(effects.is_empty(), "{effects:?}");
    let j = s.judgement(&key("p1", ContainerKind::ImageVolume)).unwrap();
    assert_eq!(
        j.verdict,
        Verdict::Unknown(UnknownReason::VolumeDigestNotReported)
    );
    assert!(
        j.evidence
            .detail
            .as_deref()
            .unwrap()
            .contains("ImageVolumeWithDigest"),
        "{j:?}"
    );
    let text = metrics.render().unwrap();
    assert!(text.contains(r#"imagedrift_container_verdict{container="app",kind="image_volume",namespace="ns",pod="p1",reason="volume_digest_not_reported",verdict="unknown"} 1"#), "{text}");
    assert!(text.contains(r#"imagedrift_container_stale{container="app",image="example.com/model:v1",kind="image_volume""#), "never stale: {text}");
    let explain = output::explain(&s.rows());
    assert!(
        explain.contains("feature gate ImageVolumeWithDigest"),
        "{explain}"
    );

    // Not silent: past the unknown threshold, one DriftCheckFailed.
    let t1 = t0 + THRESHOLD;
    let mut later = Vec::new();
    for c in s.due_checks(t1, 10) {
        let o = run_check(&reg, &Anonymous, c).await;
        later.extend(s.apply_outcome(o, t1).1);
    }
    let failing: Vec<_> = later
        .iter()
        .filter(|e| e.notice == Notice::CheckFailing)
        .collect();
    assert_eq!(failing.len(), 1, "{later:?}");
    assert!(
        failing[0].note.starts_with(
            "Cannot tell whether image volume app runs current content for example.com/model:v1"
        ),
        "{}",
        failing[0].note
    );
    assert!(failing[0].note.contains("volume_digest_not_reported"));
}

#[tokio::test(start_paused = true)]
async fn a_volume_no_running_container_mounts_is_not_running() {
    let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
    let mut s = state(&metrics);
    let reg = registry();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": "p2"},
        "spec": {"nodeName": "n1",
                 "volumes": [{"name": "app", "image": {"reference": "example.com/model:v1", "pullPolicy": "IfNotPresent"}}],
                 "containers": [{"name": "app", "image": "example.com/app:v1", "volumeMounts": [{"name": "app", "mountPath": "/m"}]}]},
        "status": {"containerStatuses": [{"name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                                          "state": {"waiting": {"reason": "ContainerCreating"}}}]}
    }))
    .unwrap();
    let p = PodView::from_pod(&pod, s.strings()).unwrap();
    settle(&mut s, &reg, p, Instant::now()).await;
    assert_eq!(
        s.judgement(&key("p2", ContainerKind::ImageVolume))
            .unwrap()
            .verdict,
        Verdict::Unknown(UnknownReason::NotRunning)
    );
}

fn stale(name: &str, kind: ContainerKind, image: &str) -> StaleContainer {
    let parsed = ImageRef::parse(image).unwrap();
    StaleContainer {
        pod: "web-1".into(),
        container: name.into(),
        kind,
        node: Some("n1".into()),
        spec_image: image.into(),
        policy: EffectivePolicy::infer_from_live(&parsed, PullPolicy::IfNotPresent),
        image: parsed,
        current_digest: d('c'),
        also_current: vec![d('9')],
        running_digest: Some(d('b')),
        verdict: if kind == ContainerKind::ImageVolume {
            Verdict::Stale
        } else {
            Verdict::Fresh
        },
        pull_secrets: vec![],
    }
}

fn plan_for(containers: &[StaleContainer], enabled: Enabled) -> imagedrift::remedy::plan::Plan {
    let w = WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "shop".into(),
        name: "web".into(),
        uid: None,
    };
    let state = WorkloadState {
        annotations: Default::default(),
        rollout: None,
        template: containers
            .iter()
            .map(|c| TemplateContainer {
                kind: c.kind,
                name: c.container.clone(),
                image: c.spec_image.clone(),
            })
            .collect(),
    };
    plan(&PlanInput {
        workload: &w,
        containers,
        state: &state,
        enabled,
        record: None,
        in_flight: InFlightView::default(),
        limits: Limits {
            cooldown: Duration::from_secs(1800),
            max_in_flight: 3,
        },
        refreshed: &HashSet::new(),
        now: "2026-03-01T12:00:00Z".parse().unwrap(),
    })
}

#[test]
fn refresh_of_a_volume_mounts_it_in_a_pod_run_from_the_pods_own_image() {
    let cs = [
        stale("app", ContainerKind::Container, "example.com/app:v1"),
        stale("model", ContainerKind::ImageVolume, "example.com/model:v1"),
    ];
    let mut e = Enabled::NONE;
    e.refresh = true;
    e.restart = true;
    let p = plan_for(&cs, e);
    let want = RefreshTarget {
        node: "n1".into(),
        images: vec![RefreshImage {
            spec_image: "example.com/model:v1".into(),
            current: d('c'),
            accept: BTreeSet::from([d('c'), d('9')]),
            volume_carrier: Some("example.com/app:v1".into()),
        }],
        pull_secrets: vec![],
    };
    assert_eq!(
        p.steps,
        vec![Step::Refresh(vec![want.clone()]), Step::Restart]
    );

    // The pod: the volume pulled with Always, the carrier run IfNotPresent.
    let w = WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "shop".into(),
        name: "web".into(),
        uid: None,
    };
    let pod = refresh_pod(&w, &want, &RefreshConfig::default());
    let spec = serde_json::to_value(pod.spec.as_ref().unwrap()).unwrap();
    assert_eq!(
        spec["volumes"],
        json!([{"name": "refresh-0", "image": {"reference": "example.com/model:v1", "pullPolicy": "Always"}}])
    );
    let c = &spec["containers"][0];
    assert_eq!(c["image"], "example.com/app:v1");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "refresh-0", "mountPath": "/imagedrift-refresh", "readOnly": true}])
    );

    // Success is the volume's digest, not the carrier's imageID.
    let status = |volume_ref: &str| -> Pod {
        let mut m = json!({"name": "refresh-0", "mountPath": "/imagedrift-refresh"});
        if !volume_ref.is_empty() {
            m["volumeStatus"] = json!({"image": {"imageRef": volume_ref}});
        }
        serde_json::from_value(
            json!({"status": {"phase": "Running", "containerStatuses": [{
            "name": "refresh-0", "image": "", "imageID": format!("example.com/app@{}", d('a')),
            "ready": false, "restartCount": 0, "volumeMounts": [m]}]}}),
        )
        .unwrap()
    };
    assert_eq!(pull_status(&status(""), &want), PullStatus::Pending);
    assert_eq!(
        pull_status(&status(&format!("example.com/model@{}", d('9'))), &want),
        PullStatus::Pulled
    );
    match pull_status(&status(&format!("example.com/model@{}", d('b'))), &want) {
        PullStatus::Failed(why) => assert!(why.contains("not the tag's current digest"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_volume_whose_pod_has_no_known_container_image_is_not_refreshed() {
    let cs = [stale(
        "model",
        ContainerKind::ImageVolume,
        "example.com/model:v1",
    )];
    let mut e = Enabled::NONE;
    e.refresh = true;
    let p = plan_for(&cs, e);
    assert!(p.steps.is_empty(), "{p:?}");
    assert_eq!(p.skips.len(), 1);
    assert!(
        p.skips[0]
            .message
            .contains("image volume model (example.com/model:v1): no container image of pod web-1"),
        "{}",
        p.skips[0].message
    );
}

#[test]
fn pin_of_a_volume_patches_its_reference() {
    let cs = [
        stale("app", ContainerKind::Container, "example.com/app:v1"),
        stale("model", ContainerKind::ImageVolume, "example.com/model:v1"),
    ];
    let mut e = Enabled::NONE;
    e.pin = true;
    let p = plan_for(&cs, e);
    let Some(Step::Pin(pins)) = p.steps.first() else {
        panic!("{p:?}")
    };
    assert_eq!(pins.len(), 1);
    let patch = pin_patch(&Default::default(), pins);
    assert_eq!(
        patch["spec"]["template"]["spec"],
        json!({"volumes": [{"name": "model", "image": {"reference": format!("example.com/model:v1@{}", d('c'))}}]})
    );
}
