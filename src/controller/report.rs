//! What is worth telling: verdict transitions per container (became
//! stale, fresh again, unknown for too long) and the Event messages that
//! say what runs, what the tag serves, why the policy is what it is and
//! which remedy works. Pure: `now` is passed in.

use super::store::ContainerKind;
use crate::policy::{EffectivePolicy, PullPolicy, restart_helps};
use crate::reference::ImageRef;
use crate::verdict::{Judgement, UnknownReason, Verdict};
use std::fmt::Write as _;
use std::time::Duration;
use tokio::time::Instant;

/// The Event note size limit (`events.k8s.io/v1` rejects larger notes).
pub const NOTE_LIMIT: usize = 1024;

/// A transition worth an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Notice {
    /// The container runs content its tag no longer serves.
    BecameStale,
    /// A container reported stale runs current content again.
    BecameFresh,
    /// The container could not be judged for longer than the threshold.
    CheckFailing,
}

impl Notice {
    /// The Event reason.
    pub fn reason(self) -> &'static str {
        match self {
            Notice::BecameStale => "StaleImage",
            Notice::BecameFresh => "ImageUpToDate",
            Notice::CheckFailing => "DriftCheckFailed",
        }
    }

    /// Whether the Event is a warning.
    pub fn is_warning(self) -> bool {
        !matches!(self, Notice::BecameFresh)
    }
}

/// The Event action (what imagedrift did to notice).
pub const ACTION: &str = "CheckImage";

/// What has been reported about one container so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tracker {
    /// A `StaleImage` was the last stale/fresh report.
    pub reported_stale: bool,
    /// Since when the verdict has been a failed check.
    pub failing_since: Option<Instant>,
    /// `DriftCheckFailed` was reported for the current failing spell.
    pub failure_reported: bool,
}

/// Whether an Unknown verdict means a check failed (rather than "nothing to
/// check yet": a container not running, a tag not resolved yet).
pub fn is_check_failure(reason: &UnknownReason) -> bool {
    !matches!(reason, UnknownReason::NotRunning | UnknownReason::Pending)
}

impl Tracker {
    /// Folds a new verdict in; returns the notice it calls for, if any.
    /// Unknown never clears a stale report, so a flapping registry does not
    /// produce stale/fresh pairs.
    pub fn observe(
        &mut self,
        verdict: &Verdict,
        now: Instant,
        threshold: Duration,
    ) -> Option<Notice> {
        match verdict {
            Verdict::Stale => {
                self.failing_since = None;
                self.failure_reported = false;
                (!std::mem::replace(&mut self.reported_stale, true)).then_some(Notice::BecameStale)
            }
            Verdict::Fresh | Verdict::Pinned => {
                self.failing_since = None;
                self.failure_reported = false;
                std::mem::replace(&mut self.reported_stale, false).then_some(Notice::BecameFresh)
            }
            Verdict::Unknown(r) if is_check_failure(r) => {
                let since = *self.failing_since.get_or_insert(now);
                if !self.failure_reported && now.duration_since(since) >= threshold {
                    self.failure_reported = true;
                    return Some(Notice::CheckFailing);
                }
                None
            }
            // Not running / not resolved yet: the failing spell is over, so
            // the next one is reported again.
            Verdict::Unknown(_) => {
                self.failing_since = None;
                self.failure_reported = false;
                None
            }
        }
    }
}

/// One container's facts, as a report needs them.
#[derive(Clone, Copy, Debug)]
pub struct ContainerFacts<'a> {
    /// Container name.
    pub container: &'a str,
    /// Which list it is in.
    pub kind: ContainerKind,
    /// The spec image, parsed.
    pub image: &'a ImageRef,
    /// The node it runs on.
    pub node: Option<&'a str>,
    /// Its effective pull policy, when known.
    pub policy: Option<&'a EffectivePolicy>,
    /// The judgement.
    pub judgement: &'a Judgement,
}

/// What to do about a stale container under its policy, in one sentence.
pub fn remedy_sentence(policy: Option<&EffectivePolicy>) -> String {
    let Some(p) = policy else {
        return "The pull policy is unknown; pinning the workload to the current digest works under any policy."
            .into();
    };
    let ways: Vec<&str> = p.remedies().iter().map(|r| r.describe()).collect();
    let ways = ways.join("; or ");
    if restart_helps(p.policy) {
        format!("A restart helps: {ways}.")
    } else if p.policy == PullPolicy::IfNotPresent {
        format!(
            "A restart does not help under IfNotPresent (a node that has the tag cached reuses the old content). What works: {ways}."
        )
    } else {
        format!(
            "A restart does not help under {}. What works: {ways}.",
            p.policy
        )
    }
}

fn where_(f: &ContainerFacts<'_>) -> String {
    let mut s = String::new();
    if let Some(n) = f.node {
        let _ = write!(s, " on node {n}");
    }
    if let Some(p) = &f.judgement.evidence.platform {
        let _ = write!(s, " ({p})");
    }
    s
}

/// `Container`, `Init container`, `Ephemeral container` or `Image volume`.
pub fn kind_word(k: ContainerKind) -> &'static str {
    match k {
        ContainerKind::Container => "Container",
        ContainerKind::Init => "Init container",
        ContainerKind::Ephemeral => "Ephemeral container",
        ContainerKind::ImageVolume => "Image volume",
    }
}

/// The Event note for a notice about one container, at most [`NOTE_LIMIT`] bytes.
pub fn message(notice: Notice, f: &ContainerFacts<'_>, failing_for: Option<Duration>) -> String {
    let e = &f.judgement.evidence;
    let digest = |d: &Option<crate::reference::Digest>| {
        d.as_ref().map_or("unknown".to_string(), |d| d.to_string())
    };
    let policy = f.policy.map_or("unknown".to_string(), |p| p.explain());
    let text = match notice {
        Notice::BecameStale => format!(
            "{} {} runs stale content for {}{}: running {}, the tag now serves {}. Pull policy: {}. {}{}",
            kind_word(f.kind),
            f.container,
            f.image,
            where_(f),
            digest(&e.running_digest),
            digest(&e.current_digest),
            policy,
            remedy_sentence(f.policy),
            e.current_digest.as_ref().map_or(String::new(), |d| format!(
                " Pinned reference: {}.",
                f.image.familiar_with_digest(d)
            )),
        ),
        Notice::BecameFresh => format!(
            "{} {} runs the content {} serves again{}: running {}, the tag serves {}.",
            kind_word(f.kind),
            f.container,
            f.image,
            where_(f),
            digest(&e.running_digest),
            digest(&e.current_digest),
        ),
        Notice::CheckFailing => {
            let reason = match &f.judgement.verdict {
                Verdict::Unknown(r) => r.as_str(),
                v => v.as_str(),
            };
            let since = failing_for.map_or(String::new(), |d| format!(" for {}", human(d)));
            let detail = e
                .detail
                .as_deref()
                .map_or(String::new(), |d| format!(" ({d})"));
            let what_to_do = match &f.judgement.verdict {
                Verdict::Unknown(UnknownReason::Lookup(_, category)) => format!(
                    " What to do: {}",
                    crate::registry::hint::for_failure(
                        *category,
                        f.image.domain(),
                        e.detail.as_deref().unwrap_or(""),
                        &f.image.to_string(),
                    )
                ),
                _ => String::new(),
            };
            format!(
                "Cannot tell whether {} {} runs current content for {}{}{}: {}{}. Running {}.{}",
                kind_word(f.kind).to_lowercase(),
                f.container,
                f.image,
                where_(f),
                since,
                reason,
                detail,
                digest(&e.running_digest),
                what_to_do,
            )
        }
    };
    truncate(text, NOTE_LIMIT)
}

/// A workload's pods, as its Events count them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodCounts {
    /// Its pods.
    pub total: usize,
    /// Those running stale content in some container.
    pub stale: usize,
    /// The stale containers' names, sorted.
    pub containers: Vec<String>,
}

/// The note for a workload-level Event: "2 of 2 pods of Deployment app run
/// stale content (container app)." then the first container's message;
/// on close, what fixed it (`detail`).
pub fn workload_message(
    notice: Notice,
    w: &super::owner::Workload,
    counts: &PodCounts,
    detail: Option<&str>,
) -> String {
    let (kind, name) = (&w.kind, &w.name);
    let text = match notice {
        Notice::BecameStale => {
            let which = match counts.containers.as_slice() {
                [] => String::new(),
                [one] => format!(" (container {one})"),
                many => format!(" (containers {})", many.join(", ")),
            };
            let verb = if counts.stale == 1 { "runs" } else { "run" };
            let head = format!(
                "{} of {} pod{} of {kind} {name} {verb} stale content{which}.",
                counts.stale,
                counts.total,
                if counts.total == 1 { "" } else { "s" },
            );
            match detail {
                Some(m) => format!("{head} First: {m}"),
                None => head,
            }
        }
        Notice::BecameFresh => {
            let head = format!("{kind} {name} runs current content again");
            match detail {
                Some(why) => format!("{head}: {why}."),
                None => format!("{head}."),
            }
        }
        Notice::CheckFailing => format!("{kind} {name} could not be checked."),
    };
    truncate(text, NOTE_LIMIT)
}

/// `1h30m`, `45m`, `90s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, _) => format!("{m}m"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// Cuts `s` to at most `limit` bytes on a character boundary, marking the cut.
pub fn truncate(mut s: String, limit: usize) -> String {
    if s.len() <= limit {
        return s;
    }
    let mark = "…";
    let mut end = limit - mark.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(mark);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::FailureCategory;
    use crate::verdict::LookupTarget;

    const T: Duration = Duration::from_secs(1800);

    fn unknown_lookup() -> Verdict {
        Verdict::Unknown(UnknownReason::Lookup(
            LookupTarget::Tag,
            FailureCategory::Unreachable,
        ))
    }

    #[test]
    fn transitions_table() {
        let t0 = Instant::now();
        let min = |m: u64| t0 + Duration::from_secs(60 * m);
        let nr = Verdict::Unknown(UnknownReason::NotRunning);
        // (verdict, at, expected notice)
        let steps: Vec<(Verdict, Instant, Option<Notice>)> = vec![
            (Verdict::Fresh, min(0), None),
            (Verdict::Fresh, min(5), None),
            (Verdict::Stale, min(10), Some(Notice::BecameStale)),
            (Verdict::Stale, min(15), None),
            (unknown_lookup(), min(20), None),
            (Verdict::Stale, min(25), None),
            (Verdict::Fresh, min(30), Some(Notice::BecameFresh)),
            (Verdict::Pinned, min(31), None),
            (unknown_lookup(), min(35), None),
            (unknown_lookup(), min(64), None),
            (unknown_lookup(), min(65), Some(Notice::CheckFailing)),
            (unknown_lookup(), min(200), None),
            (Verdict::Fresh, min(201), None),
            (unknown_lookup(), min(202), None),
            (unknown_lookup(), min(240), Some(Notice::CheckFailing)),
            (nr.clone(), min(241), None),
            (nr.clone(), min(400), None),
            // A new failing spell after the container ran again is news.
            (unknown_lookup(), min(410), None),
            (unknown_lookup(), min(440), Some(Notice::CheckFailing)),
            (nr, min(441), None),
            (Verdict::Stale, min(442), Some(Notice::BecameStale)),
        ];
        let mut tr = Tracker::default();
        for (i, (v, at, want)) in steps.into_iter().enumerate() {
            assert_eq!(tr.observe(&v, at, T), want, "step {i}: {v:?}");
        }
    }

    #[test]
    fn first_verdict_fresh_or_pinned_is_silent() {
        let t0 = Instant::now();
        assert_eq!(Tracker::default().observe(&Verdict::Pinned, t0, T), None);
        assert_eq!(
            Tracker::default().observe(&Verdict::Unknown(UnknownReason::Pending), t0 + T * 3, T),
            None
        );
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "é".repeat(600);
        let t = truncate(s, NOTE_LIMIT);
        assert!(t.len() <= NOTE_LIMIT);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short".into(), NOTE_LIMIT), "short");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(90)), "1m");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn remedy_sentence_follows_policy() {
        use crate::policy::{DefaultRule, PolicySource};
        let inp = EffectivePolicy {
            policy: PullPolicy::IfNotPresent,
            source: PolicySource::Defaulted(DefaultRule::NonLatestTag("v1".into())),
        };
        let s = remedy_sentence(Some(&inp));
        assert!(
            s.starts_with("A restart does not help under IfNotPresent"),
            "{s}"
        );
        assert!(s.contains("refresh the tag on the stale nodes"), "{s}");
        let always = EffectivePolicy {
            policy: PullPolicy::Always,
            source: PolicySource::Explicit,
        };
        assert!(remedy_sentence(Some(&always)).starts_with("A restart helps: a rollout restart"));
        let never = EffectivePolicy {
            policy: PullPolicy::Never,
            source: PolicySource::Explicit,
        };
        assert!(remedy_sentence(Some(&never)).contains("re-provision"));
        assert!(remedy_sentence(None).contains("pull policy is unknown"));
    }

    fn web() -> super::super::owner::Workload {
        super::super::owner::Workload {
            namespace: "shop".into(),
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: None,
        }
    }

    #[test]
    fn workload_message_is_bounded() {
        let long = "x".repeat(3000);
        let counts = PodCounts {
            total: 3,
            stale: 3,
            containers: vec!["app".into()],
        };
        let m = workload_message(Notice::BecameStale, &web(), &counts, Some(&long));
        assert!(
            m.starts_with(
                "3 of 3 pods of Deployment web run stale content (container app). First: xxx"
            ),
            "{m}"
        );
        assert!(m.len() <= NOTE_LIMIT);
    }

    #[test]
    fn workload_messages_count_pods() {
        let rows = [
            (
                2,
                2,
                vec!["app"],
                "2 of 2 pods of Deployment web run stale content (container app).",
            ),
            (
                1,
                3,
                vec!["app", "sidecar"],
                "1 of 3 pods of Deployment web runs stale content (containers app, sidecar).",
            ),
            (
                1,
                1,
                vec!["app"],
                "1 of 1 pod of Deployment web runs stale content (container app).",
            ),
        ];
        for (stale, total, containers, want) in rows {
            let counts = PodCounts {
                total,
                stale,
                containers: containers.into_iter().map(String::from).collect(),
            };
            assert_eq!(
                workload_message(Notice::BecameStale, &web(), &counts, None),
                want
            );
        }
        assert_eq!(
            workload_message(
                Notice::BecameFresh,
                &web(),
                &PodCounts::default(),
                Some("new pods run the current digest")
            ),
            "Deployment web runs current content again: new pods run the current digest."
        );
    }
}
