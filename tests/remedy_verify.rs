//! Whether a remedy worked, on the state machine alone (no I/O, time
//! passed by hand): a remedy applied to a Deployment is `verified` when the
//! Deployment's pods come to run the current digest within the window, and
//! `failed` when the window ends first; the closing `ImageUpToDate` names
//! what fixed it.

use imagedrift::controller::fake::FakeRegistry;
use imagedrift::controller::reconcile::{
    EventEffect, Outcome, Settings, State, run_check, run_judge,
};
use imagedrift::controller::report::Notice;
use imagedrift::controller::schedule::NoJitter;
use imagedrift::controller::secrets::Anonymous;
use imagedrift::controller::store::{OwnerMeta, OwnerRef, PodView};
use imagedrift::facts::{Descriptor, Manifest, OCI_MANIFEST};
use imagedrift::metrics::Metrics;
use imagedrift::policy::Remedy;
use imagedrift::reference::{Digest, ImageRef};
use imagedrift::remedy::{WorkloadKind, WorkloadRef};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

const APP: &str = "example.com/app:v1";
const WINDOW: Duration = Duration::from_secs(900);

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

/// The tag serves `b`; `a` is the content it served before.
fn registry() -> FakeRegistry {
    let reg = FakeRegistry::default();
    let app = ImageRef::parse(APP).unwrap();
    reg.set_tag(
        &app,
        Descriptor {
            digest: d('b'),
            media_type: OCI_MANIFEST.into(),
        },
    );
    for (m, c) in [('a', '1'), ('b', '2')] {
        reg.put_manifest(
            &app,
            d(m),
            Manifest::Image {
                config: d(c),
                platform: None,
            },
        );
    }
    reg
}

fn web() -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "ns".into(),
        name: "web".into(),
        uid: Some("d".into()),
    }
}

/// A pod of ReplicaSet `rs` (owned by Deployment web; none for `bare`)
/// running content `running`.
fn pod(s: &mut State, rs: Option<&str>, name: &str, running: char) -> PodView {
    let owners = match rs {
        Some(rs) => {
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": rs, "controller": true}])
        }
        None => json!([]),
    };
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": "ns", "name": name, "uid": name, "ownerReferences": owners},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": APP, "imagePullPolicy": "IfNotPresent"}]},
        "status": {"containerStatuses": [{"name": "c", "image": APP, "imageID": format!("example.com/app@{}", d(running)),
            "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    }))
    .unwrap();
    PodView::from_pod(&p, s.strings()).unwrap()
}

fn owned_by_web(s: &mut State, rs: &str) {
    s.apply_owner(OwnerMeta {
        namespace: "ns".into(),
        kind: "ReplicaSet".into(),
        name: rs.into(),
        owner: Some(OwnerRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: "d".into(),
        }),
    });
}

/// Applies a pod and judges what it asks for; returns the Events.
async fn apply(s: &mut State, reg: &FakeRegistry, view: PodView, now: Instant) -> Vec<EventEffect> {
    let (jobs, mut effects) = s.apply_pod(view, now);
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
    effects
}

/// Deployment web with one pod judged stale at `now`.
async fn stale_web(reg: &FakeRegistry, now: Instant) -> State {
    let mut s = State::new(
        Settings {
            interval: Duration::from_secs(300),
            spread: Duration::ZERO,
            unknown_threshold: Duration::from_secs(1800),
        },
        Metrics::register(&prometheus::Registry::new()).unwrap(),
        Box::new(NoJitter),
    );
    s.enable_remedies();
    owned_by_web(&mut s, "web-1");
    let v = pod(&mut s, Some("web-1"), "web-1-a", 'a');
    s.apply_pod(v, now);
    let check = s.due_checks(now, 10).remove(0);
    let (_, effects) = s.apply_outcome(run_check(reg, &Anonymous, check).await, now);
    assert!(
        effects.iter().any(|e| e.notice == Notice::BecameStale
            && e.regarding.kind.as_deref() == Some("Deployment")),
        "{effects:?}"
    );
    s
}

fn closes(effects: &[EventEffect]) -> Vec<String> {
    effects
        .iter()
        .filter(|e| {
            e.notice == Notice::BecameFresh && e.regarding.kind.as_deref() == Some("Deployment")
        })
        .map(|e| e.note.clone())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_restart_is_verified_when_the_new_pods_run_the_current_digest() {
    let reg = registry();
    let t0 = Instant::now();
    let mut s = stale_web(&reg, t0).await;
    s.remedy_applied(&web(), &[Remedy::RefreshNode, Remedy::Restart], t0, WINDOW);
    assert_eq!(s.next_verify_deadline(), Some(t0 + WINDOW));
    assert!(s.take_remedy_checks(t0).is_empty(), "nothing settled yet");

    // The rollout: a new ReplicaSet's pod on the current digest, then the old pod goes.
    let t1 = t0 + Duration::from_secs(40);
    owned_by_web(&mut s, "web-2");
    let v = pod(&mut s, Some("web-2"), "web-2-a", 'b');
    let effects = apply(&mut s, &reg, v, t1).await;
    assert!(
        closes(&effects).is_empty(),
        "the stale pod still runs: {effects:?}"
    );
    let effects = s.delete_pod("ns", "web-1-a");
    assert_eq!(
        closes(&effects),
        [
            "Deployment web runs current content again: its pods run the current digest after refresh,restart by imagedrift."
        ]
    );
    let checks = s.take_remedy_checks(t1);
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert!(checks[0].verified);
    assert_eq!(checks[0].remedies, [Remedy::RefreshNode, Remedy::Restart]);
    assert_eq!(checks[0].workload, web());
    assert_eq!(s.next_verify_deadline(), None);
    assert!(
        s.take_remedy_checks(t0 + WINDOW * 2).is_empty(),
        "settled once: no failure when the window would have ended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_remedy_whose_pods_stay_stale_fails_when_its_window_ends() {
    let reg = registry();
    let t0 = Instant::now();
    let mut s = stale_web(&reg, t0).await;
    s.remedy_applied(&web(), &[Remedy::RefreshNode], t0, WINDOW);
    assert!(
        s.take_remedy_checks(t0 + WINDOW - Duration::from_secs(1))
            .is_empty()
    );
    let checks = s.take_remedy_checks(t0 + WINDOW);
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert!(!checks[0].verified);
    assert_eq!(checks[0].remedies, [Remedy::RefreshNode]);
    assert_eq!(
        checks[0].note,
        "Remedy refresh was applied to Deployment web, but its pods did not all run the current digest within 15m (remedies.verifyTimeout): 1 of 1 pod still runs stale content (container c)."
    );
    assert!(
        s.take_remedy_checks(t0 + WINDOW * 2).is_empty(),
        "failed once"
    );

    // Fixed later by someone else: the close does not credit the remedy.
    let t1 = t0 + WINDOW * 2;
    owned_by_web(&mut s, "web-2");
    let v = pod(&mut s, Some("web-2"), "web-2-a", 'b');
    apply(&mut s, &reg, v, t1).await;
    let effects = s.delete_pod("ns", "web-1-a");
    assert_eq!(
        closes(&effects),
        ["Deployment web runs current content again: new pods run the current digest."]
    );
    assert!(s.take_remedy_checks(t1).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_workload_left_without_pods_settles_nothing() {
    let reg = registry();
    let t0 = Instant::now();
    let mut s = stale_web(&reg, t0).await;
    s.remedy_applied(&web(), &[Remedy::Restart], t0, WINDOW);
    let effects = s.delete_pod("ns", "web-1-a");
    assert_eq!(
        closes(&effects),
        ["Deployment web runs current content again: none of its pods remain."]
    );
    assert!(
        s.take_remedy_checks(t0 + WINDOW).is_empty(),
        "nothing to verify"
    );
    assert_eq!(s.next_verify_deadline(), None);
}

#[tokio::test(start_paused = true)]
async fn refreshes_of_bare_pods_and_remedies_after_the_close_are_not_verified() {
    let reg = registry();
    let t0 = Instant::now();
    let mut s = stale_web(&reg, t0).await;
    // A bare pod, stale: a refresh serves the pods after it, not this one.
    let v = pod(&mut s, None, "agent-1", 'a');
    apply(&mut s, &reg, v, t0).await;
    let agent = WorkloadRef {
        kind: WorkloadKind::Pod,
        namespace: "ns".into(),
        name: "agent-1".into(),
        uid: None,
    };
    s.remedy_applied(&agent, &[Remedy::RefreshNode], t0, WINDOW);
    assert_eq!(s.next_verify_deadline(), None);
    // A remedy that returns after its workload's episode closed.
    s.delete_pod("ns", "web-1-a");
    s.remedy_applied(&web(), &[Remedy::Restart], t0, WINDOW);
    assert_eq!(s.next_verify_deadline(), None);
    assert!(s.take_remedy_checks(t0 + WINDOW).is_empty());
}
