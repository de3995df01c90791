//! Table tests for the pure remedy planner: which remedy for which pull
//! policy and kind (SEMANTICS.md §4), and the guardrails.

use imagedrift::policy::{EffectivePolicy, PullPolicy, Remedy};
use imagedrift::reference::{Digest, ImageRef};
use imagedrift::remedy::guard::{GuardRecord, RolloutState};
use imagedrift::remedy::optin::Enabled;
use imagedrift::remedy::plan::{
    InFlightView, Limits, NodePull, PinTarget, Plan, PlanInput, RefreshImage, RefreshTarget,
    SkipReason, Step, TemplateContainer, WorkloadState, plan,
};
use imagedrift::remedy::{ContainerKind, StaleContainer, WorkloadKind, WorkloadRef};
use imagedrift::verdict::{UnknownReason, Verdict};
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

fn now() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn workload(kind: WorkloadKind) -> WorkloadRef {
    WorkloadRef {
        kind,
        namespace: "shop".into(),
        name: "web".into(),
        uid: None,
    }
}

fn container(name: &str, image: &str, policy: PullPolicy, node: &str) -> StaleContainer {
    let parsed = ImageRef::parse(image).unwrap();
    StaleContainer {
        pod: "web-1".into(),
        container: name.into(),
        kind: ContainerKind::Container,
        node: Some(node.into()),
        spec_image: image.into(),
        policy: EffectivePolicy::infer_from_live(&parsed, policy),
        image: parsed,
        current_digest: d('a'),
        also_current: vec![],
        running_digest: Some(d('0')),
        verdict: Verdict::Stale,
        pull_secrets: vec![],
    }
}

fn enabled(words: &str) -> Enabled {
    let mut e = Enabled::NONE;
    for w in words.split(',').filter(|w| !w.is_empty()) {
        match w {
            "restart" => e.restart = true,
            "refresh" => e.refresh = true,
            "pin" => e.pin = true,
            other => panic!("{other}"),
        }
    }
    e
}

fn settled() -> RolloutState {
    RolloutState {
        generation: 4,
        observed_generation: 4,
        unavailable: 0,
        updating: 0,
    }
}

fn state_for(cs: &[StaleContainer]) -> WorkloadState {
    WorkloadState {
        annotations: Default::default(),
        rollout: Some(settled()),
        template: cs
            .iter()
            .map(|c| TemplateContainer {
                kind: c.kind,
                name: c.container.clone(),
                image: c.spec_image.clone(),
            })
            .collect(),
    }
}

struct Case {
    kind: WorkloadKind,
    containers: Vec<StaleContainer>,
    enabled: &'static str,
    record: Option<GuardRecord>,
    rollout: Option<RolloutState>,
    in_flight: InFlightView,
    refreshed: HashSet<NodePull>,
}

impl Case {
    fn new(kind: WorkloadKind, containers: Vec<StaleContainer>, enabled: &'static str) -> Case {
        Case {
            kind,
            containers,
            enabled,
            record: None,
            rollout: Some(settled()),
            in_flight: InFlightView::default(),
            refreshed: HashSet::new(),
        }
    }

    fn run(&self) -> Plan {
        let w = workload(self.kind);
        let mut state = state_for(&self.containers);
        state.rollout = self.rollout;
        plan(&PlanInput {
            workload: &w,
            containers: &self.containers,
            state: &state,
            enabled: enabled(self.enabled),
            record: self.record.as_ref(),
            in_flight: self.in_flight,
            limits: Limits {
                cooldown: Duration::from_secs(1800),
                max_in_flight: 3,
            },
            refreshed: &self.refreshed,
            now: now(),
        })
    }
}

/// The skips of a plan: which remedies, why.
type Skips = Vec<(Vec<Remedy>, SkipReason)>;

fn skipped(p: &Plan) -> Skips {
    p.skips
        .iter()
        .map(|s| (s.remedies.clone(), s.reason))
        .collect()
}

fn refresh_one(node: &str, image: &str) -> RefreshTarget {
    RefreshTarget {
        node: node.into(),
        images: vec![RefreshImage {
            spec_image: image.into(),
            current: d('a'),
            accept: BTreeSet::from([d('a')]),
            volume_carrier: None,
        }],
        pull_secrets: vec![],
    }
}

use PullPolicy::{Always, IfNotPresent, Never};
use WorkloadKind::{CronJob, Deployment, Pod, StatefulSet};

#[test]
fn policy_decides_the_remedy() {
    let always = || vec![container("app", "nginx:latest", Always, "n1")];
    let ifnp = || vec![container("app", "nginx:1.25", IfNotPresent, "n1")];
    let rows: Vec<(&str, Case, Vec<Step>, Skips)> = vec![
        (
            "Always + restart: restart",
            Case::new(Deployment, always(), "restart"),
            vec![Step::Restart],
            vec![],
        ),
        (
            "Always + restart,pin: the restart is preferred",
            Case::new(StatefulSet, always(), "restart,pin"),
            vec![Step::Restart],
            vec![],
        ),
        (
            "IfNotPresent + restart only: no restart, RestartWouldNotHelp",
            Case::new(Deployment, ifnp(), "restart"),
            vec![],
            vec![(vec![Remedy::Restart], SkipReason::WouldNotHelp)],
        ),
        (
            "IfNotPresent + refresh,restart: refresh the node, then restart",
            Case::new(Deployment, ifnp(), "refresh,restart"),
            vec![
                Step::Refresh(vec![refresh_one("n1", "nginx:1.25")]),
                Step::Restart,
            ],
            vec![],
        ),
        (
            "IfNotPresent bare pod + refresh: refresh only",
            Case::new(Pod, ifnp(), "refresh"),
            vec![Step::Refresh(vec![refresh_one("n1", "nginx:1.25")])],
            vec![],
        ),
        (
            "IfNotPresent + pin: pin in the spec's own spelling",
            Case::new(Deployment, ifnp(), "pin"),
            vec![Step::Pin(vec![PinTarget {
                kind: ContainerKind::Container,
                name: "app".into(),
                from: "nginx:1.25".into(),
                to: format!("nginx:1.25@{}", d('a')),
            }])],
            vec![],
        ),
        (
            "Never: nothing helps",
            Case::new(
                Deployment,
                vec![container("app", "nginx:1.25", Never, "n1")],
                "restart,refresh",
            ),
            vec![],
            vec![(vec![Remedy::Restart], SkipReason::WouldNotHelp)],
        ),
        (
            "Always CronJob + restart: unsupported",
            Case::new(CronJob, always(), "restart"),
            vec![],
            vec![(vec![Remedy::Restart], SkipReason::Unsupported)],
        ),
        (
            "Always + refresh only: a refresh doesn't help running pods",
            Case::new(Deployment, always(), "refresh"),
            vec![],
            vec![(vec![Remedy::RefreshNode], SkipReason::WouldNotHelp)],
        ),
        (
            "nothing enabled: silence",
            Case::new(Deployment, always(), ""),
            vec![],
            vec![],
        ),
    ];
    for (name, case, steps, skips) in rows {
        let p = case.run();
        assert_eq!(p.steps, steps, "{name}");
        assert_eq!(skipped(&p), skips, "{name}");
        if !p.steps.is_empty() {
            assert_eq!(p.digests, BTreeSet::from([d('a')]), "{name}");
        }
    }
}

#[test]
fn restart_would_not_help_names_the_fix() {
    let p = Case::new(
        Deployment,
        vec![container("app", "nginx:1.25", IfNotPresent, "n1")],
        "restart",
    )
    .run();
    let m = &p.skips[0].message;
    assert!(m.contains("IfNotPresent, which equals the default"), "{m}");
    assert!(m.contains("remedy refresh"), "{m}");
    assert!(m.contains("remedy pin"), "{m}");
    assert!(m.contains("imagePullPolicy: Always"), "{m}");
}

#[test]
fn never_acts_on_unknown_fresh_or_pinned() {
    for verdict in [
        Verdict::Unknown(UnknownReason::NotRunning),
        Verdict::Fresh,
        Verdict::Pinned,
    ] {
        let mut c = container("app", "nginx:latest", Always, "n1");
        c.verdict = verdict.clone();
        let p = Case::new(Deployment, vec![c], "restart,refresh,pin").run();
        assert_eq!(p, Plan::default(), "{verdict:?}");
    }
    // A spec with a digest is never acted on, whatever the verdict says.
    let c = container("app", &format!("nginx:1.25@{}", d('b')), IfNotPresent, "n1");
    assert_eq!(
        Case::new(Deployment, vec![c], "restart,refresh,pin").run(),
        Plan::default()
    );
}

#[test]
fn refresh_groups_by_node_and_merges_secrets() {
    let mut a1 = container(
        "app",
        "registry.example.com/team/app:v2",
        IfNotPresent,
        "n1",
    );
    a1.pull_secrets = vec!["regcred".into()];
    a1.also_current = vec![d('c')];
    let mut a2 = a1.clone();
    a2.pod = "web-2".into();
    a2.node = Some("n2".into());
    a2.pull_secrets = vec!["other".into(), "regcred".into()];
    let mut side = container("side", "busybox:1.36", IfNotPresent, "n1");
    side.current_digest = d('b');
    let p = Case::new(Pod, vec![a1, a2, side], "refresh").run();
    let app = RefreshImage {
        spec_image: "registry.example.com/team/app:v2".into(),
        current: d('a'),
        accept: BTreeSet::from([d('a'), d('c')]),
        volume_carrier: None,
    };
    let busybox = RefreshImage {
        spec_image: "busybox:1.36".into(),
        current: d('b'),
        accept: BTreeSet::from([d('b')]),
        volume_carrier: None,
    };
    assert_eq!(
        p.steps,
        vec![Step::Refresh(vec![
            RefreshTarget {
                node: "n1".into(),
                images: vec![busybox, app.clone()],
                pull_secrets: vec!["regcred".into()],
            },
            RefreshTarget {
                node: "n2".into(),
                images: vec![app],
                pull_secrets: vec!["other".into(), "regcred".into()],
            },
        ])]
    );
    assert_eq!(p.digests, BTreeSet::from([d('a'), d('b')]));
}

#[test]
fn pin_needs_the_template_to_name_the_running_image() {
    let c = container("app", "nginx:1.25", IfNotPresent, "n1");
    let w = workload(Deployment);
    let mut state = state_for(std::slice::from_ref(&c));
    state.template[0].image = "nginx:1.26".into();
    let p = plan(&PlanInput {
        workload: &w,
        containers: std::slice::from_ref(&c),
        state: &state,
        enabled: enabled("pin"),
        record: None,
        in_flight: InFlightView::default(),
        limits: Limits {
            cooldown: Duration::from_secs(1800),
            max_in_flight: 3,
        },
        refreshed: &HashSet::new(),
        now: now(),
    });
    assert!(p.steps.is_empty());
    assert_eq!(
        skipped(&p),
        vec![(vec![Remedy::PinDigest], SkipReason::Unsupported)]
    );
}

#[test]
fn guards_hold_planned_steps_back() {
    let ifnp = || vec![container("app", "nginx:1.25", IfNotPresent, "n1")];
    let at = |s: &str| Some(s.parse::<Timestamp>().unwrap());
    let both = vec![Remedy::RefreshNode, Remedy::Restart];
    let rows: Vec<(&str, Case, SkipReason)> = vec![
        (
            "loop guard: same digest, long ago",
            Case {
                record: Some(GuardRecord {
                    digests: BTreeSet::from([d('a')]),
                    at: at("2026-01-01T00:00:00Z"),
                }),
                ..Case::new(Deployment, ifnp(), "refresh,restart")
            },
            SkipReason::LoopGuard,
        ),
        (
            "cooldown: another digest 10 minutes ago",
            Case {
                record: Some(GuardRecord {
                    digests: BTreeSet::from([d('9')]),
                    at: at("2026-03-01T11:50:00Z"),
                }),
                ..Case::new(Deployment, ifnp(), "refresh,restart")
            },
            SkipReason::Cooldown,
        ),
        (
            "mid-rollout: generation not observed",
            Case {
                rollout: Some(RolloutState {
                    observed_generation: 3,
                    ..settled()
                }),
                ..Case::new(Deployment, ifnp(), "refresh,restart")
            },
            SkipReason::Rollout,
        ),
        (
            "mid-rollout: unavailable replicas",
            Case {
                rollout: Some(RolloutState {
                    unavailable: 1,
                    ..settled()
                }),
                ..Case::new(Deployment, ifnp(), "refresh,restart")
            },
            SkipReason::Rollout,
        ),
        (
            "in flight for this workload",
            Case {
                in_flight: InFlightView {
                    total: 1,
                    this_workload: true,
                },
                ..Case::new(Deployment, ifnp(), "refresh,restart")
            },
            SkipReason::InFlight,
        ),
        (
            "cluster-wide cap reached",
            Case {
                in_flight: InFlightView {
                    total: 3,
                    this_workload: false,
                },
                ..Case::new(Deployment, ifnp(), "refresh,restart")
            },
            SkipReason::InFlight,
        ),
    ];
    for (name, case, reason) in rows {
        let p = case.run();
        assert!(p.steps.is_empty(), "{name}");
        assert_eq!(skipped(&p), vec![(both.clone(), reason)], "{name}");
    }

    // A new digest after the cooldown acts again.
    let p = Case {
        record: Some(GuardRecord {
            digests: BTreeSet::from([d('9')]),
            at: at("2026-03-01T11:30:00Z"),
        }),
        ..Case::new(Deployment, ifnp(), "refresh,restart")
    }
    .run();
    assert_eq!(p.steps.len(), 2);
    assert!(p.skips.is_empty());
}

#[test]
fn a_node_is_never_refreshed_twice_for_one_digest() {
    let done = HashSet::from([NodePull {
        node: "n1".into(),
        spec_image: "nginx:1.25".into(),
        digest: d('a'),
    }]);
    let ifnp = || vec![container("app", "nginx:1.25", IfNotPresent, "n1")];
    // A new CI agent pod on the refreshed node: nothing to do.
    let p = Case {
        refreshed: done.clone(),
        ..Case::new(Pod, ifnp(), "refresh")
    }
    .run();
    assert!(p.steps.is_empty());
    assert_eq!(
        skipped(&p),
        vec![(vec![Remedy::RefreshNode], SkipReason::LoopGuard)]
    );
    // A Deployment whose node is already refreshed: just the restart.
    let p = Case {
        refreshed: done.clone(),
        ..Case::new(Deployment, ifnp(), "refresh,restart")
    }
    .run();
    assert_eq!(p.steps, vec![Step::Restart]);
    // Another node, or a newer digest, is refreshed.
    let mut other = ifnp();
    other[0].node = Some("n2".into());
    let p = Case {
        refreshed: done,
        ..Case::new(Pod, other, "refresh")
    }
    .run();
    assert_eq!(
        p.steps,
        vec![Step::Refresh(vec![refresh_one("n2", "nginx:1.25")])]
    );
}
