//! The controller's state machine without any I/O: which references are
//! checked, which containers a new answer re-judges, which Events follow.

use imagedrift::controller::fake::FakeRegistry;
use imagedrift::controller::reconcile::{Outcome, Settings, State, run_check, run_judge};
use imagedrift::controller::report::Notice;
use imagedrift::controller::schedule::NoJitter;
use imagedrift::controller::secrets::Anonymous;
use imagedrift::controller::store::{Interner, PodView};
use imagedrift::facts::{Descriptor, FailureCategory, LookupFailure, Manifest, OCI_MANIFEST};
use imagedrift::metrics::Metrics;
use imagedrift::reference::{Digest, ImageRef};
use imagedrift::verdict::Verdict;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

fn settings() -> Settings {
    Settings {
        interval: Duration::from_secs(300),
        spread: Duration::ZERO,
        unknown_threshold: Duration::from_secs(1800),
    }
}

fn state() -> State {
    State::new(
        settings(),
        Metrics::register(&prometheus::Registry::new()).unwrap(),
        Box::new(NoJitter),
    )
}

fn view(s: &mut State, name: &str, containers: &[(&str, &str, &str)]) -> PodView {
    let specs: Vec<_> = containers
        .iter()
        .map(|(n, img, _)| json!({"name": n, "image": img, "imagePullPolicy": "IfNotPresent"}))
        .collect();
    let statuses: Vec<_> = containers
        .iter()
        .map(|(n, img, id)| {
            json!({"name": n, "image": img, "imageID": id, "ready": true, "restartCount": 0, "state": {"running": {}}})
        })
        .collect();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": name, "uid": name},
        "spec": {"nodeName": "n1", "containers": specs},
        "status": {"containerStatuses": statuses}
    }))
    .unwrap();
    PodView::from_pod(&pod, s.strings()).unwrap()
}

/// `example.com/app:v1` now serves `b` (config `2`); `a` (config `1`) is
/// the build before.
fn app_registry() -> FakeRegistry {
    let reg = FakeRegistry::default();
    let app = ImageRef::parse("example.com/app:v1").unwrap();
    reg.set_tag(
        &app,
        Descriptor {
            digest: d('b'),
            media_type: OCI_MANIFEST.into(),
        },
    );
    for (digest, config) in [(d('a'), d('1')), (d('b'), d('2'))] {
        reg.put_manifest(
            &app,
            digest,
            Manifest::Image {
                config,
                platform: None,
            },
        );
    }
    reg
}

/// ReplicaSet `web-1` of Deployment `owner`.
fn web_rs(owner: &str) -> imagedrift::controller::store::OwnerMeta {
    use imagedrift::controller::store::{OwnerMeta, OwnerRef};
    OwnerMeta {
        namespace: "ns".into(),
        kind: "ReplicaSet".into(),
        name: "web-1".into(),
        owner: Some(OwnerRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: owner.into(),
            uid: "d".into(),
        }),
    }
}

/// A pod of ReplicaSet `web-1` on node `n1` whose one container (policy
/// IfNotPresent) runs `example.com/app:v1` at `running`.
fn web_pod(name: &str, container: &str, running: &Digest) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": name, "uid": name, "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": true}]},
        "spec": {"nodeName": "n1", "containers": [{"name": container, "image": "example.com/app:v1", "imagePullPolicy": "IfNotPresent"}]},
        "status": {"containerStatuses": [{"name": container, "image": "x", "imageID": format!("example.com/app@{running}"),
            "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    }))
    .unwrap()
}

fn key(pod: &str, c: &str) -> imagedrift::controller::reconcile::ContainerKey {
    imagedrift::controller::reconcile::ContainerKey {
        namespace: "ns".into(),
        pod: pod.into(),
        container: c.into(),
        kind: imagedrift::controller::store::ContainerKind::Container,
    }
}

#[tokio::test(start_paused = true)]
async fn unique_references_are_checked_once_and_answers_rejudge_every_user() {
    let reg = FakeRegistry::default();
    let app = ImageRef::parse("example.com/app:v1").unwrap();
    reg.set_tag(
        &app,
        Descriptor {
            digest: d('a'),
            media_type: OCI_MANIFEST.into(),
        },
    );
    let id_a = format!("example.com/app@{}", d('a'));
    let mut s = state();
    let t0 = Instant::now();
    // Two spellings of one reference, three containers, plus a pinned one.
    let pinned = format!("example.com/app@{}", d('a'));
    let p1 = view(
        &mut s,
        "p1",
        &[("a", "example.com/app:v1", &id_a), ("pin", &pinned, &id_a)],
    );
    let p2 = view(
        &mut s,
        "p2",
        &[
            ("a", "example.com/app:v1", &id_a),
            ("b", "example.com/app:v1", &id_a),
        ],
    );
    let (jobs1, _) = s.apply_pod(p1, t0);
    let (jobs2, _) = s.apply_pod(p2, t0);
    assert_eq!(
        jobs1.len() + jobs2.len(),
        4,
        "every new container is judged at once"
    );
    assert!(jobs1.iter().all(|j| j.tag.is_none()), "no answer yet");
    assert_eq!(s.reference_count(), 2);

    let checks = s.due_checks(t0, 10);
    assert_eq!(checks.len(), 1, "pinned references need no registry work");
    assert_eq!(
        checks[0].judge.len(),
        3,
        "one check judges every container using the reference"
    );
    assert!(s.due_checks(t0, 10).is_empty(), "not handed out twice");

    // Apply the pending judgements first, then the answer.
    let mut judged = Vec::new();
    for j in jobs1.iter().chain(&jobs2) {
        judged.push(run_judge(&reg, &Anonymous, j).await);
    }
    s.apply_outcome(
        Outcome {
            answer: None,
            judged,
        },
        t0,
    );
    assert_eq!(
        s.judgement(&key("p1", "pin")).unwrap().verdict,
        Verdict::Pinned
    );
    let outcome = run_check(&reg, &Anonymous, checks[0].clone()).await;
    assert_eq!(reg.resolves(), 1);
    let (more, effects) = s.apply_outcome(outcome, t0);
    assert!(more.is_empty() && effects.is_empty());
    for (p, c) in [("p1", "a"), ("p2", "a"), ("p2", "b")] {
        assert_eq!(
            s.judgement(&key(p, c)).unwrap().verdict,
            Verdict::Fresh,
            "{p}/{c}"
        );
    }
    assert_eq!(s.next_due(), Some(t0 + Duration::from_secs(300)));

    // The tag moves: the next answer re-judges all three; one StaleImage per pod container.
    let t1 = t0 + Duration::from_secs(300);
    reg.set_tag(
        &app,
        Descriptor {
            digest: d('b'),
            media_type: OCI_MANIFEST.into(),
        },
    );
    reg.put_manifest(
        &app,
        d('a'),
        Manifest::Image {
            config: d('1'),
            platform: None,
        },
    );
    reg.put_manifest(
        &app,
        d('b'),
        Manifest::Image {
            config: d('2'),
            platform: None,
        },
    );
    let checks = s.due_checks(t1, 10);
    assert_eq!(checks.len(), 1);
    let (_, effects) = s.apply_outcome(run_check(&reg, &Anonymous, checks[0].clone()).await, t1);
    let stale: Vec<_> = effects
        .iter()
        .filter(|e| e.notice == Notice::BecameStale)
        .collect();
    assert_eq!(
        stale.len(),
        3,
        "one per container; bare pods get no workload Event: {effects:#?}"
    );
    assert_eq!(effects.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_new_container_during_a_check_is_judged_with_the_answer() {
    let reg = FakeRegistry::default();
    let app = ImageRef::parse("example.com/app:v1").unwrap();
    reg.set_tag(
        &app,
        Descriptor {
            digest: d('a'),
            media_type: OCI_MANIFEST.into(),
        },
    );
    let id_a = format!("example.com/app@{}", d('a'));
    let mut s = state();
    let t0 = Instant::now();
    let p1 = view(&mut s, "p1", &[("a", "example.com/app:v1", &id_a)]);
    s.apply_pod(p1, t0);
    let check = s.due_checks(t0, 10).remove(0);
    let p2 = view(&mut s, "p2", &[("a", "example.com/app:v1", &id_a)]);
    s.apply_pod(p2, t0);
    let (more, _) = s.apply_outcome(run_check(&reg, &Anonymous, check).await, t0);
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].key, key("p2", "a"));
    assert!(
        more[0].tag.as_ref().is_some_and(|t| t.is_ok()),
        "judged with the new answer"
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_for_longer_than_the_threshold_reports_drift_check_failed_once() {
    let reg = FakeRegistry::default();
    let app = ImageRef::parse("example.com/private:v1").unwrap();
    reg.fail_tag(
        &app,
        LookupFailure::new(FailureCategory::Unauthorized, "401 from example.com"),
    );
    let id = format!("example.com/private@{}", d('a'));
    let mut s = state();
    let t0 = Instant::now();
    let p = view(&mut s, "p", &[("c", "example.com/private:v1", &id)]);
    s.apply_pod(p, t0);
    let mut notices = Vec::new();
    for i in 0..10u64 {
        let t = t0 + Duration::from_secs(300 * i);
        for check in s.due_checks(t, 10) {
            let (_, effects) = s.apply_outcome(run_check(&reg, &Anonymous, check).await, t);
            notices.extend(effects.into_iter().map(|e| (i, e)));
        }
    }
    assert_eq!(notices.len(), 1, "{notices:#?}");
    let (at, e) = &notices[0];
    assert_eq!(*at, 6, "30 minutes after the first failure");
    assert_eq!(e.notice, Notice::CheckFailing);
    assert_eq!(
        e.note,
        format!(
            "Cannot tell whether container c runs current content for example.com/private:v1 on node n1 for 30m: \
             unauthorized (resolving the tag: unauthorized: 401 from example.com). Running {}. \
             What to do: example.com refused anonymous or wrong credentials: give imagedrift credentials for example.com: \
             with scan/explain, --read-pull-secrets (the pods' imagePullSecrets), --creds FILE (a docker config.json) \
             or --image-credential-provider-config/--image-credential-provider-bin-dir (the kubelet's credential-provider \
             plugins: ECR, GCR/Artifact Registry, ACR); with run, the keys pullSecrets.enabled, registries.credentialsFile \
             and registries.credentialProviders.",
            d('a')
        )
    );
    assert!(e.note.len() <= 1024);
}

#[tokio::test(start_paused = true)]
async fn invalid_references_and_image_ids_are_unknown_not_errors() {
    let reg = FakeRegistry::default();
    let mut s = state();
    let t0 = Instant::now();
    let p = view(
        &mut s,
        "p",
        &[
            ("bad", "Not A Reference!", "x@sha256:zz"),
            ("weird", "example.com/a:v1", "garbage@@"),
        ],
    );
    let (jobs, _) = s.apply_pod(p, t0);
    let mut judged = Vec::new();
    for j in &jobs {
        judged.push(run_judge(&reg, &Anonymous, j).await);
    }
    s.apply_outcome(
        Outcome {
            answer: None,
            judged,
        },
        t0,
    );
    let bad = s.judgement(&key("p", "bad")).unwrap();
    assert_eq!(bad.verdict.as_str(), "unknown");
    match &bad.verdict {
        imagedrift::verdict::Verdict::Unknown(r) => assert_eq!(r.as_str(), "invalid_reference"),
        other => panic!("{other:?}"),
    }
    assert!(bad.evidence.detail.is_some(), "says what is wrong with it");
    let weird = s.judgement(&key("p", "weird")).unwrap();
    assert_eq!(weird.verdict.as_str(), "unknown");
    let detail = weird.evidence.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("\"garbage@@\""),
        "names the imageID: {detail}"
    );
    let rows = s.rows();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].image.is_err());
}

#[test]
fn interner_is_shared_across_pods() {
    let mut s = state();
    let a = view(&mut s, "a", &[("c", "example.com/app:v1", "")]);
    let b = view(&mut s, "b", &[("c", "example.com/app:v1", "")]);
    assert!(std::sync::Arc::ptr_eq(
        &a.containers[0].image,
        &b.containers[0].image
    ));
    let _ = Interner::default();
}

#[tokio::test(start_paused = true)]
async fn late_results_never_overwrite_newer_ones() {
    let reg = app_registry();
    let id_a = format!("example.com/app@{}", d('a'));
    let id_b = format!("example.com/app@{}", d('b'));
    let mut s = state();
    let t0 = Instant::now();
    let p = view(&mut s, "p", &[("c", "example.com/app:v1", &id_a)]);
    let (pending, _) = s.apply_pod(p, t0);
    let check = s.due_checks(t0, 10).remove(0);
    let (_, effects) = s.apply_outcome(run_check(&reg, &Anonymous, check).await, t0);
    assert_eq!(effects.len(), 1, "became stale");
    // The judgement made before any answer arrives late: dropped.
    let late = run_judge(&reg, &Anonymous, &pending[0]).await;
    assert_eq!(late.judgement.verdict.as_str(), "unknown");
    s.apply_outcome(
        Outcome {
            answer: None,
            judged: vec![late],
        },
        t0,
    );
    assert_eq!(s.judgement(&key("p", "c")).unwrap().verdict, Verdict::Stale);

    // The container restarts onto `b` while a check judges its old imageID:
    // the outdated result is dropped and the new state judged with the answer.
    let t1 = t0 + Duration::from_secs(300);
    let check = s.due_checks(t1, 10).remove(0);
    let p = view(&mut s, "p", &[("c", "example.com/app:v1", &id_b)]);
    let (jobs, _) = s.apply_pod(p, t1);
    assert_eq!(jobs.len(), 1);
    let (more, _) = s.apply_outcome(run_check(&reg, &Anonymous, check).await, t1);
    assert_eq!(
        more.len(),
        1,
        "re-judge the new imageID with the new answer"
    );
    assert_eq!(&*more[0].image_id, id_b.as_str());
    let judged = run_judge(&reg, &Anonymous, &more[0]).await;
    let (_, effects) = s.apply_outcome(
        Outcome {
            answer: None,
            judged: vec![judged],
        },
        t1,
    );
    assert_eq!(effects.len(), 1);
    assert_eq!(effects[0].notice, Notice::BecameFresh);
    // The pod-change judgement made with the previous answer is now outdated.
    let old = run_judge(&reg, &Anonymous, &jobs[0]).await;
    let (_, effects) = s.apply_outcome(
        Outcome {
            answer: None,
            judged: vec![old],
        },
        t1,
    );
    assert!(effects.is_empty());
}

#[tokio::test(start_paused = true)]
async fn stale_workloads_are_handed_to_the_remedies_with_every_container() {
    use imagedrift::controller::store::{OwnerMeta, OwnerRef};
    use imagedrift::remedy::WorkloadKind;
    let reg = app_registry();
    let mut s = state();
    assert!(s.take_remedy_work().is_empty(), "off by default");
    s.enable_remedies();
    let t0 = Instant::now();
    s.apply_owner(OwnerMeta {
        namespace: "ns".into(),
        kind: "ReplicaSet".into(),
        name: "web-1".into(),
        owner: Some(OwnerRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: "d".into(),
        }),
    });
    let pod = |name: &str, id: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": name, "uid": name, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": true}]},
            "spec": {"nodeName": "n1", "imagePullSecrets": [{"name": "regcred"}],
                     "containers": [{"name": "c", "image": "example.com/app:v1", "imagePullPolicy": "Always"}]},
            "status": {"containerStatuses": [{"name": "c", "image": "x", "imageID": id, "ready": true, "restartCount": 0, "state": {"running": {}}}]}
        }))
        .unwrap()
    };
    for (name, id) in [("web-1-a", d('a')), ("web-1-b", d('b'))] {
        let v =
            PodView::from_pod(&pod(name, &format!("example.com/app@{id}")), s.strings()).unwrap();
        s.apply_pod(v, t0);
    }
    let check = s.due_checks(t0, 10).remove(0);
    s.apply_outcome(run_check(&reg, &Anonymous, check).await, t0);
    let work = s.take_remedy_work();
    assert_eq!(work.len(), 1);
    let (w, containers) = &work[0];
    assert_eq!(
        (
            w.kind,
            w.namespace.as_str(),
            w.name.as_str(),
            w.uid.as_deref()
        ),
        (WorkloadKind::Deployment, "ns", "web", Some("d"))
    );
    assert_eq!(
        containers.len(),
        2,
        "every judged container of the workload"
    );
    let stale = containers.iter().find(|c| c.pod == "web-1-a").unwrap();
    assert_eq!(stale.verdict, Verdict::Stale);
    assert_eq!(stale.current_digest, d('b'));
    assert_eq!(
        stale.also_current,
        vec![d('b'), d('2')],
        "the current manifest and config digests (CRI-O may report either)"
    );
    assert_eq!(stale.running_digest, Some(d('a')));
    assert_eq!(stale.spec_image, "example.com/app:v1");
    assert_eq!(stale.policy.policy, imagedrift::policy::PullPolicy::Always);
    assert_eq!(stale.pull_secrets, vec!["regcred".to_string()]);
    assert_eq!(stale.node.as_deref(), Some("n1"));
    assert!(s.take_remedy_work().is_empty(), "drained");
}

#[tokio::test(start_paused = true)]
async fn a_container_that_stops_during_a_check_is_not_judged_as_running() {
    // Same imageID, but no longer running (CrashLoopBackOff): the check's
    // snapshot said running, so its verdict must not stand.
    let reg = app_registry();
    let id_a = format!("example.com/app@{}", d('a'));
    let mut s = state();
    let t0 = Instant::now();
    let p = view(&mut s, "p", &[("c", "example.com/app:v1", &id_a)]);
    let _ = s.apply_pod(p.clone(), t0);
    let check = s.due_checks(t0, 1).pop().unwrap();
    assert!(check.judge[0].running);
    // While the check runs, the container stops (restart count moves).
    let mut stopped = p;
    stopped.containers[0].running = false;
    stopped.containers[0].restarts = 1;
    let (jobs, _) = s.apply_pod(stopped, t0);
    assert_eq!(jobs.len(), 1);
    let outcome = run_check(&reg, &Anonymous, check).await;
    let (again, _) = s.apply_outcome(outcome, t0);
    assert_ne!(
        s.judgement(&key("p", "c")).map(|j| &j.verdict),
        Some(&Verdict::Stale),
        "judged from a snapshot where it still ran"
    );
    assert_eq!(again.len(), 1, "judged again with the new answer");
    assert!(!again[0].running && again[0].tag.is_some());
    let judged = vec![run_judge(&reg, &Anonymous, &again[0]).await];
    s.apply_outcome(
        Outcome {
            answer: None,
            judged,
        },
        t0,
    );
    assert!(matches!(
        s.judgement(&key("p", "c")).map(|j| &j.verdict),
        Some(Verdict::Unknown(_))
    ));
}

/// The pod list often arrives before the ReplicaSet list (four watches, in
/// any order). When the owners' list lands, the pods they own are judged
/// again so their series and stale counts move to the Deployment, instead of
/// staying on the ReplicaSet until the next check (one interval later).
#[tokio::test(start_paused = true)]
async fn owners_listed_after_their_pods_relabel_them_at_once() {
    let reg = app_registry();
    let prom = prometheus::Registry::new();
    let metrics = Metrics::register(&prom).unwrap();
    let mut s = State::new(settings(), metrics.clone(), Box::new(NoJitter));
    let t0 = Instant::now();
    let v = PodView::from_pod(&web_pod("web-1-a", "c", &d('a')), s.strings()).unwrap();
    s.apply_pod(v, t0);
    let check = s.due_checks(t0, 10).remove(0);
    let (_, effects) = s.apply_outcome(run_check(&reg, &Anonymous, check).await, t0);
    let regarding: Vec<_> = effects
        .iter()
        .map(|e| e.regarding.kind.clone().unwrap_or_default())
        .collect();
    assert_eq!(regarding, ["Pod", "ReplicaSet"], "owner not known yet");
    let text = metrics.render().unwrap();
    assert!(
        text.contains(r#"owner_kind="ReplicaSet",owner_name="web-1""#),
        "{text}"
    );

    let rs = web_rs;
    let jobs = s.replace_owners("ReplicaSet", vec![rs("web")]);
    assert_eq!(jobs.len(), 1, "the owned pod's container is judged again");
    let mut judged = Vec::new();
    for j in &jobs {
        judged.push(run_judge(&reg, &Anonymous, j).await);
    }
    s.apply_outcome(
        Outcome {
            answer: None,
            judged,
        },
        t0,
    );
    let text = metrics.render().unwrap();
    assert!(
        text.contains(r#"owner_kind="Deployment",owner_name="web",pod="web-1-a"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"imagedrift_workload_stale_containers{namespace="ns",owner_kind="Deployment",owner_name="web"} 1"#
        ),
        "{text}"
    );
    assert!(!text.contains(r#"owner_kind="ReplicaSet""#), "{text}");
    assert!(
        s.replace_owners("ReplicaSet", vec![rs("web")]).is_empty(),
        "an unchanged re-list re-judges nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_check_is_every_reference_in_use_checked_once() {
    let reg = FakeRegistry::default();
    let desc = |c| Descriptor {
        digest: d(c),
        media_type: OCI_MANIFEST.into(),
    };
    reg.set_tag(&ImageRef::parse("example.com/app:v1").unwrap(), desc('a'));
    reg.set_tag(&ImageRef::parse("example.com/app:v2").unwrap(), desc('b'));
    let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
    let mut s = State::new(settings(), metrics.clone(), Box::new(NoJitter));
    let t0 = Instant::now();
    let id_a = format!("example.com/app@{}", d('a'));
    let id_b = format!("example.com/app@{}", d('b'));
    let pinned = format!("example.com/app@{}", d('a'));
    for (pod, image, id) in [
        ("p1", "example.com/app:v1", &id_a),
        ("p2", "example.com/app:v2", &id_b),
        ("p3", pinned.as_str(), &id_a),
    ] {
        let v = view(&mut s, pod, &[("c", image, id)]);
        s.apply_pod(v, t0);
    }
    let mut checks = s.due_checks(t0, 10);
    checks.sort_by(|a, b| a.reference.cmp(&b.reference));
    assert_eq!(checks.len(), 2, "the pinned reference is never checked");
    let v2 = checks.pop().unwrap();
    let v1 = checks.pop().unwrap();
    s.apply_outcome(run_check(&reg, &Anonymous, v1).await, t0);
    assert_eq!(metrics.last_full_check.get(), 0.0, "v2 is not checked yet");
    // p2 goes while its reference is being checked: the late answer does
    // not count, and the full check needs only v1 again.
    s.delete_pod("ns", "p2");
    s.apply_outcome(run_check(&reg, &Anonymous, v2).await, t0);
    assert_eq!(metrics.last_full_check.get(), 0.0, "v1 was checked before");
    let t1 = t0 + Duration::from_secs(300);
    let again = s.due_checks(t1, 10);
    assert_eq!(again.len(), 1, "only v1 is still in use");
    let again = again.into_iter().next().unwrap();
    s.apply_outcome(run_check(&reg, &Anonymous, again).await, t1);
    assert!(
        metrics.last_full_check.get() > 0.0,
        "every reference in use checked"
    );
}

/// A registry outage says nothing about the content: a stale workload stays
/// stale (no "runs current content again" Event, its count and series stay)
/// until a real verdict clears it; a container that stops is no news either.
#[tokio::test(start_paused = true)]
async fn failed_lookups_and_stopped_containers_never_announce_a_workload_fresh() {
    let reg = FakeRegistry::default();
    let app = ImageRef::parse("example.com/app:v1").unwrap();
    let tag = |c| Descriptor {
        digest: d(c),
        media_type: OCI_MANIFEST.into(),
    };
    reg.set_tag(&app, tag('b'));
    for (m, cfg) in [('a', '1'), ('b', '2')] {
        reg.put_manifest(
            &app,
            d(m),
            Manifest::Image {
                config: d(cfg),
                platform: None,
            },
        );
    }
    let metrics = Metrics::register(&prometheus::Registry::new()).unwrap();
    let mut s = State::new(settings(), metrics.clone(), Box::new(NoJitter));
    let pod = |name: &str, running: bool| -> Pod {
        let state = if running {
            json!({"running": {}})
        } else {
            json!({"terminated": {"exitCode": 1}})
        };
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": name, "uid": name, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "example.com/app:v1", "imagePullPolicy": "IfNotPresent"}]},
            "status": {"containerStatuses": [{"name": "c", "image": "x", "imageID": format!("example.com/app@{}", d('a')),
                "ready": running, "restartCount": 0, "state": state}]}
        }))
        .unwrap()
    };
    let workload_events = |effects: &[imagedrift::controller::reconcile::EventEffect]| {
        effects
            .iter()
            .filter(|e| e.regarding.kind.as_deref() == Some("ReplicaSet"))
            .map(|e| e.notice)
            .collect::<Vec<_>>()
    };
    let counted = |m: &Metrics| {
        m.render()
            .unwrap()
            .contains(r#"imagedrift_workload_stale_containers{namespace="ns",owner_kind="ReplicaSet",owner_name="web-1"} 1"#)
    };
    let mut now = Instant::now();
    for name in ["web-1-a", "web-1-b"] {
        let v = PodView::from_pod(&pod(name, true), s.strings()).unwrap();
        s.apply_pod(v, now);
    }
    let check = s.due_checks(now, 10).remove(0);
    let (_, effects) = s.apply_outcome(run_check(&reg, &Anonymous, check).await, now);
    assert_eq!(workload_events(&effects), [Notice::BecameStale]);

    reg.fail_tag(
        &app,
        LookupFailure::new(FailureCategory::Unreachable, "connection refused"),
    );
    now += Duration::from_secs(300);
    let check = s.due_checks(now, 10).remove(0);
    let (_, effects) = s.apply_outcome(run_check(&reg, &Anonymous, check).await, now);
    assert!(workload_events(&effects).is_empty(), "{effects:?}");
    assert!(
        metrics.render().unwrap().contains(
            r#"imagedrift_workload_stale_containers{namespace="ns",owner_kind="ReplicaSet",owner_name="web-1"} 2"#
        ),
        "both containers still counted during the outage"
    );

    reg.set_tag(&app, tag('b'));
    now += Duration::from_secs(300);
    let check = s.due_checks(now, 10).remove(0);
    let (_, effects) = s.apply_outcome(run_check(&reg, &Anonymous, check).await, now);
    assert!(
        workload_events(&effects).is_empty(),
        "still stale: already reported, {effects:?}"
    );

    // One pod's container stops: no longer counted, and nothing announced.
    let v = PodView::from_pod(&pod("web-1-b", false), s.strings()).unwrap();
    let (jobs, _) = s.apply_pod(v, now);
    let mut judged = Vec::new();
    for j in &jobs {
        judged.push(run_judge(&reg, &Anonymous, j).await);
    }
    let (_, effects) = s.apply_outcome(
        Outcome {
            answer: None,
            judged,
        },
        now,
    );
    assert!(workload_events(&effects).is_empty(), "{effects:?}");
    assert!(counted(&metrics), "one stale container left");

    // The registry now serves what the other one runs: fresh, announced.
    reg.set_tag(&app, tag('a'));
    now += Duration::from_secs(300);
    let check = s.due_checks(now, 10).remove(0);
    let (_, effects) = s.apply_outcome(run_check(&reg, &Anonymous, check).await, now);
    assert_eq!(workload_events(&effects), [Notice::BecameFresh]);
    assert!(!counted(&metrics));
}

#[test]
fn unchanged_views_and_node_heartbeats_judge_nothing() {
    let mut s = state();
    let t0 = Instant::now();
    let id = format!("example.com/app@{}", d('a'));
    let v = view(&mut s, "p1", &[("app", "example.com/app:v1", &id)]);
    assert_eq!(s.apply_pod(v, t0).0.len(), 1, "a new container is judged");
    // A resourceVersion bump (a condition, a probe time) decodes to the
    // same view: nothing to judge.
    let same = view(&mut s, "p1", &[("app", "example.com/app:v1", &id)]);
    let (jobs, effects) = s.apply_pod(same, t0);
    assert!(jobs.is_empty() && effects.is_empty());
    // A real change still is.
    let moved = view(
        &mut s,
        "p1",
        &[(
            "app",
            "example.com/app:v1",
            &format!("example.com/app@{}", d('b')),
        )],
    );
    assert_eq!(s.apply_pod(moved, t0).0.len(), 1, "a new imageID is judged");
    // Node heartbeats: the platform is unchanged, nothing is judged.
    let amd64 = imagedrift::platform::Platform::new("linux", "amd64", None);
    assert_eq!(
        s.apply_node("n1", Some(amd64.clone())).len(),
        1,
        "first sight of the node"
    );
    for _ in 0..3 {
        assert!(s.apply_node("n1", Some(amd64.clone())).is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_workload_event_counts_every_replica_one_answer_judges_stale() {
    let reg = app_registry();
    let mut s = state();
    let t0 = Instant::now();
    s.apply_owner(web_rs("web"));
    for name in ["web-1-a", "web-1-b"] {
        let v = PodView::from_pod(&web_pod(name, "app", &d('a')), s.strings()).unwrap();
        s.apply_pod(v, t0);
    }
    let check = s.due_checks(t0, 10).remove(0);
    let (_, effects) = s.apply_outcome(run_check(&reg, &Anonymous, check).await, t0);
    let workload: Vec<_> = effects
        .iter()
        .filter(|e| e.regarding.kind.as_deref() == Some("Deployment"))
        .collect();
    assert_eq!(workload.len(), 1, "{effects:#?}");
    assert_eq!(workload[0].notice, Notice::BecameStale);
    assert!(
        workload[0]
            .note
            .starts_with("2 of 2 pods of Deployment web run stale content (container app)."),
        "{}",
        workload[0].note
    );
    let summary = s.summary();
    assert_eq!(
        (
            summary.containers,
            summary.judged,
            summary.stale,
            summary.stale_workloads
        ),
        (2, 2, 2, 1),
        "{summary:?}"
    );
}
